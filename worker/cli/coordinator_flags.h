// The flags with which a kvplan-worker verb reaches the coordinator (`serve`,
// `validate`): --coordinator ADDR, --token-file F, --tls-ca F, --tls-cert F,
// --tls-key F, --worker-id ID. The files are read when the connection opens
// (client/lib/coordinator_connection.h), which names any it cannot read.
//
// Example:
//   absl::StatusOr<CoordinatorFlagValues> c = CoordinatorFlags(flags);
//   // c->endpoint.address "127.0.0.1:7070", c->worker_id "host-1234"
#ifndef KVPLAN_WORKER_CLI_COORDINATOR_FLAGS_H_
#define KVPLAN_WORKER_CLI_COORDINATOR_FLAGS_H_

#include <string>

#include "absl/status/statusor.h"
#include "client/cli/flags.h"
#include "client/lib/coordinator_endpoint.h"

namespace kvplan::worker_cli {

struct CoordinatorFlagValues {
  // --coordinator host:port; --token-file (bearer token for writes); --tls-ca
  // (PEM roots: TLS instead of plaintext); --tls-cert/--tls-key (a client
  // certificate for a coordinator with --tls-client-ca).
  client::CoordinatorEndpoint endpoint;
  // --worker-id, 1 to 128 characters. Default: "<host>-<pid>".
  std::string worker_id;
};

// InvalidArgument without --coordinator or for a bad --worker-id.
absl::StatusOr<CoordinatorFlagValues> CoordinatorFlags(const cli::Flags& flags);

}  // namespace kvplan::worker_cli

#endif  // KVPLAN_WORKER_CLI_COORDINATOR_FLAGS_H_
