// kvplan.v1.JobService over real sockets (127.0.0.1, port 0) against an
// in-process coordinator: auth, a whole job by the wire, codes a worker acts
// on, the plan made from the job, the job metrics, and `kvplan jobs watch`.
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "kvplan/v1/job_service.grpc.pb.h"
#include "kvplan/v1/model_service.grpc.pb.h"
#include "kvplan/v1/plan_service.grpc.pb.h"
#include "server/coordinator_server.h"
#include "tests/common/child_process.h"
#include "tests/server/coordinator_process.h"
#include "tests/server/server_test_util.h"

namespace kvplan::server {
namespace {

using ::kvplan::testing::BinaryPath;
using ::kvplan::testing::ChildProcess;
using ::kvplan::testing::HttpGet;
using ::kvplan::testing::TempDir;
using ::kvplan::testing::TestModelRequest;
using ::kvplan::testing::TestStats;

using namespace std::chrono_literals;

constexpr char kToken[] = "job-token";

class JobServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<CoordinatorServer>> server =
        CoordinatorServer::Start({.listen = "127.0.0.1:0",
                                  .data_dir = dir_.Path("db"),
                                  .metrics_listen = "127.0.0.1:0",
                                  .auth_token = kToken});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    auto channel = grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials());
    models_ = v1::ModelService::NewStub(channel);
    plans_ = v1::PlanService::NewStub(channel);
    jobs_ = v1::JobService::NewStub(channel);
    v1::RegisterModelResponse registered;
    ASSERT_TRUE(models_->RegisterModel(Context().get(), TestModelRequest(), &registered).ok());
  }
  std::unique_ptr<grpc::ClientContext> Context(const std::string& token = kToken) {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    if (!token.empty()) context->AddMetadata("authorization", "Bearer " + token);
    return context;
  }
  static v1::CreateJobRequest JobRequest() {
    v1::CreateJobRequest r;
    r.set_job_id("job1");
    r.set_model_id("tiny");
    r.set_prompt_set_hash("sha256:abc");
    r.add_shard_prompts("{\"text\": \"a\"}\n");
    r.add_shard_prompts("{\"text\": \"b\"}\n");
    r.set_tokens_per_shard(64);
    return r;
  }
  v1::ShardLease Lease() {
    v1::LeaseShardRequest r;
    r.set_worker_id("worker-1");
    v1::LeaseShardResponse response;
    grpc::Status st = jobs_->LeaseShard(Context().get(), r, &response);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return response.lease();
  }
  grpc::Status Upload(const std::string& lease_id, const std::string& bytes) {
    v1::UploadShardStatisticsRequest r;
    r.set_lease_id(lease_id);
    r.set_stats(bytes);
    v1::UploadShardStatisticsResponse response;
    return jobs_->UploadShardStatistics(Context().get(), r, &response);
  }
  grpc::Status Commit(const std::string& lease_id, v1::CommitShardResponse* response) {
    v1::CommitShardRequest r;
    r.set_lease_id(lease_id);
    return jobs_->CommitShard(Context().get(), r, response);
  }

  TempDir dir_;
  std::unique_ptr<CoordinatorServer> server_;
  std::unique_ptr<v1::ModelService::Stub> models_;
  std::unique_ptr<v1::PlanService::Stub> plans_;
  std::unique_ptr<v1::JobService::Stub> jobs_;
};

