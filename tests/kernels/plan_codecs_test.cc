// Serving a stored plan (plan_codecs.h) and per-layer V widths in
// PackedDecodePlan, on the CPU: the codecs are PackedKvCache's, each layer's
// pages are laid out at its own V width with its own stride, the params carry
// both, and bad widths are refused naming the layer; a plan built with
// fragment_pages lays out fragment-native pages and says so in its params.
// (The GPU end to end: plan_decode_test.cc, fragment_decode_program_test.cc.)
#include "kvplan/kernels/plan_codecs.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "core/fragment_page.h"
#include "core/group_layout.h"
#include "core/packed_kv_cache.h"
#include "core/packed_page.h"
#include "core/plan.h"
#include "core/rotation.h"
#include "kvplan/kernels/packed_plan.h"
#include "tests/kernels/plan_fixtures.h"

namespace kvplan::kernels::testing {
namespace {

constexpr int kLayers = 3;
constexpr int kHeadDim = 64;

void ExpectSameRotation(const Rotation& got, const Rotation& want, const std::string& where) {
  EXPECT_EQ(got.dim, want.dim) << where;
  EXPECT_EQ(got.content_hash, want.content_hash) << where;
  EXPECT_EQ(got.matrix, want.matrix) << where;
}

void ExpectSamePageLayout(const PackedPageLayout& got, const PackedPageLayout& want,
                          const std::string& where) {
  EXPECT_EQ(got.k_layout(), want.k_layout()) << where;
  EXPECT_EQ(got.v_bits(), want.v_bits()) << where;
  for (int g = 0; g < want.num_k_groups(); ++g) {
    EXPECT_EQ(got.k_block_offset(g), want.k_block_offset(g)) << where << " group " << g;
  }
  EXPECT_EQ(got.k_norm_offset(), want.k_norm_offset()) << where;
  EXPECT_EQ(got.v_block_offset(), want.v_block_offset()) << where;
  EXPECT_EQ(got.v_norm_offset(), want.v_norm_offset()) << where;
  EXPECT_EQ(got.page_bytes(), want.page_bytes()) << where;
}

class PlanCodecsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<KvPlan> plan = ExemptLayerPlan(kLayers, kHeadDim);
    ASSERT_TRUE(plan.ok()) << plan.status();
    plan_ = *std::move(plan);
    ASSERT_EQ(plan_.VBits(0), 8);
    ASSERT_EQ(plan_.VBits(1), 3);
  }

  KvPlan plan_;
};

TEST_F(PlanCodecsTest, CodecsAreTheCpuCachesLayoutsAndRotations) {
  absl::StatusOr<std::vector<HeadCodec>> codecs = HeadCodecsForPlan(plan_);
  ASSERT_TRUE(codecs.ok()) << codecs.status();
  ASSERT_EQ(codecs->size(), static_cast<size_t>(kLayers * kPlanKvHeads));
  absl::StatusOr<PackedKvCache> cache = PackedKvCache::Create(plan_, 2 * kPlanKvHeads);
  ASSERT_TRUE(cache.ok()) << cache.status();
  for (int l = 0; l < kLayers; ++l) {
    for (int h = 0; h < kPlanKvHeads; ++h) {
      const std::string where = "layer " + std::to_string(l) + " head " + std::to_string(h);
      const HeadCodec& codec = (*codecs)[static_cast<size_t>(l) * kPlanKvHeads + h];
      EXPECT_EQ(codec.k_layout, *plan_.KLayout(l, h)) << where;
      // The fixture is meant to exercise multi-group heads outside the exempt layer.
      EXPECT_EQ(codec.k_layout.groups.size() > 1, l > 0) << where;
      const std::vector<Rotation> k_rotations = cache->KRotations(l, h);
      ASSERT_EQ(codec.k_rotations.size(), k_rotations.size()) << where;
      for (size_t g = 0; g < k_rotations.size(); ++g) {
        ExpectSameRotation(codec.k_rotations[g], k_rotations[g],
                           where + " K group " + std::to_string(g));
      }
      ExpectSameRotation(codec.v_rotation, cache->VRotation(), where + " V");
    }
  }
}

