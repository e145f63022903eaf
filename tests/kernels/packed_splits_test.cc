// The version-1 step's split sizing (kvplan/kernels/packed_splits.h), on the
// CPU: one wave for short, even batches, shorter CTAs for long ones, several
// waves for ragged ones, the counts measured best on the H200 (NOTES run 28),
// and PackedDecodePlan's two entry points agreeing.
#include "kvplan/kernels/packed_splits.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "kvplan/kernels/packed_plan.h"
#include "kvplan/kernels/plan_codecs.h"
#include "tests/kernels/plan_fixtures.h"

namespace kvplan::kernels {
namespace {

// Four version-1 attention CTAs per SM on 132 SMs; the plan's default max_splits.
PackedSplitMachine H200(int kv_heads) {
  return {.resident_ctas = 528,
          .kv_heads = kv_heads,
          .max_splits = std::min(512, (4 * 132 + kv_heads - 1) / kv_heads)};
}

// Batch 16, sequence b of ctx·(b + 1) / 16 tokens when ragged (the bench's --ragged).
std::vector<int> Batch16(int ctx, bool ragged) {
  std::vector<int> lengths(16, ctx);
  if (ragged) {
    for (int b = 0; b < 16; ++b) lengths[b] = ctx * (b + 1) / 16;
  }
  return lengths;
}

TEST(PackedSplitsTest, CountsPagesOfTheLengths) {
  const std::vector<int> lengths = {0, 1, 64, 65, -3, 640};
  const BatchUnits pages = PagesOf(lengths);
  EXPECT_EQ(pages.batch, 6);
  EXPECT_EQ(pages.longest, 10);
  EXPECT_EQ(pages.total, 0 + 1 + 1 + 2 + 0 + 10);
}

// The shapes of NOTES run 28 (batch 16, K3 greedy plans, CUDA graphs) and the
// count each measured fastest at (or within 1% of it).
TEST(PackedSplitsTest, PicksTheCountsMeasuredFastestOnTheH200) {
  struct Case {
    int kv_heads, ctx;
    bool ragged;
    int splits;
  };
  const Case cases[] = {
      {8, 32768, false, 4},    // Llama: one wave (8: equal; 12-24 up to 7% slower)
      {8, 131072, false, 16},  // one wave's 512-page CTAs 5% slower
      {8, 32768, true, 16},    // 1.32x one wave
      {8, 131072, true, 16},   // 1.51x
      {2, 32768, false, 16},   // Qwen: one wave (24-64 up to 30% slower)
      {2, 131072, false, 16},  // one wave (32: 1.4% slower)
      {2, 32768, true, 32},    // 1.07x; 64 splits 15% slower than one wave
      {2, 131072, true, 66},   // 1.26x (64 measured)
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message()
                 << "kv_heads " << c.kv_heads << ", ctx " << c.ctx << (c.ragged ? ", ragged" : ""));
    EXPECT_EQ(PackedPairSplits(PagesOf(Batch16(c.ctx, c.ragged)), H200(c.kv_heads)), c.splits);
  }
}

TEST(PackedSplitsTest, ShortEvenBatchesTakeOneWave) {
  for (int kv_heads : {1, 2, 8}) {
    const PackedSplitMachine m = H200(kv_heads);
    for (int batch : {1, 3, 16, 64}) {
      for (int ctx : {64, 1000, 4096, 8192}) {
        SCOPED_TRACE(::testing::Message() << kv_heads << " heads, batch " << batch << ", " << ctx);
        const int64_t pages = (ctx + 63) / 64;
        const int64_t wave = std::clamp<int64_t>(
            std::min<int64_t>(m.resident_ctas / (batch * kv_heads), pages / 4), 1, m.max_splits);
        const BatchUnits even = {.batch = batch, .longest = pages, .total = batch * pages};
        EXPECT_EQ(PackedPairSplits(even, m), wave);
      }
    }
  }
}

TEST(PackedSplitsTest, LongCtasAreCutToAtMost128PagesWithinMaxSplits) {
  std::mt19937 rng(5);
  for (int trial = 0; trial < 2000; ++trial) {
    const PackedSplitMachine m = H200(1 + static_cast<int>(rng() % 8));
    std::vector<int> lengths(1 + rng() % 32);
    for (int& len : lengths) len = static_cast<int>(rng() % (1 << 20));
    const BatchUnits pages = PagesOf(lengths);
    const int splits = PackedPairSplits(pages, m);
    ASSERT_GE(splits, 1);
    ASSERT_LE(splits, m.max_splits);
    if (splits < m.max_splits) {
      EXPECT_LE((pages.longest + splits - 1) / splits, 128) << pages.longest << " pages";
    }
  }
}

TEST(PackedSplitsTest, RaggedBatchesTakeMoreWavesButKeep16PagesPerCta) {
  const PackedSplitMachine m = H200(8);
  for (int ctx : {8192, 32768, 131072}) {
    SCOPED_TRACE(ctx);
    const int even = PackedPairSplits(PagesOf(Batch16(ctx, false)), m);
    const int ragged = PackedPairSplits(PagesOf(Batch16(ctx, true)), m);
    EXPECT_GE(ragged, even);
    // At most four waves of 16 x 8 CTAs, and 16 pages of the longest each.
    EXPECT_LE(ragged, std::max(even, std::min(4 * 528 / 128, ctx / 64 / 16)));
  }
  // A ragged batch whose longest sequence has fewer than 16 pages per extra
  // wave keeps the one-wave count.
  const std::vector<int> short_ragged = {640, 64, 64, 64};
  EXPECT_EQ(PackedPairSplits(PagesOf(short_ragged), m), 2);  // 10 pages / 4 pages per split
}

TEST(PackedSplitsTest, EmptyBatchesAndMachinesGiveOneSplit) {
  EXPECT_EQ(PackedPairSplits(PagesOf({}), H200(8)), 1);
  EXPECT_EQ(PackedPairSplits(PagesOf(std::vector<int>{0, 0}), H200(8)), 1);
  EXPECT_EQ(PackedPairSplits(PagesOf(std::vector<int>{1 << 20}), {}), 1);
}

TEST(PackedSplitsTest, ThePlanSizesUniformAndFittedStepsAlike) {
  const absl::StatusOr<PackedDecodePlan> plan = CreateDecodePlanForPlan(
      *testing::BlockGtqPlan(/*layers=*/1, /*head_dim=*/128, /*k_group_align=*/0, {}),
      {.group_size = 4, .max_batch = 16});
  ASSERT_TRUE(plan.ok()) << plan.status();
  for (int batch : {1, 4, 16}) {
    for (int ctx : {100, 32768, 131072, 524288}) {
      SCOPED_TRACE(::testing::Message() << "batch " << batch << ", " << ctx);
      EXPECT_EQ(plan->SplitsFor(batch, ctx), plan->SplitsForLengths(std::vector<int>(batch, ctx)));
    }
  }
  // Ragged lengths take at least the uniform count of their longest.
  const std::vector<int> ragged = Batch16(131072, true);
  EXPECT_GE(plan->SplitsForLengths(ragged), plan->SplitsFor(16, 131072));
}

}  // namespace
}  // namespace kvplan::kernels
