// kvplan-worker calibrate: per-block q/k energy statistics of a model over a
// prompt file, written as a calibration file (core/calibration_file.h: the
// statistics plus the model's fingerprint and RoPE layout) for `kvplan plan build`.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/cli/flags.h"
#include "core/block_stats.h"
#include "core/calibration_file.h"
#include "core/digest.h"
#include "core/file_io.h"
#include "worker/cli/commands.h"
#include "worker/cli/runtime_flags.h"
#include "worker/model/checkpoint.h"
#include "worker/model/fingerprint.h"
#include "worker/model/transformer.h"
#include "worker/tokenizer/prompt_file.h"
#include "worker/tokenizer/tokenizer.h"

namespace kvplan::worker_cli {
namespace {

struct CalibrateSettings {
  // Total tokens to run; 0: every token of every prompt.
  int64_t max_tokens = 0;
  // Longest sequence; longer prompts are split into windows. 0: no splitting.
  int64_t seq_len = 0;
  int64_t batch = 8;
  bool add_bos = false;
};

// The prompt file as model sequences: tokenized, checked, split into windows
// of at most seq_len tokens, cut to the token budget.
absl::StatusOr<std::vector<std::vector<int32_t>>> Sequences(const std::vector<Prompt>& prompts,
                                                            const Tokenizer& tokenizer,
                                                            const ModelConfig& config,
                                                            const CalibrateSettings& settings,
                                                            const std::string& source) {
  std::vector<std::vector<int32_t>> sequences;
  int64_t budget =
      settings.max_tokens > 0 ? settings.max_tokens : std::numeric_limits<int64_t>::max();
  for (const Prompt& prompt : prompts) {
    if (budget == 0) break;
    std::vector<int32_t> ids;
    if (const std::string* text = prompt.text()) {
      absl::StatusOr<std::vector<int32_t>> encoded = tokenizer.Encode(*text, settings.add_bos);
      if (!encoded.ok()) {
        return absl::Status(encoded.status().code(),
                            absl::StrFormat("%s:%d: %s", source, prompt.line,
                                            std::string(encoded.status().message())));
      }
      ids = *std::move(encoded);
    } else {
      ids = *prompt.ids();
    }
    if (ids.empty()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s:%d: the prompt has no tokens", source, prompt.line));
    }
    for (int32_t id : ids) {
      if (id >= config.vocab_size) {
        return absl::InvalidArgumentError(
            absl::StrFormat("%s:%d: token id %d is outside the model's vocabulary [0, %d)", source,
                            prompt.line, id, config.vocab_size));
      }
    }
    const int64_t window =
        settings.seq_len > 0 ? settings.seq_len : static_cast<int64_t>(ids.size());
    if (window > config.max_position_embeddings) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s:%d: the prompt has %d tokens, more than the model's context of %d; pass "
          "--seq-len to split prompts into shorter windows",
          source, prompt.line, window, config.max_position_embeddings));
    }
    for (size_t begin = 0; begin < ids.size() && budget > 0; begin += window) {
      const int64_t len =
          std::min<int64_t>({window, static_cast<int64_t>(ids.size() - begin), budget});
      sequences.emplace_back(ids.begin() + begin, ids.begin() + begin + len);
      budget -= len;
    }
  }
  return sequences;
}

