// Plan validation results and promotion gated on them: the verdict rule, the
// PlanService/ChannelService RPCs over real gRPC on loopback against a real
// RocksDB store, and the upgrade of a schema-2 store.
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "core/digest.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "kvplan/v1/channel_service.grpc.pb.h"
#include "kvplan/v1/model_service.grpc.pb.h"
#include "kvplan/v1/plan_service.grpc.pb.h"
#include "rocksdb/db.h"
#include "server/coordinator_server.h"
#include "server/store.h"
#include "server/validation_registry.h"
#include "tests/server/server_test_util.h"

namespace kvplan::server {
namespace {

using ::kvplan::testing::kFingerprint;
using ::kvplan::testing::TempDir;
using ::kvplan::testing::TestCalibrationFile;
using ::kvplan::testing::TestModelRequest;

constexpr char kToken[] = "validation-token";

// A result for a plan of `layers` layers at `k_bits` where the plan's MAE is
// `ratio` times uniform's on every layer.
v1::PlanValidation Result(const std::string& plan_id, double k_bits, int layers = 3,
                          double ratio = 0.8) {
  v1::PlanValidation v;
  v.set_plan_id(plan_id);
  v.set_worker_id("test-worker");
  v.set_model_fingerprint(kFingerprint);
  v.set_prompt_set_sha256(Sha256Hex("prompts"));
  v.set_tokens(2048);
  v.set_chunk_tokens(256);
  v.set_offsets(50);
  v.set_uniform_k_bits(k_bits);
  for (int l = 0; l < layers; ++l) {
    v1::LayerValidation* layer = v.add_layers();
    layer->set_layer(l);
    layer->set_uniform_mae(1.0 + l);
    layer->set_plan_mae(ratio * (1.0 + l));
    layer->set_uniform_kl(0.02);
    layer->set_plan_kl(0.01);
    layer->set_uniform_top10(0.9);
    layer->set_plan_top10(0.95);
  }
  return v;
}

KvPlan FourLayerPlan() {
  KvPlan plan;
  plan.num_layers = 4;
  plan.model_fingerprint = kFingerprint;
  plan.options.k_bits = 3;
  return plan;
}

TEST(ValidationRuleTest, PassNeedsALowerMeanAndEnoughLayersWon) {
  const KvPlan plan = FourLayerPlan();
  v1::PlanValidation v = Result("p", 3, 4);
  // Wins layers 0-2 by 20 %, loses layer 3 slightly: 3/4 won, lower mean.
  v.mutable_layers(3)->set_plan_mae(4.1);
  ASSERT_TRUE(JudgeValidation(plan, {.min_win_fraction = 0.75}, v).ok());
  EXPECT_TRUE(v.passed()) << v.verdict();
  EXPECT_EQ(v.layers_won(), 3);
  EXPECT_NEAR(v.plan_mae_mean(), (0.8 + 1.6 + 2.4 + 4.1) / 4, 1e-12);
  EXPECT_NEAR(v.uniform_mae_mean(), 2.5, 1e-12);
  EXPECT_NEAR(v.mae_reduction_mean(), (0.2 * 3 + (1 - 4.1 / 4)) / 4, 1e-12);
  EXPECT_EQ(v.min_win_fraction(), 0.75);
  // Requiring every layer fails it, and the verdict says why.
  ASSERT_TRUE(JudgeValidation(plan, {.min_win_fraction = 1.0}, v).ok());
  EXPECT_FALSE(v.passed());
  EXPECT_NE(v.verdict().find("too few layers won"), std::string::npos) << v.verdict();
  // Three small wins and one large loss: enough layers, but the mean is worse.
  v = Result("p", 3, 4, 0.99);
  v.mutable_layers(3)->set_plan_mae(8.0);
  ASSERT_TRUE(JudgeValidation(plan, {.min_win_fraction = 0.75}, v).ok());
  EXPECT_FALSE(v.passed());
  EXPECT_NE(v.verdict().find("mean MAE is not below"), std::string::npos) << v.verdict();
  // A uniform plan measured against itself ties everywhere: it does not pass.
  v = Result("p", 3, 4, 1.0);
  ASSERT_TRUE(JudgeValidation(plan, {}, v).ok());
  EXPECT_FALSE(v.passed());
  EXPECT_FALSE(CheckValidationRule({.min_win_fraction = 0}).ok());
  EXPECT_FALSE(CheckValidationRule({.min_win_fraction = 1.5}).ok());
}

class PlanValidationTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(); }

