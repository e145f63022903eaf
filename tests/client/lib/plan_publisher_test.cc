// The hot swap and the subscriptions, under concurrent readers. No gRPC here:
// `make test-tsan` runs this file under ThreadSanitizer.
#include "client/lib/plan_publisher.h"

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace kvplan::client {
namespace {

std::shared_ptr<const ServedPlan> Plan(uint64_t version) {
  auto plan = std::make_shared<ServedPlan>();
  plan->version = version;
  plan->digest = "digest-" + std::to_string(version);
  plan->plan.num_layers = static_cast<int>(version);
  return plan;
}

TEST(PlanPublisherTest, CurrentIsNullUntilTheFirstPublish) {
  PlanPublisher publisher;
  EXPECT_EQ(publisher.Current(), nullptr);
  publisher.Publish(Plan(1));
  ASSERT_NE(publisher.Current(), nullptr);
  EXPECT_EQ(publisher.Current()->version, 1u);
}

TEST(PlanPublisherTest, SubscribersSeeEveryPlanInOrderUntilUnsubscribed) {
  PlanPublisher publisher;
  std::vector<uint64_t> a, b;
  const uint64_t id_a = publisher.Subscribe([&](const auto& p) { a.push_back(p->version); });
  publisher.Subscribe([&](const auto& p) { b.push_back(p->version); });
  publisher.Publish(Plan(1));
  publisher.Publish(Plan(2));
  publisher.Unsubscribe(id_a);
  publisher.Unsubscribe(12345);  // Unknown ids are ignored.
  publisher.Publish(Plan(3));
  EXPECT_EQ(a, (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(b, (std::vector<uint64_t>{1, 2, 3}));
}

TEST(PlanPublisherTest, ASubscriberMayUnsubscribeItselfAndOthers) {
  PlanPublisher publisher;
  int calls_first = 0, calls_second = 0;
  uint64_t first = 0, second = 0;
  first = publisher.Subscribe([&](const auto&) {
    ++calls_first;
    publisher.Unsubscribe(first);   // Would deadlock if it waited for itself.
    publisher.Unsubscribe(second);  // Later in the same round: not called.
  });
  second = publisher.Subscribe([&](const auto&) { ++calls_second; });
  publisher.Publish(Plan(1));
  publisher.Publish(Plan(2));
  EXPECT_EQ(calls_first, 1);
  EXPECT_EQ(calls_second, 0);
}

TEST(PlanPublisherTest, UnsubscribeWaitsOutARunningNotification) {
  PlanPublisher publisher;
  std::atomic<bool> entered{false}, finished{false};
  const uint64_t id = publisher.Subscribe([&](const auto&) {
    entered = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    finished = true;
  });
  std::thread publishing([&] { publisher.Publish(Plan(1)); });
  while (!entered) std::this_thread::yield();
  publisher.Unsubscribe(id);
  EXPECT_TRUE(finished) << "Unsubscribe returned while its subscriber was still running";
  publishing.join();
}

TEST(PlanPublisherTest, ReadersNeverBlockOrSeeATornPlanWhilePlansSwap) {
  PlanPublisher publisher;
  publisher.Publish(Plan(0));
  constexpr int kReaders = 8;
  constexpr uint64_t kPlans = 300;
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0};
  std::vector<uint64_t> last_seen(kReaders, 0);
  std::vector<std::thread> readers;
  for (int r = 0; r < kReaders; ++r) {
    readers.emplace_back([&, r] {
      uint64_t previous = 0;
      while (!stop.load()) {
        std::shared_ptr<const ServedPlan> plan = publisher.Current();
        // Every field of one snapshot belongs to the same plan, and versions
        // never go backwards for a reader.
        if (plan->digest != "digest-" + std::to_string(plan->version) ||
            plan->plan.num_layers != static_cast<int>(plan->version) || plan->version < previous) {
          ++bad;
        }
        previous = plan->version;
      }
      last_seen[r] = previous;
    });
  }
  std::vector<uint64_t> announced;
  std::mutex announced_mu;
  publisher.Subscribe([&](const auto& p) {
    std::lock_guard<std::mutex> lock(announced_mu);
    announced.push_back(p->version);
  });
  for (uint64_t v = 1; v <= kPlans; ++v) publisher.Publish(Plan(v));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  stop = true;
  for (std::thread& t : readers) t.join();
  EXPECT_EQ(bad.load(), 0);
  for (uint64_t seen : last_seen) EXPECT_EQ(seen, kPlans);
  std::lock_guard<std::mutex> lock(announced_mu);
  ASSERT_EQ(announced.size(), kPlans);
  for (uint64_t v = 1; v <= kPlans; ++v) EXPECT_EQ(announced[v - 1], v);
}

}  // namespace
}  // namespace kvplan::client
