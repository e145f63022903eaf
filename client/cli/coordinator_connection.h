// Private to the service verbs of `kvplan`: the coordinator connection they
// share with libkvplan-client (client/lib/coordinator_connection.h: channel,
// token, TLS, per-call contexts) and the nouns' entry points.
//
// Example:
//   absl::StatusOr<CoordinatorConnection> c = OpenCoordinator(flags);
//   auto stub = v1::PlanService::NewStub(c->channel());
//   std::unique_ptr<grpc::ClientContext> ctx = c->NewContext();
//   absl::Status st = FromGrpc(stub->GetPlan(ctx.get(), request, &response));
#ifndef KVPLAN_CLIENT_CLI_COORDINATOR_CONNECTION_H_
#define KVPLAN_CLIENT_CLI_COORDINATOR_CONNECTION_H_

#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/cli/service_commands.h"
#include "client/lib/coordinator_connection.h"
#include "google/protobuf/message.h"

namespace kvplan::cli {

using ::kvplan::client::CoordinatorConnection;
using ::kvplan::client::FromGrpc;

// The connection the global flags describe (token and CA files read here;
// errors name them).
absl::StatusOr<CoordinatorConnection> OpenCoordinator(const CoordinatorFlags& flags);

// A message as indented JSON for --json output (a message kvplan built always
// converts; on the impossible failure the text says why).
std::string MessageToJson(const google::protobuf::Message& message);

// The nouns, one file each: `args` starts with the sub-verb.
absl::Status RunModelsNoun(const CoordinatorConnection& c, const std::vector<std::string>& args,
                           std::ostream& out);
absl::Status RunJobsNoun(const CoordinatorConnection& c, const std::vector<std::string>& args,
                         std::ostream& out);
absl::Status RunPlansNoun(const CoordinatorConnection& c, const std::vector<std::string>& args,
                          std::ostream& out);
absl::Status RunChannelsNoun(const CoordinatorConnection& c, const std::vector<std::string>& args,
                             std::ostream& out);
absl::Status RunRemoteWhatIf(const CoordinatorConnection& c, const std::vector<std::string>& args,
                             std::ostream& out);
absl::Status RunArtifactsNoun(const CoordinatorConnection& c, const std::vector<std::string>& args,
                              std::ostream& out);

}  // namespace kvplan::cli

#endif  // KVPLAN_CLIENT_CLI_COORDINATOR_CONNECTION_H_