  void Start(CoordinatorOptions options = {}) {
    options.listen = "127.0.0.1:0";
    options.data_dir = dir_.Path("db");
    options.auth_token = kToken;
    absl::StatusOr<std::unique_ptr<CoordinatorServer>> server = CoordinatorServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials());
    models_ = v1::ModelService::NewStub(channel_);
    plans_ = v1::PlanService::NewStub(channel_);
    channels_ = v1::ChannelService::NewStub(channel_);
    v1::RegisterModelResponse registered;
    ASSERT_TRUE(models_->RegisterModel(Context().get(), TestModelRequest(), &registered).ok());
    for (double k_bits : {3.0, 2.5}) {
      v1::CreatePlanRequest request;
      request.set_model_id("tiny");
      request.set_stats(TestCalibrationFile());
      request.mutable_options()->set_k_bits(k_bits);
      request.mutable_options()->set_v_bits(3);
      v1::CreatePlanResponse created;
      grpc::Status st = plans_->CreatePlan(Context().get(), request, &created);
      ASSERT_TRUE(st.ok()) << st.error_message();
      plan_ids_.push_back(created.version().plan_id());
    }
  }

  std::unique_ptr<grpc::ClientContext> Context(const std::string& token = kToken) {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    if (!token.empty()) context->AddMetadata("authorization", "Bearer " + token);
    return context;
  }

  grpc::Status Attach(const v1::PlanValidation& v, v1::AttachValidationResponse* response,
                      const std::string& token = kToken) {
    v1::AttachValidationRequest request;
    *request.mutable_validation() = v;
    return plans_->AttachValidation(Context(token).get(), request, response);
  }

  std::vector<v1::PlanValidation> Stored(const std::string& plan_id) {
    v1::ListValidationsRequest request;
    request.set_plan_id(plan_id);
    v1::ListValidationsResponse response;
    grpc::Status st = plans_->ListValidations(Context("").get(), request, &response);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return {response.validations().begin(), response.validations().end()};
  }

  grpc::Status Promote(uint64_t version, bool require_validation, v1::ChannelMove* move,
                       const std::string& channel = "stable") {
    v1::PromoteRequest request;
    request.set_model_id("tiny");
    request.set_channel(channel);
    request.set_plan_name("default");
    request.set_version(version);
    request.set_require_validation(require_validation);
    return channels_->Promote(Context().get(), request, move);
  }

  int Moves() {
    v1::HistoryRequest request;
    request.set_model_id("tiny");
    v1::HistoryResponse response;
    EXPECT_TRUE(channels_->History(Context("").get(), request, &response).ok());
    return response.moves_size();
  }

  TempDir dir_;
  std::unique_ptr<CoordinatorServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::ModelService::Stub> models_;
  std::unique_ptr<v1::PlanService::Stub> plans_;
  std::unique_ptr<v1::ChannelService::Stub> channels_;
  // default v1 (K 3 b/dim) and v2 (K 2.5 b/dim).
  std::vector<std::string> plan_ids_;
};

