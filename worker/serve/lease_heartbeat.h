// Keeps a shard lease alive while the worker computes: a background thread
// heartbeats at a third of the lease's remaining life, so two heartbeats may
// fail (or the coordinator restart) before the lease lapses. When the
// coordinator says the lease is gone (expired, replaced, job cancelled) the
// thread stops and lost() turns true; the worker checks it between batches and
// gives the shard up instead of computing statistics that cannot count.
//
// Example:
//   LeaseHeartbeat heartbeat(client, lease);
//   RunCalibrationPass(lm, seqs, 8, [&] { return heartbeat.status(); });
//
// Thread safety: status() may be called from any thread.
#ifndef KVPLAN_WORKER_SERVE_LEASE_HEARTBEAT_H_
#define KVPLAN_WORKER_SERVE_LEASE_HEARTBEAT_H_

#include <condition_variable>
#include <mutex>
#include <thread>

#include "absl/status/status.h"
#include "worker/serve/job_client.h"

namespace kvplan::serve {

class LeaseHeartbeat {
 public:
  // Starts heartbeating `lease` through `client` (which must outlive this).
  LeaseHeartbeat(JobClient& client, const ShardLease& lease);
  // Stops the thread (waiting out an in-flight heartbeat).
  ~LeaseHeartbeat();
  LeaseHeartbeat(const LeaseHeartbeat&) = delete;
  LeaseHeartbeat& operator=(const LeaseHeartbeat&) = delete;

  // OK while the lease is believed alive; the heartbeat's error once it is not.
  absl::Status status() const;

 private:
  void Run(JobClient& client, std::string lease_id, int64_t expires_unix);

  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;
  absl::Status status_;
  std::thread thread_;
};

}  // namespace kvplan::serve

#endif  // KVPLAN_WORKER_SERVE_LEASE_HEARTBEAT_H_
