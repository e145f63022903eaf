// Calibration jobs: shards that workers lease, fill with statistics and commit,
// each counted exactly once.
//
// Domain logic only (no gRPC). Every state is in the store (families jobs,
// job_shards, shard_prompts, shard_stats; grammar in server/store.h), written
// with one synced WriteBatch per change, so a restart resumes where the last
// acknowledged call left off and leases survive it. A lease id names
// (job, shard, attempt); only the shard's latest attempt, before its expiry,
// may heartbeat, upload or commit, which is what keeps a dead worker's late
// commit from counting. The commit of the last shard merges the shards'
// statistics in shard order (BlockStats::Merge is exact, so the order of
// commits does not matter) and stores them under the model in the same batch.
//
// Example:
//   JobRegistry jobs(store.get(), &models, clock);
//   absl::StatusOr<v1::CreateJobResponse> job = jobs.Create(request);
//   absl::StatusOr<v1::LeaseShardResponse> l = jobs.Lease(lease_request);
//   // l->lease().lease_id() == "<job>:0:1" for the first lease of shard 0
//   jobs.Upload(upload_request);  // the shard's BlockStats bytes
//   absl::StatusOr<v1::CommitShardResponse> c = jobs.Commit(l->lease().lease_id());
//
// Thread safety: thread-safe.
#ifndef KVPLAN_SERVER_JOB_REGISTRY_H_
#define KVPLAN_SERVER_JOB_REGISTRY_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "kvplan/v1/job_service.pb.h"
#include "server/clock.h"
#include "server/model_registry.h"
#include "server/store.h"

namespace kvplan::server {

// Lease duration when CreateJobRequest.lease_seconds is 0.
inline constexpr int kDefaultLeaseSeconds = 300;

// The merged statistics (BlockStats bytes) of a succeeded job of `model_id`.
// NotFound for an unknown job; FailedPrecondition when it has not succeeded or
// belongs to another model.
absl::StatusOr<std::string> LoadJobStats(const Store& store, std::string_view model_id,
                                         std::string_view job_id);

class JobRegistry {
 public:
  // The pointers must outlive the registry. `clock` decides lease expiry.
  JobRegistry(Store* store, const ModelRegistry* models, Clock clock)
      : store_(store), models_(models), clock_(std::move(clock)) {}

  // Errors as JobService.CreateJob documents; nothing is stored on error.
  absl::StatusOr<v1::CreateJobResponse> Create(const v1::CreateJobRequest& request);
  // NotFound naming the job.
  absl::StatusOr<v1::Job> Get(std::string_view job_id) const;
  absl::StatusOr<v1::ListJobsResponse> List(const v1::ListJobsRequest& request) const;
  // FailedPrecondition for a succeeded job; idempotent for a cancelled one.
  absl::StatusOr<v1::Job> Cancel(std::string_view job_id);

  // The lowest-numbered free shard (never leased, or its lease expired) of the
  // named job, or of the running jobs in id order; no lease when none is free.
  absl::StatusOr<v1::LeaseShardResponse> Lease(const v1::LeaseShardRequest& request);
  // Extends the lease by the job's lease duration from now.
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(std::string_view lease_id);
  absl::StatusOr<v1::UploadShardStatisticsResponse> Upload(
      const v1::UploadShardStatisticsRequest& request);
  absl::StatusOr<v1::CommitShardResponse> Commit(std::string_view lease_id);

 private:
  Store* store_;
  const ModelRegistry* models_;
  Clock clock_;
  // Serializes every read-modify-write of job and shard records (it guards the
  // job families' contents, not a member).
  absl::Mutex mu_;
};

}  // namespace kvplan::server

#endif  // KVPLAN_SERVER_JOB_REGISTRY_H_