TEST_F(PlanValidationTest, AttachedResultsAreJudgedStoredAndReturnedWithThePlan) {
  v1::GetPlanRequest get;
  get.set_plan_id(plan_ids_[0]);
  v1::GetPlanResponse before;
  ASSERT_TRUE(plans_->GetPlan(Context("").get(), get, &before).ok());
  EXPECT_FALSE(before.has_validation());

  v1::AttachValidationResponse attached;
  grpc::Status st = Attach(Result(plan_ids_[0], 3), &attached);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_TRUE(attached.created());
  EXPECT_TRUE(attached.validation().passed()) << attached.validation().verdict();
  EXPECT_EQ(attached.validation().sequence(), 1u);
  EXPECT_EQ(attached.validation().layers_won(), 3);
  EXPECT_NEAR(attached.validation().mae_reduction_mean(), 0.2, 1e-12);

  // A retry stores nothing; the plan (and its digest) never changes.
  v1::AttachValidationResponse again;
  ASSERT_TRUE(Attach(Result(plan_ids_[0], 3), &again).ok());
  EXPECT_FALSE(again.created());
  EXPECT_EQ(again.validation().sequence(), 1u);
  v1::GetPlanResponse after;
  ASSERT_TRUE(plans_->GetPlan(Context("").get(), get, &after).ok());
  EXPECT_EQ(after.plan_json(), before.plan_json());
  EXPECT_EQ(after.validation().sequence(), 1u);
  EXPECT_TRUE(after.validation().passed());

  // A second, different result is the latest; both are listed, oldest first.
  ASSERT_TRUE(Attach(Result(plan_ids_[0], 3, 3, 1.2), &attached).ok());
  EXPECT_FALSE(attached.validation().passed());
  std::vector<v1::PlanValidation> stored = Stored(plan_ids_[0]);
  ASSERT_EQ(stored.size(), 2u);
  EXPECT_EQ(stored[0].sequence(), 1u);
  EXPECT_EQ(stored[1].sequence(), 2u);
  get.Clear();
  get.mutable_version()->set_model_id("tiny");
  get.mutable_version()->set_version(1);
  ASSERT_TRUE(plans_->GetPlan(Context("").get(), get, &after).ok());
  EXPECT_EQ(after.validation().sequence(), 2u);
  EXPECT_TRUE(Stored(plan_ids_[1]).empty());

  // Survives a restart.
  server_.reset();
  Start();
  EXPECT_EQ(Stored(plan_ids_[0]).size(), 2u);
}

