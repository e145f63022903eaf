// The worker's side of the coordinator's JobService (and the one ModelService
// read it needs), over gRPC. Every call retries transient failures with
// backoff (backoff.h), which is safe because the coordinator makes each of
// them idempotent or harmless to repeat: a repeated commit is acknowledged
// without counting twice, a repeated upload replaces the same bytes, and a
// lease whose reply was lost simply expires and goes to the next worker.
// Generated proto headers stay in the .cc file.
//
// Example:
//   absl::StatusOr<std::unique_ptr<JobClient>> c = JobClient::Connect({.address =
//   "127.0.0.1:7070"}); absl::StatusOr<std::optional<ShardLease>> lease = (*c)->Lease("worker-1",
//   ""); if (lease.ok() && *lease) {
//     (*c)->Upload((*lease)->lease_id, stats.Serialize());
//     absl::StatusOr<bool> job_done = (*c)->Commit((*lease)->lease_id);
//   }
//
// Thread safety: thread-safe (a heartbeat thread shares it with the main loop).
#ifndef KVPLAN_WORKER_SERVE_JOB_CLIENT_H_
#define KVPLAN_WORKER_SERVE_JOB_CLIENT_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "client/lib/coordinator_endpoint.h"
#include "worker/serve/backoff.h"

namespace kvplan::serve {

// A leased shard (JobService ShardLease).
struct ShardLease {
  std::string lease_id;
  std::string job_id;
  std::string model_id;
  int shard = 0;
  // The shard's prompts, JSONL as `kvplan-worker calibrate --prompts` reads.
  std::string prompts_jsonl;
  int64_t tokens_per_shard = 0;
  // Seconds since the Unix epoch after which the lease is dead.
  int64_t expires_unix = 0;
  // Leases the shard has had, this one included.
  int attempt = 1;
};

struct JobClientOptions {
  // Where the coordinator is and how to reach it: address, bearer token file,
  // TLS CA and client certificate (client/lib/coordinator_connection.h).
  client::CoordinatorEndpoint endpoint;
  // Deadline of one attempt of one call.
  std::chrono::milliseconds call_timeout{30000};
  BackoffPolicy backoff;
  // Receives one line per retry; may be empty.
  std::function<void(const std::string&)> log;
};

class JobClient {
 public:
  // Creates the channel; nothing is sent until the first call.
  static absl::StatusOr<std::unique_ptr<JobClient>> Connect(JobClientOptions options);
  ~JobClient();

  // The lowest free shard of `job_id` (empty: of any running job), or nullopt
  // when none is free now.
  absl::StatusOr<std::optional<ShardLease>> Lease(const std::string& worker_id,
                                                  const std::string& job_id);
  // Extends the lease; returns the new expiry (seconds since the epoch).
  absl::StatusOr<int64_t> Heartbeat(const std::string& lease_id);
  absl::Status Upload(const std::string& lease_id, const std::string& stats_bytes);
  // Commits the shard; returns whether the job is now done.
  absl::StatusOr<bool> Commit(const std::string& lease_id);
  // The registered fingerprint of `model_id`.
  absl::StatusOr<std::string> ModelFingerprint(const std::string& model_id);
  // Whether `job_id` (empty: any job) is still running, i.e. shards may still
  // become free when a live lease expires.
  absl::StatusOr<bool> WorkMayRemain(const std::string& job_id);

 private:
  struct Stubs;
  JobClient(JobClientOptions options, std::unique_ptr<Stubs> stubs);

  JobClientOptions options_;
  std::unique_ptr<Stubs> stubs_;
};

// Lease errors that mean the shard is no longer ours (expired, replaced,
// job cancelled, lease unknown after all): give the shard up, keep serving.
bool IsLeaseLost(const absl::Status& status);

}  // namespace kvplan::serve

#endif  // KVPLAN_WORKER_SERVE_JOB_CLIENT_H_
