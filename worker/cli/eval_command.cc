// kvplan-worker eval: the paper's fidelity diagnostic on a real model.
#include <fstream>
#include <optional>

#include "absl/strings/str_format.h"
#include "client/cli/flags.h"
#include "core/file_io.h"
#include "nlohmann/json.hpp"
#include "worker/cli/commands.h"
#include "worker/cli/diagnostic_input.h"
#include "worker/cli/runtime_flags.h"
#include "worker/eval/fidelity_diagnostic.h"
#include "worker/model/transformer.h"
#include "worker/tokenizer/tokenizer.h"

namespace kvplan::worker_cli {
namespace {

constexpr const char* kMethodNames[kNumKMethods] = {"tq", "bgt", "bgt_product"};

nlohmann::ordered_json ReportJson(const std::vector<BudgetFidelity>& report) {
  nlohmann::ordered_json bits = nlohmann::ordered_json::object();
  for (const BudgetFidelity& budget : report) {
    nlohmann::ordered_json layers = nlohmann::ordered_json::array();
    for (const LayerFidelity& l : budget.layers) {
      nlohmann::ordered_json row = {{"layer", l.layer}};
      for (int m = 0; m < kNumKMethods; ++m)
        row[absl::StrFormat("mae_%s", kMethodNames[m])] = l.mae[m];
      for (int m = 0; m < kNumKMethods; ++m)
        row[absl::StrFormat("kl_%s", kMethodNames[m])] = l.kl[m];
      for (int m = 0; m < kNumKMethods; ++m) {
        row[absl::StrFormat("top10_%s", kMethodNames[m])] = l.top_k[m];
      }
      layers.push_back(row);
    }
    bits[std::to_string(budget.bits)] = {
        {"layers", layers},
        {"wins", budget.wins},
        {"mae_reduction_mean", budget.mae_reduction_mean},
        {"mae_reduction_mean_product", budget.mae_reduction_mean_product}};
  }
  return {{"bits", bits}};
}

void PrintTable(const std::vector<BudgetFidelity>& report, std::ostream& out) {
  for (const BudgetFidelity& budget : report) {
    out << absl::StrFormat(
        "K %d b/dim: Block-GTQ wins %d/%d layers, mean MAE reduction %.1f%% (product score "
        "%.1f%%)\n",
        budget.bits, budget.wins, budget.layers.size(), 100 * budget.mae_reduction_mean,
        100 * budget.mae_reduction_mean_product);
    out << absl::StrFormat("%-6s %9s %9s %9s %9s %9s %9s %8s %8s\n", "layer", "mae_tq", "mae_bgt",
                           "mae_prod", "kl_tq", "kl_bgt", "kl_prod", "top10_tq", "top10_bgt");
    for (const LayerFidelity& l : budget.layers) {
      out << absl::StrFormat("%-6d %9.4f %9.4f %9.4f %9.5f %9.5f %9.5f %8.3f %8.3f\n", l.layer,
                             l.mae[0], l.mae[1], l.mae[2], l.kl[0], l.kl[1], l.kl[2], l.top_k[0],
                             l.top_k[1]);
    }
    out << "\n";
  }
}

absl::Status Eval(const cli::Flags& flags, std::ostream& out) {
  absl::StatusOr<std::string> model_dir = flags.String("model");
  if (!model_dir.ok()) return model_dir.status();
  absl::StatusOr<std::string> calib_path = flags.String("calib-text");
  if (!calib_path.ok()) return calib_path.status();
  absl::StatusOr<std::string> test_path = flags.String("test-text");
  if (!test_path.ok()) return test_path.status();
  DiagnosticOptions options;
  if (flags.Has("bits")) {
    absl::StatusOr<std::vector<double>> bits = flags.DoubleList("bits");
    if (!bits.ok()) return bits.status();
    options.bits.clear();
    for (double b : *bits) {
      if (b != static_cast<int>(b) || b < 1 || b > 8) {
        return absl::InvalidArgumentError(
            absl::StrFormat("--bits: %g is not a whole number of bits in [1, 8]", b));
      }
      options.bits.push_back(static_cast<int>(b));
    }
  }
  absl::StatusOr<int64_t> tokens = flags.Int("tokens", 2048);
  if (!tokens.ok()) return tokens.status();
  absl::StatusOr<int64_t> chunk = flags.Int("chunk", 256);
  if (!chunk.ok()) return chunk.status();
  if (*chunk <= options.first_query || *tokens < *chunk || *tokens % *chunk != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--tokens %d must be a positive multiple of --chunk %d, and chunks longer than %d", *tokens,
        *chunk, options.first_query));
  }
  options.chunk_tokens = static_cast<int>(*chunk);
  absl::StatusOr<RuntimeOptions> runtime = RuntimeFlags(flags);
  if (!runtime.ok()) return runtime.status();

  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = LoadTokenizer(*model_dir);
  if (!tokenizer.ok()) return tokenizer.status();
  absl::StatusOr<CausalLm> lm = CausalLm::Load(*model_dir, *runtime);
  if (!lm.ok()) return lm.status();
  absl::StatusOr<std::vector<std::vector<int32_t>>> calib =
      DiagnosticChunks(*calib_path, **tokenizer, *tokens, *chunk);
  if (!calib.ok()) return calib.status();
  absl::StatusOr<std::vector<std::vector<int32_t>>> test =
      DiagnosticChunks(*test_path, **tokenizer, *tokens, *chunk);
  if (!test.ok()) return test.status();

  absl::StatusOr<BlockStats> stats = BlockStats::Create(lm->config().stats_shape());
  if (!stats.ok()) return stats.status();
  absl::StatusOr<ForwardResult> calibrated = lm->Forward(*calib, {.capture = &*stats});
  if (!calibrated.ok()) return calibrated.status();
  absl::StatusOr<FidelityDiagnostic> diagnostic =
      FidelityDiagnostic::Create(*stats, lm->config().rope, lm->config().num_heads, options);
  if (!diagnostic.ok()) return diagnostic.status();

  absl::StatusOr<std::vector<BudgetFidelity>> report = RunDiagnostic(*lm, *diagnostic, *test);
  if (!report.ok()) return report.status();

  if (std::optional<std::string> json_path = flags.Get("json")) {
    return WriteFileAtomically(*json_path, ReportJson(*report).dump(1) + "\n");
  }
  PrintTable(*report, out);
  return absl::OkStatus();
}

}  // namespace

int RunEval(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  absl::StatusOr<cli::Flags> flags =
      cli::Flags::Parse(args, {.values = {"model", "calib-text", "test-text", "bits", "tokens",
                                          "chunk", "device", "dtype", "json"}});
  if (!flags.ok()) return ReportStatus(flags.status(), "eval", err);
  return ReportStatus(Eval(*flags, out), "eval", err);
}

}  // namespace kvplan::worker_cli
