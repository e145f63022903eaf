// `kvplan-worker serve`: lease a shard, calibrate it, upload, commit, repeat.
//
// For each lease: the job's model is loaded (once; model_cache.h says where
// from and how it is checked), the shard's inline prompts are windowed and
// batched exactly as `kvplan-worker calibrate` does with the same settings
// (worker/calibration/calibration_pass.h), a background heartbeat keeps the
// lease alive, and the shard's BlockStats are uploaded and committed. Losing a
// lease (it expired, was reassigned, or the job was cancelled) drops that
// shard and goes on; coordinator outages are ridden out by the client's
// retries. With `once`, the loop ends when no running job is left (it waits
// while other workers' live leases may still expire and need redoing);
// otherwise it polls for new jobs forever.
//
// Example:
//   absl::Status st = Serve({.client = {.address = "127.0.0.1:7070"},
//                            .models = {.model_dir = "models/doc-llama-h64"},
//                            .worker_id = "w1", .once = true}, std::cout);
#ifndef KVPLAN_WORKER_SERVE_SERVE_LOOP_H_
#define KVPLAN_WORKER_SERVE_SERVE_LOOP_H_

#include <chrono>
#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "worker/calibration/calibration_pass.h"
#include "worker/serve/job_client.h"
#include "worker/serve/model_cache.h"

namespace kvplan::serve {

struct ServeOptions {
  JobClientOptions client;
  ModelCacheOptions models;
  // max_tokens is ignored: each shard's budget is its job's tokens_per_shard.
  CalibrationSettings calibration;
  // Sent with every lease, for the coordinator's logs and metrics.
  std::string worker_id;
  // Only serve this job; empty: any running job.
  std::string job_id;
  // Exit once no running job is left instead of polling forever.
  bool once = false;
  // Wait between LeaseShard calls when nothing is free.
  std::chrono::milliseconds poll_interval{1000};
};

// Returns OK when `once` finds no work left; otherwise only on an error that
// retrying cannot fix (bad flags, a checkpoint that is not the job's model,
// malformed shard prompts, the coordinator unreachable past the retry budget).
// Progress lines go to `log`.
absl::Status Serve(const ServeOptions& options, std::ostream& log);

}  // namespace kvplan::serve

#endif  // KVPLAN_WORKER_SERVE_SERVE_LOOP_H_
