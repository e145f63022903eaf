// Prometheus metrics of the coordinator, served on /metrics.
//
//   kvplan_rpc_total{method, code}            counter: RPCs finished
//   kvplan_rpc_duration_seconds{method}       histogram: handler latency
//   kvplan_plans_served_total                 counter: plans returned by GetPlan/ExportPlan
//   kvplan_plan_reads_total{source}           counter: plan reads (GetPlan, ExportPlan,
//                                             DiffPlans, GetRotation); source="memory" (the
//                                             plan cache) or "store" (RocksDB)
//   kvplan_store_size_bytes                   gauge: RocksDB SST + memtable bytes
//   kvplan_jobs_created_total                 counter: calibration jobs created
//   kvplan_jobs_succeeded_total               counter: jobs whose last shard committed
//   kvplan_shard_leases_total{kind}           counter: leases granted; kind="first" or
//                                             "reassigned" (an earlier lease had expired)
//   kvplan_shards_committed_total             counter: shards committed (retries not counted)
//
// Example:
//   absl::StatusOr<std::unique_ptr<Metrics>> m = Metrics::Start({.listen = "127.0.0.1:0"});
//   (*m)->RecordRpc("GetPlan", "OK", 0.0004);
//
// Thread safety: thread-safe.
#ifndef KVPLAN_SERVER_METRICS_H_
#define KVPLAN_SERVER_METRICS_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace kvplan::server {

struct MetricsOptions {
  // host:port for the /metrics HTTP endpoint; port 0 picks a free one; empty
  // serves nothing (metrics are still counted). Default: empty.
  std::string listen;
  // Read at every scrape for kvplan_store_size_bytes. Default: none (0).
  std::function<uint64_t()> store_size_bytes;
  // Read at every scrape for kvplan_plan_reads_total{source="memory"} and
  // {source="store"}: plan reads served from the in-memory cache, and from the
  // store, so far. Default: none (0).
  std::function<uint64_t()> plan_reads_from_memory;
  std::function<uint64_t()> plan_reads_from_store;
};

class Metrics {
 public:
  // Unavailable naming the address when the endpoint cannot bind.
  static absl::StatusOr<std::unique_ptr<Metrics>> Start(MetricsOptions options);
  ~Metrics();

  // `code` is the gRPC code's name ("OK", "NOT_FOUND", ...).
  void RecordRpc(std::string_view method, std::string_view code, double seconds);
  void PlanServed();
  void JobCreated();
  // `reassigned`: the shard had an earlier lease, which expired.
  void ShardLeased(bool reassigned);
  // `job_done`: this commit finished its job.
  void ShardCommitted(bool job_done);
  // Bound port of the endpoint, 0 when none.
  int port() const;

 private:
  struct Impl;
  explicit Metrics(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvplan::server

#endif  // KVPLAN_SERVER_METRICS_H_
