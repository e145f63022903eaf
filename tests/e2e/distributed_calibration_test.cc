// Distributed calibration end to end, on real processes and sockets: a
// kvplan-coordinator on a temporary data dir, `kvplan-worker serve` processes
// on doc-llama-h64 over a slice of ../shared/data/calib-prompts.jsonl, and the
// kvplan CLI. The job's merged statistics must equal, bit for bit, the merge of
// offline `kvplan-worker calibrate` runs over the same shards with the same
// settings, and the plan served on `stable` must equal `kvplan plan build`'s.
// While it runs, `kvplan jobs watch` follows it and /metrics is scraped (and
// checked by promtool) with shards under lease.
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "core/block_stats.h"
#include "core/calibration_file.h"
#include "core/digest.h"
#include "core/file_io.h"
#include "core/plan.h"
#include "gtest/gtest.h"
#include "tests/client/cli_runner.h"
#include "tests/common/child_process.h"
#include "tests/common/test_pki.h"
#include "tests/server/coordinator_process.h"

namespace kvplan {
namespace {

using ::kvplan::testing::BinaryPath;
using ::kvplan::testing::ChildProcess;
using ::kvplan::testing::CoordinatorProcess;
using ::kvplan::testing::HttpGet;
using ::kvplan::testing::kPromtoolMissing;
using ::kvplan::testing::PromtoolCheckMetrics;
using ::kvplan::testing::RunKvplan;
using ::kvplan::testing::RunResult;
using ::kvplan::testing::ScratchDir;
using ::kvplan::testing::SharedPath;
using ::kvplan::testing::TestPki;
using namespace std::chrono_literals;

constexpr int kShards = 4;

// The value of the sample `series` (name and labels as exposed) in a /metrics
// scrape; -1 when it is absent.
double MetricValue(const std::string& scrape, const std::string& series) {
  const size_t at = scrape.find("\n" + series + " ");
  return at == std::string::npos ? -1 : std::stod(scrape.substr(at + series.size() + 2));
}
// Short windows and small batches keep a shard to a second or so on the CPU.
const std::vector<std::string> kPassFlags = {"--seq-len", "48", "--batch", "4"};

class DistributedCalibrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = SharedPath("models/doc-llama-h64");
    const std::string prompts = SharedPath("data/calib-prompts.jsonl");
    if (!std::filesystem::exists(model_ + "/config.json") || !std::filesystem::exists(prompts)) {
      GTEST_SKIP() << "needs " << model_ << " and " << prompts
                   << " (set KVPLAN_SHARED_DIR to the shared material)";
    }
    // The slice, and its shards cut as `kvplan jobs create --shards` cuts them
    // (contiguous runs of whole lines, equal here).
    std::ifstream in(prompts);
    std::string line, all;
    std::vector<std::string> shard(kShards);
    for (int i = 0; i < kShards * prompts_per_shard_ && std::getline(in, line); ++i) {
      all += line + "\n";
      shard[static_cast<size_t>(i / prompts_per_shard_)] += line + "\n";
    }
    slice_ = dir_.Write("slice.jsonl", all);
    for (int s = 0; s < kShards; ++s) {
      shard_files_.push_back(dir_.Write(absl::StrFormat("shard%d.jsonl", s), shard[s]));
    }
  }

  // Offline: `kvplan-worker calibrate` per shard, merged (exact fixed point)
  // into one calibration file. Returns its path; `digest` gets the SHA-256 of
  // the merged BlockStats bytes, as the coordinator names merged statistics.
  std::string OfflineMergedStats(std::string* digest) {
    std::optional<CalibrationFile> merged;
    for (int s = 0; s < kShards; ++s) {
      const std::string out = dir_.Path(absl::StrFormat("shard%d.kvpc", s));
      std::vector<std::string> args = {
          "calibrate", "--model",       model_,
          "--prompts", shard_files_[s], "--out",
          out,         "--max-tokens",  std::to_string(tokens_per_shard_)};
      args.insert(args.end(), kPassFlags.begin(), kPassFlags.end());
      ChildProcess calibrate(BinaryPath("kvplan-worker"), args);
      EXPECT_EQ(calibrate.Wait(120s), 0) << calibrate.output();
      absl::StatusOr<std::string> bytes = ReadFile(out);
      EXPECT_TRUE(bytes.ok()) << bytes.status();
      if (!bytes.ok()) return "";
      absl::StatusOr<CalibrationFile> file = ParseCalibrationFile(*bytes);
      EXPECT_TRUE(file.ok()) << file.status();
      if (!file.ok()) return "";
      if (!merged) {
        merged = *std::move(file);
      } else {
        EXPECT_TRUE(merged->stats.Merge(file->stats).ok());
      }
    }
    *digest = Sha256Hex(merged->stats.Serialize());
    const std::string path = dir_.Path("merged.kvpc");
    EXPECT_TRUE(WriteFileAtomically(path, SerializeCalibrationFile(*merged)).ok());
    return path;
  }

