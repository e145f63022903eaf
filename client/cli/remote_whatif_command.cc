// kvplan --coordinator ADDR whatif: budget what-if over a model's stored statistics.
#include "absl/strings/str_format.h"
#include "client/cli/command_util.h"
#include "client/cli/coordinator_connection.h"
#include "client/cli/whatif_format.h"
#include "kvplan/v1/whatif_service.grpc.pb.h"
#include "proto/wire_convert.h"

namespace kvplan::cli {
namespace {

WhatIfResult FromRow(const v1::WhatIfRow& row) {
  WhatIfResult r;
  r.k_bits = row.k_bits();
  r.v_bits = row.v_bits();
  for (const v1::LayerSummary& l : row.layers()) {
    LayerAllocationSummary s;
    s.layer = l.layer();
    for (int i = 0; i < l.bit_histogram_size() && i < static_cast<int>(s.bit_histogram.size());
         ++i) {
      s.bit_histogram[i] = l.bit_histogram(i);
    }
    s.entropy_bits = l.entropy_bits();
    s.distortion = l.distortion();
    s.uniform_distortion = l.uniform_distortion();
    r.layers.push_back(s);
  }
  r.k_bytes_per_token_head = row.k_bytes_per_token_head();
  r.v_bytes_per_token_head = row.v_bytes_per_token_head();
  r.bytes_per_token = row.bytes_per_token();
  r.compression_vs_fp16 = row.compression_vs_fp16();
  r.compression_vs_fp8 = row.compression_vs_fp8();
  r.kv_bytes_at_context = row.kv_bytes_at_context();
  r.max_context_tokens = row.max_context_tokens();
  r.distortion_ratio = row.distortion_ratio();
  return r;
}

}  // namespace

absl::Status RunRemoteWhatIf(const CoordinatorConnection& c, const std::vector<std::string>& args,
                             std::ostream& out) {
  absl::StatusOr<Flags> flags = Flags::Parse(
      args, {.values = {"model", "stats-digest", "k-bits", "v-bits", "score", "min-bits",
                        "max-bits", "context", "batch", "memory-gib", "k-group-align"},
             .switches = {"json", "per-layer"}});
  if (!flags.ok()) return flags.status();
  absl::StatusOr<std::string> model = flags->String("model");
  if (!model.ok()) return model.status();
  absl::StatusOr<WhatIfRequest> parsed = WhatIfRequestFlags(*flags);
  if (!parsed.ok()) return parsed.status();
  v1::WhatIfRequest request;
  request.set_model_id(*model);
  request.set_stats_digest(flags->Get("stats-digest").value_or(""));
  for (double k : parsed->k_bits) request.add_k_bits(k);
  for (int v : parsed->v_bits) request.add_v_bits(v);
  request.set_score(wire::ScoreToProto(parsed->score));
  request.set_min_bits(parsed->min_bits);
  request.set_max_bits(parsed->max_bits);
  request.set_context_tokens(parsed->context_tokens);
  request.set_batch(parsed->batch);
  request.set_memory_bytes(parsed->memory_bytes);
  request.set_k_group_align(parsed->k_group_align);
  v1::WhatIfResponse response;
  auto stub = v1::WhatIfService::NewStub(c.channel());
  if (absl::Status st = FromGrpc(stub->WhatIf(c.NewContext().get(), request, &response));
      !st.ok()) {
    return st;
  }
  std::vector<WhatIfResult> rows;
  for (const v1::WhatIfRow& row : response.rows()) rows.push_back(FromRow(row));
  if (flags->Has("json")) {
    nlohmann::ordered_json json = nlohmann::ordered_json::array();
    for (const WhatIfResult& r : rows) json.push_back(WhatIfResultToJson(r));
    out << json.dump(2) << "\n";
    return absl::OkStatus();
  }
  out << absl::StrFormat("model %s, statistics %s, score %s\n", *model,
                         response.stats_digest().substr(0, 16), ScoreKindName(parsed->score));
  PrintWhatIfTable(rows, *parsed, flags->Has("per-layer"), out);
  return absl::OkStatus();
}

}  // namespace kvplan::cli
