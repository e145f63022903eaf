// The kvplan-coordinator binary and the `kvplan` service nouns, as an operator
// runs them: real processes, real sockets, kill -9, SIGTERM, /metrics.
#include "tests/server/coordinator_process.h"

#include <signal.h>

#include <cstdlib>
#include <fstream>

#include "absl/strings/str_format.h"
#include "core/codebook.h"
#include "core/file_io.h"
#include "core/plan.h"
#include "core/plan_sidecar.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/client/cli_runner.h"
#include "tests/common/test_pki.h"
#include "tests/server/server_test_util.h"

namespace kvplan {
namespace {

using ::kvplan::testing::CoordinatorProcess;
using ::kvplan::testing::HttpGet;
using ::kvplan::testing::kPromtoolMissing;
using ::kvplan::testing::PromtoolCheckMetrics;
using ::kvplan::testing::RunKvplan;
using ::kvplan::testing::RunResult;
using ::kvplan::testing::TempDir;
using ::kvplan::testing::TestCalibrationFile;
using ::kvplan::testing::TestPki;

class CoordinatorProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    calib_ = dir_.Path("stats.kvpc");
    ASSERT_TRUE(WriteFileAtomically(calib_, TestCalibrationFile()).ok());
  }
  std::vector<std::string> Args(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--listen", "127.0.0.1:0", "--data-dir", dir_.Path("db")};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }
  RunResult Cli(const CoordinatorProcess& c, const std::string& args) {
    return RunKvplan("--coordinator " + c.address() + " " + args);
  }
  TempDir dir_;
  std::string calib_;
};

TEST_F(CoordinatorProcessTest, CliRegistersCreatesPromotesAndFetchesTheOfflinePlan) {
  CoordinatorProcess c(Args());
  ASSERT_TRUE(c.ok()) << c.output();
  RunResult r = Cli(c, "models register --calibration " + calib_ + " --name tiny");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  r = Cli(c, "models list");
  EXPECT_NE(r.out.find("tiny"), std::string::npos) << r.out;
  r = Cli(c, "plans create --model tiny --stats " + calib_ + " --k-bits 3 --v-bits 3");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("created tiny/default v1"), std::string::npos) << r.out;
  r = Cli(c, "plans create --model tiny --stats " + calib_ + " --k-bits 2.5 --v-bits 2");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  r = Cli(c, "channels promote --model tiny --channel stable --version 1");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  r = Cli(c, "plans get --model tiny --channel stable --out " + dir_.Path("served.json"));
  ASSERT_EQ(r.exit_code, 0) << r.out;

  r = RunKvplan("plan build --stats " + calib_ + " --k-bits 3 --v-bits 3 --out " +
                dir_.Path("offline.json"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  absl::StatusOr<KvPlan> served = ReadPlanFile(dir_.Path("served.json"));
  absl::StatusOr<KvPlan> offline = ReadPlanFile(dir_.Path("offline.json"));
  ASSERT_TRUE(served.ok() && offline.ok());
  EXPECT_EQ(PlanDigest(*served), PlanDigest(*offline));
  EXPECT_EQ(served->k_block_bits, offline->k_block_bits);

  r = Cli(c, "plans list --model tiny");
  EXPECT_NE(r.out.find("v2"), std::string::npos) << r.out;
  const std::string v1_id = PlanDigest(*served);
  r = Cli(c, "plans list --model tiny --json");
  const size_t v2_at = r.out.rfind("\"planId\": \"");
  ASSERT_NE(v2_at, std::string::npos) << r.out;
  const std::string v2_id = r.out.substr(v2_at + 11, 64);
  r = Cli(c, "plans diff --from " + v1_id + " --to " + v2_id);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("blocks change width"), std::string::npos) << r.out;
  r = Cli(c, "plans export --id " + v1_id + " --out " + dir_.Path("e.json") + " --sidecar " +
                 dir_.Path("e.kvpb"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(ParsePlanSidecar(*ReadFile(dir_.Path("e.kvpb")))->digest, v1_id);

  r = Cli(c, "channels promote --model tiny --channel stable --version 2");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  r = Cli(c, "channels rollback --model tiny --channel stable");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  r = Cli(c, "channels history --model tiny");
  EXPECT_NE(r.out.find("#3 tiny/stable rollback"), std::string::npos) << r.out;

  r = Cli(c, "whatif --model tiny --k-bits 2,2.5,3,4 --v-bits 2,3,4 --context 131072 --batch 2");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("distortion vs uniform"), std::string::npos) << r.out;
  // The remote what-if prints what the offline one prints for the same statistics.
  RunResult offline_whatif =
      RunKvplan("whatif --energy-json " + calib_ + " --k-bits 2,2.5,3,4 --v-bits 2,3,4 --json");
  RunResult remote_whatif = Cli(c, "whatif --model tiny --k-bits 2,2.5,3,4 --v-bits 2,3,4 --json");
  EXPECT_EQ(remote_whatif.out, offline_whatif.out);

  // Refusals reach the user with the coordinator's reason and a usage exit code.
  r = Cli(c, "plans create --model tiny --stats " + calib_ + " --k-bits 9 --v-bits 3");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("out of range"), std::string::npos) << r.out;
  r = Cli(c, "plans get --model nope --channel stable");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("not found"), std::string::npos) << r.out;
}

