// kvplan-worker ppl: teacher-forced perplexity with every layer's K/V in the
// packed cache, next to the same path with K/V kept in fp16.
//
// Text becomes windows thus: a .jsonl prompt file's prompts (prompt_file.h)
// are tokenized without BOS and joined with the tokenizer's EOS id between
// them (BOS if it has no EOS); any other file is tokenized whole. The stream
// is cut into consecutive windows of --context tokens, the incomplete tail is
// dropped, and each window is scored as its own sequence from position 0.
#include <fstream>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "client/cli/flags.h"
#include "core/energy_table.h"
#include "core/file_io.h"
#include "core/plan.h"
#include "nlohmann/json.hpp"
#include "worker/cli/commands.h"
#include "worker/cli/runtime_flags.h"
#include "worker/eval/perplexity.h"
#include "worker/model/checkpoint.h"
#include "worker/model/fingerprint.h"
#include "worker/model/transformer.h"
#include "worker/tokenizer/prompt_file.h"
#include "worker/tokenizer/tokenizer.h"

namespace kvplan::worker_cli {
namespace {

absl::StatusOr<std::vector<int32_t>> TextTokens(const std::string& path,
                                                const Tokenizer& tokenizer) {
  if (!absl::EndsWith(path, ".jsonl")) {
    absl::StatusOr<std::string> text = ReadFile(path);
    if (!text.ok()) return text.status();
    return tokenizer.Encode(*text, /*add_bos=*/false);
  }
  absl::StatusOr<std::vector<Prompt>> prompts = ReadPromptFile(path);
  if (!prompts.ok()) return prompts.status();
  const std::optional<int32_t> separator =
      tokenizer.eos_id().has_value() ? tokenizer.eos_id() : tokenizer.bos_id();
  std::vector<int32_t> ids;
  for (const Prompt& prompt : *prompts) {
    if (!ids.empty() && separator.has_value()) ids.push_back(*separator);
    if (const std::vector<int32_t>* given = prompt.ids()) {
      ids.insert(ids.end(), given->begin(), given->end());
      continue;
    }
    absl::StatusOr<std::vector<int32_t>> encoded = tokenizer.Encode(*prompt.text(), false);
    if (!encoded.ok()) {
      return absl::Status(encoded.status().code(),
                          absl::StrFormat("%s line %d: %s", path, prompt.line,
                                          std::string(encoded.status().message())));
    }
    ids.insert(ids.end(), encoded->begin(), encoded->end());
  }
  return ids;
}

absl::StatusOr<std::vector<std::vector<int32_t>>> Windows(const std::vector<int32_t>& ids,
                                                          int64_t context, int64_t max_windows,
                                                          const std::string& path) {
  std::vector<std::vector<int32_t>> windows;
  for (size_t begin = 0; begin + context <= ids.size(); begin += context) {
    if (max_windows > 0 && static_cast<int64_t>(windows.size()) == max_windows) break;
    windows.emplace_back(ids.begin() + begin, ids.begin() + begin + context);
  }
  if (windows.empty()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s has %d tokens, less than one --context window of %d; pass a longer "
                        "text or a smaller --context",
                        path, ids.size(), context));
  }
  return windows;
}

