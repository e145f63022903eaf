#include "worker/cli/diagnostic_input.h"

#include "absl/strings/str_format.h"
#include "core/file_io.h"
#include "worker/tokenizer/prompt_file.h"

namespace kvplan::worker_cli {
namespace {

absl::StatusOr<std::vector<int32_t>> FileTokens(const std::string& path,
                                                const Tokenizer& tokenizer) {
  if (!path.ends_with(".jsonl")) {
    absl::StatusOr<std::string> text = ReadFile(path);
    if (!text.ok()) return text.status();
    return tokenizer.Encode(*text, /*add_bos=*/false);
  }
  absl::StatusOr<std::vector<Prompt>> prompts = ReadPromptFile(path);
  if (!prompts.ok()) return prompts.status();
  std::vector<int32_t> ids;
  for (const Prompt& prompt : *prompts) {
    if (!ids.empty() && tokenizer.eos_id().has_value()) ids.push_back(*tokenizer.eos_id());
    if (const std::vector<int32_t>* given = prompt.ids()) {
      ids.insert(ids.end(), given->begin(), given->end());
      continue;
    }
    absl::StatusOr<std::vector<int32_t>> encoded =
        tokenizer.Encode(*prompt.text(), /*add_bos=*/false);
    if (!encoded.ok()) {
      return absl::Status(
          encoded.status().code(),
          absl::StrFormat("%s:%d: %s", path, prompt.line, std::string(encoded.status().message())));
    }
    ids.insert(ids.end(), encoded->begin(), encoded->end());
  }
  return ids;
}

}  // namespace

absl::StatusOr<std::vector<std::vector<int32_t>>> DiagnosticChunks(const std::string& path,
                                                                   const Tokenizer& tokenizer,
                                                                   int64_t tokens, int64_t chunk) {
  absl::StatusOr<std::vector<int32_t>> ids = FileTokens(path, tokenizer);
  if (!ids.ok()) return ids.status();
  if (static_cast<int64_t>(ids->size()) < tokens) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s has %d tokens; the diagnostic needs %d (pass a longer text or a smaller --tokens)",
        path, ids->size(), tokens));
  }
  std::vector<std::vector<int32_t>> chunks;
  for (int64_t begin = 0; begin < tokens; begin += chunk) {
    chunks.emplace_back(ids->begin() + begin, ids->begin() + begin + chunk);
  }
  return chunks;
}

absl::StatusOr<std::vector<BudgetFidelity>> RunDiagnostic(
    const CausalLm& lm, FidelityDiagnostic& diagnostic,
    const std::vector<std::vector<int32_t>>& chunks) {
  int tokens = 0;
  for (const std::vector<int32_t>& chunk : chunks) tokens += static_cast<int>(chunk.size());
  // The chunks are all one length, so nothing is padded and the batch
  // flattens to chunk-major tokens, the layout AddLayer takes.
  absl::Status layer_status;
  ForwardOptions forward;
  forward.observe_rope_input = [&](int layer, absl::Span<const float> q,
                                   absl::Span<const float> k) {
    if (layer_status.ok()) layer_status = diagnostic.AddLayer(layer, q, k, tokens);
  };
  absl::StatusOr<ForwardResult> tested = lm.Forward(chunks, forward);
  if (!tested.ok()) return tested.status();
  if (!layer_status.ok()) return layer_status;
  return diagnostic.Finish();
}

}  // namespace kvplan::worker_cli
