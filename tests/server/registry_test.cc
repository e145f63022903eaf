// The domain registries without gRPC: versioning, content addressing, channels,
// what-if, and refusals that store nothing.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/energy_table.h"
#include "core/plan.h"
#include "core/whatif.h"
#include "gtest/gtest.h"
#include "server/channel_registry.h"
#include "server/model_registry.h"
#include "server/plan_registry.h"
#include "server/whatif_runner.h"
#include "tests/server/server_test_util.h"

namespace kvplan::server {
namespace {

using ::kvplan::testing::TempDir;
using ::kvplan::testing::TestCalibrationFile;
using ::kvplan::testing::TestModelRequest;
using ::kvplan::testing::TestStats;

// The registries over one store, as the coordinator wires them.
struct Registries {
  explicit Registries(const std::string& path) {
    store = *Store::Open({.path = path});
    models = std::make_unique<ModelRegistry>(store.get(), [] { return int64_t{1700000000}; });
    channels = std::make_unique<ChannelRegistry>(store.get(), models.get(),
                                                 [] { return int64_t{1700000001}; });
    EXPECT_TRUE(channels->Init().ok());
    plans = std::make_unique<PlanRegistry>(store.get(), models.get(), channels.get(),
                                           [] { return int64_t{1700000002}; });
    whatif = std::make_unique<WhatIfRunner>(store.get(), models.get());
  }
  std::unique_ptr<Store> store;
  std::unique_ptr<ModelRegistry> models;
  std::unique_ptr<ChannelRegistry> channels;
  std::unique_ptr<PlanRegistry> plans;
  std::unique_ptr<WhatIfRunner> whatif;
};

v1::CreatePlanRequest PlanRequest(double k_bits, int v_bits, const std::string& stats,
                                  const std::string& name = "main") {
  v1::CreatePlanRequest r;
  r.set_model_id("tiny");
  r.set_name(name);
  r.set_stats(stats);
  r.mutable_options()->set_k_bits(k_bits);
  r.mutable_options()->set_v_bits(v_bits);
  return r;
}

// Everything in the families a failed write must not touch.
size_t CountRecords(const Store& store) {
  size_t n = 0;
  for (Family f : {Family::kModels, Family::kStats, Family::kPlans, Family::kPlanVersions,
                   Family::kChannels, Family::kChannelHistory}) {
    EXPECT_TRUE(store
                    .Scan(f, "", "",
                          [&](std::string_view, std::string_view) {
                            ++n;
                            return true;
                          })
                    .ok());
  }
  return n;
}

class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    r_ = std::make_unique<Registries>(dir_.Path("db"));
    ASSERT_TRUE(r_->models->Register(TestModelRequest()).ok());
  }
  TempDir dir_;
  std::unique_ptr<Registries> r_;
};

