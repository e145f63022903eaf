#include "core/block_stats.h"

#include <cmath>
#include <random>

#include "gtest/gtest.h"

namespace kvplan {
namespace {

constexpr StatsShape kShape{.num_layers = 2, .num_kv_heads = 3, .num_blocks = 4, .group_size = 2};

BlockStats RandomStats(uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::exponential_distribution<double> energy(0.5);
  BlockStats stats = *BlockStats::Create(kShape);
  for (int l = 0; l < kShape.num_layers; ++l) {
    for (int h = 0; h < kShape.num_kv_heads; ++h) {
      std::vector<double> q(4), k(4);
      for (double& v : q) v = energy(rng) * 100;
      for (double& v : k) v = energy(rng) * 50;
      EXPECT_TRUE(stats.Add(l, h, q, 20, k, 10).ok());
    }
  }
  return stats;
}

TEST(BlockStatsTest, MeansAreSumsOverCounts) {
  BlockStats stats = *BlockStats::Create(kShape);
  ASSERT_TRUE(stats.Add(1, 2, {4, 8, 12, 16}, 4, {1, 2, 3, 4}, 2).ok());
  ASSERT_TRUE(stats.Add(1, 2, {4, 0, 0, 0}, 4, {1, 0, 0, 0}, 2).ok());
  EXPECT_EQ(stats.MeanQ(1, 2), (std::vector<double>{1.0, 1.0, 1.5, 2.0}));
  EXPECT_EQ(stats.MeanK(1, 2), (std::vector<double>{0.5, 0.5, 0.75, 1.0}));
  EXPECT_EQ(stats.q_rows(1, 2), 8u);
  EXPECT_EQ(stats.k_tokens(1, 2), 4u);
  EXPECT_EQ(stats.MeanQ(0, 0), (std::vector<double>(4, 0.0)));
  EXPECT_FALSE(stats.CheckComplete().ok());
}

TEST(BlockStatsTest, MergeIsExactAndOrderIndependent) {
  BlockStats a = RandomStats(1), b = RandomStats(2), c = RandomStats(3);
  BlockStats abc = a, cba = c, bac = b;
  ASSERT_TRUE(abc.Merge(b).ok());
  ASSERT_TRUE(abc.Merge(c).ok());
  ASSERT_TRUE(cba.Merge(b).ok());
  ASSERT_TRUE(cba.Merge(a).ok());
  ASSERT_TRUE(bac.Merge(a).ok());
  ASSERT_TRUE(bac.Merge(c).ok());
  EXPECT_EQ(abc, cba);
  EXPECT_EQ(abc, bac);
  EXPECT_EQ(abc.Serialize(), cba.Serialize());
  EXPECT_EQ(abc.q_rows(0, 0), 60u);
  EXPECT_NEAR(abc.q_sum(1, 1, 3), a.q_sum(1, 1, 3) + b.q_sum(1, 1, 3) + c.q_sum(1, 1, 3), 1e-9);
  EXPECT_TRUE(abc.CheckComplete().ok());
}

TEST(BlockStatsTest, MergeRefusesOtherShapesAndLeavesTargetUnchanged) {
  BlockStats a = RandomStats(1);
  const BlockStats before = a;
  BlockStats other = *BlockStats::Create({.num_layers = 2, .num_kv_heads = 3, .num_blocks = 5});
  absl::Status st = a.Merge(other);
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(st.message().find("blocks=5"), std::string::npos) << st;
  EXPECT_EQ(a, before);
}

TEST(BlockStatsTest, AddRefusesNonFiniteNegativeAndMisshapenInput) {
  BlockStats stats = *BlockStats::Create(kShape);
  const BlockStats before = stats;
  const std::vector<double> good(4, 1.0);
  EXPECT_EQ(stats.Add(0, 0, {1, NAN, 1, 1}, 1, good, 1).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(stats.Add(0, 0, good, 1, {1, 1, INFINITY, 1}, 1).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(stats.Add(0, 0, {1, -1, 1, 1}, 1, good, 1).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(stats.Add(0, 0, {1, 1, 1}, 1, good, 1).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(stats.Add(2, 0, good, 1, good, 1).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(stats.Add(0, -1, good, 1, good, 1).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(stats.Add(0, 0, {1e30, 1, 1, 1}, 1, good, 1).code(),
            absl::StatusCode::kInvalidArgument);
  absl::Status st = stats.Add(0, 0, {1, NAN, 1, 1}, 1, good, 1);
  EXPECT_NE(st.message().find("block 1"), std::string::npos) << st;
  EXPECT_EQ(stats, before);
}

TEST(BlockStatsTest, CreateRefusesEmptyShapes) {
  EXPECT_FALSE(BlockStats::Create({.num_layers = 0, .num_kv_heads = 1, .num_blocks = 1}).ok());
  EXPECT_FALSE(BlockStats::Create({.num_layers = 1, .num_kv_heads = 1, .num_blocks = -1}).ok());
}

TEST(BlockStatsTest, SerializationRoundTripsExactly) {
  BlockStats stats = RandomStats(11);
  const std::string bytes = stats.Serialize();
  absl::StatusOr<BlockStats> back = BlockStats::Deserialize(bytes);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, stats);
  // Compact: 24-byte header, 16 bytes per head, 32 per block, 64-byte checksum.
  EXPECT_EQ(bytes.size(), 24u + 6 * (16 + 4 * 32) + 64);
}

TEST(BlockStatsTest, DeserializeDetectsCorruptionTruncationAndForeignBytes) {
  const std::string bytes = RandomStats(5).Serialize();
  std::string flipped = bytes;
  flipped[100] ^= 0x01;
  absl::StatusOr<BlockStats> r = BlockStats::Deserialize(flipped);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find("checksum"), std::string::npos) << r.status();

  r = BlockStats::Deserialize(bytes.substr(0, bytes.size() - 1));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find("truncated"), std::string::npos) << r.status();

  r = BlockStats::Deserialize("{\"not\": \"stats\"}");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);

  std::string future = bytes;
  future[4] = 9;
  r = BlockStats::Deserialize(future);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find("version 9"), std::string::npos) << r.status();

  std::string huge = bytes;
  huge[8] = '\xff';  // num_layers low byte: shape no longer matches the size.
  EXPECT_EQ(BlockStats::Deserialize(huge).status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace kvplan
