// Calibration jobs without gRPC: leases and their expiry on a fake clock,
// exactly-once commits, restarts, merged statistics, cancel, and refusals that
// store nothing.
#include "server/job_registry.h"

#include <atomic>
#include <memory>
#include <vector>

#include "core/block_stats.h"
#include "core/digest.h"
#include "gtest/gtest.h"
#include "server/model_registry.h"
#include "server/plan_registry.h"
#include "server/whatif_runner.h"
#include "tests/server/server_test_util.h"

namespace kvplan::server {
namespace {

using ::kvplan::testing::TempDir;
using ::kvplan::testing::TestModelRequest;
using ::kvplan::testing::TestStats;

constexpr int kLeaseSeconds = 10;

// Every record of every family, as "family/key=value", to check that refused
// calls change nothing.
std::vector<std::string> Snapshot(const Store& store) {
  std::vector<std::string> out;
  for (Family f : {Family::kModels, Family::kStats, Family::kPlans, Family::kPlanVersions,
                   Family::kJobs, Family::kJobShards, Family::kShardPrompts, Family::kShardStats}) {
    EXPECT_TRUE(store
                    .Scan(f, "", "",
                          [&](std::string_view k, std::string_view v) {
                            out.push_back(std::to_string(static_cast<int>(f)) + "/" +
                                          std::string(k) + "=" + std::string(v));
                            return true;
                          })
                    .ok());
  }
  return out;
}

class JobRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Open();
    ASSERT_TRUE(models_->Register(TestModelRequest()).ok());
  }
  // (Re)opens the store and registries over the same directory, as a restart does.
  void Open() {
    jobs_.reset();
    plans_.reset();
    channels_.reset();
    models_.reset();
    store_.reset();
    store_ = *Store::Open({.path = dir_.Path("db")});
    Clock clock = [this] { return now_.load(); };
    models_ = std::make_unique<ModelRegistry>(store_.get(), clock);
    channels_ = std::make_unique<ChannelRegistry>(store_.get(), models_.get(), clock);
    ASSERT_TRUE(channels_->Init().ok());
    plans_ = std::make_unique<PlanRegistry>(store_.get(), models_.get(), channels_.get(), clock);
    jobs_ = std::make_unique<JobRegistry>(store_.get(), models_.get(), clock);
  }
  v1::CreateJobRequest JobRequest(int shards, const std::string& id = "job1") {
    v1::CreateJobRequest r;
    r.set_job_id(id);
    r.set_model_id("tiny");
    r.set_prompt_set_hash("sha256:abc");
    for (int i = 0; i < shards; ++i) {
      r.add_shard_prompts("{\"text\": \"prompt " + std::to_string(i) + "\"}\n");
    }
    r.set_tokens_per_shard(512);
    r.set_lease_seconds(kLeaseSeconds);
    return r;
  }
  v1::ShardLease Lease(const std::string& worker = "w1") {
    v1::LeaseShardRequest r;
    r.set_worker_id(worker);
    absl::StatusOr<v1::LeaseShardResponse> l = jobs_->Lease(r);
    EXPECT_TRUE(l.ok()) << l.status();
    return l.ok() ? l->lease() : v1::ShardLease();
  }
  absl::Status Upload(const v1::ShardLease& lease, const std::string& bytes) {
    v1::UploadShardStatisticsRequest r;
    r.set_lease_id(lease.lease_id());
    r.set_stats(bytes);
    return jobs_->Upload(r).status();
  }
  // The statistics shard `i` uploads in these tests.
  static std::string ShardStats(int i) { return TestStats(i + 1).Serialize(); }
  void UploadAndCommit(const v1::ShardLease& lease) {
    ASSERT_TRUE(Upload(lease, ShardStats(lease.shard())).ok());
    absl::StatusOr<v1::CommitShardResponse> c = jobs_->Commit(lease.lease_id());
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_TRUE(c->committed());
  }
  // BlockStats::Merge of shards 0..n-1, in order.
  static BlockStats MergedInOrder(int n) {
    BlockStats merged = TestStats(1);
    for (int i = 1; i < n; ++i) EXPECT_TRUE(merged.Merge(TestStats(i + 1)).ok());
    return merged;
  }

  TempDir dir_;
  std::atomic<int64_t> now_{1700000000};
  std::unique_ptr<Store> store_;
  std::unique_ptr<ModelRegistry> models_;
  std::unique_ptr<ChannelRegistry> channels_;
  std::unique_ptr<PlanRegistry> plans_;
  std::unique_ptr<JobRegistry> jobs_;
};

