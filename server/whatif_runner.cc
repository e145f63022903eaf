#include "server/whatif_runner.h"

#include "absl/strings/str_format.h"
#include "core/block_stats.h"
#include "core/energy_table.h"
#include "core/whatif.h"
#include "proto/wire_convert.h"

namespace kvplan::server {

using ::kvplan::wire::WhatIfRequestFromProto;
using ::kvplan::wire::WhatIfRowToProto;

absl::StatusOr<v1::WhatIfResponse> WhatIfRunner::Run(const v1::WhatIfRequest& request) const {
  absl::StatusOr<WhatIfRequest> core_request = WhatIfRequestFromProto(request);
  if (!core_request.ok()) return core_request.status();
  absl::StatusOr<v1::Model> model = models_->Get(request.model_id());
  if (!model.ok()) return model.status();
  const std::string digest =
      request.stats_digest().empty() ? model->latest_stats_digest() : request.stats_digest();
  if (digest.empty()) {
    return absl::FailedPreconditionError(
        absl::StrFormat("model '%s' has no statistics yet; create a plan from statistics first",
                        model->model_id()));
  }
  absl::StatusOr<std::shared_ptr<const EnergyTable>> table = Table(model->model_id(), digest);
  if (!table.ok()) return table.status();
  absl::StatusOr<std::vector<WhatIfResult>> rows = RunWhatIf(**table, *core_request);
  if (!rows.ok()) return rows.status();
  v1::WhatIfResponse response;
  response.set_stats_digest(digest);
  for (const WhatIfResult& r : *rows) *response.add_rows() = WhatIfRowToProto(r);
  return response;
}

absl::StatusOr<std::shared_ptr<const EnergyTable>> WhatIfRunner::Table(
    const std::string& model_id, const std::string& digest) const {
  const std::string key = absl::StrFormat("%s/%s", model_id, digest);
  {
    absl::MutexLock lock(&mu_);
    if (auto it = tables_.find(key); it != tables_.end()) return it->second;
  }
  // Read and parsed outside the lock; two concurrent misses both parse, and the
  // first to finish is kept (the tables are equal).
  absl::StatusOr<std::optional<std::string>> bytes = store_->Get(Family::kStats, key);
  if (!bytes.ok()) return bytes.status();
  if (!bytes->has_value()) {
    return absl::NotFoundError(
        absl::StrFormat("model '%s' has no statistics %s", model_id, digest));
  }
  absl::StatusOr<BlockStats> stats = BlockStats::Deserialize(**bytes);
  if (!stats.ok()) return stats.status();
  absl::StatusOr<EnergyTable> table = EnergyTableFromStats(*stats);
  if (!table.ok()) return table.status();
  auto shared = std::make_shared<const EnergyTable>(*std::move(table));
  absl::MutexLock lock(&mu_);
  if (tables_.emplace(key, shared).second) {
    order_.push_back(key);
    if (order_.size() > kMaxCachedTables) {
      tables_.erase(order_.front());
      order_.pop_front();
    }
  }
  return shared;
}

}  // namespace kvplan::server