TEST_F(PlanCodecsTest, EachLayerHasItsVWidthPagesAndStride) {
  absl::StatusOr<PackedDecodePlan> plan =
      CreateDecodePlanForPlan(plan_, {.group_size = 2, .max_batch = 2, .wgmma = true});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->config().num_layers, kLayers);
  EXPECT_EQ(plan->config().num_kv_heads, kPlanKvHeads);
  EXPECT_EQ(plan->config().head_dim, kHeadDim);
  EXPECT_EQ(plan->config().layer_v_bits, (std::vector<int>{8, 3, 3}));
  // Host memory standing in for the device workspace: the params only offset it.
  std::vector<uint8_t> workspace(plan->workspace_bytes());
  const auto* descs = reinterpret_cast<const PackedHeadDesc*>(workspace.data());
  int64_t largest = 0;
  int whole_layers = 0;
  for (int l = 0; l < kLayers; ++l) {
    const std::string where = "layer " + std::to_string(l);
    EXPECT_EQ(plan->v_bits(l), plan_.VBits(l)) << where;
    int64_t stride = 0;
    bool whole = true;  // every K group of the layer a multiple of 16 dims
    for (int h = 0; h < kPlanKvHeads; ++h) {
      absl::StatusOr<PackedPageLayout> want =
          PackedPageLayout::Create(*plan_.KLayout(l, h), plan_.VBits(l));
      ASSERT_TRUE(want.ok()) << want.status();
      ExpectSamePageLayout(plan->page_layout(l, h), *want, where + " head " + std::to_string(h));
      stride = std::max<int64_t>(stride, static_cast<int64_t>(want->page_bytes()));
      const absl::StatusOr<GroupLayout> k_layout = plan_.KLayout(l, h);
      ASSERT_TRUE(k_layout.ok()) << k_layout.status();
      for (const QuantGroup& g : k_layout->groups) whole = whole && g.size % 16 == 0;
    }
    whole_layers += whole;
    EXPECT_EQ(plan->page_stride(l), stride) << where;
    EXPECT_EQ(plan->page_stride(l) % 16, 0) << where;
    largest = std::max(largest, stride);

    const EncodePackParams e = plan->EncodeParams(l, workspace.data());
    EXPECT_EQ(e.v_bits, plan_.VBits(l)) << where;
    EXPECT_EQ(e.page_stride, stride) << where;
    EXPECT_EQ(e.heads, descs + l * kPlanKvHeads) << where;
    EXPECT_EQ(e.k_groups_whole, whole) << where;
    EXPECT_TRUE(e.wgmma) << where;  // the config's, passed through
    const PackedDecodeParams d = plan->DecodeParams(l, workspace.data(), 1, 1);
    EXPECT_EQ(d.v_bits, plan_.VBits(l)) << where;
    EXPECT_EQ(d.page_stride, stride) << where;
    EXPECT_EQ(d.heads, descs + l * kPlanKvHeads) << where;
  }
  // The exempt layer's 8-bit pages are larger; the other layers do not pay for them.
  EXPECT_GT(plan->page_stride(0), plan->page_stride(1));
  EXPECT_GT(plan->page_stride(0), plan->page_stride(2));
  EXPECT_EQ(plan->page_stride(), largest);
  // The fixture has layers of both kinds (the exempt layer's one group is the head).
  EXPECT_GT(whole_layers, 0);
  EXPECT_LT(whole_layers, kLayers);
}