TEST_F(JobRegistryTest, LeasesGoOutOnceAndExpiredOnesAreReassigned) {
  ASSERT_TRUE(jobs_->Create(JobRequest(2)).ok());
  const v1::ShardLease a = Lease("w1");
  const v1::ShardLease b = Lease("w2");
  EXPECT_EQ(a.shard(), 0);
  EXPECT_EQ(a.attempt(), 1);
  EXPECT_EQ(a.expires_unix(), now_ + kLeaseSeconds);
  EXPECT_EQ(a.prompts_jsonl(), "{\"text\": \"prompt 0\"}\n");
  EXPECT_EQ(b.shard(), 1);
  EXPECT_TRUE(Lease("w3").lease_id().empty()) << "both shards are under live leases";
  EXPECT_EQ(jobs_->Get("job1")->progress().shards_leased(), 2);

  // w2 heartbeats and keeps its shard; w1 goes silent and loses shard 0.
  now_ += kLeaseSeconds - 1;
  absl::StatusOr<v1::HeartbeatResponse> hb = jobs_->Heartbeat(b.lease_id());
  ASSERT_TRUE(hb.ok()) << hb.status();
  EXPECT_EQ(hb->expires_unix(), now_ + kLeaseSeconds);
  now_ += 1;
  const v1::ShardLease a2 = Lease("w3");
  EXPECT_EQ(a2.shard(), 0);
  EXPECT_EQ(a2.attempt(), 2);
  EXPECT_NE(a2.lease_id(), a.lease_id());
  EXPECT_TRUE(Lease("w4").lease_id().empty());
  EXPECT_EQ(jobs_->Heartbeat(a.lease_id()).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(JobRegistryTest, DuplicateUploadsAndCommitsCountOnce) {
  ASSERT_TRUE(jobs_->Create(JobRequest(2)).ok());
  const v1::ShardLease a = Lease();
  ASSERT_TRUE(Upload(a, ShardStats(0)).ok());
  ASSERT_TRUE(Upload(a, ShardStats(0)).ok());
  absl::StatusOr<v1::CommitShardResponse> first = jobs_->Commit(a.lease_id());
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(first->committed());
  const std::vector<std::string> after_first = Snapshot(*store_);
  for (int retry = 0; retry < 3; ++retry) {
    EXPECT_TRUE(Upload(a, ShardStats(0)).ok()) << "a retried upload of committed bytes is OK";
    absl::StatusOr<v1::CommitShardResponse> again = jobs_->Commit(a.lease_id());
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_FALSE(again->committed());
  }
  EXPECT_EQ(Snapshot(*store_), after_first);
  EXPECT_EQ(Upload(a, ShardStats(1)).code(), absl::StatusCode::kFailedPrecondition)
      << "other bytes after the commit";
  absl::StatusOr<v1::Job> job = jobs_->Get("job1");
  EXPECT_EQ(job->progress().shards_done(), 1);
  EXPECT_EQ(job->progress().tokens(), static_cast<int64_t>(TestStats(1).tokens()));
  EXPECT_EQ(job->state(), v1::Job::RUNNING);
}

TEST_F(JobRegistryTest, ALateCommitFromAnExpiredLeaseIsRefusedAndChangesNothing) {
  ASSERT_TRUE(jobs_->Create(JobRequest(1)).ok());
  const v1::ShardLease dead = Lease("slow");
  ASSERT_TRUE(Upload(dead, ShardStats(7)).ok());
  now_ += kLeaseSeconds;  // Expired, not yet reassigned.
  std::vector<std::string> before = Snapshot(*store_);
  EXPECT_EQ(jobs_->Commit(dead.lease_id()).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Upload(dead, ShardStats(7)).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Snapshot(*store_), before);

  const v1::ShardLease live = Lease("fast");
  ASSERT_EQ(live.shard(), 0);
  before = Snapshot(*store_);
  EXPECT_EQ(jobs_->Commit(dead.lease_id()).status().code(), absl::StatusCode::kFailedPrecondition)
      << "replaced";
  EXPECT_EQ(jobs_->Commit(live.lease_id()).status().code(), absl::StatusCode::kFailedPrecondition)
      << "the stale upload of the dead lease must not be committed by the new one";
  EXPECT_EQ(Snapshot(*store_), before);
  UploadAndCommit(live);
  EXPECT_EQ(jobs_->Commit(dead.lease_id()).status().code(), absl::StatusCode::kFailedPrecondition);
  absl::StatusOr<std::string> merged = LoadJobStats(*store_, "tiny", "job1");
  ASSERT_TRUE(merged.ok()) << merged.status();
  EXPECT_EQ(*merged, ShardStats(0)) << "only the live lease's statistics count";
}

TEST_F(JobRegistryTest, MergedStatisticsAreTheShardsInOrderWhateverTheCommitOrder) {
  ASSERT_TRUE(jobs_->Create(JobRequest(3)).ok());
  std::vector<v1::ShardLease> leases = {Lease(), Lease(), Lease()};
  for (int i : {2, 0, 1}) UploadAndCommit(leases[i]);
  absl::StatusOr<v1::Job> job = jobs_->Get("job1");
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->state(), v1::Job::SUCCEEDED);
  EXPECT_EQ(job->progress().shards_done(), 3);
  EXPECT_EQ(job->progress().eta_seconds(), 0);
  const std::string want = MergedInOrder(3).Serialize();
  EXPECT_EQ(job->merged_stats_digest(), Sha256Hex(want));
  EXPECT_EQ(*LoadJobStats(*store_, "tiny", "job1"), want);
  EXPECT_TRUE(Lease().lease_id().empty());

  // CreatePlan from the job allocates from exactly those statistics, and
  // WhatIf reads them by digest.
  v1::CreatePlanRequest plan;
  plan.set_model_id("tiny");
  plan.set_job_id("job1");
  plan.mutable_options()->set_k_bits(3);
  plan.mutable_options()->set_v_bits(3);
  absl::StatusOr<v1::CreatePlanResponse> created = plans_->Create(plan);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->version().stats_digest(), job->merged_stats_digest());
  EXPECT_NE(created->plan_json().find("job:job1"), std::string::npos);
  WhatIfRunner whatif(store_.get(), models_.get());
  v1::WhatIfRequest w;
  w.set_model_id("tiny");
  w.set_stats_digest(job->merged_stats_digest());
  w.add_k_bits(3);
  w.add_v_bits(3);
  w.set_context_tokens(4096);
  absl::StatusOr<v1::WhatIfResponse> rows = whatif.Run(w);
  EXPECT_TRUE(rows.ok()) << rows.status();
}