TEST_F(RegistryTest, RegistrationIsIdempotentAndRefusesAConflictingModel) {
  absl::StatusOr<v1::RegisterModelResponse> again = r_->models->Register(TestModelRequest());
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->created());
  v1::RegisterModelRequest other = TestModelRequest();
  other.set_fingerprint("another");
  EXPECT_EQ(r_->models->Register(other).status().code(), absl::StatusCode::kAlreadyExists);
  v1::RegisterModelRequest bad = TestModelRequest("bad/id");
  EXPECT_EQ(r_->models->Register(bad).status().code(), absl::StatusCode::kInvalidArgument);
  bad = TestModelRequest("gqa");
  bad.mutable_architecture()->set_num_q_heads(3);
  EXPECT_EQ(r_->models->Register(bad).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r_->models->Get("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(r_->models->List()->models_size(), 1);
}

TEST_F(RegistryTest, SameContentSameDigestAndVersionsIncrementPerName) {
  const std::string calib = TestCalibrationFile();
  absl::StatusOr<v1::CreatePlanResponse> v1 = r_->plans->Create(PlanRequest(3, 3, calib));
  ASSERT_TRUE(v1.ok()) << v1.status();
  EXPECT_TRUE(v1->created());
  EXPECT_EQ(v1->version().version(), 1u);
  // The digest is core's, so the offline tool makes the same one from the same inputs.
  KvPlan offline = *BuildPlan(*EnergyTableFromStats(TestStats()), testing::TestRope(),
                              {.k_bits = 3, .v_bits = 3});
  offline.model_fingerprint = testing::kFingerprint;
  EXPECT_EQ(v1->version().plan_id(), PlanDigest(offline));

  // A retry changes nothing.
  absl::StatusOr<v1::CreatePlanResponse> retry = r_->plans->Create(PlanRequest(3, 3, calib));
  ASSERT_TRUE(retry.ok());
  EXPECT_FALSE(retry->created());
  EXPECT_EQ(retry->version().version(), 1u);

  // Raw BlockStats bytes of the same statistics give the same content.
  absl::StatusOr<v1::CreatePlanResponse> other_name =
      r_->plans->Create(PlanRequest(3, 3, TestStats().Serialize(), "other"));
  ASSERT_TRUE(other_name.ok()) << other_name.status();
  EXPECT_EQ(other_name->version().plan_id(), v1->version().plan_id());
  EXPECT_EQ(other_name->version().version(), 1u);

  absl::StatusOr<v1::CreatePlanResponse> v2 = r_->plans->Create(PlanRequest(2.5, 2, calib));
  ASSERT_TRUE(v2.ok());
  EXPECT_EQ(v2->version().version(), 2u);
  EXPECT_NE(v2->version().plan_id(), v1->version().plan_id());

  v1::ListPlansRequest list;
  list.set_model_id("tiny");
  EXPECT_EQ(r_->plans->List(list)->versions_size(), 3);
  list.set_name("main");
  EXPECT_EQ(r_->plans->List(list)->versions_size(), 2);

  v1::GetPlanRequest get;
  get.mutable_version()->set_model_id("tiny");
  get.mutable_version()->set_name("main");
  absl::StatusOr<v1::GetPlanResponse> latest = r_->plans->Get(get);
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ(latest->version().version(), 2u);
  absl::StatusOr<KvPlan> parsed = PlanFromJson(latest->plan_json());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(PlanDigest(*parsed), v2->version().plan_id());

  v1::DiffPlansRequest diff;
  diff.set_from_plan_id(v1->version().plan_id());
  diff.set_to_plan_id(v2->version().plan_id());
  absl::StatusOr<v1::DiffPlansResponse> d = r_->plans->Diff(diff);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->total_blocks(), 3 * 2 * 8);
  EXPECT_GT(d->blocks_changed(), 0);
  EXPECT_EQ(d->from_v_bits(), 3);
  EXPECT_EQ(d->to_v_bits(), 2);
  EXPECT_GT(d->from_bytes_per_token(), d->to_bytes_per_token());
}

TEST_F(RegistryTest, PlansAndVersionsSurviveReopen) {
  absl::StatusOr<v1::CreatePlanResponse> created =
      r_->plans->Create(PlanRequest(3, 3, TestCalibrationFile()));
  ASSERT_TRUE(created.ok());
  v1::PromoteRequest promote;
  promote.set_model_id("tiny");
  promote.set_channel("stable");
  promote.set_plan_name("main");
  ASSERT_TRUE(r_->channels->Promote(promote).ok());
  r_.reset();
  r_ = std::make_unique<Registries>(dir_.Path("db"));
  v1::GetPlanRequest get;
  get.mutable_channel()->set_model_id("tiny");
  get.mutable_channel()->set_channel("stable");
  absl::StatusOr<v1::GetPlanResponse> got = r_->plans->Get(get);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->version().plan_id(), created->version().plan_id());
  EXPECT_EQ(got->plan_json(), created->plan_json());
  // Sequences continue after a restart rather than starting over.
  promote.set_channel("canary");
  EXPECT_EQ(r_->channels->Promote(promote)->sequence(), 2u);
}

