// The state changes that only a fake clock reaches in a test: an expired lease
// whose shard goes to another worker is logged at info, once.
#include <atomic>
#include <mutex>
#include <sstream>

#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "kvplan/v1/job_service.grpc.pb.h"
#include "kvplan/v1/model_service.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "server/coordinator_server.h"
#include "tests/server/server_test_util.h"

namespace kvplan::server {
namespace {

using ::kvplan::testing::TempDir;
using ::kvplan::testing::TestModelRequest;

TEST(StateChangeLogTest, AnExpiredLeaseIsLoggedWhenItsShardIsReassigned) {
  TempDir dir;
  std::atomic<int64_t> now{1'800'000'000};
  std::mutex mu;
  std::string log;
  absl::StatusOr<std::unique_ptr<CoordinatorServer>> server =
      CoordinatorServer::Start({.listen = "127.0.0.1:0",
                                .data_dir = dir.Path("db"),
                                .clock = [&now] { return now.load(); },
                                .logger = Logger({.sink = [&](std::string_view line) {
                                  std::lock_guard<std::mutex> lock(mu);
                                  log.append(line);
                                }})});
  ASSERT_TRUE(server.ok()) << server.status();
  auto channel = grpc::CreateChannel((*server)->address(), grpc::InsecureChannelCredentials());
  auto models = v1::ModelService::NewStub(channel);
  auto jobs = v1::JobService::NewStub(channel);
  grpc::ClientContext register_context;
  v1::RegisterModelResponse registered;
  ASSERT_TRUE(models->RegisterModel(&register_context, TestModelRequest(), &registered).ok());
  v1::CreateJobRequest job;
  job.set_job_id("job1");
  job.set_model_id("tiny");
  job.set_prompt_set_hash("sha256:abc");
  job.add_shard_prompts("{\"text\": \"a\"}\n");
  job.set_tokens_per_shard(64);
  job.set_lease_seconds(30);
  grpc::ClientContext create_context;
  v1::CreateJobResponse created;
  ASSERT_TRUE(jobs->CreateJob(&create_context, job, &created).ok());
  auto lease = [&](const std::string& worker) {
    v1::LeaseShardRequest request;
    request.set_worker_id(worker);
    grpc::ClientContext context;
    v1::LeaseShardResponse response;
    EXPECT_TRUE(jobs->LeaseShard(&context, request, &response).ok());
    return response;
  };
  EXPECT_EQ(lease("w1").lease().attempt(), 1);
  EXPECT_FALSE(lease("w2").has_lease()) << "the first lease is still live";
  now += 31;
  const v1::ShardLease second = lease("w2").lease();
  EXPECT_EQ(second.attempt(), 2);
  (*server)->Shutdown(absl::ZeroDuration());

  std::lock_guard<std::mutex> lock(mu);
  std::vector<nlohmann::json> reassigned;
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    nlohmann::json j = nlohmann::json::parse(line);
    if (j["message"] == "lease expired; shard reassigned") reassigned.push_back(j);
  }
  ASSERT_EQ(reassigned.size(), 1u) << log;
  EXPECT_EQ(reassigned[0]["level"], "info");
  EXPECT_EQ(reassigned[0]["job_id"], "job1");
  EXPECT_EQ(reassigned[0]["shard"], 0);
  EXPECT_EQ(reassigned[0]["attempt"], 2);
  EXPECT_EQ(reassigned[0]["lease_id"], second.lease_id());
  EXPECT_NE(log.find("\"message\":\"job created\""), std::string::npos) << log;
  EXPECT_NE(log.find("\"message\":\"model registered\""), std::string::npos) << log;
}

}  // namespace
}  // namespace kvplan::server
