// Private to the service verbs of `kvplan`: a gRPC channel to the coordinator
// and per-call contexts carrying the bearer token and a deadline.
//
// Example:
//   absl::StatusOr<CoordinatorConnection> c = CoordinatorConnection::Open(flags);
//   auto stub = v1::PlanService::NewStub(c->channel());
//   std::unique_ptr<grpc::ClientContext> ctx = c->NewContext();
//   absl::Status st = FromGrpc(stub->GetPlan(ctx.get(), request, &response));
#ifndef KVPLAN_CLIENT_CLI_COORDINATOR_CONNECTION_H_
#define KVPLAN_CLIENT_CLI_COORDINATOR_CONNECTION_H_

#include <chrono>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/cli/service_commands.h"
#include "google/protobuf/message.h"
#include "grpcpp/grpcpp.h"

namespace kvplan::cli {

// Same code, the coordinator's message prefixed with the code's name.
absl::Status FromGrpc(const grpc::Status& status);

class CoordinatorConnection {
 public:
  // Reads the token and CA files (errors name them) and creates the channel;
  // nothing is sent until the first call.
  static absl::StatusOr<CoordinatorConnection> Open(const CoordinatorFlags& flags);

  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }
  // A context with the token (if any) and `timeout` as the deadline.
  std::unique_ptr<grpc::ClientContext> NewContext(
      std::chrono::milliseconds timeout = std::chrono::seconds(30)) const;

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::string token_;
};

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

}  // namespace kvplan::cli

#endif  // KVPLAN_CLIENT_CLI_COORDINATOR_CONNECTION_H_
