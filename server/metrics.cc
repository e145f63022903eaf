#include "server/metrics.h"

#include <exception>

#include "absl/strings/str_format.h"
#include "prometheus/collectable.h"
#include "prometheus/counter.h"
#include "prometheus/exposer.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace kvplan::server {
namespace {

// Reads the store size at scrape time rather than after every write.
class StoreSizeCollectable final : public prometheus::Collectable {
 public:
  explicit StoreSizeCollectable(std::function<uint64_t()> size) : size_(std::move(size)) {}
  std::vector<prometheus::MetricFamily> Collect() const override {
    prometheus::MetricFamily family;
    family.name = "kvplan_store_size_bytes";
    family.help = "Bytes of the coordinator's RocksDB store (SST files plus memtables).";
    family.type = prometheus::MetricType::Gauge;
    prometheus::ClientMetric metric;
    metric.gauge.value = size_ ? static_cast<double>(size_()) : 0.0;
    family.metric.push_back(std::move(metric));
    return {std::move(family)};
  }

 private:
  std::function<uint64_t()> size_;
};

}  // namespace

struct Metrics::Impl {
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  std::shared_ptr<StoreSizeCollectable> store_size;
  prometheus::Family<prometheus::Counter>* rpcs = nullptr;
  prometheus::Family<prometheus::Histogram>* latency = nullptr;
  prometheus::Counter* plans_served = nullptr;
  prometheus::Counter* jobs_created = nullptr;
  prometheus::Counter* jobs_succeeded = nullptr;
  prometheus::Counter* leases_first = nullptr;
  prometheus::Counter* leases_reassigned = nullptr;
  prometheus::Counter* shards_committed = nullptr;
  std::unique_ptr<prometheus::Exposer> exposer;
};

Metrics::Metrics(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Metrics::~Metrics() = default;

absl::StatusOr<std::unique_ptr<Metrics>> Metrics::Start(MetricsOptions options) {
  auto impl = std::make_unique<Impl>();
  impl->rpcs = &prometheus::BuildCounter()
                    .Name("kvplan_rpc_total")
                    .Help("RPCs finished, by method and gRPC status code.")
                    .Register(*impl->registry);
  impl->latency = &prometheus::BuildHistogram()
                       .Name("kvplan_rpc_duration_seconds")
                       .Help("RPC handler latency in seconds, by method.")
                       .Register(*impl->registry);
  impl->plans_served = &prometheus::BuildCounter()
                            .Name("kvplan_plans_served_total")
                            .Help("Plans returned by GetPlan and ExportPlan.")
                            .Register(*impl->registry)
                            .Add({});
  impl->jobs_created = &prometheus::BuildCounter()
                            .Name("kvplan_jobs_created_total")
                            .Help("Calibration jobs created.")
                            .Register(*impl->registry)
                            .Add({});
  impl->jobs_succeeded = &prometheus::BuildCounter()
                              .Name("kvplan_jobs_succeeded_total")
                              .Help("Calibration jobs whose last shard committed.")
                              .Register(*impl->registry)
                              .Add({});
  prometheus::Family<prometheus::Counter>& leases =
      prometheus::BuildCounter()
          .Name("kvplan_shard_leases_total")
          .Help("Shard leases granted; kind=reassigned when an earlier lease had expired.")
          .Register(*impl->registry);
  impl->leases_first = &leases.Add({{"kind", "first"}});
  impl->leases_reassigned = &leases.Add({{"kind", "reassigned"}});
  impl->shards_committed = &prometheus::BuildCounter()
                                .Name("kvplan_shards_committed_total")
                                .Help("Shards committed (repeated commits not counted).")
                                .Register(*impl->registry)
                                .Add({});
  impl->store_size = std::make_shared<StoreSizeCollectable>(std::move(options.store_size_bytes));
  if (!options.listen.empty()) {
    // prometheus-cpp reports a failed bind by throwing; keep that inside here.
    try {
      impl->exposer = std::make_unique<prometheus::Exposer>(options.listen);
    } catch (const std::exception& e) {
      return absl::UnavailableError(
          absl::StrFormat("cannot serve metrics on %s: %s", options.listen, e.what()));
    }
    impl->exposer->RegisterCollectable(impl->registry);
    impl->exposer->RegisterCollectable(impl->store_size);
  }
  return std::unique_ptr<Metrics>(new Metrics(std::move(impl)));
}

void Metrics::RecordRpc(std::string_view method, std::string_view code, double seconds) {
  const std::string m(method);
  impl_->rpcs->Add({{"method", m}, {"code", std::string(code)}}).Increment();
  // 50 µs to ~3 s, ×2 per bucket.
  static const prometheus::Histogram::BucketBoundaries kBuckets = [] {
    prometheus::Histogram::BucketBoundaries b;
    for (double v = 50e-6; v < 4.0; v *= 2) b.push_back(v);
    return b;
  }();
  impl_->latency->Add({{"method", m}}, kBuckets).Observe(seconds);
}

void Metrics::PlanServed() { impl_->plans_served->Increment(); }

void Metrics::JobCreated() { impl_->jobs_created->Increment(); }

void Metrics::ShardLeased(bool reassigned) {
  (reassigned ? impl_->leases_reassigned : impl_->leases_first)->Increment();
}

void Metrics::ShardCommitted(bool job_done) {
  impl_->shards_committed->Increment();
  if (job_done) impl_->jobs_succeeded->Increment();
}

int Metrics::port() const {
  if (impl_->exposer == nullptr) return 0;
  std::vector<int> ports = impl_->exposer->GetListeningPorts();
  return ports.empty() ? 0 : ports[0];
}

}  // namespace kvplan::server
