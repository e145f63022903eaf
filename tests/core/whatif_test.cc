#include "core/whatif.h"

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace kvplan {
namespace {

EnergyTable UniformTable(int layers, int heads, int blocks) {
  nlohmann::json json = nlohmann::json::object();
  for (int l = 0; l < layers; ++l) {
    for (int h = 0; h < heads; ++h) {
      std::vector<double> scores(blocks);
      for (int i = 0; i < blocks; ++i) scores[i] = 1.0 + i % 5 + l;
      json[std::to_string(l) + "." + std::to_string(h)] = scores;
    }
  }
  return *EnergyTableFromJson(json);
}

TEST(WhatIfTest, TokenBytesCountEverySegmentAndNorm) {
  // hd 128 uniform 3 bits: 48 code bytes + 2 norm bytes each for K and V.
  const KvTokenBytes uniform = TokenBytesForHead(std::vector<int>(64, 3), 3);
  EXPECT_EQ(uniform.k_codes, 48);
  EXPECT_EQ(uniform.k_norms, 2);
  EXPECT_EQ(uniform.v_codes, 48);
  EXPECT_EQ(uniform.v_norms, 2);
  EXPECT_EQ(uniform.total(), 100);
  // Mixed, codes dense as in a page: 10 blocks at 2 bits (20 codes -> 5 B), 50 at 3
  // (100 codes -> 37.5 B), 4 at 5 (8 codes -> 5 B).
  std::vector<int> mixed(64, 3);
  for (int i = 0; i < 10; ++i) mixed[i] = 2;
  for (int i = 60; i < 64; ++i) mixed[i] = 5;
  const KvTokenBytes bytes = TokenBytesForHead(mixed, 2);
  EXPECT_EQ(bytes.k_codes, 5 + 37.5 + 5);
  EXPECT_EQ(bytes.k_norms, 6);
  EXPECT_EQ(bytes.v_codes, 32);
}

TEST(WhatIfTest, MemoryAndCompressionArithmetic) {
  const EnergyTable table = UniformTable(2, 2, 64);
  WhatIfRequest request{.k_bits = {3},
                        .v_bits = {3, 4},
                        .context_tokens = 1000,
                        .batch = 2,
                        .memory_bytes = 1'000'000};
  absl::StatusOr<std::vector<WhatIfResult>> results = RunWhatIf(table, request);
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_EQ(results->size(), 2u);
  const WhatIfResult& r = (*results)[0];
  EXPECT_EQ(r.v_bits, 3);
  EXPECT_EQ(r.v_bytes_per_token_head, 50.0);
  EXPECT_EQ(r.bytes_per_token, 4 * r.k_bytes_per_token_head + 4 * 50);
  EXPECT_DOUBLE_EQ(r.compression_vs_fp16, 4.0 * 128 * 4 / r.bytes_per_token);
  EXPECT_DOUBLE_EQ(r.compression_vs_fp8, r.compression_vs_fp16 / 2);
  // Whole pages: 1000 tokens take 16 pages of 64; the longest context that
  // fits is whole pages too.
  const int64_t page_bytes = static_cast<int64_t>(r.bytes_per_token * 64);
  EXPECT_EQ(page_bytes, r.bytes_per_token * 64);
  EXPECT_EQ(r.kv_bytes_at_context, 16 * page_bytes * 2);
  EXPECT_EQ(r.max_context_tokens, 1'000'000 / (page_bytes * 2) * 64);
  EXPECT_LE(r.max_context_tokens * 2 * r.bytes_per_token, 1'000'000);
  EXPECT_GT((r.max_context_tokens + 64) * 2 * r.bytes_per_token, 1'000'000);
  EXPECT_LE(r.distortion_ratio, 1.0);
  ASSERT_EQ(r.layers.size(), 2u);
  int64_t blocks = 0;
  for (int64_t n : r.layers[0].bit_histogram) blocks += n;
  EXPECT_EQ(blocks, 2 * 64);
  EXPECT_GT(r.layers[0].entropy_bits, 0.0);
  EXPECT_EQ((*results)[1].v_bytes_per_token_head, 66.0);
}

TEST(WhatIfTest, EqualScoresAllocateUniformly) {
  nlohmann::json json = {{"0.0", std::vector<double>(8, 1.0)}};
  const EnergyTable table = *EnergyTableFromJson(json);
  absl::StatusOr<std::vector<WhatIfResult>> results =
      RunWhatIf(table, {.k_bits = {4}, .v_bits = {4}});
  ASSERT_TRUE(results.ok());
  EXPECT_EQ((*results)[0].layers[0].bit_histogram[4], 8);
  EXPECT_EQ((*results)[0].layers[0].entropy_bits, 0.0);
  EXPECT_DOUBLE_EQ((*results)[0].distortion_ratio, 1.0);
}

// A row at an alignment is the aligned allocation's: its bytes (fewer groups,
// fewer norms) and its distortion, head by head.
TEST(WhatIfTest, KGroupAlignRowsShowTheAlignedAllocation) {
  nlohmann::json json = nlohmann::json::object();
  for (int h = 0; h < 2; ++h) {
    std::vector<double> scores(32);
    for (int i = 0; i < 32; ++i) scores[i] = 100.0 / (1 + i) + h * (i % 3);
    json["0." + std::to_string(h)] = scores;
  }
  const EnergyTable table = *EnergyTableFromJson(json);  // head_dim 64
  const WhatIfRequest greedy_request{.k_bits = {2, 3}, .v_bits = {3}};
  WhatIfRequest aligned_request = greedy_request;
  aligned_request.k_group_align = 16;
  absl::StatusOr<std::vector<WhatIfResult>> greedy = RunWhatIf(table, greedy_request);
  absl::StatusOr<std::vector<WhatIfResult>> aligned = RunWhatIf(table, aligned_request);
  ASSERT_TRUE(greedy.ok()) << greedy.status();
  ASSERT_TRUE(aligned.ok()) << aligned.status();
  ASSERT_EQ(aligned->size(), 2u);
  for (size_t b = 0; b < 2; ++b) {
    const WhatIfResult& row = (*aligned)[b];
    double k_bytes = 0, distortion = 0, uniform_distortion = 0;
    for (int h = 0; h < 2; ++h) {
      const std::vector<double> scores = *table.Scores(0, h, ScoreKind::kSum);
      const std::vector<int> bits = *GroupAlignedAllocate(scores, {.avg_bits = row.k_bits}, 8);
      k_bytes += TokenBytesForHead(bits, 3).k();
      distortion += AllocationDistortion(scores, bits);
      uniform_distortion +=
          AllocationDistortion(scores, *UniformAllocate(32, {.avg_bits = row.k_bits}));
    }
    EXPECT_EQ(row.k_bytes_per_token_head, k_bytes / 2) << row.k_bits;
    EXPECT_EQ(row.layers[0].distortion, distortion) << row.k_bits;
    EXPECT_DOUBLE_EQ(row.distortion_ratio, distortion / uniform_distortion) << row.k_bits;
    // Fewer norms than the greedy, and more distortion.
    EXPECT_LT(row.k_bytes_per_token_head, (*greedy)[b].k_bytes_per_token_head) << row.k_bits;
    EXPECT_GT(row.distortion_ratio, (*greedy)[b].distortion_ratio) << row.k_bits;
  }

  aligned_request.k_group_align = 12;
  absl::Status st = RunWhatIf(table, aligned_request).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("k_group_align 12 does not split head_dim 64"), std::string::npos)
      << st;
  aligned_request.k_group_align = -8;
  EXPECT_EQ(RunWhatIf(table, aligned_request).status().code(), absl::StatusCode::kOutOfRange);
}

TEST(WhatIfTest, RefusesBadBudgetsAndSizes) {
  const EnergyTable table = UniformTable(1, 1, 8);
  EXPECT_EQ(RunWhatIf(table, {.k_bits = {9}, .v_bits = {3}}).status().code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(RunWhatIf(table, {.k_bits = {3}, .v_bits = {0}}).status().code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_FALSE(RunWhatIf(table, {.k_bits = {}, .v_bits = {3}}).ok());
  EXPECT_FALSE(RunWhatIf(table, {.k_bits = {3}, .v_bits = {3}, .context_tokens = 0}).ok());
  EXPECT_FALSE(RunWhatIf(table, {.k_bits = {3}, .v_bits = {3}, .score = ScoreKind::kProduct}).ok());
}

}  // namespace
}  // namespace kvplan