absl::Status Calibrate(const cli::Flags& flags, std::ostream& out) {
  absl::StatusOr<std::string> model_dir = flags.String("model");
  if (!model_dir.ok()) return model_dir.status();
  absl::StatusOr<std::string> prompt_path = flags.String("prompts");
  if (!prompt_path.ok()) return prompt_path.status();
  absl::StatusOr<std::string> out_path = flags.String("out");
  if (!out_path.ok()) return out_path.status();
  CalibrateSettings settings;
  for (auto [name, target] : {std::pair<const char*, int64_t*>{"max-tokens", &settings.max_tokens},
                              {"seq-len", &settings.seq_len},
                              {"batch", &settings.batch}}) {
    absl::StatusOr<int64_t> value = flags.Int(name, *target);
    if (!value.ok()) return value.status();
    if (*value < 0 || (*value == 0 && flags.Has(name))) {
      return absl::InvalidArgumentError(
          absl::StrFormat("--%s must be positive, got %d", name, *value));
    }
    *target = *value;
  }
  settings.add_bos = flags.Has("bos");
  absl::StatusOr<RuntimeOptions> runtime = RuntimeFlags(flags);
  if (!runtime.ok()) return runtime.status();

  // Read once: the same bytes are parsed and hashed into the file's provenance.
  absl::StatusOr<std::string> prompt_bytes = ReadFile(*prompt_path);
  if (!prompt_bytes.ok()) return prompt_bytes.status();
  absl::StatusOr<std::vector<Prompt>> prompts = ParsePrompts(*prompt_bytes, *prompt_path);
  if (!prompts.ok()) return prompts.status();
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = LoadTokenizer(*model_dir);
  if (!tokenizer.ok()) return tokenizer.status();
  absl::StatusOr<CausalLm> lm = CausalLm::Load(*model_dir, *runtime);
  if (!lm.ok()) return lm.status();
  absl::StatusOr<std::vector<std::vector<int32_t>>> sequences =
      Sequences(*prompts, **tokenizer, lm->config(), settings, *prompt_path);
  if (!sequences.ok()) return sequences.status();

  // Statistics are sums, so order is free: batching sequences of similar length
  // wastes the least compute on padding.
  std::stable_sort(sequences->begin(), sequences->end(),
                   [](const auto& a, const auto& b) { return a.size() < b.size(); });
  absl::StatusOr<BlockStats> stats = BlockStats::Create(lm->config().stats_shape());
  if (!stats.ok()) return stats.status();
  const auto start = std::chrono::steady_clock::now();
  int64_t tokens = 0;
  for (size_t begin = 0; begin < sequences->size(); begin += settings.batch) {
    const size_t end = std::min(sequences->size(), begin + static_cast<size_t>(settings.batch));
    const absl::Span<const std::vector<int32_t>> batch =
        absl::MakeConstSpan(*sequences).subspan(begin, end - begin);
    absl::StatusOr<ForwardResult> result = lm->Forward(batch, {.capture = &*stats});
    if (!result.ok()) return result.status();
    for (const auto& seq : batch) tokens += static_cast<int64_t>(seq.size());
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  absl::StatusOr<Checkpoint> checkpoint = Checkpoint::Open(*model_dir);
  if (!checkpoint.ok()) return checkpoint.status();
  absl::StatusOr<std::string> fingerprint = ModelFingerprint(*checkpoint);
  if (!fingerprint.ok()) return fingerprint.status();
  const ModelConfig& config = lm->config();
  const CalibrationFile file{.model_fingerprint = *fingerprint,
                             .architecture = std::string(ArchitectureName(config.architecture)),
                             .rope = config.rope,
                             .num_q_heads = config.num_heads,
                             .prompts_sha256 = Sha256Hex(*prompt_bytes),
                             .source = absl::StrFormat("kvplan-worker calibrate --model %s "
                                                       "--prompts %s",
                                                       *model_dir, *prompt_path),
                             .stats = *std::move(stats)};
  if (absl::Status st = WriteFileAtomically(*out_path, SerializeCalibrationFile(file)); !st.ok()) {
    return st;
  }
  out << absl::StrFormat(
      "calibrated %d tokens in %d sequences on %s/%s: %.2f s, %.0f tokens/s -> %s\n", tokens,
      sequences->size(), lm->device(), ComputeDTypeName(lm->dtype()), seconds,
      seconds > 0 ? tokens / seconds : 0.0, *out_path);
  return absl::OkStatus();
}

}  // namespace

int RunCalibrate(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  absl::StatusOr<cli::Flags> flags = cli::Flags::Parse(
      args,
      {.values = {"model", "prompts", "out", "max-tokens", "seq-len", "batch", "device", "dtype"},
       .switches = {"bos"}});
  if (!flags.ok()) return ReportStatus(flags.status(), "calibrate", err);
  return ReportStatus(Calibrate(*flags, out), "calibrate", err);
}

}  // namespace kvplan::worker_cli
