// The plan registry: immutable, content-addressed plans, versioned per
// (model, plan name), and the artifacts they name.
//
// Domain logic only (no gRPC). CreatePlan validates the uploaded statistics
// against the model, allocates with core's BuildPlan, and stores the
// statistics, the plan and its new version in one synced WriteBatch. Plans are
// cached in memory forever once read: they never change.
//
// Example:
//   PlanRegistry plans(store.get(), &models, &channels, clock);
//   absl::StatusOr<v1::CreatePlanResponse> r = plans.Create(request);
//   // r->version().version() == 1 for the first plan of its name
//   absl::StatusOr<v1::GetPlanResponse> p = plans.Get(get_request);
//
// Thread safety: thread-safe.
#ifndef KVPLAN_SERVER_PLAN_REGISTRY_H_
#define KVPLAN_SERVER_PLAN_REGISTRY_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/block_stats.h"
#include "core/plan.h"
#include "kvplan/v1/artifact_service.pb.h"
#include "kvplan/v1/plan_service.pb.h"
#include "server/channel_registry.h"
#include "server/clock.h"
#include "server/model_registry.h"
#include "server/store.h"

namespace kvplan::server {

// Statistics uploaded for a model, checked against it.
struct UploadedStats {
  BlockStats stats;
  std::string digest;  // Sha256Hex(stats.Serialize()).
};

// Parses `bytes` (a calibration file or BlockStats bytes) and checks them
// against `model`: InvalidArgument for corrupt bytes or a shape that differs
// from the model's; FailedPrecondition for a calibration file of another
// fingerprint or RoPE layout.
absl::StatusOr<UploadedStats> ParseUploadedStats(const v1::Model& model, std::string_view bytes);

// A plan read back from the store's plans family: DataLoss naming the record
// when its JSON no longer parses or verifies (it did when it was written).
absl::StatusOr<KvPlan> ParseStoredPlan(std::string_view plan_id, std::string_view json);

// Plan reads (GetPlan, ExportPlan, DiffPlans, GetRotation) served from the
// in-memory cache and from the store, since the registry was made.
struct PlanReadCounts {
  uint64_t memory = 0;
  uint64_t store = 0;
};

class PlanRegistry {
 public:
  // The pointers must outlive the registry.
  PlanRegistry(Store* store, const ModelRegistry* models, const ChannelRegistry* channels,
               Clock clock)
      : store_(store), models_(models), channels_(channels), clock_(std::move(clock)) {}

  // Errors as PlanService.CreatePlan documents; nothing is stored on error.
  absl::StatusOr<v1::CreatePlanResponse> Create(const v1::CreatePlanRequest& request);
  // NotFound naming what was asked for.
  absl::StatusOr<v1::GetPlanResponse> Get(const v1::GetPlanRequest& request);
  absl::StatusOr<v1::ListPlansResponse> List(const v1::ListPlansRequest& request) const;
  // FailedPrecondition when the plans' shapes differ.
  absl::StatusOr<v1::DiffPlansResponse> Diff(const v1::DiffPlansRequest& request);
  absl::StatusOr<v1::ExportPlanResponse> Export(const v1::ExportPlanRequest& request);
  // The rotation a stored plan names by `content_hash`; NotFound otherwise.
  absl::StatusOr<v1::GetRotationResponse> GetRotation(const v1::GetRotationRequest& request);

  // A stored version; NotFound naming it. version 0 means the latest.
  absl::StatusOr<v1::PlanVersion> GetVersion(std::string_view model_id, std::string_view name,
                                             uint64_t version) const;

  PlanReadCounts read_counts() const {
    return {.memory = reads_from_memory_.load(std::memory_order_relaxed),
            .store = reads_from_store_.load(std::memory_order_relaxed)};
  }

 private:
  // The stored JSON of a plan, through the cache.
  absl::StatusOr<std::shared_ptr<const std::string>> PlanJson(std::string_view plan_id);
  absl::StatusOr<KvPlan> LoadPlan(std::string_view plan_id);

  Store* store_;
  const ModelRegistry* models_;
  const ChannelRegistry* channels_;
  Clock clock_;
  // Serializes version assignment (read the last version, write the next).
  absl::Mutex write_mu_;
  absl::Mutex cache_mu_;
  std::map<std::string, std::shared_ptr<const std::string>, std::less<>> plan_cache_
      ABSL_GUARDED_BY(cache_mu_);
  std::map<std::string, std::shared_ptr<const std::string>, std::less<>> rotation_cache_
      ABSL_GUARDED_BY(cache_mu_);
  std::atomic<uint64_t> reads_from_memory_{0};
  std::atomic<uint64_t> reads_from_store_{0};
};

}  // namespace kvplan::server

#endif  // KVPLAN_SERVER_PLAN_REGISTRY_H_
