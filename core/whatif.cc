#include "core/whatif.h"

#include <cmath>

#include "absl/strings/str_format.h"
#include "core/packed_page.h"

namespace kvplan {
namespace {

constexpr int kNormBytes = 2;  // fp16

double Entropy(const std::array<int64_t, 9>& histogram) {
  int64_t total = 0;
  for (int64_t n : histogram) total += n;
  double entropy = 0.0;
  for (int64_t n : histogram) {
    if (n == 0) continue;
    const double p = static_cast<double>(n) / total;
    entropy -= p * std::log2(p);
  }
  return entropy;
}

// Allocations of every head at every K budget: [head][budget] -> bits per block.
using HeadAllocations = std::vector<std::vector<std::vector<int>>>;

// One head's allocation at every K budget: the greedy's (allocations nest, so
// one pass serves every budget) or, with k_group_align, one aligned search per
// budget (aligned allocations do not nest).
absl::StatusOr<std::vector<std::vector<int>>> AllocateHead(absl::Span<const double> scores,
                                                           const WhatIfRequest& request,
                                                           const AllocationOptions& options) {
  if (request.k_group_align == 0) return GreedyAllocateBudgets(scores, request.k_bits, options);
  std::vector<std::vector<int>> all;
  for (double k_bits : request.k_bits) {
    AllocationOptions one = options;
    one.avg_bits = k_bits;
    absl::StatusOr<std::vector<int>> bits =
        GroupAlignedAllocate(scores, one, request.k_group_align / 2);
    if (!bits.ok()) return bits.status();
    all.push_back(*std::move(bits));
  }
  return all;
}

absl::StatusOr<HeadAllocations> AllocateAll(const EnergyTable& table, const WhatIfRequest& request,
                                            std::vector<std::vector<double>>& scores) {
  const AllocationOptions options{.min_bits = request.min_bits, .max_bits = request.max_bits};
  HeadAllocations all;
  for (int l = 0; l < table.num_layers(); ++l) {
    for (int h = 0; h < table.num_kv_heads(); ++h) {
      absl::StatusOr<std::vector<double>> s = table.Scores(l, h, request.score);
      if (!s.ok()) return s.status();
      absl::StatusOr<std::vector<std::vector<int>>> bits = AllocateHead(*s, request, options);
      if (!bits.ok()) {
        return absl::Status(
            bits.status().code(),
            absl::StrFormat("layer %d kv_head %d: %s", l, h, std::string(bits.status().message())));
      }
      scores.push_back(*std::move(s));
      all.push_back(*std::move(bits));
    }
  }
  return all;
}

// The K half of TokenBytesForHead: per width, a dense code stream of its
// blocks' 2 dims each, and one norm.
KvTokenBytes KBytesForHead(absl::Span<const int> k_block_bits) {
  std::array<int, 9> blocks_at_width{};
  for (int b : k_block_bits) ++blocks_at_width[b];
  KvTokenBytes bytes;
  for (int w = 1; w <= 8; ++w) {
    if (blocks_at_width[w] == 0) continue;
    bytes.k_codes += 2.0 * blocks_at_width[w] * w / 8;
    bytes.k_norms += kNormBytes;
  }
  return bytes;
}

}  // namespace

KvTokenBytes TokenBytesForHead(absl::Span<const int> k_block_bits, int v_bits) {
  KvTokenBytes bytes = KBytesForHead(k_block_bits);
  const int head_dim = 2 * static_cast<int>(k_block_bits.size());
  bytes.v_codes = static_cast<double>(head_dim) * v_bits / 8;
  bytes.v_norms = kNormBytes;
  return bytes;
}

absl::StatusOr<std::vector<WhatIfResult>> RunWhatIf(const EnergyTable& table,
                                                    const WhatIfRequest& request) {
  if (request.k_bits.empty() || request.v_bits.empty()) {
    return absl::InvalidArgumentError("what-if needs at least one K budget and one V budget");
  }
  for (int v : request.v_bits) {
    if (v < kMinSupportedBits || v > kMaxSupportedBits) {
      return absl::OutOfRangeError(absl::StrFormat(
          "V budget %d bits is outside [1, 8]; V is uniform TQ-MSE, so use whole bits", v));
    }
  }
  if (request.context_tokens <= 0 || request.batch <= 0 || request.memory_bytes < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("context (%d) and batch (%d) must be positive and memory (%d) non-negative",
                        request.context_tokens, request.batch, request.memory_bytes));
  }
  if (absl::Status st = ValidateKGroupAlign(request.k_group_align, 2 * table.num_blocks());
      !st.ok()) {
    return st;
  }
  std::vector<std::vector<double>> scores;
  absl::StatusOr<HeadAllocations> allocations = AllocateAll(table, request, scores);
  if (!allocations.ok()) return allocations.status();

  const int num_heads = table.num_layers() * table.num_kv_heads();
  const int head_dim = 2 * table.num_blocks();
  std::vector<WhatIfResult> results;
  for (size_t kb = 0; kb < request.k_bits.size(); ++kb) {
    absl::StatusOr<std::vector<int>> uniform =
        UniformAllocate(table.num_blocks(), {.avg_bits = request.k_bits[kb],
                                             .min_bits = request.min_bits,
                                             .max_bits = request.max_bits});
    if (!uniform.ok()) return uniform.status();
    WhatIfResult base;
    base.k_bits = request.k_bits[kb];
    double k_bytes = 0.0;  // Quarter-byte multiples: sums are exact.
    double distortion = 0.0, uniform_distortion = 0.0;
    for (int l = 0; l < table.num_layers(); ++l) {
      LayerAllocationSummary layer{.layer = l};
      for (int h = 0; h < table.num_kv_heads(); ++h) {
        const int head = l * table.num_kv_heads() + h;
        const std::vector<int>& bits = (*allocations)[head][kb];
        for (int b : bits) ++layer.bit_histogram[b];
        layer.distortion += AllocationDistortion(scores[head], bits);
        layer.uniform_distortion += AllocationDistortion(scores[head], *uniform);
        const KvTokenBytes bytes = KBytesForHead(bits);
        k_bytes += bytes.k();
      }
      layer.entropy_bits = Entropy(layer.bit_histogram);
      distortion += layer.distortion;
      uniform_distortion += layer.uniform_distortion;
      base.layers.push_back(layer);
    }
    base.k_bytes_per_token_head = k_bytes / num_heads;
    base.distortion_ratio = uniform_distortion > 0.0 ? distortion / uniform_distortion : 1.0;

    for (int v : request.v_bits) {
      WhatIfResult result = base;
      result.v_bits = v;
      const KvTokenBytes v_bytes = TokenBytesForHead(*uniform, v);
      result.v_bytes_per_token_head = v_bytes.v();
      result.bytes_per_token = k_bytes + v_bytes.v() * num_heads;
      const double fp16 = 4.0 * head_dim * num_heads;
      result.compression_vs_fp16 = fp16 / result.bytes_per_token;
      result.compression_vs_fp8 = fp16 / 2.0 / result.bytes_per_token;
      // The cache allocates whole pages: one page of every head holds 64 tokens.
      const int64_t page_bytes = std::llround(result.bytes_per_token * kPageTokens);
      const int64_t pages = (request.context_tokens + kPageTokens - 1) / kPageTokens;
      result.kv_bytes_at_context = pages * page_bytes * request.batch;
      if (request.memory_bytes > 0) {
        result.max_context_tokens =
            request.memory_bytes / (page_bytes * request.batch) * kPageTokens;
      }
      results.push_back(std::move(result));
    }
  }
  return results;
}

}  // namespace kvplan
