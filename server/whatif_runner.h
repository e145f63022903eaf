// Budget what-if over a model's stored statistics; writes nothing.
//
// Example:
//   WhatIfRunner whatif(store.get(), &models);
//   absl::StatusOr<v1::WhatIfResponse> r = whatif.Run(request);
//   // r->rows(0) equals core RunWhatIf's first row over the same statistics
//
// Statistics are content-addressed and immutable, so the energy table parsed
// from a digest's bytes is kept (the last few digests) and reused: a repeated
// what-if skips reading and parsing the statistics (80 × 8 × 64 model at 8
// budgets: p50 14.5 -> 11.0 ms; BENCHMARKS.md, "Coordinator over loopback").
//
// Thread safety: thread-safe.
#ifndef KVPLAN_SERVER_WHATIF_RUNNER_H_
#define KVPLAN_SERVER_WHATIF_RUNNER_H_

#include <deque>
#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/energy_table.h"
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
  // Energy tables kept; the oldest goes first. 8 tables of an 80 × 8 × 64 model
  // hold about 5 MiB.
  static constexpr size_t kMaxCachedTables = 8;

  // The energy table of model_id's statistics `digest`, through the cache;
  // NotFound when there are no such statistics.
  absl::StatusOr<std::shared_ptr<const EnergyTable>> Table(const std::string& model_id,
                                                           const std::string& digest) const;

  const Store* store_;
  const ModelRegistry* models_;
  mutable absl::Mutex mu_;
  // By "model_id/digest" (the stats key), and those keys oldest first.
  mutable std::map<std::string, std::shared_ptr<const EnergyTable>> tables_ ABSL_GUARDED_BY(mu_);
  mutable std::deque<std::string> order_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kvplan::server

#endif  // KVPLAN_SERVER_WHATIF_RUNNER_H_
