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

// Reads the store size and the plan cache's counts at scrape time rather than
// after every write or read; the plan registry owns the cache and its counts.
class ScrapeTimeCollectable final : public prometheus::Collectable {
 public:
  explicit ScrapeTimeCollectable(const MetricsOptions& options)
      : size_(options.store_size_bytes),
        reads_from_memory_(options.plan_reads_from_memory),
        reads_from_store_(options.plan_reads_from_store) {}
  std::vector<prometheus::MetricFamily> Collect() const override {
    return {StoreSize(), PlanReads()};
  }

 private:
  prometheus::MetricFamily StoreSize() const {
    prometheus::MetricFamily family;
    family.name = "kvplan_store_size_bytes";
    family.help = "Bytes of the coordinator's RocksDB store (SST files plus memtables).";
    family.type = prometheus::MetricType::Gauge;
    prometheus::ClientMetric metric;
    metric.gauge.value = size_ ? static_cast<double>(size_()) : 0.0;
    family.metric.push_back(std::move(metric));
    return family;
  }

  prometheus::MetricFamily PlanReads() const {
    prometheus::MetricFamily family;
    family.name = "kvplan_plan_reads_total";
    family.help =
        "Plan reads (GetPlan, ExportPlan, DiffPlans, GetRotation) by where they were served "
        "from: source=memory (the plan cache) or store (RocksDB).";
    family.type = prometheus::MetricType::Counter;
    for (const auto& [source, count] :
         {std::pair{"memory", &reads_from_memory_}, std::pair{"store", &reads_from_store_}}) {
      prometheus::ClientMetric metric;
      metric.label.push_back({"source", source});
      metric.counter.value = *count ? static_cast<double>((*count)()) : 0.0;
      family.metric.push_back(std::move(metric));
    }
    return family;
  }

  std::function<uint64_t()> size_;
  std::function<uint64_t()> reads_from_memory_;
  std::function<uint64_t()> reads_from_store_;
};

}  // namespace

struct Metrics::Impl {
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  std::shared_ptr<ScrapeTimeCollectable> scrape_time;
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
  impl->scrape_time = std::make_shared<ScrapeTimeCollectable>(options);
  if (!options.listen.empty()) {
    // prometheus-cpp reports a failed bind by throwing; keep that inside here.
    try {
      impl->exposer = std::make_unique<prometheus::Exposer>(options.listen);
    } catch (const std::exception& e) {
      return absl::UnavailableError(
          absl::StrFormat("cannot serve metrics on %s: %s", options.listen, e.what()));
    }
    impl->exposer->RegisterCollectable(impl->registry);
    impl->exposer->RegisterCollectable(impl->scrape_time);
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
