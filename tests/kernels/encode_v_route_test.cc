// Which encode launches take the wgmma encode (EncodesKOnWgmma,
// EncodesVOnWgmma: launch.h), on the CPU, on a device that runs sm_90a code
// and unless a test forces the slab kernel with a slab count: K and V together
// past the few-token kernel's launches for every K layout, V alone where a
// caller raises K's threshold; each at sizes the H200 measured.
#include <gtest/gtest.h>

#include <tuple>

#include "kvplan/kernels/launch.h"

namespace kvplan::kernels {
namespace {

EncodePackParams Launch(int tokens, int kv_heads, bool k_groups_whole = false) {
  EncodePackParams p;
  p.head_dim = 128;
  p.num_tokens = tokens;
  p.num_kv_heads = kv_heads;
  p.k_groups_whole = k_groups_whole;
  p.wgmma = true;
  return p;
}

// V alone, where a raised K threshold keeps K on the slab kernel (NOTES.md
// run 34, greedy K3V3 plans, before their K took wgmma).
TEST(EncodesVOnWgmmaTest, LaunchesWhereTheH200MeasuredAGain) {
  const auto v_alone = [](int tokens, int heads) {
    EncodePackParams p = Launch(tokens, heads);
    p.wgmma_kv_min_token_heads = int64_t{1} << 40;
    return p;
  };
  EXPECT_TRUE(EncodesVOnWgmma(v_alone(32768, 8), /*slabs_per_cta=*/0));  // 1.06x (run 31)
  EXPECT_TRUE(EncodesVOnWgmma(v_alone(8192, 8), 0));                     // 1.08x
  EXPECT_TRUE(EncodesVOnWgmma(v_alone(32768, 2), 0));                    // 1.06x
  EXPECT_FALSE(EncodesVOnWgmma(v_alone(4096, 8), 0));                    // 1.01x: a tie
  EXPECT_FALSE(EncodesVOnWgmma(v_alone(16384, 2), 0));                   // 0.99x
  EXPECT_FALSE(EncodesKOnWgmma(v_alone(32768, 8), 0));
}

// K of other layouts (greedy plans: encode_k_wgmma.cuh's pair path; NOTES.md
// run 35, against K on the slab kernel), every launch past the few-token
// kernel's, though two sizes measured a loss.
TEST(EncodesKOnWgmmaTest, GreedyLayoutsTakeItToo) {
  for (const auto& [tokens, heads] : {std::tuple{32768, 8},  // 1.12x
                                      {8192, 8},             // 1.13x
                                      {512, 8},              // 1.20x
                                      {32768, 2},            // 1.16x
                                      {2048, 2},             // 1.23x
                                      {2048, 8},             // 0.96x
                                      {8192, 2}}) {          // 0.95x
    const EncodePackParams p = Launch(tokens, heads, /*k_groups_whole=*/false);
    EXPECT_TRUE(EncodesKOnWgmma(p, 0)) << tokens << " x " << heads;
    EXPECT_TRUE(EncodesVOnWgmma(p, 0)) << tokens << " x " << heads;
  }
}

// K and V together (NOTES.md run 34), every launch past the few-token kernel's.
TEST(EncodesKOnWgmmaTest, LaunchesWhereTheH200MeasuredAGain) {
  for (const auto& [tokens, heads] : {std::tuple{32768, 8},  // 1.40x
                                      {2048, 8},             // 1.07x
                                      {1024, 8},             // 1.37x
                                      {256, 8},              // 1.45x
                                      {8192, 2},             // 1.06x
                                      {2048, 2},             // 1.44x
                                      {kFewTokenEncodeMaxTokenHeads + 1, 1}}) {
    const EncodePackParams p = Launch(tokens, heads, /*k_groups_whole=*/true);
    EXPECT_TRUE(EncodesKOnWgmma(p, 0)) << tokens << " x " << heads;
    EXPECT_TRUE(EncodesVOnWgmma(p, 0)) << tokens << " x " << heads;  // one launch
  }
}

TEST(EncodesVOnWgmmaTest, OtherDevicesHeadDimsAndForcedSlabCountsKeepTheSlabKernel) {
  for (const bool whole : {false, true}) {
    EncodePackParams p = Launch(32768, 8, whole);
    p.wgmma = false;  // a device without sm_90a code
    EXPECT_FALSE(EncodesVOnWgmma(p, 0));
    EXPECT_FALSE(EncodesKOnWgmma(p, 0));
    p = Launch(32768, 8, whole);
    p.head_dim = 64;
    EXPECT_FALSE(EncodesVOnWgmma(p, 0));
    EXPECT_FALSE(EncodesKOnWgmma(p, 0));
    p = Launch(32768, 8, whole);
    EXPECT_FALSE(EncodesVOnWgmma(p, /*slabs_per_cta=*/2));  // the slab kernel, forced
    EXPECT_FALSE(EncodesKOnWgmma(p, 2));
    p = Launch(kFewTokenEncodeMaxTokenHeads / 8, 8, whole);  // the few-token kernel's
    EXPECT_FALSE(EncodesVOnWgmma(p, 0));
    EXPECT_FALSE(EncodesKOnWgmma(p, 0));
  }
}

TEST(EncodesVOnWgmmaTest, LowerThresholdsTakeSmallLaunchesButNotTheFewTokenOnes) {
  constexpr int kFewTokens = kFewTokenEncodeMaxTokenHeads / 2;  // at 2 KV heads
  EncodePackParams p = Launch(kFewTokens + 1, 2);
  p.wgmma_kv_min_token_heads = int64_t{1} << 40;  // K on the slab kernel
  EXPECT_FALSE(EncodesVOnWgmma(p, 0));
  p.wgmma_min_token_heads = 0;  // as the encode tests set it
  EXPECT_TRUE(EncodesVOnWgmma(p, 0));
  p.num_tokens = kFewTokens;
  EXPECT_FALSE(EncodesVOnWgmma(p, 0));
  p = Launch(4096, 8, /*k_groups_whole=*/true);
  p.wgmma_kv_min_token_heads = 65536;  // a higher threshold keeps K and V on the slab kernel
  EXPECT_FALSE(EncodesKOnWgmma(p, 0));
  EXPECT_FALSE(EncodesVOnWgmma(p, 0));
  p.wgmma_kv_min_token_heads = 0;
  EXPECT_TRUE(EncodesKOnWgmma(p, 0));
  p.num_tokens = kFewTokenEncodeMaxTokenHeads / 8;
  EXPECT_FALSE(EncodesKOnWgmma(p, 0));
}

// The few-token kernel's bound counts tokens x KV heads (NOTES.md run 35):
// up to 256 tokens of a 2-head model (a decode step of 256 sequences, 1.65-2.1x
// on scattered slots), 64 of an 8-head one (Llama-3.1-8B 128 x 8 took 2.1x as
// long there in slot order), 16 of a 32-head one.
TEST(TakesFewTokenEncodeTest, CountsTokensTimesHeads) {
  for (const auto& [tokens, heads, few] : {std::tuple{1, 8, true},
                                           {256, 2, true},
                                           {257, 2, false},
                                           {64, 8, true},
                                           {65, 8, false},
                                           {512, 1, true},
                                           {513, 1, false},
                                           {16, 32, true},
                                           {17, 32, false}}) {
    EXPECT_EQ(TakesFewTokenEncode(Launch(tokens, heads), 0), few) << tokens << " x " << heads;
  }
}

TEST(EncodesVOnWgmmaTest, ARaisedFewTokenBoundKeepsLargerLaunchesOffWgmma) {
  EncodePackParams p = Launch(512, 8, /*k_groups_whole=*/true);
  EXPECT_FALSE(TakesFewTokenEncode(p, 0));
  EXPECT_TRUE(EncodesKOnWgmma(p, 0));
  p.few_token_max_token_heads = 4096;  // as packed_decode_bench --few-token-max 4096
  EXPECT_TRUE(TakesFewTokenEncode(p, 0));
  EXPECT_FALSE(EncodesKOnWgmma(p, 0));
  EXPECT_FALSE(EncodesVOnWgmma(p, 0));
  EXPECT_FALSE(TakesFewTokenEncode(p, /*slabs_per_cta=*/2));  // a forced slab count wins
  p.num_tokens = 513;
  EXPECT_FALSE(TakesFewTokenEncode(p, 0));
  EXPECT_TRUE(EncodesKOnWgmma(p, 0));
}

}  // namespace
}  // namespace kvplan::kernels
