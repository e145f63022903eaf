// The flags with which a kvplan-worker verb reaches the coordinator (`serve`,
// `validate`): --coordinator ADDR, --token-file F, --worker-id ID.
//
// Example:
//   absl::StatusOr<CoordinatorFlagValues> c = CoordinatorFlags(flags);
//   // c->address "127.0.0.1:7070", c->token "" without --token-file, c->worker_id "host-1234"
#ifndef KVPLAN_WORKER_CLI_COORDINATOR_FLAGS_H_
#define KVPLAN_WORKER_CLI_COORDINATOR_FLAGS_H_

#include <string>

#include "absl/status/statusor.h"
#include "client/cli/flags.h"

namespace kvplan::worker_cli {

struct CoordinatorFlagValues {
  // host:port of kvplan-coordinator (plaintext).
  std::string address;
  // Bearer token for write RPCs, the contents of --token-file without
  // surrounding whitespace; empty without the flag.
  std::string token;
  // --worker-id, 1 to 128 characters. Default: "<host>-<pid>".
  std::string worker_id;
};

// InvalidArgument without --coordinator or for a bad --worker-id; NotFound
// for an unreadable --token-file.
absl::StatusOr<CoordinatorFlagValues> CoordinatorFlags(const cli::Flags& flags);

}  // namespace kvplan::worker_cli

#endif  // KVPLAN_WORKER_CLI_COORDINATOR_FLAGS_H_