TEST_F(RegistryTest, PromoteRollbackAndHistory) {
  const std::string calib = TestCalibrationFile();
  ASSERT_TRUE(r_->plans->Create(PlanRequest(3, 3, calib)).ok());
  ASSERT_TRUE(r_->plans->Create(PlanRequest(2, 2, calib)).ok());
  v1::PromoteRequest promote;
  promote.set_model_id("tiny");
  promote.set_channel("stable");
  promote.set_plan_name("main");
  promote.set_version(1);
  ASSERT_TRUE(r_->channels->Promote(promote).ok());
  promote.set_version(2);
  absl::StatusOr<v1::ChannelMove> second = r_->channels->Promote(promote);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->from().version(), 1u);
  EXPECT_EQ(second->to().version(), 2u);
  // Promoting what is current again is a no-op returning the same move.
  EXPECT_EQ(r_->channels->Promote(promote)->sequence(), second->sequence());

  v1::RollbackRequest rollback;
  rollback.set_model_id("tiny");
  rollback.set_channel("stable");
  absl::StatusOr<v1::ChannelMove> back = r_->channels->Rollback(rollback);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->kind(), v1::ChannelMove::ROLLBACK);
  EXPECT_EQ(back->to().version(), 1u);
  EXPECT_EQ(r_->channels->Current("tiny", "stable")->version(), 1u);
  // Nothing earlier to go back to.
  EXPECT_EQ(r_->channels->Rollback(rollback).status().code(),
            absl::StatusCode::kFailedPrecondition);

  absl::StatusOr<v1::HistoryResponse> history = r_->channels->History("tiny", "stable");
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->moves_size(), 3);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(history->moves(i).sequence(), static_cast<uint64_t>(i + 1));

  promote.set_version(9);
  EXPECT_EQ(r_->channels->Promote(promote).status().code(), absl::StatusCode::kNotFound);
  promote.set_model_id("nope");
  EXPECT_EQ(r_->channels->Promote(promote).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(RegistryTest, WhatIfEqualsCoreRunWhatIf) {
  ASSERT_TRUE(r_->plans->Create(PlanRequest(3, 3, TestCalibrationFile())).ok());
  v1::WhatIfRequest request;
  request.set_model_id("tiny");
  for (double k : {2.0, 2.5, 3.0, 4.0}) request.add_k_bits(k);
  for (int v : {2, 3, 4}) request.add_v_bits(v);
  request.set_context_tokens(131072);
  request.set_batch(2);
  request.set_memory_bytes(int64_t{80} << 30);
  const size_t before = CountRecords(*r_->store);
  absl::StatusOr<v1::WhatIfResponse> remote = r_->whatif->Run(request);
  ASSERT_TRUE(remote.ok()) << remote.status();
  EXPECT_EQ(CountRecords(*r_->store), before);  // Nothing written.

  absl::StatusOr<std::vector<WhatIfResult>> local =
      RunWhatIf(*EnergyTableFromStats(TestStats()), {.k_bits = {2, 2.5, 3, 4},
                                                     .v_bits = {2, 3, 4},
                                                     .context_tokens = 131072,
                                                     .batch = 2,
                                                     .memory_bytes = int64_t{80} << 30});
  ASSERT_TRUE(local.ok());
  ASSERT_EQ(remote->rows_size(), static_cast<int>(local->size()));
  for (size_t i = 0; i < local->size(); ++i) {
    const WhatIfResult& l = (*local)[i];
    const v1::WhatIfRow& r = remote->rows(static_cast<int>(i));
    EXPECT_EQ(r.k_bits(), l.k_bits);
    EXPECT_EQ(r.v_bits(), l.v_bits);
    EXPECT_EQ(r.bytes_per_token(), l.bytes_per_token);
    EXPECT_EQ(r.kv_bytes_at_context(), l.kv_bytes_at_context);
    EXPECT_EQ(r.max_context_tokens(), l.max_context_tokens);
    EXPECT_EQ(r.distortion_ratio(), l.distortion_ratio);
    EXPECT_EQ(r.compression_vs_fp16(), l.compression_vs_fp16);
    ASSERT_EQ(r.layers_size(), static_cast<int>(l.layers.size()));
    for (size_t j = 0; j < l.layers.size(); ++j) {
      EXPECT_EQ(r.layers(static_cast<int>(j)).entropy_bits(), l.layers[j].entropy_bits);
      EXPECT_EQ(r.layers(static_cast<int>(j)).distortion(), l.layers[j].distortion);
    }
  }
}

// k_group_align reaches the what-if: the rows are core's aligned ones, and a
// bad alignment is refused with core's message.
TEST_F(RegistryTest, WhatIfWithKGroupAlignEqualsCoreRunWhatIf) {
  ASSERT_TRUE(r_->plans->Create(PlanRequest(3, 3, TestCalibrationFile())).ok());
  v1::WhatIfRequest request;
  request.set_model_id("tiny");
  for (double k : {2.0, 3.0}) request.add_k_bits(k);
  request.add_v_bits(3);
  request.set_k_group_align(8);
  absl::StatusOr<v1::WhatIfResponse> remote = r_->whatif->Run(request);
  ASSERT_TRUE(remote.ok()) << remote.status();
  const EnergyTable table = *EnergyTableFromStats(TestStats());
  absl::StatusOr<std::vector<WhatIfResult>> aligned =
      RunWhatIf(table, {.k_bits = {2, 3}, .v_bits = {3}, .k_group_align = 8});
  absl::StatusOr<std::vector<WhatIfResult>> greedy =
      RunWhatIf(table, {.k_bits = {2, 3}, .v_bits = {3}});
  ASSERT_TRUE(aligned.ok()) << aligned.status();
  ASSERT_TRUE(greedy.ok()) << greedy.status();
  ASSERT_EQ(remote->rows_size(), 2);
  bool any_differs = false;
  for (int i = 0; i < 2; ++i) {
    const WhatIfResult& a = (*aligned)[static_cast<size_t>(i)];
    EXPECT_EQ(remote->rows(i).k_bytes_per_token_head(), a.k_bytes_per_token_head);
    EXPECT_EQ(remote->rows(i).distortion_ratio(), a.distortion_ratio);
    any_differs |= a.distortion_ratio != (*greedy)[static_cast<size_t>(i)].distortion_ratio;
  }
  EXPECT_TRUE(any_differs) << "the aligned rows should not be the greedy's here";

  request.set_k_group_align(12);
  absl::Status st = r_->whatif->Run(request).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("k_group_align 12 does not split head_dim 16"), std::string::npos)
      << st;
}