  RunResult Cli(const std::string& address, const std::string& args) {
    std::string connection = "--coordinator " + address;
    for (const std::string& flag : connection_flags_) connection += " " + flag;
    return RunKvplan(connection + " " + args);
  }

  // Registers the model (from a shard's calibration file, which carries its
  // fingerprint and architecture) and creates the job; returns the job id.
  std::string CreateJob(const std::string& address, int lease_seconds) {
    RunResult r = Cli(
        address, "models register --calibration " + dir_.Path("shard0.kvpc") + " --name doc-llama");
    EXPECT_EQ(r.exit_code, 0) << r.out;
    r = Cli(address, absl::StrFormat("jobs create --model doc-llama --prompts %s --shards %d "
                                     "--tokens-per-shard %d --lease-seconds %d --name calib",
                                     slice_, kShards, tokens_per_shard_, lease_seconds));
    EXPECT_EQ(r.exit_code, 0) << r.out;
    return "calib";
  }

  std::vector<std::string> ServeArgs(const std::string& address, const std::string& id) {
    std::vector<std::string> args = {"serve", "--coordinator", address, "--model",
                                     model_,  "--device",      "cpu",   "--worker-id",
                                     id,      "--once"};
    args.insert(args.end(), kPassFlags.begin(), kPassFlags.end());
    args.insert(args.end(), connection_flags_.begin(), connection_flags_.end());
    return args;
  }

  // The job's state and merged statistics digest, from `kvplan jobs get --json`.
  std::string JobJson(const std::string& address) {
    return Cli(address, "jobs get --job calib --json").out;
  }

  // About 600 tokens from 10 prompts: a shard is a fraction of a second.
  int prompts_per_shard_ = 10;
  int64_t tokens_per_shard_ = 600;
  // TLS flags the CLI and the workers add after --coordinator (none: plaintext).
  std::vector<std::string> connection_flags_;
  ScratchDir dir_{"kvplan_e2e"};
  std::string model_;
  std::string slice_;
  std::vector<std::string> shard_files_;
};