// --k-group-align through the service nouns: `plans create` stores the plan
// `plan build` makes offline, `plans show` names the alignment, the remote
// what-if equals the offline one, and a bad value comes back with the
// coordinator's reason and a usage exit code.
TEST_F(CoordinatorProcessTest, CliCreatesShowsAndWhatIfsKGroupAlignedPlans) {
  CoordinatorProcess c(Args());
  ASSERT_TRUE(c.ok()) << c.output();
  ASSERT_EQ(Cli(c, "models register --calibration " + calib_ + " --name tiny").exit_code, 0);
  const std::string create =
      "plans create --model tiny --stats " + calib_ + " --k-bits 3 --v-bits 3";
  RunResult r = Cli(c, create + " --name aligned --k-group-align 8");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  ASSERT_EQ(
      Cli(c, "plans get --model tiny --name aligned --out " + dir_.Path("served.json")).exit_code,
      0);
  r = RunKvplan("plan build --stats " + calib_ + " --k-bits 3 --v-bits 3 --k-group-align 8 --out " +
                dir_.Path("offline.json"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  absl::StatusOr<KvPlan> served = ReadPlanFile(dir_.Path("served.json"));
  absl::StatusOr<KvPlan> offline = ReadPlanFile(dir_.Path("offline.json"));
  ASSERT_TRUE(served.ok()) << served.status();
  ASSERT_TRUE(offline.ok()) << offline.status();
  EXPECT_EQ(served->options.k_group_align, 8);
  EXPECT_EQ(PlanDigest(*served), PlanDigest(*offline));
  r = Cli(c, "plans show --model tiny --name aligned");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("block-gtq K3V3, K groups of 8 dims"), std::string::npos) << r.out;

  const std::string budgets = " --k-bits 2,3 --v-bits 3 --k-group-align 8 --json";
  RunResult remote_whatif = Cli(c, "whatif --model tiny" + budgets);
  ASSERT_EQ(remote_whatif.exit_code, 0) << remote_whatif.out;
  EXPECT_EQ(remote_whatif.out, RunKvplan("whatif --energy-json " + calib_ + budgets).out);
  EXPECT_NE(remote_whatif.out, Cli(c, "whatif --model tiny --k-bits 2,3 --v-bits 3 --json").out)
      << "the aligned rows should differ from the greedy's here";

  r = Cli(c, create + " --name refused --k-group-align 6");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("k_group_align 6 does not split head_dim 16"), std::string::npos) << r.out;
  r = Cli(c, "whatif --model tiny --k-bits 3 --v-bits 3 --k-group-align -2");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("k_group_align -2 is negative"), std::string::npos) << r.out;
}

TEST_F(CoordinatorProcessTest, CliFetchesTheCodebooksAPlanNames) {
  CoordinatorProcess c(Args());
  ASSERT_TRUE(c.ok()) << c.output();
  ASSERT_EQ(Cli(c, "models register --calibration " + calib_ + " --name tiny").exit_code, 0);
  ASSERT_EQ(
      Cli(c, "plans create --model tiny --stats " + calib_ + " --k-bits 2.5 --v-bits 4").exit_code,
      0);
  const std::string path = dir_.Path("plan.json");
  ASSERT_EQ(Cli(c, "plans get --model tiny --out " + path).exit_code, 0);
  absl::StatusOr<KvPlan> plan = ReadPlanFile(path);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_TRUE(plan->codebook_hashes.contains(4)) << "V's width";
  for (const auto& [bits, hash] : plan->codebook_hashes) {
    RunResult r = Cli(c, "artifacts codebook --bits " + std::to_string(bits) + " --json");
    ASSERT_EQ(r.exit_code, 0) << r.out;
    const nlohmann::json book = nlohmann::json::parse(r.out);
    EXPECT_EQ(book["bits"], bits);
    EXPECT_EQ(book["content_hash"], hash);
    EXPECT_EQ(book["centroids"].get<std::vector<float>>(), LloydMaxCodebook(bits).centroids);
    r = Cli(c, "artifacts codebook --hash " + hash);
    ASSERT_EQ(r.exit_code, 0) << r.out;
    EXPECT_NE(r.out.find(absl::StrFormat("codebook %d bits  %d centroids  sha256 %s", bits,
                                         1 << bits, hash)),
              std::string::npos)
        << r.out;
  }
  RunResult r = Cli(c, "artifacts codebook --bits 9");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("codebook width 9 bits is outside [1, 8]"), std::string::npos) << r.out;
  r = Cli(c, "artifacts codebook --hash " + std::string(64, 'f'));
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("no codebook"), std::string::npos) << r.out;
  EXPECT_EQ(Cli(c, "artifacts codebook").exit_code, 2);
  EXPECT_EQ(Cli(c, "artifacts rotation --bits 2").exit_code, 2);
}