// The runner keeps parsed statistics by digest (a bounded cache): every digest,
// the latest by default or an older one by name, even after it was evicted,
// answers from its own statistics.
TEST_F(RegistryTest, WhatIfAnswersFromEachDigestsOwnStatistics) {
  constexpr int kDigests = 10;  // more than the runner keeps
  v1::WhatIfRequest request;
  request.set_model_id("tiny");
  for (double k : {2.0, 3.0}) request.add_k_bits(k);
  request.add_v_bits(3);
  std::vector<v1::WhatIfResponse> first;
  for (int seed = 0; seed < kDigests; ++seed) {
    // A name per seed: a plan equal to its name's latest version would store nothing.
    const std::string name = "s" + std::to_string(seed);
    ASSERT_TRUE(r_->plans->Create(PlanRequest(3, 3, TestStats(seed).Serialize(), name)).ok());
    request.clear_stats_digest();  // the model's latest statistics
    absl::StatusOr<v1::WhatIfResponse> r = r_->whatif->Run(request);
    ASSERT_TRUE(r.ok()) << r.status();
    absl::StatusOr<std::vector<WhatIfResult>> local =
        RunWhatIf(*EnergyTableFromStats(TestStats(seed)), {.k_bits = {2, 3}, .v_bits = {3}});
    ASSERT_TRUE(local.ok());
    for (int i = 0; i < r->rows_size(); ++i) {
      EXPECT_EQ(r->rows(i).distortion_ratio(), (*local)[static_cast<size_t>(i)].distortion_ratio)
          << "seed " << seed;
    }
    if (seed > 0) {
      EXPECT_NE(r->stats_digest(), first.back().stats_digest());
    }
    first.push_back(*std::move(r));
  }
  // Twice over, oldest first, so the earliest digests come back after eviction.
  for (int pass = 0; pass < 2; ++pass) {
    for (const v1::WhatIfResponse& want : first) {
      request.set_stats_digest(want.stats_digest());
      absl::StatusOr<v1::WhatIfResponse> again = r_->whatif->Run(request);
      ASSERT_TRUE(again.ok()) << again.status();
      EXPECT_EQ(again->SerializeAsString(), want.SerializeAsString());
    }
  }
  request.set_stats_digest(std::string(64, '0'));
  EXPECT_EQ(r_->whatif->Run(request).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(RegistryTest, BadInputIsRefusedWithTheRightCodeAndNothingStored) {
  const size_t before = CountRecords(*r_->store);
  const std::string calib = TestCalibrationFile();
  auto code = [&](const v1::CreatePlanRequest& request) {
    return r_->plans->Create(request).status().code();
  };
  v1::CreatePlanRequest unknown = PlanRequest(3, 3, calib);
  unknown.set_model_id("nope");
  EXPECT_EQ(code(unknown), absl::StatusCode::kNotFound);
  // Statistics of another shape (4 layers instead of 3).
  EXPECT_EQ(code(PlanRequest(3, 3, TestStats(0, /*layers=*/4).Serialize())),
            absl::StatusCode::kInvalidArgument);
  // A calibration file of another model.
  EXPECT_EQ(code(PlanRequest(3, 3, TestCalibrationFile(0, "someone-else"))),
            absl::StatusCode::kFailedPrecondition);
  // Corrupt bytes: one flipped byte fails the checksum.
  std::string corrupt = TestStats().Serialize();
  corrupt[corrupt.size() / 2] ^= 0x40;
  EXPECT_EQ(code(PlanRequest(3, 3, corrupt)), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(PlanRequest(3, 3, "")), absl::StatusCode::kInvalidArgument);
  // NaN cannot enter statistics at all: BlockStats refuses it at the source, and
  // its fixed-point wire form has no way to spell one.
  BlockStats stats = TestStats();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_FALSE(stats.Add(0, 0, std::vector<double>(8, nan), 1, std::vector<double>(8, 1), 1).ok());
  EXPECT_EQ(code(PlanRequest(nan, 3, calib)), absl::StatusCode::kInvalidArgument);
  // Budgets out of range.
  EXPECT_EQ(code(PlanRequest(9, 3, calib)), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(code(PlanRequest(0.5, 3, calib)), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(code(PlanRequest(3, 0, calib)), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(code(PlanRequest(3, 3, calib, "bad name")), absl::StatusCode::kInvalidArgument);
  // Incomplete statistics (a head that saw nothing).
  BlockStats empty =
      *BlockStats::Create({.num_layers = 3, .num_kv_heads = 2, .num_blocks = 8, .group_size = 2});
  EXPECT_EQ(code(PlanRequest(3, 3, empty.Serialize())), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(CountRecords(*r_->store), before);

  v1::GetPlanRequest get;
  get.set_plan_id("0000");
  EXPECT_EQ(r_->plans->Get(get).status().code(), absl::StatusCode::kNotFound);
  v1::WhatIfRequest whatif;
  whatif.set_model_id("tiny");
  whatif.add_k_bits(3);
  whatif.add_v_bits(3);
  EXPECT_EQ(r_->whatif->Run(whatif).status().code(), absl::StatusCode::kFailedPrecondition);
  whatif.set_k_bits(0, 12);
  EXPECT_EQ(r_->whatif->Run(whatif).status().code(), absl::StatusCode::kOutOfRange);
}

}  // namespace
}  // namespace kvplan::server