TEST_F(JobServiceTest, WritesNeedTheTokenAndReadsDoNot) {
  v1::CreateJobResponse created;
  EXPECT_EQ(jobs_->CreateJob(Context("").get(), JobRequest(), &created).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(jobs_->CreateJob(Context("wrong").get(), JobRequest(), &created).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  v1::LeaseShardRequest lease;
  lease.set_worker_id("w");
  v1::LeaseShardResponse leased;
  EXPECT_EQ(jobs_->LeaseShard(Context("").get(), lease, &leased).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  v1::ListJobsResponse list;
  ASSERT_TRUE(jobs_->ListJobs(Context("").get(), v1::ListJobsRequest(), &list).ok());
  EXPECT_EQ(list.jobs_size(), 0) << "the refused create stored nothing";
  v1::GetJobRequest get;
  get.set_job_id("job1");
  v1::Job job;
  EXPECT_EQ(jobs_->GetJob(Context("").get(), get, &job).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(JobServiceTest, AJobRunsToAPlanOverTheWire) {
  v1::CreateJobResponse created;
  ASSERT_TRUE(jobs_->CreateJob(Context().get(), JobRequest(), &created).ok());
  EXPECT_EQ(created.job().progress().shards_total(), 2);
  const v1::ShardLease a = Lease();
  const v1::ShardLease b = Lease();
  ASSERT_FALSE(b.lease_id().empty());
  std::string corrupt = TestStats(1).Serialize();
  corrupt.resize(corrupt.size() - 3);
  EXPECT_EQ(Upload(a.lease_id(), corrupt).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  v1::CommitShardResponse committed;
  EXPECT_EQ(Commit(a.lease_id(), &committed).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Commit("job1:5:1", &committed).error_code(), grpc::StatusCode::NOT_FOUND);
  for (const v1::ShardLease& l : {b, a}) {
    ASSERT_TRUE(Upload(l.lease_id(), TestStats(l.shard() + 1).Serialize()).ok());
    grpc::Status st = Commit(l.lease_id(), &committed);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_TRUE(committed.committed());
  }
  EXPECT_TRUE(committed.job_done());
  ASSERT_TRUE(Commit(a.lease_id(), &committed).ok());
  EXPECT_FALSE(committed.committed());
  EXPECT_EQ(committed.job().state(), v1::Job::SUCCEEDED);
  EXPECT_EQ(committed.job().progress().shards_done(), 2);

  v1::CreatePlanRequest plan;
  plan.set_model_id("tiny");
  plan.set_job_id("job1");
  plan.mutable_options()->set_k_bits(3);
  plan.mutable_options()->set_v_bits(3);
  v1::CreatePlanResponse plan_created;
  grpc::Status st = plans_->CreatePlan(Context().get(), plan, &plan_created);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(plan_created.version().stats_digest(), committed.job().merged_stats_digest());

  const std::string metrics =
      HttpGet("127.0.0.1:" + std::to_string(server_->metrics_port()), "/metrics");
  EXPECT_NE(metrics.find("kvplan_jobs_created_total 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("kvplan_jobs_succeeded_total 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("kvplan_shards_committed_total 2"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("kvplan_shard_leases_total{kind=\"first\"} 2"), std::string::npos)
      << metrics;
}

// `kvplan jobs watch`, as a real process following this in-process
// coordinator; its stdout is a pipe, so it logs one line per change.
TEST_F(JobServiceTest, JobsWatchFollowsAJobToSuccess) {
  v1::CreateJobResponse created;
  ASSERT_TRUE(jobs_->CreateJob(Context().get(), JobRequest(), &created).ok());
  ChildProcess watch(BinaryPath("kvplan"), {"--coordinator", server_->address(), "jobs", "watch",
                                            "job1", "--interval-ms", "20"});
  ASSERT_TRUE(watch.WaitForOutput("job1 RUNNING [", 20s)) << watch.output();
  EXPECT_NE(watch.output().find("shards 0/2 (0 leased)  tokens 0 of <=128"), std::string::npos)
      << watch.output();
  const v1::ShardLease a = Lease();
  ASSERT_TRUE(watch.WaitForOutput("shards 0/2 (1 leased)", 20s)) << watch.output();
  ASSERT_TRUE(Upload(a.lease_id(), TestStats(1).Serialize()).ok());
  v1::CommitShardResponse committed;
  ASSERT_TRUE(Commit(a.lease_id(), &committed).ok());
  ASSERT_TRUE(watch.WaitForOutput("[##########----------] shards 1/2 (0 leased)", 20s))
      << watch.output();
  // A quiet job logs nothing more: one line per change, not per poll.
  std::this_thread::sleep_for(300ms);
  const std::string before = watch.output();
  EXPECT_EQ(before.find("shards 1/2", before.find("shards 1/2") + 1), std::string::npos) << before;

  const v1::ShardLease b = Lease();
  ASSERT_TRUE(Upload(b.lease_id(), TestStats(2).Serialize()).ok());
  ASSERT_TRUE(Commit(b.lease_id(), &committed).ok());
  ASSERT_EQ(watch.Wait(20s), 0) << watch.output();
  EXPECT_NE(watch.output().find("SUCCEEDED [####################] shards 2/2"), std::string::npos)
      << watch.output();
  EXPECT_NE(watch.output().find(
                "job job1 succeeded: " + std::to_string(committed.job().progress().tokens()) +
                " tokens, merged statistics " + committed.job().merged_stats_digest()),
            std::string::npos)
      << watch.output();
  EXPECT_EQ(watch.output().find('\r'), std::string::npos) << "no redraws into a pipe";
}

// The coordinator restarts (same address and store) while a watch runs: the
// watch notes the outage, retries, and follows the job to its end.
TEST_F(JobServiceTest, JobsWatchWaitsOutACoordinatorRestart) {
  v1::CreateJobResponse created;
  ASSERT_TRUE(jobs_->CreateJob(Context().get(), JobRequest(), &created).ok());
  const std::string address = server_->address();
  ChildProcess watch(BinaryPath("kvplan"),
                     {"--coordinator", address, "jobs", "watch", "job1", "--interval-ms", "20"});
  ASSERT_TRUE(watch.WaitForOutput("job1 RUNNING [", 20s)) << watch.output();
  server_.reset();
  ASSERT_TRUE(watch.WaitForOutput("coordinator unreachable (", 20s)) << watch.output();
  absl::StatusOr<std::unique_ptr<CoordinatorServer>> restarted = CoordinatorServer::Start(
      {.listen = address, .data_dir = dir_.Path("db"), .auth_token = kToken});
  ASSERT_TRUE(restarted.ok()) << restarted.status();
  server_ = *std::move(restarted);
  for (int i = 0; i < 2; ++i) {
    const v1::ShardLease lease = Lease();
    ASSERT_TRUE(Upload(lease.lease_id(), TestStats(i + 1).Serialize()).ok());
    v1::CommitShardResponse committed;
    ASSERT_TRUE(Commit(lease.lease_id(), &committed).ok());
  }
  ASSERT_EQ(watch.Wait(30s), 0) << watch.output();
  EXPECT_NE(watch.output().find("job job1 succeeded: "), std::string::npos) << watch.output();
}

// Nothing listens: the watch retries, then gives up naming the outage.
TEST_F(JobServiceTest, JobsWatchGivesUpOnALongOutage) {
  const std::string address = server_->address();
  server_.reset();
  ChildProcess watch(BinaryPath("kvplan"), {"--coordinator", address, "jobs", "watch", "job1",
                                            "--interval-ms", "20", "--give-up-after-s", "1"});
  EXPECT_EQ(watch.Wait(30s), 1) << watch.output();
  EXPECT_NE(watch.output().find("retrying in"), std::string::npos) << watch.output();
  // At least the 1 s asked for (a retry's wait can carry it a little past).
  EXPECT_NE(watch.output().find("has been unreachable for "), std::string::npos)
      << watch.output();
}

TEST_F(JobServiceTest, JobsWatchFailsClearlyForCancelledAndUnknownJobs) {
  v1::CreateJobResponse created;
  ASSERT_TRUE(jobs_->CreateJob(Context().get(), JobRequest(), &created).ok());
  ChildProcess watch(BinaryPath("kvplan"), {"--coordinator", server_->address(), "jobs", "watch",
                                            "--job", "job1", "--interval-ms", "20"});
  ASSERT_TRUE(watch.WaitForOutput("job1 RUNNING", 20s)) << watch.output();
  v1::CancelJobRequest cancel;
  cancel.set_job_id("job1");
  v1::Job job;
  ASSERT_TRUE(jobs_->CancelJob(Context().get(), cancel, &job).ok());
  EXPECT_EQ(watch.Wait(20s), 1) << watch.output();
  EXPECT_NE(watch.output().find("kvplan jobs watch: job job1 was cancelled with 0 of 2 shards"),
            std::string::npos)
      << watch.output();

  ChildProcess unknown(BinaryPath("kvplan"),
                       {"--coordinator", server_->address(), "jobs", "watch", "nope"});
  EXPECT_EQ(unknown.Wait(20s), 1) << unknown.output();
  EXPECT_NE(unknown.output().find("no job has id 'nope'; `kvplan jobs list` shows"),
            std::string::npos)
      << unknown.output();

  ChildProcess both(BinaryPath("kvplan"), {"--coordinator", server_->address(), "jobs", "watch",
                                           "job1", "--job", "job1"});
  EXPECT_EQ(both.Wait(20s), 2) << both.output();
}

}  // namespace
}  // namespace kvplan::server