TEST_F(PlanValidationTest, BadResultsGetTheRightCodesAndStoreNothing) {
  v1::AttachValidationResponse response;
  auto code = [&](const v1::PlanValidation& v) { return Attach(v, &response).error_code(); };
  v1::PlanValidation v = Result(plan_ids_[0], 3);
  v.mutable_layers(1)->set_plan_mae(std::nan(""));
  EXPECT_EQ(code(v), grpc::StatusCode::INVALID_ARGUMENT);
  v = Result(plan_ids_[0], 3);
  v.mutable_layers(2)->set_uniform_kl(-0.1);
  EXPECT_EQ(code(v), grpc::StatusCode::INVALID_ARGUMENT);
  v = Result(plan_ids_[0], 3);
  v.mutable_layers(0)->set_plan_top10(1.5);
  EXPECT_EQ(code(v), grpc::StatusCode::INVALID_ARGUMENT);
  grpc::Status st = Attach(Result(plan_ids_[0], 3, /*layers=*/2), &response);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("plan's model has 3"), std::string::npos) << st.error_message();
  v = Result(plan_ids_[0], 3);
  v.mutable_layers(1)->set_layer(2);
  EXPECT_EQ(code(v), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(code(Result(plan_ids_[0], /*k_bits=*/2.5)), grpc::StatusCode::INVALID_ARGUMENT);
  v = Result(plan_ids_[0], 3);
  v.set_prompt_set_sha256("not-a-hash");
  EXPECT_EQ(code(v), grpc::StatusCode::INVALID_ARGUMENT);
  v = Result(plan_ids_[0], 3);
  v.set_worker_id("");
  EXPECT_EQ(code(v), grpc::StatusCode::INVALID_ARGUMENT);
  v = Result(plan_ids_[0], 3);
  v.set_tokens(0);
  EXPECT_EQ(code(v), grpc::StatusCode::INVALID_ARGUMENT);
  v = Result(plan_ids_[0], 3);
  v.set_model_fingerprint("fp-some-other-model");
  st = Attach(v, &response);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(st.error_message().find("fp-some-other-model"), std::string::npos)
      << st.error_message();
  EXPECT_EQ(code(Result(Sha256Hex("no such plan"), 3)), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(code(Result("../../etc", 3)), grpc::StatusCode::INVALID_ARGUMENT);

  // Writes need the token; reads do not.
  EXPECT_EQ(Attach(Result(plan_ids_[0], 3), &response, "").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Attach(Result(plan_ids_[0], 3), &response, "wrong").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(Stored(plan_ids_[0]).empty());
  v1::ListValidationsRequest list;
  list.set_plan_id(Sha256Hex("no such plan"));
  v1::ListValidationsResponse listed;
  EXPECT_EQ(plans_->ListValidations(Context("").get(), list, &listed).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(PlanValidationTest, PromotionRequiringValidationNeedsAPassingLatestResult) {
  v1::ChannelMove move;
  grpc::Status st = Promote(1, /*require_validation=*/true, &move);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(st.error_message().find(plan_ids_[0]), std::string::npos) << st.error_message();
  EXPECT_NE(st.error_message().find("no validation result"), std::string::npos)
      << st.error_message();
  EXPECT_EQ(Moves(), 0);

  v1::AttachValidationResponse attached;
  ASSERT_TRUE(Attach(Result(plan_ids_[0], 3, 3, 1.1), &attached).ok());
  st = Promote(1, true, &move);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(st.error_message().find("failed"), std::string::npos) << st.error_message();
  EXPECT_EQ(Moves(), 0);

  ASSERT_TRUE(Attach(Result(plan_ids_[0], 3), &attached).ok());
  st = Promote(1, true, &move);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(move.to().plan_id(), plan_ids_[0]);
  // Without the requirement (and no channel policy) an unvalidated plan moves.
  ASSERT_TRUE(Promote(2, false, &move, "canary").ok());
  EXPECT_EQ(Moves(), 2);
}

TEST_F(PlanValidationTest, AChannelPolicyGatesEveryPromotionButNotRollback) {
  v1::ChannelMove move;
  ASSERT_TRUE(Promote(1, false, &move).ok());  // Before the policy: not gated.

  v1::ChannelPolicy policy;
  policy.set_model_id("tiny");
  policy.set_channel("stable");
  policy.set_require_validation(true);
  v1::ChannelPolicy set;
  EXPECT_EQ(channels_->SetChannelPolicy(Context("").get(), policy, &set).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  ASSERT_TRUE(channels_->SetChannelPolicy(Context().get(), policy, &set).ok());
  v1::GetChannelPolicyRequest get;
  get.set_model_id("tiny");
  get.set_channel("stable");
  v1::ChannelPolicy got;
  ASSERT_TRUE(channels_->GetChannelPolicy(Context("").get(), get, &got).ok());
  EXPECT_TRUE(got.require_validation());
  get.set_channel("canary");
  ASSERT_TRUE(channels_->GetChannelPolicy(Context("").get(), get, &got).ok());
  EXPECT_FALSE(got.require_validation());

  // v2 is unvalidated: refused even though the request does not ask, and
  // the channel stays on v1.
  grpc::Status st = Promote(2, false, &move);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(st.error_message().find("channel's policy"), std::string::npos) << st.error_message();
  EXPECT_NE(st.error_message().find(plan_ids_[1]), std::string::npos) << st.error_message();
  v1::GetPlanRequest current;
  current.mutable_channel()->set_model_id("tiny");
  current.mutable_channel()->set_channel("stable");
  v1::GetPlanResponse plan;
  ASSERT_TRUE(plans_->GetPlan(Context("").get(), current, &plan).ok());
  EXPECT_EQ(plan.version().plan_id(), plan_ids_[0]);
  EXPECT_EQ(Moves(), 1);

  v1::AttachValidationResponse attached;
  ASSERT_TRUE(Attach(Result(plan_ids_[1], 2.5), &attached).ok());
  ASSERT_TRUE(Promote(2, false, &move).ok());
  // Rollback returns to v1, which was never validated: not gated.
  v1::RollbackRequest rollback;
  rollback.set_model_id("tiny");
  rollback.set_channel("stable");
  ASSERT_TRUE(channels_->Rollback(Context().get(), rollback, &move).ok());
  EXPECT_EQ(move.to().plan_id(), plan_ids_[0]);

  // The policy survives a restart, and can be lifted.
  server_.reset();
  Start();
  get.set_channel("stable");
  ASSERT_TRUE(channels_->GetChannelPolicy(Context("").get(), get, &got).ok());
  EXPECT_TRUE(got.require_validation());
  policy.set_require_validation(false);
  ASSERT_TRUE(channels_->SetChannelPolicy(Context().get(), policy, &set).ok());
  // Start() created the plans again (same content: no new versions). Without
  // the policy, the unvalidated v1 moves again.
  ASSERT_TRUE(Promote(2, false, &move).ok());
  ASSERT_TRUE(Promote(1, false, &move).ok());
  EXPECT_EQ(move.to().version(), 1u);
  policy.set_model_id("missing");
  EXPECT_EQ(channels_->SetChannelPolicy(Context().get(), policy, &set).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

// A store written by the schema-2 coordinator (no plan_validations family)
// opens, keeps every record, is marked version 3 and takes validations.
TEST(StoreMigrationTest, ASchemaTwoStoreOpensKeepsItsDataAndGainsValidations) {
  TempDir dir;
  const std::string path = dir.Path("db");
  {
    const std::vector<std::string> v2_families = {
        "models", "stats", "plans",      "plan_versions", "channels",   "channel_history",
        "meta",   "jobs",  "job_shards", "shard_prompts", "shard_stats"};
    rocksdb::DBOptions options;
    options.create_if_missing = true;
    options.create_missing_column_families = true;
    std::vector<rocksdb::ColumnFamilyDescriptor> descriptors = {
        {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions()}};
    for (const std::string& name : v2_families) descriptors.push_back({name, {}});
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(options, path, descriptors, &handles, &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    rocksdb::WriteOptions write;
    write.sync = true;
    ASSERT_TRUE(db->Put(write, handles[1], "tiny", "model-record").ok());
    ASSERT_TRUE(db->Put(write, handles[3], "digest-a", "plan-json").ok());
    ASSERT_TRUE(db->Put(write, handles[7], "schema_version", "2").ok());
    for (rocksdb::ColumnFamilyHandle* h : handles)
      ASSERT_TRUE(db->DestroyColumnFamilyHandle(h).ok());
    ASSERT_TRUE(db->Close().ok());
  }
  {
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open({.path = path});
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_EQ(**(*store)->Get(Family::kMeta, "schema_version"), "3");
    EXPECT_EQ(**(*store)->Get(Family::kModels, "tiny"), "model-record");
    EXPECT_EQ(**(*store)->Get(Family::kPlans, "digest-a"), "plan-json");
    Store::Batch batch;
    batch.Put(Family::kPlanValidations, "digest-a/" + EncodeBe64(1), "result");
    ASSERT_TRUE((*store)->Commit(batch).ok());
  }
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open({.path = path});
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ(**(*store)->Get(Family::kPlanValidations, "digest-a/" + EncodeBe64(1)), "result");
  EXPECT_EQ(**(*store)->Get(Family::kModels, "tiny"), "model-record");
}

}  // namespace
}  // namespace kvplan::server
