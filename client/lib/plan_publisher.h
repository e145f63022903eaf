// The plan a node serves now, swapped without blocking its readers, and the
// subscribers told of each new one. No gRPC: the concurrency of PlanClient
// lives here, so it can be tested under ThreadSanitizer on its own.
//
// Readers call Current() on any thread at any rate: it copies the shared_ptr
// under a mutex held only for that copy (one reference-count increment), and a
// swap holds it only to exchange the pointer (the old plan is freed outside
// it), so neither waits on the other's work, and a reader never sees a torn or
// freed plan (its snapshot lives until it drops it). Not
// std::atomic<std::shared_ptr>: libstdc++ 12's load releases its internal lock
// with relaxed ordering, which ThreadSanitizer reports as a race with the next
// store. Publish() swaps, then calls every subscriber, in subscription order,
// on the publishing thread; publishes are serialized, so subscribers see plans
// in the order they were published.
//
// Example:
//   PlanPublisher publisher;
//   uint64_t id = publisher.Subscribe([](const auto& plan) { Repack(plan->plan); });
//   publisher.Publish(std::make_shared<const ServedPlan>(served));
//   std::shared_ptr<const ServedPlan> now = publisher.Current();
//   publisher.Unsubscribe(id);
#ifndef KVPLAN_CLIENT_LIB_PLAN_PUBLISHER_H_
#define KVPLAN_CLIENT_LIB_PLAN_PUBLISHER_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "kvplan/plan_client.h"

namespace kvplan::client {

// Thread-safe.
class PlanPublisher {
 public:
  using Subscriber = PlanClient::Subscriber;

  // The last published plan; null before the first Publish.
  std::shared_ptr<const ServedPlan> Current() const {
    std::lock_guard<std::mutex> lock(current_mu_);
    return current_;
  }

  // Makes `plan` current, then calls the subscribers with it.
  void Publish(std::shared_ptr<const ServedPlan> plan);

  uint64_t Subscribe(Subscriber subscriber);
  // Once it returns, the subscriber is not running and will not run again;
  // from inside a subscriber, the running notification finishes first (waiting
  // for it there would deadlock).
  void Unsubscribe(uint64_t id);

 private:
  mutable std::mutex current_mu_;
  std::shared_ptr<const ServedPlan> current_ ABSL_GUARDED_BY(current_mu_);
  // Held for the whole of a Publish: keeps notifications in order and lets
  // Unsubscribe wait out one in flight.
  std::mutex publish_mu_;
  // The thread inside Publish, so Unsubscribe can tell it is called from a subscriber.
  std::atomic<std::thread::id> publishing_thread_;
  std::mutex subscribers_mu_;
  uint64_t next_id_ ABSL_GUARDED_BY(subscribers_mu_) = 1;
  std::map<uint64_t, std::shared_ptr<const Subscriber>> subscribers_
      ABSL_GUARDED_BY(subscribers_mu_);
};

}  // namespace kvplan::client

#endif  // KVPLAN_CLIENT_LIB_PLAN_PUBLISHER_H_
