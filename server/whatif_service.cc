// kvplan.v1.WhatIfService over the what-if runner.
#include "kvplan/v1/whatif_service.grpc.pb.h"
#include "server/service_impl.h"

namespace kvplan::server::internal {
namespace {

class WhatIfServiceImpl final : public v1::WhatIfService::Service {
 public:
  explicit WhatIfServiceImpl(const ServiceDeps& deps) : deps_(deps) {}

  grpc::Status WhatIf(grpc::ServerContext* context, const v1::WhatIfRequest* request,
                      v1::WhatIfResponse* response) override {
    return RunRpc(deps_, "WhatIf", RpcKind::kRead, context, [&]() -> absl::Status {
      absl::StatusOr<v1::WhatIfResponse> r = deps_.whatif->Run(*request);
      if (r.ok()) *response = *std::move(r);
      return r.status();
    });
  }

 private:
  ServiceDeps deps_;
};

}  // namespace

std::unique_ptr<grpc::Service> NewWhatIfService(const ServiceDeps& deps) {
  return std::make_unique<WhatIfServiceImpl>(deps);
}

}  // namespace kvplan::server::internal
