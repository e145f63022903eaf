// kvplan plan build: a plan from calibration statistics, offline.
#include <chrono>

#include "absl/strings/str_format.h"
#include "client/cli/command_util.h"
#include "client/cli/commands.h"
#include "client/cli/inputs.h"
#include "core/calibration_file.h"
#include "core/digest.h"
#include "core/file_io.h"
#include "core/plan.h"
#include "nlohmann/json.hpp"

namespace kvplan::cli {
namespace {

struct PlanInputs {
  EnergyTable table;
  RopeSpec rope;
  std::string fingerprint;
  uint64_t tokens = 0;
  std::string stats_digest;
};

// A calibration file carries the RoPE layout; any other statistics need --model-config.
absl::StatusOr<PlanInputs> ReadPlanInputs(const Flags& flags) {
  absl::StatusOr<std::string> path = flags.String("stats");
  if (!path.ok()) return path.status();
  absl::StatusOr<std::string> bytes = ReadFile(*path);
  if (!bytes.ok()) return bytes.status();
  if (LooksLikeCalibrationFile(*bytes)) {
    absl::StatusOr<CalibrationFile> file = ParseCalibrationFile(*bytes);
    if (!file.ok()) return AnnotateWithPath(file.status(), *path);
    absl::StatusOr<EnergyTable> table = EnergyTableFromStats(file->stats);
    if (!table.ok()) return AnnotateWithPath(table.status(), *path);
    return PlanInputs{.table = *std::move(table),
                      .rope = file->rope,
                      .fingerprint = file->model_fingerprint,
                      .tokens = file->stats.tokens(),
                      .stats_digest = Sha256Hex(*bytes)};
  }
  if (!flags.Has("model-config")) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s is not a calibration file from kvplan-worker calibrate, so it does not say the "
        "model's RoPE layout; pass --model-config path/to/config.json",
        *path));
  }
  absl::StatusOr<EnergyTable> table = ReadEnergyTable(*path);
  if (!table.ok()) return table.status();
  absl::StatusOr<std::string> config_text = ReadFile(*flags.Get("model-config"));
  if (!config_text.ok()) return config_text.status();
  const nlohmann::json config = nlohmann::json::parse(*config_text, nullptr, false);
  if (config.is_discarded()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s is not valid JSON", *flags.Get("model-config")));
  }
  absl::StatusOr<RopeSpec> rope = RopeSpecFromHfConfig(config);
  if (!rope.ok()) return AnnotateWithPath(rope.status(), *flags.Get("model-config"));
  return PlanInputs{.table = *std::move(table), .rope = *rope, .stats_digest = Sha256Hex(*bytes)};
}

absl::Status Build(const std::vector<std::string>& args, std::ostream& out) {
  absl::StatusOr<Flags> flags = Flags::Parse(
      args,
      {.values = {"stats", "model-config", "k-bits", "v-bits", "score", "min-bits", "max-bits",
                  "rotation-seed", "out", "exempt-layers", "exempt-bits", "k-group-align"},
       .switches = {"uniform"}});
  if (!flags.ok()) return flags.status();
  PlanOptions options;
  absl::StatusOr<double> k_bits = flags->Double("k-bits");
  if (!k_bits.ok()) return k_bits.status();
  options.k_bits = *k_bits;
  absl::StatusOr<double> v_bits = flags->Double("v-bits");
  if (!v_bits.ok()) return v_bits.status();
  if (*v_bits != static_cast<int>(*v_bits)) {
    return absl::InvalidArgumentError("--v-bits must be a whole number (V is uniform TQ-MSE)");
  }
  options.v_bits = static_cast<int>(*v_bits);
  absl::StatusOr<ScoreKind> score = ScoreFlag(*flags);
  if (!score.ok()) return score.status();
  options.score = *score;
  absl::StatusOr<AllocationOptions> range = BitRangeFlags(*flags);
  if (!range.ok()) return range.status();
  options.min_bits = range->min_bits;
  options.max_bits = range->max_bits;
  absl::StatusOr<int64_t> seed =
      flags->Int("rotation-seed", static_cast<int64_t>(options.rotation_seed));
  if (!seed.ok()) return seed.status();
  options.rotation_seed = static_cast<uint64_t>(*seed);
  if (flags->Has("uniform")) options.k_scheme = KScheme::kUniform;
  absl::StatusOr<ExemptLayers> exempt = ExemptLayerFlags(*flags);
  if (!exempt.ok()) return exempt.status();
  options.exempt_layers = exempt->layers;
  options.exempt_bits = exempt->bits;
  absl::StatusOr<int> align = KGroupAlignFlag(*flags);
  if (!align.ok()) return align.status();
  options.k_group_align = *align;
  absl::StatusOr<std::string> out_path = flags->String("out");
  if (!out_path.ok()) return out_path.status();

  absl::StatusOr<PlanInputs> inputs = ReadPlanInputs(*flags);
  if (!inputs.ok()) return inputs.status();
  absl::StatusOr<KvPlan> plan = BuildPlan(inputs->table, inputs->rope, options);
  if (!plan.ok()) return plan.status();
  plan->model_fingerprint = inputs->fingerprint;
  plan->provenance = {.tokens = inputs->tokens,
                      .stats_digest = inputs->stats_digest,
                      .created_unix = std::chrono::duration_cast<std::chrono::seconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count(),
                      .source = *flags->Get("stats")};
  if (absl::Status st = WriteFileAtomically(*out_path, PlanToJson(*plan)); !st.ok()) return st;
  out << absl::StrFormat("wrote %s: %s; %d layers x %d KV heads, digest %s\n", *out_path,
                         PlanLabel(*plan), plan->num_layers, plan->num_kv_heads, PlanDigest(*plan));
  return absl::OkStatus();
}

}  // namespace

int RunPlan(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (args.empty() || args[0] != "build") {
    err << "kvplan plan: expected a sub-verb: build (see kvplan help)\n";
    return 2;
  }
  return ReportStatus(Build({args.begin() + 1, args.end()}, out), "plan build", err);
}

}  // namespace kvplan::cli
