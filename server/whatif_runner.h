// Budget what-if over a model's stored statistics; writes nothing.
//
// Example:
//   WhatIfRunner whatif(store.get(), &models);
//   absl::StatusOr<v1::WhatIfResponse> r = whatif.Run(request);
//   // r->rows(0) equals core RunWhatIf's first row over the same statistics
//
// Thread safety: thread-safe.
#ifndef KVPLAN_SERVER_WHATIF_RUNNER_H_
#define KVPLAN_SERVER_WHATIF_RUNNER_H_

#include "absl/status/statusor.h"
#include "kvplan/v1/whatif_service.pb.h"
#include "server/model_registry.h"
#include "server/store.h"

namespace kvplan::server {

class WhatIfRunner {
 public:
  // The pointers must outlive the runner.
  WhatIfRunner(const Store* store, const ModelRegistry* models) : store_(store), models_(models) {}

  // NotFound for an unknown model or statistics digest; FailedPrecondition when
  // the model has no statistics yet; budgets checked as WhatIfRequestFromProto.
  absl::StatusOr<v1::WhatIfResponse> Run(const v1::WhatIfRequest& request) const;

 private:
  const Store* store_;
  const ModelRegistry* models_;
};

}  // namespace kvplan::server

#endif  // KVPLAN_SERVER_WHATIF_RUNNER_H_
