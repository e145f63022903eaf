// libkvplan-client against a real kvplan-coordinator process (real RocksDB,
// loopback sockets), set up through the real `kvplan` CLI: fetch and verify,
// fail closed, start from the cache with the coordinator stopped, reconnect
// after a restart, and a promotion reaching a subscriber while readers run.
#include "kvplan/plan_client.h"

#include <signal.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "client/lib/plan_cache.h"
#include "core/file_io.h"
#include "gtest/gtest.h"
#include "tests/client/cli_runner.h"
#include "tests/client/lib/plan_fixtures.h"
#include "tests/server/coordinator_process.h"
#include "tests/server/server_test_util.h"

namespace kvplan {
namespace {

using ::kvplan::testing::CoordinatorProcess;
using ::kvplan::testing::kFingerprint;
using ::kvplan::testing::LogCapture;
using ::kvplan::testing::RunKvplan;
using ::kvplan::testing::RunResult;
using ::kvplan::testing::TempDir;
using ::kvplan::testing::TestCalibrationFile;

bool WaitFor(const std::function<bool()>& condition,
             std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

class PlanClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    calib_ = dir_.Path("stats.kvpc");
    ASSERT_TRUE(WriteFileAtomically(calib_, TestCalibrationFile()).ok());
    StartCoordinator();
    Cli("models register --calibration " + calib_ + " --name tiny");
    Cli("plans create --model tiny --stats " + calib_ + " --k-bits 3 --v-bits 3");
    Cli("plans create --model tiny --stats " + calib_ + " --k-bits 2.5 --v-bits 2");
    Cli("channels promote --model tiny --channel stable --version 1");
    v1_ = PlanId(1);
    v2_ = PlanId(2);
    ASSERT_NE(v1_, v2_);
  }

  // The first start takes any free port; restarts take the same one again, so
  // the clients' address stays valid (as a Kubernetes Service name would).
  void StartCoordinator() {
    coordinator_.emplace(std::vector<std::string>{
        "--listen", address_.empty() ? "127.0.0.1:0" : address_, "--data-dir", dir_.Path("db")});
    ASSERT_TRUE(coordinator_->ok()) << coordinator_->output();
    address_ = coordinator_->address();
  }
  void StopCoordinator(int signal = SIGTERM) { coordinator_->Stop(signal); }

  std::string Cli(const std::string& args) {
    RunResult r = RunKvplan("--coordinator " + address_ + " " + args);
    EXPECT_EQ(r.exit_code, 0) << args << "\n" << r.out;
    return r.out;
  }
  std::string PlanId(int version) {
    const std::string out = Cli(absl::StrFormat("plans list --model tiny"));
    const std::string marker = absl::StrFormat("tiny/default v%d ", version);
    const size_t at = out.find(marker);
    const size_t id = out.find("id ", at);
    return at == std::string::npos ? "" : out.substr(id + 3, 64);
  }

  PlanClientOptions Options() {
    return {.coordinator = address_,
            .model_fingerprint = kFingerprint,
            .channel = "stable",
            .cache_dir = dir_.Path("cache"),
            .rpc_timeout = std::chrono::seconds(5),
            .reconnect_backoff_min = std::chrono::milliseconds(50),
            .reconnect_backoff_max = std::chrono::milliseconds(400),
            .log = log_.Sink()};
  }
  std::string log() { return log_.text(); }