TEST_F(JobRegistryTest, ARestartKeepsCommittedShardsAndLiveLeases) {
  ASSERT_TRUE(jobs_->Create(JobRequest(3)).ok());
  const v1::ShardLease a = Lease();
  const v1::ShardLease b = Lease();
  UploadAndCommit(a);
  ASSERT_TRUE(Upload(b, ShardStats(1)).ok());
  Open();  // As after kill -9: only what the store holds survives.
  absl::StatusOr<v1::Job> job = jobs_->Get("job1");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->progress().shards_done(), 1);
  EXPECT_EQ(job->progress().shards_leased(), 1);
  // The acknowledged lease and upload of shard 1 survive: it commits as is.
  absl::StatusOr<v1::CommitShardResponse> c = jobs_->Commit(b.lease_id());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->committed());
  EXPECT_TRUE(jobs_->Commit(a.lease_id()).ok()) << "a pre-restart commit repeats as OK";
  const v1::ShardLease last = Lease();
  EXPECT_EQ(last.shard(), 2);
  UploadAndCommit(last);
  Open();
  EXPECT_EQ(*LoadJobStats(*store_, "tiny", "job1"), MergedInOrder(3).Serialize());
  EXPECT_EQ(jobs_->Get("job1")->progress().tokens(),
            static_cast<int64_t>(MergedInOrder(3).tokens()));
}

