// Private to server/: what the gRPC service implementations share. The one
// boundary where absl::Status becomes grpc::Status, where write RPCs are
// authenticated, and where every RPC is timed and counted.
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
#include "server/metrics.h"
#include "server/model_registry.h"
#include "server/plan_registry.h"
#include "server/whatif_runner.h"

namespace kvplan::server::internal {

struct ServiceDeps {
  ModelRegistry* models = nullptr;
  PlanRegistry* plans = nullptr;
  ChannelRegistry* channels = nullptr;
  WhatIfRunner* whatif = nullptr;
  JobRegistry* jobs = nullptr;
  Metrics* metrics = nullptr;
  // Bearer token write RPCs must carry; empty leaves writes open.
  std::string auth_token;
};

enum class RpcKind { kRead, kWrite };

// absl and gRPC share code numbers; the message is kept as is.
grpc::Status ToGrpcStatus(const absl::Status& status);
// "OK", "NOT_FOUND", ... (the names Prometheus labels carry).
const char* CodeName(grpc::StatusCode code);
// Unauthenticated when the call has no "authorization: Bearer ..." metadata,
// PermissionDenied when the token differs. OK when `token` is empty.
absl::Status CheckWriteAuth(const grpc::ServerContext& context, const std::string& token);

template <typename Body>
grpc::Status RunRpc(const ServiceDeps& deps, const char* method, RpcKind kind,
                    grpc::ServerContext* context, Body&& body) {
  const auto start = std::chrono::steady_clock::now();
  absl::Status status =
      kind == RpcKind::kWrite ? CheckWriteAuth(*context, deps.auth_token) : absl::OkStatus();
  if (status.ok()) status = body();
  grpc::Status out = ToGrpcStatus(status);
  deps.metrics->RecordRpc(
      method, CodeName(out.error_code()),
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
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