  TempDir dir_;
  std::string calib_;
  std::string address_;
  std::optional<CoordinatorProcess> coordinator_;
  std::string v1_, v2_;
  LogCapture log_;
};

TEST_F(PlanClientTest, FetchesVerifiesAndCachesTheChannelsPlan) {
  absl::StatusOr<std::unique_ptr<PlanClient>> client = PlanClient::Open(Options());
  ASSERT_TRUE(client.ok()) << client.status();
  std::shared_ptr<const ServedPlan> plan = (*client)->Current();
  ASSERT_NE(plan, nullptr);
  EXPECT_EQ(plan->digest, v1_);
  EXPECT_EQ(PlanDigest(plan->plan), v1_);
  EXPECT_EQ(plan->plan.model_fingerprint, kFingerprint);
  EXPECT_EQ(plan->model_id, "tiny") << "found by the fingerprint";
  EXPECT_EQ(plan->plan_name, "default");
  EXPECT_EQ(plan->version, 1u);
  EXPECT_EQ(plan->source, PlanSource::kCoordinator);
  EXPECT_TRUE((*client)->connected());
  EXPECT_TRUE((*client)->last_error().ok()) << (*client)->last_error();
  absl::StatusOr<client::CachedPlan> cached =
      client::ReadPlanCache(client::PlanCachePath(dir_.Path("cache"), kFingerprint, "stable"));
  ASSERT_TRUE(cached.ok()) << cached.status();
  EXPECT_EQ(cached->plan_id, v1_);
}

TEST_F(PlanClientTest, AnotherModelsFingerprintFailsClosedNamingBoth) {
  PlanClientOptions options = Options();
  options.model_fingerprint = "fp-some-other-model";
  options.model_id = "tiny";  // Pointed at tiny's channel by mistake.
  absl::StatusOr<std::unique_ptr<PlanClient>> client = PlanClient::Open(options);
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(client.status().message().find(absl::StrFormat(
                "plan %s is for model %s, this node runs fp-some-other-model", v1_, kFingerprint)),
            std::string::npos)
      << client.status();
  EXPECT_FALSE(std::filesystem::exists(dir_.Path("cache")) &&
               !std::filesystem::is_empty(dir_.Path("cache")))
      << "a refused plan is never cached";

  options.model_id.clear();  // Looked up by fingerprint: no such model.
  client = PlanClient::Open(options);
  EXPECT_EQ(client.status().code(), absl::StatusCode::kNotFound) << client.status();
  EXPECT_NE(client.status().message().find("no model with fingerprint fp-some-other-model"),
            std::string::npos)
      << client.status();
}

TEST_F(PlanClientTest, BadOptionsAndAnEmptyChannelAreRefusedByName) {
  PlanClientOptions options = Options();
  options.channel = "../etc";
  EXPECT_EQ(PlanClient::Open(options).status().code(), absl::StatusCode::kInvalidArgument);
  options = Options();
  options.model_fingerprint.clear();
  EXPECT_NE(PlanClient::Open(options).status().message().find("model_fingerprint"),
            std::string::npos);
  options = Options();
  options.channel = "canary";  // Never promoted.
  EXPECT_EQ(PlanClient::Open(options).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(PlanClientTest, ANodeStartsAndServesFromItsCacheWithTheCoordinatorStopped) {
  {
    absl::StatusOr<std::unique_ptr<PlanClient>> first_boot = PlanClient::Open(Options());
    ASSERT_TRUE(first_boot.ok()) << first_boot.status();
  }
  StopCoordinator(SIGKILL);

  absl::StatusOr<std::unique_ptr<PlanClient>> client = PlanClient::Open(Options());
  ASSERT_TRUE(client.ok()) << client.status();
  std::shared_ptr<const ServedPlan> plan = (*client)->Current();
  EXPECT_EQ(plan->digest, v1_);
  EXPECT_EQ(plan->source, PlanSource::kCache);
  EXPECT_EQ(plan->model_id, "tiny");
  EXPECT_FALSE((*client)->connected());
  EXPECT_EQ((*client)->last_error().code(), absl::StatusCode::kUnavailable)
      << (*client)->last_error();
  EXPECT_NE(log().find("serving cached plan " + v1_), std::string::npos) << log();
  // Keeps serving while it retries in the background.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ((*client)->Current()->digest, v1_);
  // Close does not wait out a backoff.
  const auto start = std::chrono::steady_clock::now();
  (*client)->Close();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  EXPECT_EQ((*client)->Current()->digest, v1_);
}

TEST_F(PlanClientTest, NoCoordinatorAndNoUsableCacheFailsNamingBothCauses) {
  StopCoordinator(SIGKILL);
  absl::StatusOr<std::unique_ptr<PlanClient>> client = PlanClient::Open(Options());
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(client.status().message().find("coordinator " + address_ + " is unreachable"),
            std::string::npos)
      << client.status();
  EXPECT_NE(client.status().message().find("no usable cached plan"), std::string::npos)
      << client.status();
}

TEST_F(PlanClientTest, ACorruptCacheFileIsIgnoredAndReplaced) {
  {
    absl::StatusOr<std::unique_ptr<PlanClient>> first_boot = PlanClient::Open(Options());
    ASSERT_TRUE(first_boot.ok()) << first_boot.status();
  }
  const std::filesystem::path cache =
      client::PlanCachePath(dir_.Path("cache"), kFingerprint, "stable");
  std::string bytes = *ReadFile(cache);
  bytes[bytes.size() / 3] ^= 0x20;
  ASSERT_TRUE(WriteFileAtomically(cache, bytes).ok());

  StopCoordinator(SIGKILL);
  absl::StatusOr<std::unique_ptr<PlanClient>> client = PlanClient::Open(Options());
  ASSERT_FALSE(client.ok()) << "a corrupt cache must not be served";
  EXPECT_NE(client.status().message().find("checksum mismatch"), std::string::npos)
      << client.status();
  EXPECT_NE(log().find("ignoring the cached plan"), std::string::npos) << log();

  // With the coordinator back the node starts normally and the cache is whole again.
  StartCoordinator();
  client = PlanClient::Open(Options());
  ASSERT_TRUE(client.ok()) << client.status();
  EXPECT_EQ((*client)->Current()->source, PlanSource::kCoordinator);
  EXPECT_TRUE(client::ReadPlanCache(cache).ok());
}

TEST_F(PlanClientTest, ReconnectsAfterACoordinatorRestartAndReceivesALaterPromotion) {
  absl::StatusOr<std::unique_ptr<PlanClient>> client = PlanClient::Open(Options());
  ASSERT_TRUE(client.ok()) << client.status();
  std::mutex seen_mu;
  std::vector<std::string> seen;
  (*client)->Subscribe([&](const std::shared_ptr<const ServedPlan>& p) {
    std::lock_guard<std::mutex> lock(seen_mu);
    seen.push_back(p->digest);
  });

  StopCoordinator(SIGTERM);  // Ends the watch stream with UNAVAILABLE.
  ASSERT_TRUE(WaitFor([&] { return !(*client)->connected(); })) << log();
  EXPECT_EQ((*client)->Current()->digest, v1_) << "keeps serving while the coordinator is away";
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // A few failed attempts.

  StartCoordinator();  // Same address, same store.
  ASSERT_TRUE(WaitFor([&] { return (*client)->connected(); })) << log();
  Cli("channels promote --model tiny --channel stable --version 2");
  ASSERT_TRUE(WaitFor([&] { return (*client)->Current()->digest == v2_; })) << log();
  EXPECT_EQ((*client)->Current()->version, 2u);
  EXPECT_EQ((*client)->Current()->source, PlanSource::kCoordinator);
  {
    std::lock_guard<std::mutex> lock(seen_mu);
    EXPECT_EQ(seen, std::vector<std::string>{v2_});
  }
  EXPECT_NE(log().find("lost coordinator " + address_), std::string::npos) << log();
  EXPECT_NE(log().find("connected to coordinator " + address_), std::string::npos) << log();
  // The new plan was cached too.
  EXPECT_EQ(client::ReadPlanCache(client::PlanCachePath(dir_.Path("cache"), kFingerprint, "stable"))
                ->plan_id,
            v2_);
}

TEST_F(PlanClientTest, APromotionMadeWhileDisconnectedIsPickedUpOnReconnect) {
  absl::StatusOr<std::unique_ptr<PlanClient>> client = PlanClient::Open(Options());
  ASSERT_TRUE(client.ok()) << client.status();
  StopCoordinator(SIGKILL);
  ASSERT_TRUE(WaitFor([&] { return !(*client)->connected(); }));
  // The channel moves while this node cannot hear it: a coordinator on the same
  // store but another address, gone again before the node's one returns.
  {
    CoordinatorProcess elsewhere({"--listen", "127.0.0.1:0", "--data-dir", dir_.Path("db")});
    ASSERT_TRUE(elsewhere.ok()) << elsewhere.output();
    RunResult r = RunKvplan("--coordinator " + elsewhere.address() +
                            " channels promote --model tiny --channel stable --version 2");
    ASSERT_EQ(r.exit_code, 0) << r.out;
    elsewhere.Stop(SIGTERM);
  }
  EXPECT_EQ((*client)->Current()->digest, v1_);
  StartCoordinator();
  ASSERT_TRUE(WaitFor([&] { return (*client)->Current()->digest == v2_; })) << log();
  EXPECT_EQ((*client)->Current()->version, 2u);
}

TEST_F(PlanClientTest, PromotionsReachASubscriberWhileReadersKeepCallingCurrent) {
  absl::StatusOr<std::unique_ptr<PlanClient>> opened = PlanClient::Open(Options());
  ASSERT_TRUE(opened.ok()) << opened.status();
  PlanClient& client = **opened;
  std::atomic<bool> stop{false};
  std::atomic<int64_t> reads{0}, bad{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 6; ++r) {
    readers.emplace_back([&] {
      while (!stop.load()) {
        std::shared_ptr<const ServedPlan> p = client.Current();
        if (p == nullptr || (p->digest != v1_ && p->digest != v2_) ||
            p->plan.k_block_bits.size() != 6) {
          ++bad;
        }
        ++reads;
      }
    });
  }
  std::mutex seen_mu;
  std::vector<std::pair<std::string, uint64_t>> seen;
  client.Subscribe([&](const std::shared_ptr<const ServedPlan>& p) {
    std::lock_guard<std::mutex> lock(seen_mu);
    seen.emplace_back(p->digest, p->version);
  });
  Cli("channels promote --model tiny --channel stable --version 2");
  ASSERT_TRUE(WaitFor([&] {
    std::lock_guard<std::mutex> lock(seen_mu);
    return !seen.empty();
  })) << log();
  Cli("channels rollback --model tiny --channel stable");
  ASSERT_TRUE(WaitFor([&] {
    std::lock_guard<std::mutex> lock(seen_mu);
    return seen.size() == 2;
  })) << log();
  const int64_t reads_so_far = reads.load();
  ASSERT_TRUE(WaitFor([&] { return reads.load() > reads_so_far + 1000; }));
  stop = true;
  for (std::thread& t : readers) t.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(client.Current()->digest, v1_);
  std::lock_guard<std::mutex> lock(seen_mu);
  EXPECT_EQ(seen, (std::vector<std::pair<std::string, uint64_t>>{{v2_, 2}, {v1_, 1}}));
}

TEST_F(PlanClientTest, TheCliFetchesThroughTheSameLibrary) {
  const std::string fetch =
      absl::StrFormat("plans fetch --fingerprint %s --channel stable --cache-dir %s --out %s",
                      kFingerprint, dir_.Path("cli-cache"), dir_.Path("fetched.json"));
  std::string out = Cli(fetch);
  EXPECT_NE(
      out.find(absl::StrFormat("plan %s (tiny/default v1, channel stable) from coordinator", v1_)),
      std::string::npos)
      << out;
  absl::StatusOr<KvPlan> fetched = ReadPlanFile(dir_.Path("fetched.json"));
  ASSERT_TRUE(fetched.ok()) << fetched.status();
  EXPECT_EQ(PlanDigest(*fetched), v1_);

  StopCoordinator(SIGKILL);
  out = Cli(fetch);
  EXPECT_NE(out.find("from cache"), std::string::npos) << out;
  EXPECT_NE(out.find("note: serving cached plan " + v1_), std::string::npos) << out;

  RunResult wrong = RunKvplan("--coordinator " + address_ +
                              " plans fetch --fingerprint fp-x --model tiny --cache-dir " +
                              dir_.Path("empty-cache"));
  EXPECT_EQ(wrong.exit_code, 1) << wrong.out;
  EXPECT_NE(wrong.out.find("unreachable"), std::string::npos) << wrong.out;
}

}  // namespace
}  // namespace kvplan