// --plan FILE, or a uniform TQ-MSE plan from --uniform-k-bits and --v-bits,
// checked against the model it will run on.
absl::StatusOr<KvPlan> LoadPlan(const cli::Flags& flags, const CausalLm& lm,
                                const std::string& model_dir) {
  absl::StatusOr<Checkpoint> checkpoint = Checkpoint::Open(model_dir);
  if (!checkpoint.ok()) return checkpoint.status();
  absl::StatusOr<std::string> fingerprint = ModelFingerprint(*checkpoint);
  if (!fingerprint.ok()) return fingerprint.status();
  const ModelConfig& config = lm.config();
  if (flags.Has("plan") == flags.Has("uniform-k-bits")) {
    return absl::InvalidArgumentError(
        "pass exactly one of --plan FILE and --uniform-k-bits B (with --v-bits B)");
  }
  if (flags.Has("plan")) {
    if (flags.Has("v-bits")) {
      return absl::InvalidArgumentError("--v-bits goes with --uniform-k-bits; a plan has its own");
    }
    absl::StatusOr<KvPlan> plan = ReadPlanFile(*flags.Get("plan"));
    if (!plan.ok()) return plan.status();
    if (plan->model_fingerprint != *fingerprint) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s is for the model with fingerprint '%s' but %s has fingerprint %s; build the plan "
          "from this model's statistics",
          *flags.Get("plan"), plan->model_fingerprint, model_dir, *fingerprint));
    }
    return plan;
  }
  absl::StatusOr<double> k_bits = flags.Double("uniform-k-bits");
  if (!k_bits.ok()) return k_bits.status();
  absl::StatusOr<double> v_bits = flags.Double("v-bits");
  if (!v_bits.ok()) return v_bits.status();
  if (*v_bits != static_cast<int>(*v_bits)) {
    return absl::InvalidArgumentError("--v-bits must be a whole number (V is uniform TQ-MSE)");
  }
  // Uniform allocation reads no statistics: any scores of the right shape do.
  nlohmann::json scores = nlohmann::json::object();
  for (int l = 0; l < config.num_layers; ++l) {
    for (int h = 0; h < config.num_kv_heads; ++h) {
      scores[absl::StrFormat("%d.%d", l, h)] = std::vector<double>(config.head_dim / 2, 1.0);
    }
  }
  absl::StatusOr<EnergyTable> table = EnergyTableFromJson(scores);
  if (!table.ok()) return table.status();
  absl::StatusOr<KvPlan> plan = BuildPlan(
      *table, config.rope,
      {.k_scheme = KScheme::kUniform, .k_bits = *k_bits, .v_bits = static_cast<int>(*v_bits)});
  if (!plan.ok()) return plan.status();
  plan->model_fingerprint = *fingerprint;
  return plan;
}

nlohmann::ordered_json RunJson(const char* name, const PerplexityResult& r, double k_bytes,
                               double v_bytes) {
  return {{"name", name},
          {"tokens_scored", r.tokens_scored},
          {"mean_nll", r.mean_nll},
          {"perplexity", r.perplexity},
          {"k_bytes_per_token_head", k_bytes},
          {"v_bytes_per_token_head", v_bytes}};
}