// The few-token encode (encode_append.cuh) copies a head's K blocks, and V's
// Rᵀ, into shared memory as one run each, up to 12 bytes past the run's end:
// so K's groups must lie back to back, then V's Rᵀ, then V's forward rotation.
TEST_F(PlanCodecsTest, EachHeadsRotationsLieBackToBack) {
  absl::StatusOr<PackedDecodePlan> plan =
      CreateDecodePlanForPlan(plan_, {.group_size = 2, .max_batch = 2});
  ASSERT_TRUE(plan.ok()) << plan.status();
  int multi_group_heads = 0;
  for (int l = 0; l < kLayers; ++l) {
    for (int h = 0; h < kPlanKvHeads; ++h) {
      const std::string where = "layer " + std::to_string(l) + " head " + std::to_string(h);
      const PackedHeadDesc& desc = plan->head_desc(l, h);
      const absl::StatusOr<GroupLayout> k_layout = plan_.KLayout(l, h);
      ASSERT_TRUE(k_layout.ok()) << k_layout.status();
      ASSERT_EQ(desc.num_groups, static_cast<int>(k_layout->groups.size())) << where;
      multi_group_heads += desc.num_groups > 1;
      int64_t next = desc.k_rotation_t[0];
      for (int g = 0; g < desc.num_groups; ++g) {
        EXPECT_EQ(desc.size[g], k_layout->groups[g].size) << where << " group " << g;
        EXPECT_EQ(desc.k_rotation_t[g], next) << where << " group " << g;
        next += int64_t{desc.size[g]} * desc.size[g];
      }
      EXPECT_EQ(desc.v_rotation_t, next) << where;
      EXPECT_EQ(desc.v_rotation, desc.v_rotation_t + kHeadDim * kHeadDim) << where;
    }
  }
  EXPECT_GT(multi_group_heads, 0);
}

TEST_F(PlanCodecsTest, EmptyLayerVBitsMeansVBitsForEveryLayer) {
  absl::StatusOr<std::vector<HeadCodec>> codecs = HeadCodecsForPlan(plan_);
  ASSERT_TRUE(codecs.ok()) << codecs.status();
  PackedDecodeConfig config{
      .num_layers = kLayers, .num_kv_heads = kPlanKvHeads, .head_dim = kHeadDim, .v_bits = 4};
  absl::StatusOr<PackedDecodePlan> plan = PackedDecodePlan::Create(config, *codecs);
  ASSERT_TRUE(plan.ok()) << plan.status();
  for (int l = 0; l < kLayers; ++l) {
    EXPECT_EQ(plan->v_bits(l), 4);
    EXPECT_EQ(plan->page_layout(l, 0).v_bits(), 4);
    EXPECT_LE(plan->page_stride(l), plan->page_stride());
  }
}

TEST_F(PlanCodecsTest, BadLayerVBitsAreRefusedNamingTheLayer) {
  absl::StatusOr<std::vector<HeadCodec>> codecs = HeadCodecsForPlan(plan_);
  ASSERT_TRUE(codecs.ok()) << codecs.status();
  struct Bad {
    std::vector<int> widths;
    bool encode_only;
    const char* message;
  };
  const Bad bad[] = {
      {{8, 3}, false, "layer_v_bits has 2 widths for 3 layers"},
      {{8, 3, 5}, false, "layer 2: v_bits 5 is not supported; supported: {2, 3, 4, 8}"},
      {{1, 3, 3}, false, "layer 0: v_bits 1 is not supported"},
      {{8, 9, 3}, true, "layer 1: v_bits 9 is outside [1, 8]"},
      {{8, 3, 0}, true, "layer 2: v_bits 0 is outside [1, 8]"},
  };
  for (const Bad& b : bad) {
    PackedDecodeConfig config{.num_layers = kLayers,
                              .num_kv_heads = kPlanKvHeads,
                              .head_dim = kHeadDim,
                              .layer_v_bits = b.widths,
                              .encode_only = b.encode_only};
    const absl::Status s = PackedDecodePlan::Create(config, *codecs).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_NE(s.message().find(b.message), std::string::npos) << s;
  }
  // Encode-only plans take V widths attention does not dispatch.
  PackedDecodeConfig config{.num_layers = kLayers,
                            .num_kv_heads = kPlanKvHeads,
                            .head_dim = kHeadDim,
                            .layer_v_bits = {8, 5, 1},
                            .encode_only = true};
  absl::StatusOr<PackedDecodePlan> plan = PackedDecodePlan::Create(config, *codecs);
  ASSERT_TRUE(plan.ok()) << plan.status();
  std::vector<uint8_t> workspace(plan->workspace_bytes());
  EXPECT_EQ(plan->EncodeParams(1, workspace.data()).v_bits, 5);
  EXPECT_EQ(plan->page_layout(2, 1).v_bits(), 1);
}

