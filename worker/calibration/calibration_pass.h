// One calibration pass: prompts -> model sequences -> forward passes with
// capture -> BlockStats. `kvplan-worker calibrate` runs it over a prompt file
// and `kvplan-worker serve` over each leased shard, so a shard's statistics
// are bit-for-bit those `calibrate` computes over the shard's prompts with the
// same settings (the fp32 partial sums depend on how sequences are batched,
// which is why both must share this code rather than resemble it).
//
// Example:
//   absl::StatusOr<std::vector<std::vector<int32_t>>> seqs =
//       CalibrationSequences(prompts, tokenizer, lm.config(), {.seq_len = 256}, "p.jsonl");
//   absl::StatusOr<CalibrationResult> r = RunCalibrationPass(lm, *std::move(seqs), 8);
//   // r->stats holds the energies of r->tokens tokens.
#ifndef KVPLAN_WORKER_CALIBRATION_CALIBRATION_PASS_H_
#define KVPLAN_WORKER_CALIBRATION_CALIBRATION_PASS_H_

#include <cstdint>
#include <functional>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/block_stats.h"
#include "worker/model/transformer.h"
#include "worker/tokenizer/prompt_file.h"
#include "worker/tokenizer/tokenizer.h"

namespace kvplan {

struct CalibrationSettings {
  // Total tokens to run; 0: every token of every prompt.
  int64_t max_tokens = 0;
  // Longest sequence; longer prompts are split into windows. 0: no splitting.
  int64_t seq_len = 0;
  // Sequences per forward pass, >= 1.
  int64_t batch = 8;
  // Put BOS in front of text prompts.
  bool add_bos = false;
};

// The prompts as model sequences: tokenized, checked against the vocabulary
// and context, split into windows of at most seq_len tokens, cut to the token
// budget. InvalidArgument naming `source` and the line for a bad prompt.
absl::StatusOr<std::vector<std::vector<int32_t>>> CalibrationSequences(
    const std::vector<Prompt>& prompts, const Tokenizer& tokenizer, const ModelConfig& config,
    const CalibrationSettings& settings, std::string_view source);

struct CalibrationResult {
  BlockStats stats;
  int64_t tokens = 0;
  int64_t sequences = 0;
  double seconds = 0;
};

// Runs `sequences` through `lm` in batches of `batch`, capturing energies.
// `between_batches`, when set, is called before each batch; a non-OK status
// stops the pass and is returned (a worker uses it to give up a lost lease).
absl::StatusOr<CalibrationResult> RunCalibrationPass(
    const CausalLm& lm, std::vector<std::vector<int32_t>> sequences, int64_t batch,
    const std::function<absl::Status()>& between_batches = nullptr);

}  // namespace kvplan

#endif  // KVPLAN_WORKER_CALIBRATION_CALIBRATION_PASS_H_