TEST_F(CoordinatorProcessTest, CliCreatesListsGetsAndCancelsJobs) {
  CoordinatorProcess c(Args());
  ASSERT_TRUE(c.ok()) << c.output();
  RunResult r = Cli(c, "models register --calibration " + calib_ + " --name tiny");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const std::string prompts = dir_.Path("prompts.jsonl");
  ASSERT_TRUE(
      WriteFileAtomically(prompts, "{\"text\": \"a\"}\n{\"text\": \"b\"}\n{\"text\": \"c\"}\n")
          .ok());
  r = Cli(c, "jobs create --model tiny --prompts " + prompts +
                 " --shards 2 --tokens-per-shard 256 --name calib1");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("created calib1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("shards 0/2"), std::string::npos) << r.out;
  r = Cli(c, "jobs list --model tiny");
  EXPECT_NE(r.out.find("calib1"), std::string::npos) << r.out;
  r = Cli(c, "jobs get --job calib1 --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("\"shardCount\": 2"), std::string::npos) << r.out;
  r = Cli(c, "jobs cancel --job calib1");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("CANCELLED"), std::string::npos) << r.out;
  r = Cli(c, "jobs get --job nope");
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("no job has id 'nope'"), std::string::npos) << r.out;
  r = Cli(c, "jobs create --model tiny --prompts " + prompts + " --shards 4 --tokens-per-shard 1");
  EXPECT_EQ(r.exit_code, 2) << "more shards than prompts: " << r.out;
  r = Cli(c, "plans create --model tiny --job calib1 --k-bits 3 --v-bits 3");
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("is CANCELLED"), std::string::npos) << "no statistics: " << r.out;
}

TEST_F(CoordinatorProcessTest, KillNineAfterAnAcknowledgedCreatePlanLosesNothing) {
  std::string plan_line;
  {
    CoordinatorProcess c(Args());
    ASSERT_TRUE(c.ok()) << c.output();
    ASSERT_EQ(Cli(c, "models register --calibration " + calib_ + " --name tiny").exit_code, 0);
    RunResult r = Cli(c, "plans create --model tiny --stats " + calib_ + " --k-bits 3 --v-bits 3");
    ASSERT_EQ(r.exit_code, 0) << r.out;
    ASSERT_EQ(Cli(c, "channels promote --model tiny --channel stable").exit_code, 0);
    // Acknowledged; now the process dies without any chance to flush.
    EXPECT_EQ(c.Stop(SIGKILL), 128 + SIGKILL);
  }
  CoordinatorProcess c(Args());
  ASSERT_TRUE(c.ok()) << c.output();
  RunResult r = Cli(c, "plans get --model tiny --channel stable --out " + dir_.Path("p.json"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(ReadPlanFile(dir_.Path("p.json")).ok());
  r = Cli(c, "plans list --model tiny");
  EXPECT_NE(r.out.find("tiny/default v1"), std::string::npos) << r.out;
  // Versions continue from the stored ones.
  r = Cli(c, "plans create --model tiny --stats " + calib_ + " --k-bits 2 --v-bits 2");
  EXPECT_NE(r.out.find("v2"), std::string::npos) << r.out;
}

TEST_F(CoordinatorProcessTest, SigtermDrainsAndExitsZero) {
  CoordinatorProcess c(Args());
  ASSERT_TRUE(c.ok()) << c.output();
  EXPECT_EQ(c.Stop(SIGTERM), 0) << c.output();
  EXPECT_NE(c.output().find("stopped"), std::string::npos) << c.output();
}

TEST_F(CoordinatorProcessTest, WritesNeedTheTokenFromTheTokenFile) {
  const std::string token = dir_.Path("token");
  std::ofstream(token) << "letmein\n";
  const std::string wrong = dir_.Path("wrong");
  std::ofstream(wrong) << "guess\n";
  CoordinatorProcess c(Args({"--auth-token-file", token}));
  ASSERT_TRUE(c.ok()) << c.output();
  RunResult r = Cli(c, "models register --calibration " + calib_ + " --name tiny");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("unauthenticated"), std::string::npos) << r.out;
  r = RunKvplan("--coordinator " + c.address() + " --token-file " + wrong +
                " models register --calibration " + calib_ + " --name tiny");
  EXPECT_NE(r.out.find("permission denied"), std::string::npos) << r.out;
  r = Cli(c, "models list");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "");  // Reads are open; nothing was stored.
  r = RunKvplan("--coordinator " + c.address() + " --token-file " + token +
                " models register --calibration " + calib_ + " --name tiny");
  EXPECT_EQ(r.exit_code, 0) << r.out;
}

