// kvplan.v1.ModelService over the model registry.
#include "kvplan/v1/model_service.grpc.pb.h"
#include "server/service_impl.h"

namespace kvplan::server::internal {
namespace {

class ModelServiceImpl final : public v1::ModelService::Service {
 public:
  explicit ModelServiceImpl(const ServiceDeps& deps) : deps_(deps) {}

  grpc::Status RegisterModel(grpc::ServerContext* context, const v1::RegisterModelRequest* request,
                             v1::RegisterModelResponse* response) override {
    return RunRpc(deps_, "RegisterModel", RpcKind::kWrite, context, [&]() -> absl::Status {
      absl::StatusOr<v1::RegisterModelResponse> r = deps_.models->Register(*request);
      if (!r.ok()) return r.status();
      if (r->created()) {
        deps_.logger.Info("model registered", {{"model_id", r->model().model_id()},
                                               {"fingerprint", r->model().fingerprint()}});
      }
      *response = *std::move(r);
      return absl::OkStatus();
    });
  }

  grpc::Status GetModel(grpc::ServerContext* context, const v1::GetModelRequest* request,
                        v1::Model* response) override {
    return RunRpc(deps_, "GetModel", RpcKind::kRead, context, [&]() -> absl::Status {
      absl::StatusOr<v1::Model> r = deps_.models->Get(request->model_id());
      if (r.ok()) *response = *std::move(r);
      return r.status();
    });
  }

  grpc::Status ListModels(grpc::ServerContext* context, const v1::ListModelsRequest*,
                          v1::ListModelsResponse* response) override {
    return RunRpc(deps_, "ListModels", RpcKind::kRead, context, [&]() -> absl::Status {
      absl::StatusOr<v1::ListModelsResponse> r = deps_.models->List();
      if (r.ok()) *response = *std::move(r);
      return r.status();
    });
  }

 private:
  ServiceDeps deps_;
};

}  // namespace

std::unique_ptr<grpc::Service> NewModelService(const ServiceDeps& deps) {
  return std::make_unique<ModelServiceImpl>(deps);
}

}  // namespace kvplan::server::internal
