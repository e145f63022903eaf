// The gRPC services over real sockets (127.0.0.1, port 0) against an in-process
// coordinator: auth, message size, WatchPlans, artifacts, plan cache metrics,
// health.
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "core/codebook.h"
#include "core/digest.h"
#include "core/plan_sidecar.h"
#include "core/rotation.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "kvplan/v1/artifact_service.grpc.pb.h"
#include "kvplan/v1/channel_service.grpc.pb.h"
#include "kvplan/v1/model_service.grpc.pb.h"
#include "kvplan/v1/plan_service.grpc.pb.h"
#include "server/coordinator_server.h"
#include "tests/server/coordinator_process.h"
#include "tests/server/server_test_util.h"

namespace kvplan::server {
namespace {

using ::kvplan::testing::TempDir;
using ::kvplan::testing::TestCalibrationFile;
using ::kvplan::testing::TestModelRequest;

constexpr char kToken[] = "s3cret-token";

class ServiceTest : public ::testing::Test {
 protected:
  void Start(CoordinatorOptions options = {}) {
    options.listen = "127.0.0.1:0";
    options.data_dir = dir_.Path("db");
    absl::StatusOr<std::unique_ptr<CoordinatorServer>> server = CoordinatorServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ASSERT_NE(server_->port(), 0);
    grpc::ChannelArguments args;
    args.SetMaxSendMessageSize(256 << 20);
    channel_ =
        grpc::CreateCustomChannel(server_->address(), grpc::InsecureChannelCredentials(), args);
    models_ = v1::ModelService::NewStub(channel_);
    plans_ = v1::PlanService::NewStub(channel_);
    channels_ = v1::ChannelService::NewStub(channel_);
  }
  std::unique_ptr<grpc::ClientContext> Context(const std::string& token = kToken) {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    if (!token.empty()) context->AddMetadata("authorization", "Bearer " + token);
    return context;
  }
  v1::CreatePlanRequest PlanRequest(double k_bits, int v_bits) {
    v1::CreatePlanRequest r;
    r.set_model_id("tiny");
    r.set_name("main");
    r.set_stats(TestCalibrationFile());
    r.mutable_options()->set_k_bits(k_bits);
    r.mutable_options()->set_v_bits(v_bits);
    return r;
  }
  void RegisterAndCreate(int plans) {
    v1::RegisterModelResponse registered;
    ASSERT_TRUE(models_->RegisterModel(Context().get(), TestModelRequest(), &registered).ok());
    for (int i = 0; i < plans; ++i) {
      v1::CreatePlanResponse created;
      grpc::Status st = plans_->CreatePlan(Context().get(), PlanRequest(2 + 0.5 * i, 3), &created);
      ASSERT_TRUE(st.ok()) << st.error_message();
    }
  }
  // A CreatePlan that must fail with `code`, its message containing `message`.
  struct RefusedPlan {
    v1::CreatePlanRequest request;
    grpc::StatusCode code;
    std::string message;
  };
  // Sends each request and checks its refusal, then that no plan version of
  // "tiny" was stored by any of them.
  void ExpectRefusedStoringNothing(const std::vector<RefusedPlan>& refused) {
    v1::ListPlansRequest list;
    list.set_model_id("tiny");
    v1::ListPlansResponse before;
    ASSERT_TRUE(plans_->ListPlans(Context().get(), list, &before).ok());
    for (const RefusedPlan& r : refused) {
      v1::CreatePlanResponse response;
      grpc::Status st = plans_->CreatePlan(Context().get(), r.request, &response);
      EXPECT_EQ(st.error_code(), r.code) << st.error_message();
      EXPECT_NE(st.error_message().find(r.message), std::string::npos) << st.error_message();
    }
    v1::ListPlansResponse after;
    ASSERT_TRUE(plans_->ListPlans(Context().get(), list, &after).ok());
    EXPECT_EQ(after.versions_size(), before.versions_size()) << "nothing stored";
  }
  v1::ChannelMove Promote(const std::string& channel, uint64_t version) {
    v1::PromoteRequest request;
    request.set_model_id("tiny");
    request.set_channel(channel);
    request.set_plan_name("main");
    request.set_version(version);
    v1::ChannelMove move;
    grpc::Status st = channels_->Promote(Context().get(), request, &move);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return move;
  }