TEST_F(CoordinatorProcessTest, ServesTlsToAClientThatTrustsItsCertificate) {
  const std::string key = dir_.Path("key.pem");
  const std::string cert = dir_.Path("cert.pem");
  const std::string make_cert =
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost -addext "
      "subjectAltName=IP:127.0.0.1,DNS:localhost -keyout " +
      key + " -out " + cert + " > /dev/null 2>&1";
  if (std::system(make_cert.c_str()) != 0) GTEST_SKIP() << "openssl could not make a certificate";
  CoordinatorProcess c(Args({"--tls-cert", cert, "--tls-key", key}));
  ASSERT_TRUE(c.ok()) << c.output();
  RunResult r = RunKvplan("--coordinator " + c.address() + " --tls-ca " + cert + " models list");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  // A plaintext client cannot talk to it.
  r = RunKvplan("--coordinator " + c.address() + " models list");
  EXPECT_EQ(r.exit_code, 1) << r.out;
}

// mTLS from the CLI: --tls-cert/--tls-key present a client certificate that
// the coordinator (--tls-client-ca) accepts for writes in place of a token.
TEST_F(CoordinatorProcessTest, CliWritesWithAClientCertificate) {
  TestPki pki(dir_.Path("pki"));
  if (!pki.MakeStandardSet()) GTEST_SKIP() << TestPki::kMissing;
  CoordinatorProcess c(Args({"--tls-cert", pki.Cert("server"), "--tls-key", pki.Key("server"),
                             "--tls-client-ca", pki.Cert("ca")}));
  ASSERT_TRUE(c.ok()) << c.output();
  const std::string tls = "--coordinator " + c.address() + " --tls-ca " + pki.Cert("ca");
  const std::string reg = " models register --calibration " + calib_ + " --name tiny";
  RunResult r = RunKvplan(tls + reg);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("unauthenticated"), std::string::npos) << r.out;
  r = RunKvplan(tls + " --tls-cert " + pki.Cert("worker") + reg);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("--tls-key"), std::string::npos) << r.out;
  r = RunKvplan(tls + " --tls-cert " + pki.Cert("worker") + " --tls-key " + pki.Key("worker") +
                reg);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  r = RunKvplan(tls + " models list");
  EXPECT_NE(r.out.find("tiny"), std::string::npos) << r.out;
}

TEST_F(CoordinatorProcessTest, MetricsAreScrapedAndPassPromtool) {
  CoordinatorProcess c(Args({"--metrics-listen", "127.0.0.1:0"}));
  ASSERT_TRUE(c.ok()) << c.output();
  ASSERT_FALSE(c.metrics_address().empty()) << c.output();
  ASSERT_EQ(Cli(c, "models register --calibration " + calib_ + " --name tiny").exit_code, 0);
  ASSERT_EQ(
      Cli(c, "plans create --model tiny --stats " + calib_ + " --k-bits 3 --v-bits 3").exit_code,
      0);
  ASSERT_EQ(Cli(c, "plans get --model tiny").exit_code, 0);
  EXPECT_EQ(Cli(c, "plans get --model nope").exit_code, 1);
  const std::string metrics = HttpGet(c.metrics_address(), "/metrics");
  EXPECT_NE(metrics.find("kvplan_rpc_total{"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("method=\"CreatePlan\""), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("code=\"NOT_FOUND\""), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("kvplan_rpc_duration_seconds_bucket"), std::string::npos);
  EXPECT_NE(metrics.find("kvplan_plans_served_total 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("kvplan_store_size_bytes"), std::string::npos);

  EXPECT_NE(metrics.find("kvplan_plan_reads_total{source=\"store\"} 1"), std::string::npos)
      << metrics;

  const std::optional<RunResult> check = PromtoolCheckMetrics(metrics, dir_.Path("metrics.txt"));
  if (!check) GTEST_SKIP() << kPromtoolMissing;
  EXPECT_EQ(check->exit_code, 0) << check->out;
}

}  // namespace
}  // namespace kvplan
