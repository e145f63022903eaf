// The fragment step's split sizing (kvplan/kernels/fragment_splits.h), on the
// CPU: fitted splits keep the uniform sizing's work per CTA on uniform
// batches, fill the wave on ragged ones and on wide page tables, and balanced
// shapes get an even share.
#include "kvplan/kernels/fragment_splits.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "kvplan/kernels/fragment_params.h"

namespace kvplan::kernels {
namespace {

int64_t Tiles(int tokens) { return (tokens + 15) / 16; }

// The CTAs of a per-pair step that have tiles to decode: the kernel cuts the
// table's tiles (4 per page) into splits of FragmentSplitTiles.
int64_t BusyCtas(const std::vector<int>& lengths, int max_pages, int splits, int kv_heads) {
  const int64_t per_split = FragmentSplitTiles(4 * max_pages, splits);
  int64_t busy = 0;
  for (int len : lengths) busy += (Tiles(len) + per_split - 1) / per_split;
  return busy * kv_heads;
}

FragmentSplitMachine H200(int kv_heads) {
  // Two attention CTAs per SM on 132 SMs; the plan's default max_splits.
  return {.resident_ctas = 264,
          .kv_heads = kv_heads,
          .warps = 8,
          .max_splits = std::min(512, (4 * 132 + kv_heads - 1) / kv_heads)};
}

TEST(FragmentSplitsTest, UniformBatchesKeepTheUniformSplitLength) {
  for (int resident : {132, 264, 396}) {
    for (int kv_heads : {1, 2, 4, 8, 16}) {
      FragmentSplitMachine m = H200(kv_heads);
      m.resident_ctas = resident;
      for (int batch = 1; batch <= 64; ++batch) {
        for (int ctx : {64, 1000, 4096, 16384, 20000, 32768, 131072, 524288}) {
          const int pages = (ctx + 63) / 64;
          const int uniform = std::min(UniformPairSplits(batch, ctx, m), m.max_splits);
          const int fitted = FittedPairSplits(std::vector<int>(batch, ctx), pages, m);
          const std::string where = "resident " + std::to_string(resident) + ", kv_heads " +
                                    std::to_string(kv_heads) + ", batch " + std::to_string(batch) +
                                    ", ctx " + std::to_string(ctx);
          // The same work per CTA; never more splits (partial slots) for it.
          ASSERT_EQ(FragmentSplitTiles(4 * pages, fitted), FragmentSplitTiles(4 * pages, uniform))
              << where;
          ASSERT_LE(fitted, uniform) << where;
        }
      }
    }
  }
}

TEST(FragmentSplitsTest, RaggedBatchesPutTheShortSequencesIdleCtasToWork) {
  // Llama-3.1-8B (8 KV heads), batch 16 of lengths ctx·(b + 1)/16 up to 32K:
  // two uniform splits leave 72 of the 264 resident CTAs idle; three fill them.
  const FragmentSplitMachine m = H200(8);
  std::vector<int> lengths;
  for (int b = 0; b < 16; ++b) lengths.push_back(32768 * (b + 1) / 16);
  EXPECT_EQ(UniformPairSplits(16, 32768, m), 2);
  EXPECT_EQ(BusyCtas(lengths, 512, 2, 8), 192);
  EXPECT_EQ(FittedPairSplits(lengths, 512, m), 3);
  EXPECT_EQ(BusyCtas(lengths, 512, 3, 8), 264);

  // Longer ones: several waves of shorter splits (12 measured 348 µs at 128K
  // against 385 for 3; NOTES run 27).
  for (int ctx : {131072, 524288}) {
    std::vector<int> longer;
    for (int b = 0; b < 16; ++b) longer.push_back(ctx * (b + 1) / 16);
    const int splits = FittedPairSplits(longer, ctx / 64, m);
    EXPECT_GT(BusyCtas(longer, ctx / 64, splits, 8), m.resident_ctas) << ctx;
    EXPECT_GE(FragmentSplitTiles(4 * (ctx / 64), splits), 64 * m.warps) << ctx;
  }

  // Any batch: at least the one-wave split count's parallelism (the most
  // splits whose busy CTAs fit one wave); more only in splits of at least 64
  // tiles per warp; and when the one wave is balanced, exactly its length.
  std::mt19937 rng(7);
  for (int trial = 0; trial < 3000; ++trial) {
    const int kv_heads = 1 << (rng() % 4);
    const FragmentSplitMachine machine = H200(kv_heads);
    const int batch = 1 + static_cast<int>(rng() % 48);
    const int max_pages = 1 + static_cast<int>(rng() % 4096);
    std::vector<int> lens(batch);
    for (int& len : lens) len = rng() % 5 == 0 ? 0 : static_cast<int>(rng() % (64 * max_pages + 1));
    if (trial % 4 == 0) std::fill(lens.begin(), lens.end(), 64 * max_pages);  // uniform, full
    const int splits = FittedPairSplits(lens, max_pages, machine);
    const std::string where = "trial " + std::to_string(trial);
    ASSERT_GE(splits, 1) << where;
    ASSERT_LE(splits, machine.max_splits) << where;
    // The one-wave count, at least 8 tiles per warp.
    const int tiles = 4 * max_pages;
    const int most = std::min(machine.max_splits, std::max(1, tiles / (8 * machine.warps)));
    int one_wave = 1;
    while (one_wave < most &&
           BusyCtas(lens, max_pages, one_wave + 1, kv_heads) <= machine.resident_ctas) {
      ++one_wave;
    }
    // A CTA's work: the split length, capped at the longest sequence's tiles.
    const int64_t longest = Tiles(*std::max_element(lens.begin(), lens.end()));
    auto work = [&](int count) {
      return std::min<int64_t>(FragmentSplitTiles(tiles, count), longest);
    };
    ASSERT_LE(work(splits), work(one_wave)) << where;
    if (work(splits) < work(one_wave)) {
      ASSERT_GE(FragmentSplitTiles(tiles, splits), 64 * machine.warps) << where;
      ASSERT_GT(BusyCtas(lens, max_pages, splits, kv_heads), machine.resident_ctas) << where;
    }
    if (trial % 4 == 0) {
      ASSERT_EQ(FragmentSplitTiles(tiles, splits), FragmentSplitTiles(tiles, one_wave))
          << where << " (uniform)";
    }
    // The fewest splits for that work.
    if (splits > 1) {
      ASSERT_LT(work(splits), work(splits - 1)) << where;
    }
  }
}

TEST(FragmentSplitsTest, WidePageTablesSplitTheSequencesNotTheTable) {
  // Batch 16 of 32K tokens in a page table sized for 128K (2048 pages): the
  // uniform sizing gives 2 splits of 4096 tiles, so only split 0 of each
  // sequence has work; fitted, 8 splits of 1024 tiles give each sequence two
  // busy CTAs, as a table of its own width would.
  const FragmentSplitMachine m = H200(8);
  const std::vector<int> lengths(16, 32768);
  EXPECT_EQ(UniformPairSplits(16, 32768, m), 2);
  EXPECT_EQ(BusyCtas(lengths, 2048, 2, 8), 128);
  const int fitted = FittedPairSplits(lengths, 2048, m);
  EXPECT_EQ(fitted, 8);
  EXPECT_EQ(FragmentSplitTiles(4 * 2048, fitted), FragmentSplitTiles(4 * 512, 2));
  EXPECT_EQ(BusyCtas(lengths, 2048, fitted, 8), 256);
  // Batch 1 in the same table: 32 splits of 256 tiles leave 24 of each
  // head's 32 CTAs empty; the plan's 66 slots (its max_splits) give 17 busy.
  const std::vector<int> one(1, 32768);
  EXPECT_EQ(UniformPairSplits(1, 32768, m), 32);
  EXPECT_EQ(BusyCtas(one, 2048, 32, 8), 64);
  EXPECT_EQ(FittedPairSplits(one, 2048, m), 66);
  EXPECT_EQ(BusyCtas(one, 2048, 66, 8), 136);
  // Sequences shorter than any split: one split (more would only add empty
  // CTAs and partial slots); likewise a batch of fp16 tokens only.
  EXPECT_EQ(FittedPairSplits(std::vector<int>(16, 100), 2048, m), 1);
  EXPECT_EQ(FittedPairSplits(std::vector<int>(16, 0), 2048, m), 1);
  EXPECT_EQ(FittedPairSplits(std::vector<int>(), 2048, m), 1);
}

TEST(FragmentSplitsTest, BalancedShapesGiveEveryCtaAnEvenShare) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 3000; ++trial) {
    FragmentSplitMachine m = H200(1 << (rng() % 4));
    if (trial % 3 == 0) m.max_splits = 1 + static_cast<int>(rng() % 4);  // capped slots
    const int batch = 1 + static_cast<int>(rng() % 48);
    std::vector<int> lens(batch);
    int64_t total = 0, longest = 0;
    for (int& len : lens) {
      len = rng() % 5 == 0 ? 0 : static_cast<int>(rng() % 300000);
      total += Tiles(len);
      longest = std::max(longest, Tiles(len));
    }
    const FragmentSplits shape = FittedBalancedSplits(lens, m);
    const std::string where = "trial " + std::to_string(trial);
    ASSERT_GE(shape.ctas_per_kv_head, 1) << where;
    ASSERT_LE(shape.ctas_per_kv_head * m.kv_heads, std::max(m.kv_heads, m.resident_ctas)) << where;
    ASSERT_GE(shape.num_splits, 1) << where;
    ASSERT_LE(shape.num_splits, m.max_splits) << where;
    const int chunk = FragmentChunkTiles(static_cast<int>(total), static_cast<int>(longest),
                                         shape.ctas_per_kv_head, shape.num_splits);
    const int even = static_cast<int>(
        std::max<int64_t>(1, (total + shape.ctas_per_kv_head - 1) / shape.ctas_per_kv_head));
    // Uncapped, the chunk is the even share; capped, still a chunk the
    // kernel can walk: every sequence within its slots.
    if (trial % 3 != 0) {
      ASSERT_EQ(chunk, even) << where;
    }
    for (int b = 0, start = 0; b < batch; start += static_cast<int>(Tiles(lens[b++]))) {
      ASSERT_LE(FragmentSlotsSpanned(start, static_cast<int>(Tiles(lens[b])), chunk),
                shape.num_splits)
          << where << ", sequence " << b;
    }
  }
  // The ragged Llama batch above: 33 CTAs of 528 tiles and 5 slots, where
  // the uniform sizing's 4 slots hold the chunk at 683.
  std::vector<int> lengths;
  for (int b = 0; b < 16; ++b) lengths.push_back(32768 * (b + 1) / 16);
  const FragmentSplits ragged = FittedBalancedSplits(lengths, H200(8));
  EXPECT_EQ(ragged.ctas_per_kv_head, 33);
  EXPECT_EQ(ragged.num_splits, 5);
  EXPECT_EQ(FragmentChunkTiles(17408, 2048, 33, 5), 528);
  EXPECT_EQ(FragmentChunkTiles(17408, 2048, 33, 4), 683);
}

}  // namespace
}  // namespace kvplan::kernels
