// What the client does with each plan it is offered, without a coordinator:
// serve, cache and announce good plans; refuse bad ones and keep the current
// plan; start from the cache, ignoring a damaged one. The concurrency test
// (readers during promotions) runs under ThreadSanitizer in `make test-tsan`.
#include "client/lib/plan_tracker.h"

#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "client/lib/plan_cache.h"
#include "core/file_io.h"
#include "gtest/gtest.h"
#include "tests/client/cli_runner.h"
#include "tests/client/lib/plan_fixtures.h"

namespace kvplan::client {
namespace {

using ::kvplan::testing::FixtureOffer;
using ::kvplan::testing::FixturePlan;
using ::kvplan::testing::kNodeFingerprint;
using ::kvplan::testing::LogCapture;
using ::kvplan::testing::ScratchDir;

class PlanTrackerTest : public ::testing::Test {
 protected:
  PlanTracker::Options Options() {
    return {.model_fingerprint = kNodeFingerprint,
            .channel = "stable",
            .cache_path = PlanCachePath(dir_.Path("cache"), kNodeFingerprint, "stable"),
            .log = log_.Sink()};
  }
  std::string log() { return log_.text(); }
  ScratchDir dir_{"plan_tracker_test"};
  LogCapture log_;
};

TEST_F(PlanTrackerTest, ServesCachesAndAnnouncesANewPlanOnce) {
  PlanTracker tracker(Options());
  std::vector<std::string> announced;
  tracker.publisher().Subscribe([&](const auto& p) { announced.push_back(p->digest); });
  const KvPlan plan = FixturePlan();
  absl::StatusOr<bool> served = tracker.Accept(FixtureOffer(plan));
  ASSERT_TRUE(served.ok()) << served.status();
  EXPECT_TRUE(*served);
  std::shared_ptr<const ServedPlan> current = tracker.publisher().Current();
  ASSERT_NE(current, nullptr);
  EXPECT_EQ(current->digest, PlanDigest(plan));
  EXPECT_EQ(current->source, PlanSource::kCoordinator);
  EXPECT_EQ(current->channel, "stable");
  EXPECT_EQ(current->model_id, "tiny");
  EXPECT_EQ(current->plan.k_block_bits, plan.k_block_bits);
  absl::StatusOr<CachedPlan> cached = ReadPlanCache(Options().cache_path);
  ASSERT_TRUE(cached.ok()) << cached.status();
  EXPECT_EQ(cached->plan_id, PlanDigest(plan));

  served = tracker.Accept(FixtureOffer(plan));  // Already current: nothing happens.
  ASSERT_TRUE(served.ok());
  EXPECT_FALSE(*served);
  EXPECT_EQ(announced, std::vector<std::string>{PlanDigest(plan)});
}

TEST_F(PlanTrackerTest, APushedPlanFailingVerificationIsRefusedAndTheCurrentOneKept) {
  PlanTracker tracker(Options());
  const KvPlan good = FixturePlan();
  ASSERT_TRUE(tracker.Accept(FixtureOffer(good)).ok());
  int announcements = 0;
  tracker.publisher().Subscribe([&](const auto&) { ++announcements; });

  // Another model's plan.
  const KvPlan foreign = FixturePlan(3, "fp-other-model");
  absl::Status st = tracker.Accept(FixtureOffer(foreign)).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(st.message().find("is for model fp-other-model, this node runs fp-node-model-0001"),
            std::string::npos)
      << st;
  EXPECT_EQ(tracker.last_error(), st);
  EXPECT_NE(log().find("refused the plan of channel stable (serving " + PlanDigest(good)),
            std::string::npos)
      << log();

  // A plan whose content is not the digest it was announced under.
  client::PlanOffer tampered = FixtureOffer(FixturePlan(3));
  tampered.plan_id = PlanDigest(FixturePlan(2));
  EXPECT_EQ(tracker.Accept(tampered).status().code(), absl::StatusCode::kDataLoss);

  // Garbage.
  client::PlanOffer garbage = FixtureOffer(FixturePlan(3));
  garbage.plan_json.resize(garbage.plan_json.size() / 2);
  EXPECT_FALSE(tracker.Accept(garbage).ok());

  EXPECT_EQ(tracker.publisher().Current()->digest, PlanDigest(good));
  EXPECT_EQ(announcements, 0);
  EXPECT_EQ(ReadPlanCache(Options().cache_path)->plan_id, PlanDigest(good))
      << "a refused plan never reaches the cache";
}

TEST_F(PlanTrackerTest, ANodeStartsFromTheCachedPlan) {
  const KvPlan plan = FixturePlan();
  {
    PlanTracker first_run(Options());
    ASSERT_TRUE(first_run.Accept(FixtureOffer(plan, /*version=*/4)).ok());
  }
  PlanTracker tracker(Options());
  absl::StatusOr<std::string> model_id = tracker.LoadCache();
  ASSERT_TRUE(model_id.ok()) << model_id.status();
  EXPECT_EQ(*model_id, "tiny");
  std::shared_ptr<const ServedPlan> current = tracker.publisher().Current();
  ASSERT_NE(current, nullptr);
  EXPECT_EQ(current->digest, PlanDigest(plan));
  EXPECT_EQ(current->source, PlanSource::kCache);
  EXPECT_EQ(current->version, 4u);
  EXPECT_NE(log().find("serving cached plan " + PlanDigest(plan)), std::string::npos) << log();
}

TEST_F(PlanTrackerTest, ACorruptTruncatedOrForeignCacheFileIsIgnoredWithAReason) {
  const std::string path = Options().cache_path.string();
  {
    PlanTracker tracker(Options());
    EXPECT_EQ(tracker.LoadCache().status().code(), absl::StatusCode::kNotFound);
  }
  {
    PlanTracker first_run(Options());
    ASSERT_TRUE(first_run.Accept(FixtureOffer(FixturePlan())).ok());
  }
  const std::string bytes = *ReadFile(path);

  std::string corrupt = bytes;
  corrupt[corrupt.size() / 2] ^= 0x01;
  ASSERT_TRUE(WriteFileAtomically(path, corrupt).ok());
  PlanTracker after_corruption(Options());
  absl::Status st = after_corruption.LoadCache().status();
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << st;
  EXPECT_EQ(after_corruption.publisher().Current(), nullptr);
  EXPECT_NE(log().find("ignoring the cached plan: plan cache file " + path +
                       " is unusable: checksum mismatch"),
            std::string::npos)
      << log();

  ASSERT_TRUE(WriteFileAtomically(path, bytes.substr(0, bytes.size() - 30)).ok());
  PlanTracker after_truncation(Options());
  EXPECT_EQ(after_truncation.LoadCache().status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(after_truncation.publisher().Current(), nullptr);

  // Intact, but holding another model's plan (e.g. a cache dir copied from
  // another node): refused by fingerprint like a plan from the coordinator.
  const KvPlan foreign = FixturePlan(2.5, "fp-other-model");
  ASSERT_TRUE(WritePlanCache(path, {.model_fingerprint = kNodeFingerprint,
                                    .model_id = "tiny",
                                    .channel = "stable",
                                    .plan_id = PlanDigest(foreign),
                                    .plan_name = "default",
                                    .version = 1,
                                    .plan_json = PlanToJson(foreign)})
                  .ok());
  PlanTracker with_foreign(Options());
  st = with_foreign.LoadCache().status();
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(st.message().find("this node runs fp-node-model-0001"), std::string::npos) << st;
  EXPECT_EQ(with_foreign.publisher().Current(), nullptr);
}

TEST_F(PlanTrackerTest, PromotionsReachASubscriberWhileReadersKeepServing) {
  PlanTracker tracker(Options());
  std::vector<KvPlan> plans = {FixturePlan(2), FixturePlan(2.5), FixturePlan(3), FixturePlan(3.5)};
  std::set<std::string> digests;
  for (const KvPlan& p : plans) digests.insert(PlanDigest(p));
  ASSERT_EQ(digests.size(), plans.size());
  ASSERT_TRUE(tracker.Accept(FixtureOffer(plans[0], 1)).ok());

  std::atomic<bool> stop{false};
  std::atomic<int64_t> reads{0}, bad{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 6; ++r) {
    readers.emplace_back([&] {
      while (!stop.load()) {
        std::shared_ptr<const ServedPlan> p = tracker.publisher().Current();
        if (p == nullptr || !digests.contains(p->digest) ||
            p->plan.model_fingerprint != kNodeFingerprint) {
          ++bad;
        }
        ++reads;
      }
    });
  }
  std::mutex seen_mu;
  std::vector<uint64_t> seen;
  tracker.publisher().Subscribe([&](const auto& p) {
    std::lock_guard<std::mutex> lock(seen_mu);
    seen.push_back(p->version);
  });
  // Promotions arrive on another thread (as on the client's watch thread), one
  // of them a plan for the wrong model that must be refused in between.
  std::thread watch([&] {
    for (uint64_t v = 2; v <= plans.size(); ++v) {
      EXPECT_TRUE(tracker.Accept(FixtureOffer(plans[v - 1], v)).ok());
      EXPECT_FALSE(tracker.Accept(FixtureOffer(FixturePlan(3, "fp-other-model"), 99)).ok());
    }
  });
  watch.join();
  const int64_t reads_after_promotions = reads.load();
  while (reads.load() < reads_after_promotions + 1000) std::this_thread::yield();
  stop = true;
  for (std::thread& t : readers) t.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(tracker.publisher().Current()->digest, PlanDigest(plans.back()));
  std::lock_guard<std::mutex> lock(seen_mu);
  EXPECT_EQ(seen, (std::vector<uint64_t>{2, 3, 4}));
}

}  // namespace
}  // namespace kvplan::client
