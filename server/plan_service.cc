// kvplan.v1.PlanService over the plan registry.
#include "kvplan/v1/plan_service.grpc.pb.h"
#include "server/service_impl.h"

namespace kvplan::server::internal {
namespace {

class PlanServiceImpl final : public v1::PlanService::Service {
 public:
  explicit PlanServiceImpl(const ServiceDeps& deps) : deps_(deps) {}

  grpc::Status CreatePlan(grpc::ServerContext* context, const v1::CreatePlanRequest* request,
                          v1::CreatePlanResponse* response) override {
    return RunRpc(deps_, "CreatePlan", RpcKind::kWrite, context, [&]() -> absl::Status {
      absl::StatusOr<v1::CreatePlanResponse> r = deps_.plans->Create(*request);
      if (!r.ok()) return r.status();
      if (r->created()) {
        const v1::PlanVersion& v = r->version();
        deps_.logger.Info("plan created", {{"plan_id", v.plan_id()},
                                           {"model_id", v.model_id()},
                                           {"name", v.name()},
                                           {"version", v.version()},
                                           {"tokens", v.tokens()}});
      }
      *response = *std::move(r);
      return absl::OkStatus();
    });
  }

  grpc::Status GetPlan(grpc::ServerContext* context, const v1::GetPlanRequest* request,
                       v1::GetPlanResponse* response) override {
    return RunRpc(deps_, "GetPlan", RpcKind::kRead, context, [&]() -> absl::Status {
      absl::StatusOr<v1::GetPlanResponse> r = deps_.plans->Get(*request);
      if (!r.ok()) return r.status();
      *response = *std::move(r);
      deps_.metrics->PlanServed();
      return absl::OkStatus();
    });
  }

  grpc::Status ListPlans(grpc::ServerContext* context, const v1::ListPlansRequest* request,
                         v1::ListPlansResponse* response) override {
    return RunRpc(deps_, "ListPlans", RpcKind::kRead, context, [&]() -> absl::Status {
      absl::StatusOr<v1::ListPlansResponse> r = deps_.plans->List(*request);
      if (r.ok()) *response = *std::move(r);
      return r.status();
    });
  }

  grpc::Status DiffPlans(grpc::ServerContext* context, const v1::DiffPlansRequest* request,
                         v1::DiffPlansResponse* response) override {
    return RunRpc(deps_, "DiffPlans", RpcKind::kRead, context, [&]() -> absl::Status {
      absl::StatusOr<v1::DiffPlansResponse> r = deps_.plans->Diff(*request);
      if (r.ok()) *response = *std::move(r);
      return r.status();
    });
  }

  grpc::Status ExportPlan(grpc::ServerContext* context, const v1::ExportPlanRequest* request,
                          v1::ExportPlanResponse* response) override {
    return RunRpc(deps_, "ExportPlan", RpcKind::kRead, context, [&]() -> absl::Status {
      absl::StatusOr<v1::ExportPlanResponse> r = deps_.plans->Export(*request);
      if (!r.ok()) return r.status();
      *response = *std::move(r);
      deps_.metrics->PlanServed();
      return absl::OkStatus();
    });
  }

  grpc::Status AttachValidation(grpc::ServerContext* context,
                                const v1::AttachValidationRequest* request,
                                v1::AttachValidationResponse* response) override {
    return RunRpc(deps_, "AttachValidation", RpcKind::kWrite, context, [&]() -> absl::Status {
      absl::StatusOr<v1::AttachValidationResponse> r = deps_.validations->Attach(*request);
      if (r.ok()) *response = *std::move(r);
      return r.status();
    });
  }

  grpc::Status ListValidations(grpc::ServerContext* context,
                               const v1::ListValidationsRequest* request,
                               v1::ListValidationsResponse* response) override {
    return RunRpc(deps_, "ListValidations", RpcKind::kRead, context, [&]() -> absl::Status {
      absl::StatusOr<v1::ListValidationsResponse> r = deps_.validations->List(request->plan_id());
      if (r.ok()) *response = *std::move(r);
      return r.status();
    });
  }

 private:
  ServiceDeps deps_;
};

}  // namespace

std::unique_ptr<grpc::Service> NewPlanService(const ServiceDeps& deps) {
  return std::make_unique<PlanServiceImpl>(deps);
}

}  // namespace kvplan::server::internal