  TempDir dir_;
  std::unique_ptr<CoordinatorServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::ModelService::Stub> models_;
  std::unique_ptr<v1::PlanService::Stub> plans_;
  std::unique_ptr<v1::ChannelService::Stub> channels_;
};

TEST_F(ServiceTest, WritesNeedTheTokenAndReadsDoNot) {
  Start({.auth_token = kToken});
  v1::RegisterModelResponse response;
  grpc::Status missing = models_->RegisterModel(Context("").get(), TestModelRequest(), &response);
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  grpc::Status wrong = models_->RegisterModel(Context("nope").get(), TestModelRequest(), &response);
  EXPECT_EQ(wrong.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  v1::ListModelsResponse list;
  ASSERT_TRUE(models_->ListModels(Context("").get(), v1::ListModelsRequest(), &list).ok());
  EXPECT_EQ(list.models_size(), 0);  // Nothing was stored by the refused writes.
  RegisterAndCreate(1);
  v1::CreatePlanResponse created;
  EXPECT_EQ(plans_->CreatePlan(Context("nope").get(), PlanRequest(4, 4), &created).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  v1::ListPlansRequest list_plans;
  list_plans.set_model_id("tiny");
  v1::ListPlansResponse plans;
  ASSERT_TRUE(plans_->ListPlans(Context("").get(), list_plans, &plans).ok());
  EXPECT_EQ(plans.versions_size(), 1);
}

TEST_F(ServiceTest, OversizedRequestsAreRefusedAndStoreNothing) {
  Start({.max_receive_message_bytes = 64 << 10});
  RegisterAndCreate(0);
  v1::CreatePlanRequest request = PlanRequest(3, 3);
  request.set_stats(std::string(200 << 10, 'x'));
  v1::CreatePlanResponse response;
  grpc::Status st = plans_->CreatePlan(Context().get(), request, &response);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(st.error_message().find("larger than max"), std::string::npos) << st.error_message();
  v1::ListPlansRequest list;
  list.set_model_id("tiny");
  v1::ListPlansResponse plans;
  ASSERT_TRUE(plans_->ListPlans(Context().get(), list, &plans).ok());
  EXPECT_EQ(plans.versions_size(), 0);
}

TEST_F(ServiceTest, BadInputGetsTheRightCodes) {
  Start();
  RegisterAndCreate(0);
  v1::CreatePlanResponse response;
  v1::CreatePlanRequest request = PlanRequest(3, 3);
  request.set_model_id("missing");
  EXPECT_EQ(plans_->CreatePlan(Context().get(), request, &response).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(plans_->CreatePlan(Context().get(), PlanRequest(8.5, 3), &response).error_code(),
            grpc::StatusCode::OUT_OF_RANGE);
  request = PlanRequest(3, 3);
  request.set_stats("KVPS garbage");
  EXPECT_EQ(plans_->CreatePlan(Context().get(), request, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  v1::GetPlanRequest get;
  get.mutable_channel()->set_model_id("tiny");
  get.mutable_channel()->set_channel("stable");
  v1::GetPlanResponse plan;
  EXPECT_EQ(plans_->GetPlan(Context().get(), get, &plan).error_code(), grpc::StatusCode::NOT_FOUND);
}

// Exempt layers travel the wire: the stored plan keeps layers 0 and 2 (of 3)
// at 8 bits for K and V, its export carries them, and DiffPlans counts their
// V bytes; a bad layer is refused by name before anything is stored.
TEST_F(ServiceTest, CreatePlanWithExemptLayers) {
  Start();
  RegisterAndCreate(0);
  v1::CreatePlanRequest request = PlanRequest(2, 2);
  request.add_exempt_layers(0);
  request.add_exempt_layers(2);  // exempt_bits 0: the default, 8.
  v1::CreatePlanResponse created;
  grpc::Status st = plans_->CreatePlan(Context().get(), request, &created);
  ASSERT_TRUE(st.ok()) << st.error_message();
  absl::StatusOr<KvPlan> plan = PlanFromJson(created.plan_json());
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->options.exempt_layers, (std::vector<int>{0, 2}));
  EXPECT_EQ(plan->options.exempt_bits, 8);
  EXPECT_EQ(plan->KBlockBits(2, 1), std::vector<int>(8, 8));
  EXPECT_EQ(plan->VBits(1), 2);
  EXPECT_EQ(created.version().plan_id(), PlanDigest(*plan));

  v1::ExportPlanRequest export_request;
  export_request.set_plan_id(created.version().plan_id());
  v1::ExportPlanResponse exported;
  ASSERT_TRUE(plans_->ExportPlan(Context().get(), export_request, &exported).ok());
  absl::StatusOr<PlanSidecar> sidecar = ParsePlanSidecar(exported.sidecar());
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  EXPECT_EQ(sidecar->exempt_layers, plan->options.exempt_layers);
  EXPECT_EQ(sidecar->VBits(0), 8);

  v1::CreatePlanResponse plain;
  ASSERT_TRUE(plans_->CreatePlan(Context().get(), PlanRequest(2, 2), &plain).ok());
  v1::DiffPlansRequest diff_request;
  diff_request.set_from_plan_id(plain.version().plan_id());
  diff_request.set_to_plan_id(created.version().plan_id());
  v1::DiffPlansResponse diff;
  ASSERT_TRUE(plans_->DiffPlans(Context().get(), diff_request, &diff).ok());
  absl::StatusOr<KvPlan> plain_plan = PlanFromJson(plain.plan_json());
  ASSERT_TRUE(plain_plan.ok()) << plain_plan.status();
  EXPECT_EQ(diff.from_bytes_per_token(), PlanBytesPerToken(*plain_plan).total());
  EXPECT_EQ(diff.to_bytes_per_token(), PlanBytesPerToken(*plan).total());
  // Two exempt layers x 2 KV heads store V's 16 dims at 8 bits instead of 2.
  EXPECT_EQ(PlanBytesPerToken(*plan).v() - PlanBytesPerToken(*plain_plan).v(), 4 * 16 * 6 / 8.0);

  auto exempt = [&](std::vector<int> layers, int bits) {
    v1::CreatePlanRequest r = PlanRequest(3, 3);
    r.set_name("refused");
    for (int layer : layers) r.add_exempt_layers(layer);
    r.set_exempt_bits(bits);
    return r;
  };
  ExpectRefusedStoringNothing({
      {exempt({0, 3}, 0), grpc::StatusCode::INVALID_ARGUMENT, "exempt layer 3 is outside"},
      {exempt({2, 0}, 0), grpc::StatusCode::INVALID_ARGUMENT, "exempt layer 0 is out of order"},
      {exempt({1, 1}, 0), grpc::StatusCode::INVALID_ARGUMENT, "exempt layer 1 is repeated"},
      {exempt({1}, 9), grpc::StatusCode::OUT_OF_RANGE, "width 9 bits"},
  });
}

// k_group_align travels the wire: every K width group of the stored plan is a
// multiple of 8 dims (two 4-block groups per head_dim-16 head), the plan is
// not the greedy one, and bad alignments are refused by value before anything
// is stored.
TEST_F(ServiceTest, CreatePlanWithKGroupAlign) {
  Start();
  RegisterAndCreate(0);
  v1::CreatePlanResponse plain;
  ASSERT_TRUE(plans_->CreatePlan(Context().get(), PlanRequest(2.5, 2), &plain).ok());
  v1::CreatePlanRequest request = PlanRequest(2.5, 2);
  request.set_k_group_align(8);
  v1::CreatePlanResponse created;
  grpc::Status st = plans_->CreatePlan(Context().get(), request, &created);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_TRUE(created.created());
  absl::StatusOr<KvPlan> plan = PlanFromJson(created.plan_json());
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->options.k_group_align, 8);
  EXPECT_EQ(created.version().plan_id(), PlanDigest(*plan));
  EXPECT_NE(created.version().plan_id(), plain.version().plan_id());
  absl::StatusOr<KvPlan> plain_plan = PlanFromJson(plain.plan_json());
  ASSERT_TRUE(plain_plan.ok()) << plain_plan.status();
  EXPECT_NE(plan->k_block_bits, plain_plan->k_block_bits) << "the greedy's groups are not aligned";
  for (int l = 0; l < plan->num_layers; ++l) {
    for (int h = 0; h < plan->num_kv_heads; ++h) {
      absl::StatusOr<GroupLayout> layout = plan->KLayout(l, h);
      ASSERT_TRUE(layout.ok()) << layout.status();
      for (const QuantGroup& g : layout->groups) EXPECT_EQ(g.size % 8, 0) << l << "." << h;
    }
  }
  v1::GetPlanRequest get;
  get.set_plan_id(created.version().plan_id());
  v1::GetPlanResponse got;
  ASSERT_TRUE(plans_->GetPlan(Context().get(), get, &got).ok());
  EXPECT_NE(got.plan_json().find("\"k_group_align\": 8"), std::string::npos) << got.plan_json();

  auto aligned = [&](int align, bool uniform) {
    v1::CreatePlanRequest r = PlanRequest(3, 3);
    r.set_name("refused");
    r.set_k_group_align(align);
    if (uniform) r.mutable_options()->set_k_scheme(v1::BudgetOptions::UNIFORM);
    return r;
  };
  ExpectRefusedStoringNothing({
      {aligned(6, false), grpc::StatusCode::INVALID_ARGUMENT,
       "k_group_align 6 does not split head_dim 16 into whole groups"},
      {aligned(32, false), grpc::StatusCode::INVALID_ARGUMENT, "use 0 (off) or one of 2, 4, 8, 16"},
      {aligned(-8, false), grpc::StatusCode::OUT_OF_RANGE, "k_group_align -8 is negative"},
      {aligned(8, true), grpc::StatusCode::INVALID_ARGUMENT, "applies to the block-gtq scheme"},
  });
}

TEST_F(ServiceTest, WatchPlansDeliversEveryMoveInOrderToTwoWatchersAndResumes) {
  Start();
  RegisterAndCreate(3);
  constexpr int kMoves = 6;
  auto watch = [&](uint64_t after, int want, std::vector<uint64_t>* seen) {
    grpc::ClientContext context;
    v1::WatchPlansRequest request;
    request.set_model_id("tiny");
    request.set_after_sequence(after);
    std::unique_ptr<grpc::ClientReader<v1::ChannelMove>> reader =
        channels_->WatchPlans(&context, request);
    v1::ChannelMove move;
    while (static_cast<int>(seen->size()) < want && reader->Read(&move)) {
      seen->push_back(move.sequence());
    }
    context.TryCancel();
    reader->Finish().IgnoreError();
  };
  std::vector<uint64_t> a, b;
  std::thread watcher_a(watch, 0, kMoves, &a);
  std::thread watcher_b(watch, 0, kMoves, &b);
  // Promotions alternate between two channels while the watchers are live.
  for (int i = 0; i < kMoves; ++i) Promote(i % 2 ? "canary" : "stable", 1 + (i / 2) % 3);
  watcher_a.join();
  watcher_b.join();
  const std::vector<uint64_t> want = {1, 2, 3, 4, 5, 6};
  EXPECT_EQ(a, want);
  EXPECT_EQ(b, want);

  // A watcher that saw up to 4 reconnects and gets exactly 5, 6, then the new 7.
  std::vector<uint64_t> resumed;
  std::thread watcher_c(watch, 4, 3, &resumed);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  Promote("stable", 1);  // stable is at v3 after the loop; this is a real move.
  watcher_c.join();
  EXPECT_EQ(resumed, (std::vector<uint64_t>{5, 6, 7}));
}

TEST_F(ServiceTest, ShutdownEndsWatchersWithUnavailable) {
  Start();
  RegisterAndCreate(1);
  grpc::ClientContext context;
  v1::WatchPlansRequest request;
  std::unique_ptr<grpc::ClientReader<v1::ChannelMove>> reader =
      channels_->WatchPlans(&context, request);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const auto start = std::chrono::steady_clock::now();
  server_->Shutdown(absl::Seconds(5));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  v1::ChannelMove move;
  EXPECT_FALSE(reader->Read(&move));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(ServiceTest, ExportAndRotationsMatchThePlan) {
  Start();
  RegisterAndCreate(1);
  v1::ListPlansRequest list;
  list.set_model_id("tiny");
  v1::ListPlansResponse plans;
  ASSERT_TRUE(plans_->ListPlans(Context().get(), list, &plans).ok());
  v1::ExportPlanRequest request;
  request.set_plan_id(plans.versions(0).plan_id());
  v1::ExportPlanResponse exported;
  ASSERT_TRUE(plans_->ExportPlan(Context().get(), request, &exported).ok());
  absl::StatusOr<KvPlan> plan = PlanFromJson(exported.plan_json());
  ASSERT_TRUE(plan.ok());
  absl::StatusOr<PlanSidecar> sidecar = ParsePlanSidecar(exported.sidecar());
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  EXPECT_EQ(sidecar->digest, plans.versions(0).plan_id());
  EXPECT_EQ(sidecar->k_block_bits, plan->k_block_bits);
  EXPECT_EQ(sidecar->rotation_hashes, plan->rotation_hashes);

  auto artifacts = v1::ArtifactService::NewStub(channel_);
  for (const auto& [dim, hash] : plan->rotation_hashes) {
    v1::GetRotationRequest get;
    get.set_content_hash(hash);
    v1::GetRotationResponse rotation;
    ASSERT_TRUE(artifacts->GetRotation(Context().get(), get, &rotation).ok());
    EXPECT_EQ(rotation.dim(), dim);
    absl::StatusOr<Rotation> checked = RotationFromBytes(rotation.dim(), rotation.matrix());
    ASSERT_TRUE(checked.ok());
    EXPECT_EQ(checked->content_hash, hash);
  }
  v1::GetRotationRequest unknown;
  unknown.set_content_hash("ffff");
  v1::GetRotationResponse none;
  EXPECT_EQ(artifacts->GetRotation(Context().get(), unknown, &none).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(ServiceTest, CodebooksThePlanNamesAreServedByWidthAndHash) {
  Start();
  RegisterAndCreate(1);
  v1::GetPlanRequest get_plan;
  get_plan.mutable_version()->set_model_id("tiny");
  get_plan.mutable_version()->set_name("main");
  v1::GetPlanResponse got;
  ASSERT_TRUE(plans_->GetPlan(Context().get(), get_plan, &got).ok());
  absl::StatusOr<KvPlan> plan = PlanFromJson(got.plan_json());
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_FALSE(plan->codebook_hashes.empty());

  auto artifacts = v1::ArtifactService::NewStub(channel_);
  for (const auto& [bits, hash] : plan->codebook_hashes) {
    v1::GetCodebookRequest by_bits;
    by_bits.set_bits(bits);
    v1::GetCodebookResponse book;
    ASSERT_TRUE(artifacts->GetCodebook(Context().get(), by_bits, &book).ok());
    EXPECT_EQ(book.bits(), bits);
    EXPECT_EQ(book.content_hash(), hash);
    EXPECT_EQ(Sha256Hex(book.centroids()), hash);
    EXPECT_EQ(book.centroids(), CodebookCentroidBytes(LloydMaxCodebook(bits).centroids));
    v1::GetCodebookRequest by_hash;
    by_hash.set_content_hash(hash);
    v1::GetCodebookResponse same;
    ASSERT_TRUE(artifacts->GetCodebook(Context().get(), by_hash, &same).ok());
    EXPECT_EQ(same.SerializeAsString(), book.SerializeAsString());
  }

  v1::GetCodebookResponse none;
  for (int bits : {0, 9, -1}) {
    v1::GetCodebookRequest bad;
    bad.set_bits(bits);
    grpc::Status st = artifacts->GetCodebook(Context().get(), bad, &none);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << bits;
    EXPECT_NE(st.error_message().find("outside [1, 8]"), std::string::npos) << st.error_message();
  }
  EXPECT_EQ(artifacts->GetCodebook(Context().get(), v1::GetCodebookRequest(), &none).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  v1::GetCodebookRequest unknown;
  unknown.set_content_hash(std::string(64, 'f'));
  EXPECT_EQ(artifacts->GetCodebook(Context().get(), unknown, &none).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(ServiceTest, PlanReadsAreCountedByWhereTheyWereServedFrom) {
  Start({.metrics_listen = "127.0.0.1:0"});
  RegisterAndCreate(1);
  const std::string metrics = "127.0.0.1:" + std::to_string(server_->metrics_port());
  auto reads = [&](const std::string& source) {
    const std::string text = ::kvplan::testing::HttpGet(metrics, "/metrics");
    const std::string key = "kvplan_plan_reads_total{source=\"" + source + "\"} ";
    const size_t at = text.find(key);
    EXPECT_NE(at, std::string::npos) << text;
    return at == std::string::npos ? -1.0 : std::stod(text.substr(at + key.size()));
  };
  EXPECT_EQ(reads("memory"), 0);
  EXPECT_EQ(reads("store"), 0);
  v1::GetPlanRequest request;
  request.mutable_version()->set_model_id("tiny");
  request.mutable_version()->set_name("main");
  v1::GetPlanResponse got;
  // The first read comes from RocksDB and fills the cache; plans are immutable,
  // so every later one is served from memory.
  ASSERT_TRUE(plans_->GetPlan(Context().get(), request, &got).ok());
  EXPECT_EQ(reads("store"), 1);
  EXPECT_EQ(reads("memory"), 0);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(plans_->GetPlan(Context().get(), request, &got).ok());
  EXPECT_EQ(reads("store"), 1);
  EXPECT_EQ(reads("memory"), 3);
  // An unknown plan is neither.
  v1::GetPlanRequest unknown;
  unknown.set_plan_id("no-such-plan");
  EXPECT_EQ(plans_->GetPlan(Context().get(), unknown, &got).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(reads("store"), 1);
  EXPECT_EQ(reads("memory"), 3);
}

TEST_F(ServiceTest, HealthServiceReportsServing) {
  Start();
  grpc::GenericStub generic(channel_);
  // grpc.health.v1.Health/Check with an empty request (service ""): the
  // response is HealthCheckResponse{status: SERVING = 1}, field 1 varint.
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::ByteBuffer request_buffer;
  grpc::Slice empty("", 0);
  request_buffer = grpc::ByteBuffer(&empty, 1);
  grpc::ByteBuffer response_buffer;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  grpc::Status status;
  generic.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request_buffer,
                    &response_buffer, [&](grpc::Status s) {
                      std::lock_guard<std::mutex> lock(mu);
                      status = s;
                      done = true;
                      cv.notify_one();
                    });
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return done; });
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(response_buffer.Dump(&slices).ok());
  std::string bytes;
  for (const grpc::Slice& s : slices)
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  EXPECT_EQ(bytes, std::string("\x08\x01", 2));
}

}  // namespace
}  // namespace kvplan::server