absl::Status Ppl(const cli::Flags& flags, std::ostream& out) {
  absl::StatusOr<std::string> model_dir = flags.String("model");
  if (!model_dir.ok()) return model_dir.status();
  absl::StatusOr<std::string> text_path = flags.String("text");
  if (!text_path.ok()) return text_path.status();
  absl::StatusOr<int64_t> context = flags.Int("context", 256);
  if (!context.ok()) return context.status();
  absl::StatusOr<int64_t> prefill = flags.Int("prefill", *context / 2);
  if (!prefill.ok()) return prefill.status();
  absl::StatusOr<int64_t> max_windows = flags.Int("max-windows", 0);
  if (!max_windows.ok()) return max_windows.status();
  absl::StatusOr<int64_t> sinks = flags.Int("sinks", 0);
  if (!sinks.ok()) return sinks.status();
  absl::StatusOr<int64_t> recent = flags.Int("recent", 0);
  if (!recent.ok()) return recent.status();
  if (*context < 2 || *prefill < 1 || *prefill > *context || *max_windows < 0 || *sinks < 0 ||
      *recent < 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "need --context >= 2, 1 <= --prefill <= --context, --max-windows >= 0, --sinks >= 0 and "
        "--recent >= 0; got %d, %d, %d, %d, %d",
        *context, *prefill, *max_windows, *sinks, *recent));
  }
  absl::StatusOr<RuntimeOptions> runtime = RuntimeFlags(flags);
  if (!runtime.ok()) return runtime.status();

  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = LoadTokenizer(*model_dir);
  if (!tokenizer.ok()) return tokenizer.status();
  absl::StatusOr<CausalLm> lm = CausalLm::Load(*model_dir, *runtime);
  if (!lm.ok()) return lm.status();
  if (*context > lm->config().max_position_embeddings) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--context %d exceeds the model's %d positions", *context,
                        lm->config().max_position_embeddings));
  }
  absl::StatusOr<KvPlan> plan = LoadPlan(flags, *lm, *model_dir);
  if (!plan.ok()) return plan.status();
  absl::StatusOr<std::vector<int32_t>> ids = TextTokens(*text_path, **tokenizer);
  if (!ids.ok()) return ids.status();
  absl::StatusOr<std::vector<std::vector<int32_t>>> windows =
      Windows(*ids, *context, *max_windows, *text_path);
  if (!windows.ok()) return windows.status();

  PerplexityOptions options{.prefill_tokens = static_cast<int>(*prefill),
                            .cache = {.sink_tokens = static_cast<int>(*sinks),
                                      .recent_tokens = static_cast<int>(*recent)}};
  absl::StatusOr<PerplexityResult> packed = MeasurePerplexity(*lm, *plan, *windows, options);
  if (!packed.ok()) return packed.status();
  absl::StatusOr<PackedKvCache> cache = PackedKvCache::Create(*plan, lm->config().num_heads);
  if (!cache.ok()) return cache.status();
  // The mean over every (layer, KV head): exempt layers' wider K and V count.
  const PackedTokenBytes bytes = cache->MeanBytesPerToken();
  const double fp16_bytes = 2.0 * lm->config().head_dim;

  nlohmann::ordered_json runs = nlohmann::ordered_json::array();
  std::optional<PerplexityResult> fp16;
  if (!flags.Has("skip-fp16")) {
    options.cache = Fp16CacheOptions();
    absl::StatusOr<PerplexityResult> baseline = MeasurePerplexity(*lm, *plan, *windows, options);
    if (!baseline.ok()) return baseline.status();
    fp16 = *baseline;
    runs.push_back(RunJson("fp16", *fp16, fp16_bytes, fp16_bytes));
  }
  runs.push_back(RunJson("packed", *packed, bytes.k, bytes.v));

  const std::string scheme(KSchemeName(plan->options.k_scheme));
  if (flags.Has("json")) {
    nlohmann::ordered_json report = {{"model", *model_dir},
                                     {"text", *text_path},
                                     {"context", *context},
                                     {"prefill", *prefill},
                                     {"sinks", *sinks},
                                     {"recent", *recent},
                                     {"windows", packed->windows},
                                     {"plan",
                                      {{"digest", PlanDigest(*plan)},
                                       {"k_scheme", scheme},
                                       {"k_bits", plan->options.k_bits},
                                       {"v_bits", plan->options.v_bits}}},
                                     {"runs", runs}};
    if (!plan->options.exempt_layers.empty()) {
      report["plan"]["exempt_layers"] = plan->options.exempt_layers;
      report["plan"]["exempt_bits"] = plan->options.exempt_bits;
    }
    if (plan->options.k_group_align != 0) {
      report["plan"]["k_group_align"] = plan->options.k_group_align;
    }
    if (fp16) report["delta_ppl"] = packed->perplexity - fp16->perplexity;
    out << report.dump(1) << "\n";
    return absl::OkStatus();
  }
  out << absl::StrFormat("%d windows of %d tokens (prefill %d), %d tokens scored\n",
                         packed->windows, *context, *prefill, packed->tokens_scored);
  out << absl::StrFormat("%-22s %10s %10s %8s %8s\n", "run", "ppl", "mean_nll", "K B/tok",
                         "V B/tok");
  if (fp16) {
    out << absl::StrFormat("%-22s %10.4f %10.5f %8.2f %8.2f\n", "fp16", fp16->perplexity,
                           fp16->mean_nll, fp16_bytes, fp16_bytes);
  }
  out << absl::StrFormat("%-22s %10.4f %10.5f %8.2f %8.2f\n", PlanLabel(*plan), packed->perplexity,
                         packed->mean_nll, bytes.k, bytes.v);
  return absl::OkStatus();
}

}  // namespace

int RunPpl(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  absl::StatusOr<cli::Flags> flags = cli::Flags::Parse(
      args, {.values = {"model", "text", "plan", "uniform-k-bits", "v-bits", "context", "prefill",
                        "max-windows", "sinks", "recent", "device", "dtype"},
             .switches = {"json", "skip-fp16"}});
  if (!flags.ok()) return ReportStatus(flags.status(), "ppl", err);
  return ReportStatus(Ppl(*flags, out), "ppl", err);
}

}  // namespace kvplan::worker_cli
