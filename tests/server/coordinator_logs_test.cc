// kvplan-coordinator's stderr as a log pipeline reads it: a real process,
// configured by a --config file with a flag overriding it, driven over gRPC;
// every stderr line must be one JSON object with the documented keys.
#include <signal.h>

#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "core/file_io.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "kvplan/v1/channel_service.grpc.pb.h"
#include "kvplan/v1/job_service.grpc.pb.h"
#include "kvplan/v1/model_service.grpc.pb.h"
#include "kvplan/v1/plan_service.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "tests/common/child_process.h"
#include "tests/common/test_pki.h"
#include "tests/server/server_test_util.h"

namespace kvplan {
namespace {

using ::kvplan::testing::BinaryPath;
using ::kvplan::testing::ChildProcess;
using ::kvplan::testing::TempDir;
using ::kvplan::testing::TestCalibrationFile;
using ::kvplan::testing::TestModelRequest;
using ::kvplan::testing::TestPki;
using ::kvplan::testing::TestStats;

constexpr char kToken[] = "log-test-token";

std::unique_ptr<grpc::ClientContext> Context(const std::string& token = kToken) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  if (!token.empty()) context->AddMetadata("authorization", "Bearer " + token);
  return context;
}

// Every line of `text` parsed as JSON; a line that is not fails the test.
std::vector<nlohmann::json> JsonLines(const std::string& text) {
  std::vector<nlohmann::json> out;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    EXPECT_TRUE(j.is_object()) << "not a JSON object: " << line;
    out.push_back(std::move(j));
  }
  return out;
}

// The coordinator with stderr in a file of its own (ChildProcess merges the
// streams; stdout carries the "listening on" line, which is not a log line).
class LoggedCoordinator {
 public:
  LoggedCoordinator(const TempDir& dir, const std::vector<std::string>& args)
      : stderr_path_(dir.Path("coordinator.stderr")),
        child_("/bin/sh", {"-c", Command(args, stderr_path_)}) {
    if (child_.WaitForOutput("listening on ", std::chrono::seconds(30)) &&
        child_.WaitForOutput("\n", std::chrono::seconds(5))) {
      const std::string& out = child_.output();
      const size_t at = out.find("listening on ") + 13;
      address_ = out.substr(at, out.find('\n', at) - at);
    }
  }
  const std::string& address() const { return address_; }
  std::string stdout_text() { return child_.output(); }
  int Stop(int signal) { return child_.Kill(signal); }
  std::string stderr_text() const { return ReadFile(stderr_path_).value_or(""); }

 private:
  static std::string Command(const std::vector<std::string>& args, const std::string& err) {
    // exec, so the signals reach the coordinator itself.
    std::string command = "exec '" + BinaryPath("kvplan-coordinator") + "'";
    for (const std::string& a : args) command += " '" + a + "'";
    return command + " 2> '" + err + "'";
  }
  std::string stderr_path_;
  ChildProcess child_;
  std::string address_;
};

