// kvplan-worker calibrate: per-block q/k energy statistics of a model over a
// prompt file, written as a calibration file (core/calibration_file.h: the
// statistics plus the model's fingerprint and RoPE layout) for `kvplan plan build`.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "client/cli/flags.h"
#include "core/block_stats.h"
#include "core/calibration_file.h"
#include "core/digest.h"
#include "core/file_io.h"
#include "worker/calibration/calibration_pass.h"
#include "worker/cli/calibration_flags.h"
#include "worker/cli/commands.h"
#include "worker/cli/runtime_flags.h"
#include "worker/model/checkpoint.h"
#include "worker/model/fingerprint.h"
#include "worker/model/transformer.h"
#include "worker/tokenizer/prompt_file.h"
#include "worker/tokenizer/tokenizer.h"

namespace kvplan::worker_cli {
namespace {

absl::Status Calibrate(const cli::Flags& flags, std::ostream& out) {
  absl::StatusOr<std::string> model_dir = flags.String("model");
  if (!model_dir.ok()) return model_dir.status();
  absl::StatusOr<std::string> prompt_path = flags.String("prompts");
  if (!prompt_path.ok()) return prompt_path.status();
  absl::StatusOr<std::string> out_path = flags.String("out");
  if (!out_path.ok()) return out_path.status();
  absl::StatusOr<CalibrationSettings> settings = CalibrationFlags(flags);
  if (!settings.ok()) return settings.status();
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
      CalibrationSequences(*prompts, **tokenizer, lm->config(), *settings, *prompt_path);
  if (!sequences.ok()) return sequences.status();
  absl::StatusOr<CalibrationResult> pass =
      RunCalibrationPass(*lm, *std::move(sequences), settings->batch);
  if (!pass.ok()) return pass.status();
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
                             .stats = std::move(pass->stats)};
  if (absl::Status st = WriteFileAtomically(*out_path, SerializeCalibrationFile(file)); !st.ok()) {
    return st;
  }
  out << absl::StrFormat(
      "calibrated %d tokens in %d sequences on %s/%s: %.2f s, %.0f tokens/s -> %s\n", pass->tokens,
      pass->sequences, lm->device(), ComputeDTypeName(lm->dtype()), pass->seconds,
      pass->seconds > 0 ? pass->tokens / pass->seconds : 0.0, *out_path);
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