TEST_F(JobRegistryTest, CancelStopsLeasingAndCommitting) {
  ASSERT_TRUE(jobs_->Create(JobRequest(2)).ok());
  const v1::ShardLease a = Lease();
  ASSERT_TRUE(Upload(a, ShardStats(0)).ok());
  absl::StatusOr<v1::Job> cancelled = jobs_->Cancel("job1");
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->state(), v1::Job::CANCELLED);
  EXPECT_TRUE(jobs_->Cancel("job1").ok()) << "idempotent";
  EXPECT_TRUE(Lease().lease_id().empty());
  v1::LeaseShardRequest named;
  named.set_worker_id("w");
  named.set_job_id("job1");
  EXPECT_EQ(jobs_->Lease(named).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(jobs_->Commit(a.lease_id()).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(jobs_->Heartbeat(a.lease_id()).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(LoadJobStats(*store_, "tiny", "job1").status().code(),
            absl::StatusCode::kFailedPrecondition);

  ASSERT_TRUE(jobs_->Create(JobRequest(1, "job2")).ok());
  UploadAndCommit(Lease());
  EXPECT_EQ(jobs_->Cancel("job2").status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(JobRegistryTest, CreateIsIdempotentAndRefusesAConflictingJob) {
  v1::CreateJobRequest request = JobRequest(2, "");
  absl::StatusOr<v1::CreateJobResponse> first = jobs_->Create(request);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(first->created());
  EXPECT_EQ(first->job().job_id().size(), 16u);
  absl::StatusOr<v1::CreateJobResponse> again = jobs_->Create(request);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->created());
  EXPECT_EQ(again->job().job_id(), first->job().job_id());

  request.set_job_id(first->job().job_id());
  request.set_shard_prompts(1, "{\"text\": \"other\"}\n");
  EXPECT_EQ(jobs_->Create(request).status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(jobs_->List({})->jobs_size(), 1);
}

TEST_F(JobRegistryTest, BadInputIsRefusedWithTheRightCodeAndStoresNothing) {
  ASSERT_TRUE(jobs_->Create(JobRequest(2)).ok());
  const v1::ShardLease a = Lease();
  const std::vector<std::string> before = Snapshot(*store_);
  auto code = [](const absl::Status& st) { return st.code(); };

  v1::CreateJobRequest r = JobRequest(2, "job2");
  r.set_model_id("nope");
  EXPECT_EQ(code(jobs_->Create(r).status()), absl::StatusCode::kNotFound);
  EXPECT_EQ(code(jobs_->Create(JobRequest(0, "job2")).status()),
            absl::StatusCode::kInvalidArgument);
  r = JobRequest(2, "job2");
  r.set_shard_prompts(1, "");
  EXPECT_EQ(code(jobs_->Create(r).status()), absl::StatusCode::kInvalidArgument);
  r = JobRequest(2, "job2");
  r.set_tokens_per_shard(0);
  EXPECT_EQ(code(jobs_->Create(r).status()), absl::StatusCode::kInvalidArgument);
  r = JobRequest(2, "job2");
  r.set_lease_seconds(-1);
  EXPECT_EQ(code(jobs_->Create(r).status()), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(jobs_->Create(JobRequest(2, "bad/id")).status()),
            absl::StatusCode::kInvalidArgument);

  EXPECT_EQ(code(jobs_->Get("nope").status()), absl::StatusCode::kNotFound);
  EXPECT_EQ(code(jobs_->Cancel("nope").status()), absl::StatusCode::kNotFound);
  for (const char* lease : {"nope", "job1:0:2", "job1:9:1", "other:0:1", "job1:0:0"}) {
    EXPECT_EQ(code(jobs_->Commit(lease).status()), absl::StatusCode::kNotFound) << lease;
    EXPECT_EQ(code(jobs_->Heartbeat(lease).status()), absl::StatusCode::kNotFound) << lease;
  }
  v1::ShardLease unknown = a;
  unknown.set_lease_id("job1:1:1");
  EXPECT_EQ(code(Upload(unknown, ShardStats(0))), absl::StatusCode::kNotFound);
  // Statistics of another shape (2 layers, the model has 3), and corrupt bytes.
  EXPECT_EQ(code(Upload(a, TestStats(0, /*layers=*/2).Serialize())),
            absl::StatusCode::kInvalidArgument);
  std::string corrupt = ShardStats(0);
  corrupt[corrupt.size() / 2] ^= 0x5a;
  EXPECT_EQ(code(Upload(a, corrupt)), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(Upload(a, "")), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(jobs_->Commit(a.lease_id()).status()), absl::StatusCode::kFailedPrecondition)
      << "nothing uploaded";
  v1::LeaseShardRequest no_worker;
  EXPECT_EQ(code(jobs_->Lease(no_worker).status()), absl::StatusCode::kInvalidArgument);
  v1::LeaseShardRequest unknown_job;
  unknown_job.set_worker_id("w");
  unknown_job.set_job_id("nope");
  EXPECT_EQ(code(jobs_->Lease(unknown_job).status()), absl::StatusCode::kNotFound);

  v1::CreatePlanRequest plan;
  plan.set_model_id("tiny");
  plan.set_job_id("job1");
  plan.mutable_options()->set_k_bits(3);
  plan.mutable_options()->set_v_bits(3);
  EXPECT_EQ(code(plans_->Create(plan).status()), absl::StatusCode::kFailedPrecondition)
      << "the job is still running";
  plan.set_job_id("nope");
  EXPECT_EQ(code(plans_->Create(plan).status()), absl::StatusCode::kNotFound);
  EXPECT_EQ(Snapshot(*store_), before);
}

}  // namespace
}  // namespace kvplan::server