TEST_F(PlanCodecsTest, PlanAndDispatchErrorsAreNamed) {
  const absl::Status group = CreateDecodePlanForPlan(plan_, {.group_size = 3}).status();
  EXPECT_EQ(group.code(), absl::StatusCode::kInvalidArgument) << group;
  EXPECT_NE(group.message().find("group_size 3 is not supported"), std::string::npos) << group;

  absl::StatusOr<KvPlan> hd96 = ExemptLayerPlan(2, 96);
  ASSERT_TRUE(hd96.ok()) << hd96.status();
  const absl::Status head_dim = CreateDecodePlanForPlan(*hd96, {}).status();
  EXPECT_EQ(head_dim.code(), absl::StatusCode::kInvalidArgument) << head_dim;
  EXPECT_NE(head_dim.message().find("head_dim 96 is not supported"), std::string::npos) << head_dim;

  // A plan whose V width attention cannot dispatch (exempt layers at 6 bits).
  KvPlan six = plan_;
  six.options.exempt_bits = 6;
  for (int h = 0; h < kPlanKvHeads; ++h) six.k_block_bits[h].assign(kHeadDim / 2, 6);
  const absl::Status width = CreateDecodePlanForPlan(six, {}).status();
  EXPECT_NE(width.message().find("layer 0: v_bits 6 is not supported"), std::string::npos) << width;

  // The plan's own errors pass through.
  KvPlan tampered = plan_;
  tampered.rotation_hashes[kHeadDim] = std::string(64, '0');
  const absl::Status hash = HeadCodecsForPlan(tampered).status();
  EXPECT_EQ(hash.code(), absl::StatusCode::kFailedPrecondition) << hash;
  EXPECT_NE(hash.message().find("rotation for dim 64"), std::string::npos) << hash;

  KvPlan missing = plan_;
  missing.rotation_hashes.erase(kHeadDim);
  const absl::Status dim = HeadCodecsForPlan(missing).status();
  EXPECT_EQ(dim.code(), absl::StatusCode::kInvalidArgument) << dim;
  EXPECT_NE(dim.message().find("no rotation for dimension 64"), std::string::npos) << dim;

  KvPlan short_plan = plan_;
  short_plan.k_block_bits.pop_back();
  const absl::Status shape = CreateDecodePlanForPlan(short_plan, {}).status();
  EXPECT_EQ(shape.code(), absl::StatusCode::kInvalidArgument) << shape;
  EXPECT_NE(shape.message().find("5 K allocations for 3 layers x 2 KV heads"), std::string::npos)
      << shape;
}

// fragment_pages: every head's page is core's fragment page of its K layout
// and V width (exempt 8-bit layer included), strides follow them, and the
// params point at the layer's geometries (version-1 params at none).
TEST(FragmentPagesPlanTest, LaysOutFragmentPagesAndMarksTheParams) {
  const KvPlan stored = *BlockGtqPlan(kLayers, /*head_dim=*/128, /*k_group_align=*/16, {0});
  absl::StatusOr<PackedDecodePlan> plan =
      CreateDecodePlanForPlan(stored, {.group_size = 4, .fragment_pages = true});
  ASSERT_TRUE(plan.ok()) << plan.status();
  // (Aligned K groups: both formats happen to take 108 B per token here.)
  absl::StatusOr<PackedDecodePlan> version1 = CreateDecodePlanForPlan(stored, {.group_size = 4});
  ASSERT_TRUE(version1.ok()) << version1.status();
  std::vector<uint8_t> workspace(plan->workspace_bytes());
  const FragmentHeadGeometry* first = nullptr;
  for (int l = 0; l < kLayers; ++l) {
    const std::string where = "layer " + std::to_string(l);
    int64_t stride = 0;
    for (int h = 0; h < kPlanKvHeads; ++h) {
      absl::StatusOr<FragmentPageLayout> want =
          FragmentPageLayout::Create(*stored.KLayout(l, h), stored.VBits(l));
      ASSERT_TRUE(want.ok()) << want.status();
      const FragmentPageLayout& got = plan->fragment_layout(l, h);
      EXPECT_EQ(got.k_layout(), want->k_layout()) << where;
      EXPECT_EQ(got.v_bits(), want->v_bits()) << where;
      EXPECT_EQ(got.page_bytes(), want->page_bytes()) << where;
      stride = std::max<int64_t>(stride, static_cast<int64_t>(want->page_bytes()));
    }
    EXPECT_EQ(plan->page_stride(l), stride) << where;
    const EncodePackParams e = plan->EncodeParams(l, workspace.data());
    const PackedDecodeParams d = plan->DecodeParams(l, workspace.data(), 1, 1);
    ASSERT_NE(e.fragment, nullptr) << where;
    EXPECT_EQ(d.fragment, e.fragment) << where;
    EXPECT_EQ(e.page_stride, stride) << where;
    EXPECT_EQ(d.page_stride, stride) << where;
    if (l == 0) first = e.fragment;
    EXPECT_EQ(e.fragment, first + l * kPlanKvHeads) << where;
    EXPECT_GT(reinterpret_cast<const uint8_t*>(e.fragment), workspace.data()) << where;
    EXPECT_LT(reinterpret_cast<const uint8_t*>(e.fragment + kPlanKvHeads),
              workspace.data() + workspace.size())
        << where;
    EXPECT_EQ(version1->EncodeParams(l, workspace.data()).fragment, nullptr) << where;
    EXPECT_EQ(version1->DecodeParams(l, workspace.data(), 1, 1).fragment, nullptr) << where;
  }
}

