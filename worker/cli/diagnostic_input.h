// What `eval` and `validate` share around the fidelity diagnostic
// (worker/eval/fidelity_diagnostic.h): the test tokens, cut into the
// independent chunks the paper's protocol scores, and the forward pass that
// feeds each layer's pre-RoPE q and k to the diagnostic.
//
// Example:
//   absl::StatusOr<std::vector<std::vector<int32_t>>> chunks =
//       DiagnosticChunks("../shared/data/test-window.txt", *tokenizer, 2048, 256);
//   absl::StatusOr<std::vector<BudgetFidelity>> report = RunDiagnostic(lm, diagnostic, *chunks);
#ifndef KVPLAN_WORKER_CLI_DIAGNOSTIC_INPUT_H_
#define KVPLAN_WORKER_CLI_DIAGNOSTIC_INPUT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/eval/fidelity_diagnostic.h"
#include "worker/model/transformer.h"
#include "worker/tokenizer/tokenizer.h"

namespace kvplan::worker_cli {

// The first `tokens` tokens of `path` as tokens / chunk chunks of `chunk`
// tokens. A `.jsonl` file is a prompt file (worker/tokenizer/prompt_file.h):
// its prompts, tokenized without BOS, joined with the tokenizer's EOS id where
// it has one; any other file is one plain text, tokenized without BOS.
// InvalidArgument naming the file when it has fewer than `tokens` tokens.
absl::StatusOr<std::vector<std::vector<int32_t>>> DiagnosticChunks(const std::string& path,
                                                                   const Tokenizer& tokenizer,
                                                                   int64_t tokens, int64_t chunk);

// One forward pass over `chunks` (all the same length, as DiagnosticChunks
// makes them) handing every layer to `diagnostic`, then its report.
absl::StatusOr<std::vector<BudgetFidelity>> RunDiagnostic(
    const CausalLm& lm, FidelityDiagnostic& diagnostic,
    const std::vector<std::vector<int32_t>>& chunks);

}  // namespace kvplan::worker_cli

#endif  // KVPLAN_WORKER_CLI_DIAGNOSTIC_INPUT_H_