TEST(CoordinatorLogsTest, EveryStderrLineIsJsonWithTheDocumentedFields) {
  TempDir dir;
  std::ofstream(dir.Path("token")) << kToken << "\n";
  // The file asks for text at debug; the flag turns it to JSON, the level stays.
  std::ofstream(dir.Path("coordinator.conf")) << "# test coordinator\n"
                                              << "data-dir = " << dir.Path("db") << "\n"
                                              << "listen = 127.0.0.1:0\n"
                                              << "auth-token-file = " << dir.Path("token") << "\n"
                                              << "log-level = debug\n"
                                              << "log-format = text\n";
  LoggedCoordinator c(dir, {"--config", dir.Path("coordinator.conf"), "--log-format", "json"});
  ASSERT_FALSE(c.address().empty()) << c.stdout_text() << c.stderr_text();

  auto channel = grpc::CreateChannel(c.address(), grpc::InsecureChannelCredentials());
  auto models = v1::ModelService::NewStub(channel);
  auto plans = v1::PlanService::NewStub(channel);
  auto channels = v1::ChannelService::NewStub(channel);
  auto jobs = v1::JobService::NewStub(channel);
  v1::RegisterModelResponse registered;
  ASSERT_TRUE(models->RegisterModel(Context().get(), TestModelRequest(), &registered).ok());
  v1::Model model;
  v1::GetModelRequest get_model;
  get_model.set_model_id("nope");
  EXPECT_EQ(models->GetModel(Context("").get(), get_model, &model).error_code(),
            grpc::StatusCode::NOT_FOUND);
  v1::CreatePlanRequest plan;
  plan.set_model_id("tiny");
  plan.set_name("main");
  plan.set_stats(TestCalibrationFile());
  plan.mutable_options()->set_k_bits(3);
  plan.mutable_options()->set_v_bits(3);
  v1::CreatePlanResponse created;
  ASSERT_TRUE(plans->CreatePlan(Context().get(), plan, &created).ok());
  EXPECT_EQ(plans->CreatePlan(Context("").get(), plan, &created).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  v1::PromoteRequest promote;
  promote.set_model_id("tiny");
  promote.set_channel("stable");
  promote.set_plan_name("main");
  promote.set_version(1);
  v1::ChannelMove move;
  ASSERT_TRUE(channels->Promote(Context().get(), promote, &move).ok());
  v1::CreateJobRequest job;
  job.set_job_id("job1");
  job.set_model_id("tiny");
  job.set_prompt_set_hash("sha256:abc");
  job.add_shard_prompts("{\"text\": \"a\"}\n");
  job.set_tokens_per_shard(64);
  v1::CreateJobResponse job_created;
  ASSERT_TRUE(jobs->CreateJob(Context().get(), job, &job_created).ok());
  v1::LeaseShardRequest lease_request;
  lease_request.set_worker_id("w1");
  v1::LeaseShardResponse lease;
  ASSERT_TRUE(jobs->LeaseShard(Context().get(), lease_request, &lease).ok());
  v1::UploadShardStatisticsRequest upload;
  upload.set_lease_id(lease.lease().lease_id());
  upload.set_stats(TestStats(1).Serialize());
  v1::UploadShardStatisticsResponse uploaded;
  ASSERT_TRUE(jobs->UploadShardStatistics(Context().get(), upload, &uploaded).ok());
  v1::CommitShardRequest commit;
  commit.set_lease_id(lease.lease().lease_id());
  v1::CommitShardResponse committed;
  ASSERT_TRUE(jobs->CommitShard(Context().get(), commit, &committed).ok());
  // An open connection would hold the drain for its whole grace period.
  models.reset();
  plans.reset();
  channels.reset();
  jobs.reset();
  channel.reset();
  ASSERT_EQ(c.Stop(SIGTERM), 0);

  const std::string err = c.stderr_text();
  const std::regex rfc3339_ms(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)");
  const std::set<std::string> levels = {"debug", "info", "warn", "error"};
  std::map<std::string, std::vector<nlohmann::json>> by_message;
  std::map<std::string, nlohmann::json> rpc_by_method_code;
  std::istringstream lines(err);
  int count = 0;
  for (std::string line; std::getline(lines, line); ++count) {
    nlohmann::json j;
    ASSERT_NO_THROW(j = nlohmann::json::parse(line)) << "not JSON: " << line;
    ASSERT_TRUE(j.is_object()) << line;
    ASSERT_TRUE(j["time"].is_string() && std::regex_match(j["time"].get<std::string>(), rfc3339_ms))
        << line;
    ASSERT_TRUE(j["level"].is_string() && levels.contains(j["level"])) << line;
    ASSERT_TRUE(j["component"].is_string()) << line;
    ASSERT_TRUE(j["message"].is_string()) << line;
    by_message[j["message"]].push_back(j);
    if (j["message"] == "rpc finished") {
      EXPECT_TRUE(j["latency_ms"].is_number() && j["latency_ms"] >= 0) << line;
      EXPECT_TRUE(j["peer"].get<std::string>().starts_with("ipv4:127.0.0.1:")) << line;
      rpc_by_method_code[j["method"].get<std::string>() + " " + j["code"].get<std::string>()] = j;
    }
  }
  EXPECT_GT(count, 10) << err;

  for (const char* message :
       {"serving", "model registered", "plan created", "channel moved", "job created",
        "shard committed", "job completed", "draining", "stopped"}) {
    ASSERT_EQ(by_message[message].size(), 1u) << message << "\n" << err;
    EXPECT_EQ(by_message[message][0]["level"], "info") << message;
    EXPECT_EQ(by_message[message][0]["component"], "coordinator") << message;
  }
  EXPECT_EQ(by_message["serving"][0]["address"], c.address());
  EXPECT_EQ(by_message["serving"][0]["config_file"], dir.Path("coordinator.conf"));
  EXPECT_EQ(by_message["serving"][0]["bearer_token"], true);
  EXPECT_EQ(by_message["plan created"][0]["plan_id"], created.version().plan_id());
  EXPECT_EQ(by_message["plan created"][0]["version"], 1);
  EXPECT_EQ(by_message["channel moved"][0]["channel"], "stable");
  EXPECT_EQ(by_message["channel moved"][0]["plan_id"], created.version().plan_id());
  EXPECT_EQ(by_message["job created"][0]["job_id"], "job1");
  EXPECT_EQ(by_message["shard committed"][0]["job_id"], "job1");
  EXPECT_EQ(by_message["shard committed"][0]["shard"], 0);
  EXPECT_EQ(by_message["draining"][0]["signal"], SIGTERM);

  for (const char* key : {"RegisterModel OK", "CreatePlan OK", "Promote OK", "CreateJob OK",
                          "LeaseShard OK", "UploadShardStatistics OK", "CommitShard OK"}) {
    ASSERT_TRUE(rpc_by_method_code.contains(key)) << key << "\n" << err;
    EXPECT_EQ(rpc_by_method_code[key]["level"], "debug") << key;
    EXPECT_EQ(rpc_by_method_code[key]["principal"], "bearer-token") << key;
  }
  ASSERT_TRUE(rpc_by_method_code.contains("GetModel NOT_FOUND")) << err;
  EXPECT_EQ(rpc_by_method_code["GetModel NOT_FOUND"]["level"], "debug");
  EXPECT_TRUE(rpc_by_method_code["GetModel NOT_FOUND"]["error"].is_string());
  EXPECT_FALSE(rpc_by_method_code["GetModel NOT_FOUND"].contains("principal")) << "reads are open";
  ASSERT_TRUE(rpc_by_method_code.contains("CreatePlan UNAUTHENTICATED")) << err;
  EXPECT_EQ(rpc_by_method_code["CreatePlan UNAUTHENTICATED"]["level"], "warn");
  // stdout stays the plain handshake that scripts read.
  EXPECT_EQ(c.stdout_text(), "listening on " + c.address() + "\n");
}

TEST(CoordinatorLogsTest, InfoIsTheDefaultLevelAndTextTheOtherFormat) {
  TempDir dir;
  LoggedCoordinator c(dir, {"--data-dir", dir.Path("db"), "--log-format", "text"});
  ASSERT_FALSE(c.address().empty()) << c.stdout_text() << c.stderr_text();
  {  // Closed before SIGTERM: an open connection would hold the drain for its grace period.
    auto models = v1::ModelService::NewStub(
        grpc::CreateChannel(c.address(), grpc::InsecureChannelCredentials()));
    v1::RegisterModelResponse registered;
    ASSERT_TRUE(models->RegisterModel(Context("").get(), TestModelRequest(), &registered).ok());
  }
  ASSERT_EQ(c.Stop(SIGTERM), 0);
  const std::string err = c.stderr_text();
  EXPECT_NE(err.find(" info  coordinator: model registered model_id=tiny"), std::string::npos)
      << err;
  EXPECT_EQ(err.find("rpc finished"), std::string::npos) << "debug lines are off at info: " << err;
}

TEST(CoordinatorLogsTest, ClientCertificateFlagsWorkAndGrpcsOwnLinesAreJsonToo) {
  TempDir dir;
  TestPki pki(dir.Path("pki"));
  if (!pki.MakeStandardSet()) GTEST_SKIP() << TestPki::kMissing;
  LoggedCoordinator c(
      dir, {"--data-dir", dir.Path("db"), "--tls-cert", pki.Cert("server"), "--tls-key",
            pki.Key("server"), "--tls-client-ca", pki.Cert("ca"), "--tls-allowed-client-cn",
            "worker-0,worker-1", "--log-level", "debug"});
  ASSERT_FALSE(c.address().empty()) << c.stdout_text() << c.stderr_text();
  auto write_as = [&](const std::string& client) {
    grpc::SslCredentialsOptions ssl{.pem_root_certs = pki.Pem(pki.Cert("ca")),
                                    .pem_private_key = pki.Pem(pki.Key(client)),
                                    .pem_cert_chain = pki.Pem(pki.Cert(client))};
    auto models =
        v1::ModelService::NewStub(grpc::CreateChannel(c.address(), grpc::SslCredentials(ssl)));
    v1::RegisterModelResponse registered;
    return models->RegisterModel(Context("").get(), TestModelRequest(), &registered);
  };
  grpc::Status st = write_as("worker");
  EXPECT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(write_as("intruder").error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(write_as("stranger").error_code(), grpc::StatusCode::UNAVAILABLE);
  ASSERT_EQ(c.Stop(SIGTERM), 0);

  bool handshake_logged = false;
  bool cert_write_logged = false;
  for (const nlohmann::json& j : JsonLines(c.stderr_text())) {
    if (j.value("component", "") == "grpc" &&
        j.value("message", "").find("Handshake failed") != std::string::npos) {
      handshake_logged = true;
      EXPECT_EQ(j["level"], "warn") << j;
    }
    if (j.value("method", "") == "RegisterModel" && j.value("code", "") == "OK") {
      cert_write_logged = j.value("principal", "") == "cn=worker-1";
    }
    if (j.value("message", "") == "serving") {
      EXPECT_EQ(j["client_certificates"], true) << j;
    }
  }
  EXPECT_TRUE(handshake_logged) << c.stderr_text();
  EXPECT_TRUE(cert_write_logged) << c.stderr_text();
}

TEST(CoordinatorLogsTest, ABadConfigFileStopsStartupNamingTheLineAndKey) {
  TempDir dir;
  std::ofstream(dir.Path("c.conf")) << "data-dir = " << dir.Path("db") << "\nlog-level = loud\n";
  ChildProcess c(BinaryPath("kvplan-coordinator"), {"--config", dir.Path("c.conf")});
  EXPECT_EQ(c.Wait(std::chrono::seconds(30)), 2);
  EXPECT_NE(c.output().find(dir.Path("c.conf") +
                            ":2: log-level: must be debug, info, warn or error, got 'loud'"),
            std::string::npos)
      << c.output();
}

}  // namespace
}  // namespace kvplan