// version1_layers: those layers keep version-1 pages, strides and params.
TEST(FragmentPagesPlanTest, Version1LayersKeepVersion1Pages) {
  const KvPlan stored = *BlockGtqPlan(kLayers, /*head_dim=*/128, /*k_group_align=*/16, {1});
  absl::StatusOr<PackedDecodePlan> plan = CreateDecodePlanForPlan(
      stored, {.group_size = 4, .fragment_pages = true, .version1_layers = {1}});
  ASSERT_TRUE(plan.ok()) << plan.status();
  absl::StatusOr<PackedDecodePlan> version1 = CreateDecodePlanForPlan(stored, {.group_size = 4});
  ASSERT_TRUE(version1.ok()) << version1.status();
  std::vector<uint8_t> workspace(plan->workspace_bytes());
  EXPECT_TRUE(plan->fragment_layer(0));
  EXPECT_FALSE(plan->fragment_layer(1));
  EXPECT_TRUE(plan->fragment_layer(2));
  EXPECT_EQ(plan->page_stride(1), version1->page_stride(1));
  EXPECT_EQ(plan->DecodeParams(1, workspace.data(), 1, 1).fragment, nullptr);
  EXPECT_EQ(plan->EncodeParams(1, workspace.data()).fragment, nullptr);
  EXPECT_NE(plan->DecodeParams(2, workspace.data(), 1, 1).fragment, nullptr);
  // Named layers must exist, and need fragment_pages.
  for (const PackedDecodeConfig& bad :
       {PackedDecodeConfig{.group_size = 4, .fragment_pages = true, .version1_layers = {3}},
        PackedDecodeConfig{.group_size = 4, .version1_layers = {1}}}) {
    absl::StatusOr<PackedDecodePlan> refused = CreateDecodePlanForPlan(stored, bad);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << refused.status();
    EXPECT_NE(refused.status().message().find("version1_layers"), std::string::npos)
        << refused.status();
  }
}

TEST(FragmentPagesPlanTest, RefusesKGroupsThatAreNotWholeEightDimUnits) {
  const KvPlan greedy = *BlockGtqPlan(kLayers, /*head_dim=*/128, /*k_group_align=*/0, {});
  absl::StatusOr<PackedDecodePlan> plan =
      CreateDecodePlanForPlan(greedy, {.group_size = 4, .fragment_pages = true});
  ASSERT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(plan.status().message().find("layer 0 KV head"), std::string::npos) << plan.status();
  EXPECT_NE(plan.status().message().find("k_group_align 8"), std::string::npos) << plan.status();
  // The same plan without fragment pages is fine.
  EXPECT_TRUE(CreateDecodePlanForPlan(greedy, {.group_size = 4}).ok());
}

}  // namespace
}  // namespace kvplan::kernels::testing
