// kvplan.v1.ArtifactService: rotations by content hash, codebooks by width or hash.
#include "kvplan/v1/artifact_service.grpc.pb.h"
#include "server/codebook_artifacts.h"
#include "server/service_impl.h"

namespace kvplan::server::internal {
namespace {

class ArtifactServiceImpl final : public v1::ArtifactService::Service {
 public:
  explicit ArtifactServiceImpl(const ServiceDeps& deps) : deps_(deps) {}

  grpc::Status GetRotation(grpc::ServerContext* context, const v1::GetRotationRequest* request,
                           v1::GetRotationResponse* response) override {
    return RunRpc(deps_, "GetRotation", RpcKind::kRead, context, [&]() -> absl::Status {
      absl::StatusOr<v1::GetRotationResponse> r = deps_.plans->GetRotation(*request);
      if (r.ok()) *response = *std::move(r);
      return r.status();
    });
  }

  grpc::Status GetCodebook(grpc::ServerContext* context, const v1::GetCodebookRequest* request,
                           v1::GetCodebookResponse* response) override {
    return RunRpc(deps_, "GetCodebook", RpcKind::kRead, context, [&]() -> absl::Status {
      absl::StatusOr<v1::GetCodebookResponse> r = server::GetCodebook(*request);
      if (r.ok()) *response = *std::move(r);
      return r.status();
    });
  }

 private:
  ServiceDeps deps_;
};

}  // namespace

std::unique_ptr<grpc::Service> NewArtifactService(const ServiceDeps& deps) {
  return std::make_unique<ArtifactServiceImpl>(deps);
}

}  // namespace kvplan::server::internal
