// A gRPC channel to kvplan-coordinator and per-call contexts carrying the
// bearer token and a deadline: the one place that turns an address, a token
// file, TLS files into a connection, shared by libkvplan-client's PlanClient,
// the `kvplan` service nouns and kvplan-worker's serve and validate. Internal to the project (the
// public API, client/include/kvplan/plan_client.h, shows no gRPC).
//
// Example:
//   absl::StatusOr<CoordinatorConnection> c =
//       CoordinatorConnection::Open({.address = "127.0.0.1:7070", .token_file = "token"});
//   auto stub = v1::PlanService::NewStub(c->channel());
//   absl::Status st = FromGrpc(stub->GetPlan(c->NewContext().get(), request, &response));
#ifndef KVPLAN_CLIENT_LIB_COORDINATOR_CONNECTION_H_
#define KVPLAN_CLIENT_LIB_COORDINATOR_CONNECTION_H_

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/lib/coordinator_endpoint.h"
#include "client/lib/reconnect_backoff.h"  // IsTransient, for callers of FromGrpc.
#include "grpcpp/grpcpp.h"

namespace kvplan::client {

// Same code, the coordinator's message prefixed with the code's name
// ("coordinator unavailable: ...").
absl::Status FromGrpc(const grpc::Status& status);

// Copyable; copies share the channel. Thread-safe.
class CoordinatorConnection {
 public:
  // Reads the token and CA files (errors name them) and creates the channel;
  // nothing is sent until the first call, so an unreachable coordinator is not
  // an error here.
  static absl::StatusOr<CoordinatorConnection> Open(const CoordinatorEndpoint& endpoint);

  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }
  // What it was opened with (a PlanClient over the same coordinator takes it).
  const CoordinatorEndpoint& endpoint() const { return endpoint_; }
  // A context with the token (if any) and `timeout` as the deadline.
  std::unique_ptr<grpc::ClientContext> NewContext(
      std::chrono::milliseconds timeout = std::chrono::seconds(30)) const;

 private:
  std::shared_ptr<grpc::Channel> channel_;
  CoordinatorEndpoint endpoint_;
  std::string token_;
};

}  // namespace kvplan::client

#endif  // KVPLAN_CLIENT_LIB_COORDINATOR_CONNECTION_H_
