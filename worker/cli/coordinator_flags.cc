#include "worker/cli/coordinator_flags.h"

#include <unistd.h>

#include "absl/strings/str_format.h"

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
  values.endpoint = {.address = *address,
                     .token_file = flags.Get("token-file").value_or(""),
                     .tls_ca_file = flags.Get("tls-ca").value_or(""),
                     .tls_cert_file = flags.Get("tls-cert").value_or(""),
                     .tls_key_file = flags.Get("tls-key").value_or("")};
  values.worker_id = flags.Get("worker-id").value_or(DefaultWorkerId());
  if (values.worker_id.empty() || values.worker_id.size() > 128) {
    return absl::InvalidArgumentError("--worker-id must have 1 to 128 characters");
  }
  return values;
}

}  // namespace kvplan::worker_cli
