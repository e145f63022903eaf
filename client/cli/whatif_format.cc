#include "client/cli/whatif_format.h"

#include <cmath>

#include "absl/strings/str_format.h"
#include "client/cli/command_util.h"

namespace kvplan::cli {

nlohmann::ordered_json WhatIfResultToJson(const WhatIfResult& r) {
  nlohmann::ordered_json layers = nlohmann::ordered_json::array();
  for (const LayerAllocationSummary& layer : r.layers) {
    layers.push_back({{"layer", layer.layer},
                      {"bit_histogram", layer.bit_histogram},
                      {"entropy_bits", layer.entropy_bits},
                      {"distortion", layer.distortion},
                      {"uniform_distortion", layer.uniform_distortion}});
  }
  return {{"k_bits", r.k_bits},
          {"v_bits", r.v_bits},
          {"k_bytes_per_token_head", r.k_bytes_per_token_head},
          {"v_bytes_per_token_head", r.v_bytes_per_token_head},
          {"bytes_per_token", r.bytes_per_token},
          {"compression_vs_fp16", r.compression_vs_fp16},
          {"compression_vs_fp8", r.compression_vs_fp8},
          {"kv_bytes_at_context", r.kv_bytes_at_context},
          {"max_context_tokens", r.max_context_tokens},
          {"distortion_ratio", r.distortion_ratio},
          {"layers", layers}};
}

void PrintWhatIfTable(const std::vector<WhatIfResult>& results, const WhatIfRequest& request,
                      bool per_layer, std::ostream& out) {
  if (request.k_group_align != 0) {
    out << absl::StrFormat("K width groups aligned to %d dims (exact aligned allocation)\n",
                           request.k_group_align);
  }
  std::string memory_header =
      request.memory_bytes > 0
          ? absl::StrFormat("max ctx @%.0fGiB", request.memory_bytes / kBytesPerGiB)
          : "";
  out << absl::StrFormat("%-6s %-6s %11s %11s %10s %8s %7s %16s %16s %s\n", "K b/d", "V b/d",
                         "K B/tok/hd", "V B/tok/hd", "B/token", "vs fp16", "vs fp8",
                         absl::StrFormat("GiB @%dx%d", request.context_tokens, request.batch),
                         memory_header, "distortion vs uniform");
  for (const WhatIfResult& r : results) {
    out << absl::StrFormat(
        "%-6g %-6d %11.2f %11.2f %10.2f %7.2fx %6.2fx %16.2f %16s %.3f\n", r.k_bits, r.v_bits,
        r.k_bytes_per_token_head, r.v_bytes_per_token_head, r.bytes_per_token,
        r.compression_vs_fp16, r.compression_vs_fp8, r.kv_bytes_at_context / kBytesPerGiB,
        request.memory_bytes > 0 ? absl::StrFormat("%d", r.max_context_tokens) : "",
        r.distortion_ratio);
  }
  if (!per_layer) return;
  double last_k = std::nan("");
  for (const WhatIfResult& r : results) {
    if (r.k_bits == last_k) continue;  // K allocation does not depend on V.
    last_k = r.k_bits;
    out << absl::StrFormat("\nK %g b/dim, per layer (blocks at each width over all KV heads):\n",
                           r.k_bits);
    out << absl::StrFormat("%-6s %-40s %8s %s\n", "layer", "widths 1..8", "entropy",
                           "distortion vs uniform");
    for (const LayerAllocationSummary& layer : r.layers) {
      std::string histogram;
      for (int w = 1; w <= 8; ++w) absl::StrAppendFormat(&histogram, "%4d", layer.bit_histogram[w]);
      out << absl::StrFormat(
          "%-6d %-40s %8.3f %.3f\n", layer.layer, histogram, layer.entropy_bits,
          layer.uniform_distortion > 0 ? layer.distortion / layer.uniform_distortion : 1.0);
    }
  }
}

absl::StatusOr<WhatIfRequest> WhatIfRequestFlags(const Flags& flags) {
  WhatIfRequest request;
  absl::StatusOr<std::vector<double>> k_bits = flags.DoubleList("k-bits");
  if (!k_bits.ok()) return k_bits.status();
  request.k_bits = *k_bits;
  absl::StatusOr<std::vector<double>> v_bits = flags.DoubleList("v-bits");
  if (!v_bits.ok()) return v_bits.status();
  for (double v : *v_bits) {
    if (v != std::floor(v)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("--v-bits: %g is not a whole number of bits (V is uniform TQ-MSE)", v));
    }
    request.v_bits.push_back(static_cast<int>(v));
  }
  absl::StatusOr<ScoreKind> score = ScoreFlag(flags);
  if (!score.ok()) return score.status();
  request.score = *score;
  absl::StatusOr<AllocationOptions> range = BitRangeFlags(flags);
  if (!range.ok()) return range.status();
  request.min_bits = range->min_bits;
  request.max_bits = range->max_bits;
  absl::StatusOr<int64_t> context = flags.Int("context", request.context_tokens);
  if (!context.ok()) return context.status();
  request.context_tokens = *context;
  absl::StatusOr<int64_t> batch = flags.Int("batch", request.batch);
  if (!batch.ok()) return batch.status();
  request.batch = *batch;
  absl::StatusOr<double> memory_gib = flags.Double("memory-gib", 0.0);
  if (!memory_gib.ok()) return memory_gib.status();
  if (*memory_gib < 0) return absl::InvalidArgumentError("--memory-gib must be >= 0");
  request.memory_bytes = static_cast<int64_t>(*memory_gib * kBytesPerGiB);
  absl::StatusOr<int> align = KGroupAlignFlag(flags);
  if (!align.ok()) return align.status();
  request.k_group_align = *align;
  return request;
}

}  // namespace kvplan::cli
