// kvplan-worker generate: greedy continuation of one prompt.
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "client/cli/flags.h"
#include "nlohmann/json.hpp"
#include "worker/cli/commands.h"
#include "worker/cli/runtime_flags.h"
#include "worker/model/transformer.h"
#include "worker/tokenizer/tokenizer.h"

namespace kvplan::worker_cli {
namespace {

// "1,403,407" -> {1, 403, 407}.
absl::StatusOr<std::vector<int32_t>> ParseIds(const std::string& text) {
  std::vector<int32_t> ids;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    int32_t id = 0;
    if (!absl::SimpleAtoi(part, &id) || id < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--prompt-ids: '", std::string(part), "' is not a token id"));
    }
    ids.push_back(id);
  }
  if (ids.empty()) return absl::InvalidArgumentError("--prompt-ids: no token ids");
  return ids;
}

absl::Status Generate(const cli::Flags& flags, std::ostream& out) {
  absl::StatusOr<std::string> model_dir = flags.String("model");
  if (!model_dir.ok()) return model_dir.status();
  absl::StatusOr<int64_t> max_new = flags.Int("max-new-tokens", 32);
  if (!max_new.ok()) return max_new.status();
  if (*max_new < 0 || *max_new > std::numeric_limits<int>::max()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max-new-tokens must be >= 0, got ", *max_new));
  }
  if (flags.Has("prompt") == flags.Has("prompt-ids")) {
    return absl::InvalidArgumentError("give exactly one of --prompt and --prompt-ids");
  }
  absl::StatusOr<RuntimeOptions> runtime = RuntimeFlags(flags);
  if (!runtime.ok()) return runtime.status();

  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = LoadTokenizer(*model_dir);
  if (!tokenizer.ok()) return tokenizer.status();
  std::vector<int32_t> prompt;
  if (flags.Has("prompt")) {
    const bool add_bos = !flags.Has("no-bos") && (*tokenizer)->adds_bos_by_default();
    absl::StatusOr<std::vector<int32_t>> ids = (*tokenizer)->Encode(*flags.Get("prompt"), add_bos);
    if (!ids.ok()) return ids.status();
    if (ids->empty()) return absl::InvalidArgumentError("--prompt encodes to no tokens");
    prompt = *std::move(ids);
  } else {
    absl::StatusOr<std::vector<int32_t>> ids = ParseIds(*flags.Get("prompt-ids"));
    if (!ids.ok()) return ids.status();
    prompt = *std::move(ids);
  }

  absl::StatusOr<CausalLm> lm = CausalLm::Load(*model_dir, *runtime);
  if (!lm.ok()) return lm.status();
  const std::vector<std::vector<int32_t>> batch = {prompt};
  absl::StatusOr<std::vector<std::vector<int32_t>>> generated =
      lm->Generate(batch, {.max_new_tokens = static_cast<int>(*max_new)});
  if (!generated.ok()) return generated.status();

  std::vector<int32_t> output = prompt;
  output.insert(output.end(), (*generated)[0].begin(), (*generated)[0].end());
  const std::string text = (*tokenizer)->Decode(output);
  if (flags.Has("json")) {
    // Ordered: the fields print in the documented order.
    nlohmann::ordered_json result = {{"prompt_ids", prompt}, {"output_ids", output}};
    // Decode may cut a multi-byte character at the end; replace rather than throw.
    result["output_text"] = text;
    out << result.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << "\n";
  } else {
    out << text << "\n";
  }
  return absl::OkStatus();
}

}  // namespace

int RunGenerate(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  absl::StatusOr<cli::Flags> flags = cli::Flags::Parse(
      args, {.values = {"model", "prompt", "prompt-ids", "max-new-tokens", "device", "dtype"},
             .switches = {"json", "no-bos"}});
  if (!flags.ok()) return ReportStatus(flags.status(), "generate", err);
  return ReportStatus(Generate(*flags, out), "generate", err);
}

}  // namespace kvplan::worker_cli