TEST_F(DistributedCalibrationTest, TwoWorkersFillAJobWhosePlanEqualsTheOfflinePlan) {
  std::string expected_digest;
  const std::string merged = OfflineMergedStats(&expected_digest);
  ASSERT_FALSE(merged.empty());

  CoordinatorProcess coordinator({"--listen", "127.0.0.1:0", "--data-dir", dir_.Path("db"),
                                  "--metrics-listen", "127.0.0.1:0"});
  ASSERT_TRUE(coordinator.ok()) << coordinator.output();
  const std::string address = coordinator.address();
  CreateJob(address, 300);

  ChildProcess watch(BinaryPath("kvplan"),
                     {"--coordinator", address, "jobs", "watch", "calib", "--interval-ms", "100"});
  ChildProcess w1(BinaryPath("kvplan-worker"), ServeArgs(address, "w1"));
  ChildProcess w2(BinaryPath("kvplan-worker"), ServeArgs(address, "w2"));
  // Scraped mid-job: more leases granted than shards committed (a shard is
  // under lease) and the job not yet succeeded. Every lease starts with a model
  // load and a forward, so polling every 50 ms catches one.
  std::string scrape;
  for (auto deadline = std::chrono::steady_clock::now() + 120s;
       std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(50ms)) {
    scrape = HttpGet(coordinator.metrics_address(), "/metrics");
    if (MetricValue(scrape, "kvplan_shard_leases_total{kind=\"first\"}") >
            MetricValue(scrape, "kvplan_shards_committed_total") &&
        MetricValue(scrape, "kvplan_jobs_succeeded_total") == 0) {
      break;
    }
    scrape.clear();
  }
  ASSERT_FALSE(scrape.empty()) << "no scrape with a leased shard and the job still running";
  for (const char* metric :
       {"kvplan_jobs_created_total 1", "kvplan_jobs_succeeded_total 0",
        "kvplan_shard_leases_total{kind=\"first\"} ",
        "kvplan_shard_leases_total{kind=\"reassigned\"} 0", "kvplan_shards_committed_total ",
        "kvplan_rpc_total{code=\"OK\",method=\"LeaseShard\"} ",
        "kvplan_rpc_duration_seconds_bucket{method=\"LeaseShard\""}) {
    EXPECT_NE(scrape.find(metric), std::string::npos) << metric << " missing from\n" << scrape;
  }
  const std::optional<RunResult> promtool = PromtoolCheckMetrics(scrape, dir_.Path("metrics.txt"));
  if (promtool) {
    EXPECT_EQ(promtool->exit_code, 0) << promtool->out << "\n" << scrape;
  }

  ASSERT_EQ(w1.Wait(180s), 0) << w1.output();
  ASSERT_EQ(w2.Wait(180s), 0) << w2.output();
  // Each shard was committed by exactly one of them.
  const std::string logs = w1.output() + w2.output();
  for (int s = 0; s < kShards; ++s) {
    EXPECT_NE(logs.find(absl::StrFormat("committed job calib shard %d ", s)), std::string::npos)
        << logs;
  }

  const std::string job = JobJson(address);
  EXPECT_NE(job.find("\"SUCCEEDED\""), std::string::npos) << job;
  EXPECT_NE(job.find(expected_digest), std::string::npos)
      << "merged statistics differ from the offline merge " << expected_digest << "\n"
      << job;
  // The watcher saw the job through, one logged line per change (stdout is a pipe).
  ASSERT_EQ(watch.Wait(30s), 0) << watch.output();
  EXPECT_NE(watch.output().find("shards 0/4"), std::string::npos) << watch.output();
  EXPECT_NE(watch.output().find("SUCCEEDED [####################] shards 4/4"), std::string::npos)
      << watch.output();
  EXPECT_NE(watch.output().find("job calib succeeded: "), std::string::npos) << watch.output();
  EXPECT_NE(watch.output().find(expected_digest), std::string::npos) << watch.output();

  RunResult r = Cli(address, "plans create --model doc-llama --job calib --k-bits 3 --v-bits 3");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  r = Cli(address, "channels promote --model doc-llama --channel stable");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  r = Cli(address,
          "plans get --model doc-llama --channel stable --out " + dir_.Path("served.json"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  r = RunKvplan("plan build --stats " + merged + " --k-bits 3 --v-bits 3 --out " +
                dir_.Path("offline.json"));
  ASSERT_EQ(r.exit_code, 0) << r.out;

  absl::StatusOr<KvPlan> served = ReadPlanFile(dir_.Path("served.json"));
  absl::StatusOr<KvPlan> offline = ReadPlanFile(dir_.Path("offline.json"));
  ASSERT_TRUE(served.ok()) << served.status();
  ASSERT_TRUE(offline.ok()) << offline.status();
  EXPECT_EQ(PlanDigest(*served), PlanDigest(*offline));
  EXPECT_EQ(served->k_block_bits, offline->k_block_bits);
  EXPECT_EQ(served->provenance.stats_digest, expected_digest);
  if (!promtool) GTEST_SKIP() << kPromtoolMissing;
}

// Mutual TLS end to end: a coordinator that asks for client certificates and
// has no token. A worker presenting a certificate from the coordinator's
// client CA fills the job (leases, uploads and commits are writes); one with
// TLS but no certificate is refused with a message that says what would work.
TEST_F(DistributedCalibrationTest, AWorkerWithAClientCertificateFillsAJobOverMutualTls) {
  TestPki pki(dir_.Path("pki"));
  if (!pki.MakeStandardSet()) GTEST_SKIP() << TestPki::kMissing;
  std::string expected_digest;
  ASSERT_FALSE(OfflineMergedStats(&expected_digest).empty());
  CoordinatorProcess coordinator({"--listen", "127.0.0.1:0", "--data-dir", dir_.Path("db"),
                                  "--tls-cert", pki.Cert("server"), "--tls-key", pki.Key("server"),
                                  "--tls-client-ca", pki.Cert("ca")});
  ASSERT_TRUE(coordinator.ok()) << coordinator.output();
  const std::string address = coordinator.address();
  connection_flags_ = {"--tls-ca",         pki.Cert("ca"), "--tls-cert",
                       pki.Cert("worker"), "--tls-key",    pki.Key("worker")};
  CreateJob(address, 300);
  {
    const std::vector<std::string> with_certificate = connection_flags_;
    connection_flags_ = {"--tls-ca", pki.Cert("ca")};
    ChildProcess anonymous(BinaryPath("kvplan-worker"), ServeArgs(address, "anonymous"));
    EXPECT_NE(anonymous.Wait(60s), 0) << anonymous.output();
    EXPECT_NE(anonymous.output().find("certificate"), std::string::npos) << anonymous.output();
    connection_flags_ = with_certificate;
  }
  ChildProcess worker(BinaryPath("kvplan-worker"), ServeArgs(address, "w1"));
  ASSERT_EQ(worker.Wait(180s), 0) << worker.output();
  const std::string job = JobJson(address);
  EXPECT_NE(job.find("\"SUCCEEDED\""), std::string::npos) << job;
  EXPECT_NE(job.find(expected_digest), std::string::npos) << job;
}

// Shards of 4,000 tokens (80 prompts): a forward of about a second on the
// CPU, long enough to kill a worker in the middle of one.
class DistributedCalibrationKillTest : public DistributedCalibrationTest {
 protected:
  DistributedCalibrationKillTest() {
    prompts_per_shard_ = 80;
    tokens_per_shard_ = 4000;
  }
};

TEST_F(DistributedCalibrationKillTest, SurvivesAWorkerKilledMidForwardAndACoordinatorKilledMidJob) {
  std::string expected_digest;
  ASSERT_FALSE(OfflineMergedStats(&expected_digest).empty());

  auto coordinator = std::make_unique<CoordinatorProcess>(
      std::vector<std::string>{"--listen", "127.0.0.1:0", "--data-dir", dir_.Path("db")});
  ASSERT_TRUE(coordinator->ok()) << coordinator->output();
  const std::string address = coordinator->address();
  // Short leases, so the killed worker's shard is reassigned within seconds.
  CreateJob(address, 3);

  // A worker killed in the middle of a forward pass. It commits shard 0 (so
  // its model is loaded and cached), leases shard 1 and starts on it at once;
  // it prints nothing more until the commit, so it is killed part way through
  // the time shard 0 took. Its lease dies with it, unexpired on the coordinator.
  {
    ChildProcess doomed(BinaryPath("kvplan-worker"), ServeArgs(address, "doomed"));
    ASSERT_TRUE(doomed.WaitForOutput("leased job calib shard 1", 120s)) << doomed.output();
    const std::string log = doomed.output();
    const size_t at = log.find("committed job calib shard 0 (attempt 1): ");
    ASSERT_NE(at, std::string::npos) << log;
    const double shard_seconds = std::stod(log.substr(log.find(" sequences, ", at) + 12));
    std::this_thread::sleep_for(std::chrono::duration<double>(0.3 * shard_seconds));
    const std::string job = JobJson(address);
    doomed.Kill(SIGKILL);
    ASSERT_EQ(doomed.output().find("committed job calib shard 1"), std::string::npos)
        << "shard 1 finished before the kill; the test did not kill a forward\n"
        << doomed.output();
    EXPECT_NE(job.find("\"shardsLeased\": 1"), std::string::npos) << job;
    EXPECT_NE(job.find("\"shardsDone\": 1"), std::string::npos) << job;
  }
  // A worker that will ride out the coordinator's death. Shard 1's lease is
  // still live, so it starts on shard 2.
  ChildProcess survivor(BinaryPath("kvplan-worker"), ServeArgs(address, "survivor"));
  ASSERT_TRUE(survivor.WaitForOutput("leased job calib shard 2", 60s)) << survivor.output();
  coordinator->Stop(SIGKILL);
  coordinator.reset();
  std::this_thread::sleep_for(1s);
  coordinator = std::make_unique<CoordinatorProcess>(
      std::vector<std::string>{"--listen", address, "--data-dir", dir_.Path("db")});
  ASSERT_TRUE(coordinator->ok()) << coordinator->output();

  ASSERT_EQ(survivor.Wait(240s), 0) << survivor.output();
  // The killed forward's shard, exactly once, by the survivor after its lease expired.
  EXPECT_NE(survivor.output().find("committed job calib shard 1 (attempt 2)"), std::string::npos)
      << survivor.output();
  EXPECT_EQ(survivor.output().find("committed job calib shard 0 "), std::string::npos)
      << survivor.output();
  const std::string job = JobJson(address);
  EXPECT_NE(job.find("\"SUCCEEDED\""), std::string::npos) << job;
  EXPECT_NE(job.find(expected_digest), std::string::npos)
      << "merged statistics differ from the undisturbed merge " << expected_digest << "\n"
      << job;
}

}  // namespace
}  // namespace kvplan
