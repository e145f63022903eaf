// Which kernel an encode launch takes (TakesFewTokenEncode, TakesWgmmaEncode:
// launch.h), on the CPU: the few-token kernel up to a bound in tokens x KV
// heads, then, on a device that runs sm_90a code at head_dim 128 and unless a
// test forces the slab kernel with a slab count, the wgmma encode for every K
// layout; each at sizes the H200 measured.
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

// Every launch past the few-token kernel's, both K layouts: 16-aligned plans
// (encode_k_wgmma.cuh's block path; NOTES.md run 34, against the slab kernel)
// and greedy ones (its pair path; run 35, against K on the slab kernel), two
// of whose sizes measured a loss.
TEST(TakesWgmmaEncodeTest, LaunchesTheH200Measured) {
  for (const auto& [tokens, heads, whole] : {std::tuple{32768, 8, true},  // 1.40x
                                             {2048, 8, true},             // 1.07x
                                             {1024, 8, true},             // 1.37x
                                             {256, 8, true},              // 1.45x
                                             {8192, 2, true},             // 1.06x
                                             {2048, 2, true},             // 1.44x
                                             {kFewTokenEncodeMaxTokenHeads + 1, 1, true},
                                             {32768, 8, false},    // 1.12x
                                             {8192, 8, false},     // 1.13x
                                             {512, 8, false},      // 1.20x
                                             {32768, 2, false},    // 1.16x
                                             {2048, 2, false},     // 1.23x
                                             {2048, 8, false},     // 0.96x
                                             {8192, 2, false}}) {  // 0.95x
    EXPECT_TRUE(TakesWgmmaEncode(Launch(tokens, heads, whole), 0))
        << tokens << " x " << heads << (whole ? " 16-aligned" : " greedy");
  }
}

TEST(TakesWgmmaEncodeTest, OtherDevicesHeadDimsAndForcedSlabCountsKeepTheSlabKernel) {
  for (const bool whole : {false, true}) {
    EncodePackParams p = Launch(32768, 8, whole);
    p.wgmma = false;  // a device without sm_90a code
    EXPECT_FALSE(TakesWgmmaEncode(p, 0));
    p = Launch(32768, 8, whole);
    p.head_dim = 64;
    EXPECT_FALSE(TakesWgmmaEncode(p, 0));
    p = Launch(32768, 8, whole);
    EXPECT_FALSE(TakesWgmmaEncode(p, /*slabs_per_cta=*/2));  // the slab kernel, forced
    p = Launch(kFewTokenEncodeMaxTokenHeads / 8, 8, whole);  // the few-token kernel's
    EXPECT_FALSE(TakesWgmmaEncode(p, 0));
  }
}

TEST(TakesWgmmaEncodeTest, ARaisedThresholdKeepsTheSlabKernel) {
  EncodePackParams p = Launch(4096, 8, /*k_groups_whole=*/true);
  p.wgmma_min_token_heads = 65536;  // as packed_decode_bench --wgmma-min 65536
  EXPECT_FALSE(TakesWgmmaEncode(p, 0));
  p.wgmma_min_token_heads = 0;
  EXPECT_TRUE(TakesWgmmaEncode(p, 0));
  p.num_tokens = kFewTokenEncodeMaxTokenHeads / 8;
  EXPECT_FALSE(TakesWgmmaEncode(p, 0));
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

TEST(TakesFewTokenEncodeTest, ARaisedBoundKeepsLargerLaunchesOffWgmma) {
  EncodePackParams p = Launch(512, 8, /*k_groups_whole=*/true);
  EXPECT_FALSE(TakesFewTokenEncode(p, 0));
  EXPECT_TRUE(TakesWgmmaEncode(p, 0));
  p.few_token_max_token_heads = 4096;  // as packed_decode_bench --few-token-max 4096
  EXPECT_TRUE(TakesFewTokenEncode(p, 0));
  EXPECT_FALSE(TakesWgmmaEncode(p, 0));
  EXPECT_FALSE(TakesFewTokenEncode(p, /*slabs_per_cta=*/2));  // a forced slab count wins
  p.num_tokens = 513;
  EXPECT_FALSE(TakesFewTokenEncode(p, 0));
  EXPECT_TRUE(TakesWgmmaEncode(p, 0));
}

}  // namespace
}  // namespace kvplan::kernels
