#include "client/lib/plan_publisher.h"

#include <utility>
#include <vector>

namespace kvplan::client {

void PlanPublisher::Publish(std::shared_ptr<const ServedPlan> plan) {
  std::lock_guard<std::mutex> publishing(publish_mu_);
  publishing_thread_.store(std::this_thread::get_id());
  std::shared_ptr<const ServedPlan> previous;
  {
    std::lock_guard<std::mutex> lock(current_mu_);
    previous = std::exchange(current_, plan);
  }
  previous.reset();  // The old plan, if no reader holds it, is freed outside the lock.
  // Called outside subscribers_mu_ so that a subscriber may (un)subscribe;
  // the copies keep each callable alive even if it is unsubscribed meanwhile.
  std::vector<std::pair<uint64_t, std::shared_ptr<const Subscriber>>> snapshot;
  {
    std::lock_guard<std::mutex> lock(subscribers_mu_);
    snapshot.assign(subscribers_.begin(), subscribers_.end());
  }
  for (const auto& [id, subscriber] : snapshot) {
    {
      // Skip one unsubscribed by an earlier subscriber of this same round.
      std::lock_guard<std::mutex> lock(subscribers_mu_);
      if (!subscribers_.contains(id)) continue;
    }
    (*subscriber)(plan);
  }
  publishing_thread_.store(std::thread::id());
}

uint64_t PlanPublisher::Subscribe(Subscriber subscriber) {
  std::lock_guard<std::mutex> lock(subscribers_mu_);
  const uint64_t id = next_id_++;
  subscribers_.emplace(id, std::make_shared<const Subscriber>(std::move(subscriber)));
  return id;
}

void PlanPublisher::Unsubscribe(uint64_t id) {
  {
    std::lock_guard<std::mutex> lock(subscribers_mu_);
    subscribers_.erase(id);
  }
  if (publishing_thread_.load() == std::this_thread::get_id()) return;
  // Wait out a notification that may have started before the erase.
  std::lock_guard<std::mutex> wait(publish_mu_);
}

}  // namespace kvplan::client
