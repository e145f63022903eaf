// What a PlanClient does with every plan it is offered, apart from the
// transport: verify, cache, serve and announce it, or refuse it and keep
// serving the current one. No gRPC, so the fail-closed rules and the swap are
// testable (and run under ThreadSanitizer) without a coordinator.
//
// Example:
//   PlanTracker tracker({.model_fingerprint = fp, .channel = "stable", .cache_path = path});
//   absl::StatusOr<bool> served = tracker.Accept({.plan_json = json, .plan_id = id, ...});
//   // served: true (new plan swapped in), false (already current), or the
//   // verification error (nothing changed; last_error() holds it too).
#ifndef KVPLAN_CLIENT_LIB_PLAN_TRACKER_H_
#define KVPLAN_CLIENT_LIB_PLAN_TRACKER_H_

#include <cstdint>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/lib/plan_publisher.h"

namespace kvplan::client {

// A plan as the coordinator named it: the JSON and where the channel points.
struct PlanOffer {
  std::string plan_json;
  std::string plan_id;  // The digest it was asked for or announced under.
  std::string model_id;
  std::string plan_name;
  uint64_t version = 0;
};

// Thread-safe.
class PlanTracker {
 public:
  struct Options {
    // The fingerprint every served plan must be bound to.
    std::string model_fingerprint;
    std::string channel;
    // The cache file (client/lib/plan_cache.h); empty: no cache.
    std::filesystem::path cache_path;
    // As PlanClientOptions::log; may be empty.
    std::function<void(std::string_view)> log;
  };
  explicit PlanTracker(Options options);

  // Verifies `offer` from the coordinator and, unless it is already current,
  // caches it (a failed write is logged and kept as last_error, not fatal: the
  // plan is good), serves it and calls the subscribers. True when it swapped a
  // new plan in. A verification error changes nothing and is returned, logged
  // and kept as last_error.
  absl::StatusOr<bool> Accept(const PlanOffer& offer);

  // Serves the cached plan, verified as Accept verifies (and bound to this
  // channel). NotFound without a cache file; otherwise the reason it was
  // ignored (logged too). Returns the model id the cache recorded.
  absl::StatusOr<std::string> LoadCache();

  // Digest of the plan served now; empty before the first.
  std::string current_digest() const;
  PlanPublisher& publisher() { return publisher_; }

  void RecordError(absl::Status status);
  absl::Status last_error() const;
  void Log(std::string_view line) const;

 private:
  void Serve(KvPlan plan, const PlanOffer& offer, PlanSource source);

  const Options options_;
  PlanPublisher publisher_;
  // Serializes Accept/LoadCache so that the digest check, the cache write and
  // the swap happen as one step.
  std::mutex accept_mu_;
  mutable std::mutex error_mu_;
  absl::Status last_error_ ABSL_GUARDED_BY(error_mu_);
};

}  // namespace kvplan::client

#endif  // KVPLAN_CLIENT_LIB_PLAN_TRACKER_H_
