// Private to server/: what the gRPC service implementations share. The one
// boundary where absl::Status becomes grpc::Status, where calls are
// authorized (rpc_auth.h), and where every RPC is timed, counted and logged.
//
// Example (a unary handler):
//   grpc::Status GetModel(grpc::ServerContext* ctx, const v1::GetModelRequest* req,
//                         v1::Model* resp) override {
//     return RunRpc(deps_, "GetModel", RpcKind::kRead, ctx, [&]() -> absl::Status {
//       absl::StatusOr<v1::Model> m = deps_.models->Get(req->model_id());
//       if (m.ok()) *resp = *std::move(m);
//       return m.status();
//     });
//   }
#ifndef KVPLAN_SERVER_SERVICE_IMPL_H_
#define KVPLAN_SERVER_SERVICE_IMPL_H_

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/impl/service_type.h"
#include "server/channel_registry.h"
#include "server/job_registry.h"
#include "server/logger.h"
#include "server/metrics.h"
#include "server/model_registry.h"
#include "server/plan_registry.h"
#include "server/rpc_auth.h"
#include "server/validation_registry.h"
#include "server/whatif_runner.h"

namespace kvplan::server::internal {

struct ServiceDeps {
  ModelRegistry* models = nullptr;
  PlanRegistry* plans = nullptr;
  ChannelRegistry* channels = nullptr;
  WhatIfRunner* whatif = nullptr;
  JobRegistry* jobs = nullptr;
  ValidationRegistry* validations = nullptr;
  Metrics* metrics = nullptr;
  // Who may write (and read, when configured).
  AuthPolicy auth;
  // RPC completions at debug; state changes (job created, plan created, ...) at info.
  Logger logger;
};

enum class RpcKind { kRead, kWrite };

// absl and gRPC share code numbers; the message is kept as is.
grpc::Status ToGrpcStatus(const absl::Status& status);
// "OK", "NOT_FOUND", ... (the names Prometheus labels carry).
const char* CodeName(grpc::StatusCode code);
// One line per finished RPC: method, code, latency_ms, peer, the caller's
// principal and, on failure, the error. At debug, except refused credentials
// (warn) and the coordinator's own faults, INTERNAL, UNKNOWN and DATA_LOSS (error).
void LogRpc(const Logger& logger, const char* method, const grpc::ServerContext& context,
            const std::string& principal, const grpc::Status& status, double seconds);

template <typename Body>
grpc::Status RunRpc(const ServiceDeps& deps, const char* method, RpcKind kind,
                    grpc::ServerContext* context, Body&& body) {
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<std::string> principal = Authorize(*context, deps.auth, kind == RpcKind::kWrite);
  absl::Status status = principal.status();
  if (status.ok()) status = body();
  grpc::Status out = ToGrpcStatus(status);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  deps.metrics->RecordRpc(method, CodeName(out.error_code()), seconds);
  LogRpc(deps.logger, method, *context, principal.ok() ? *principal : "", out, seconds);
  return out;
}

std::unique_ptr<grpc::Service> NewModelService(const ServiceDeps& deps);
std::unique_ptr<grpc::Service> NewPlanService(const ServiceDeps& deps);
std::unique_ptr<grpc::Service> NewChannelService(const ServiceDeps& deps);
std::unique_ptr<grpc::Service> NewWhatIfService(const ServiceDeps& deps);
std::unique_ptr<grpc::Service> NewArtifactService(const ServiceDeps& deps);
std::unique_ptr<grpc::Service> NewJobService(const ServiceDeps& deps);

}  // namespace kvplan::server::internal

#endif  // KVPLAN_SERVER_SERVICE_IMPL_H_
