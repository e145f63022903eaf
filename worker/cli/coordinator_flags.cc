#include "worker/cli/coordinator_flags.h"

#include <unistd.h>

#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"
#include "core/file_io.h"

namespace kvplan::worker_cli {
namespace {

// "<host>-<pid>": unique among the workers of one coordinator in practice.
std::string DefaultWorkerId() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  return absl::StrFormat("%s-%d", host[0] != '\0' ? host : "worker", getpid());
}

}  // namespace

absl::StatusOr<CoordinatorFlagValues> CoordinatorFlags(const cli::Flags& flags) {
  CoordinatorFlagValues values;
  absl::StatusOr<std::string> address = flags.String("coordinator");
  if (!address.ok()) return address.status();
  values.address = *address;
  if (std::optional<std::string> token_file = flags.Get("token-file")) {
    absl::StatusOr<std::string> token = ReadFile(*token_file, 1 << 20);
    if (!token.ok()) return token.status();
    values.token = std::string(absl::StripAsciiWhitespace(*token));
  }
  values.worker_id = flags.Get("worker-id").value_or(DefaultWorkerId());
  if (values.worker_id.empty() || values.worker_id.size() > 128) {
    return absl::InvalidArgumentError("--worker-id must have 1 to 128 characters");
  }
  return values;
}

}  // namespace kvplan::worker_cli
