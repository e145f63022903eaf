// Which encode launches take V on wgmma (EncodesVOnWgmma, launch.h), on the
// CPU: launches of at least 128K tokens x KV heads at head_dim 128 on a device
// that runs sm_90a code, unless a test forces the slab kernel with a slab
// count; and K with it (EncodesKOnWgmma) where the layer's K groups are whole
// 16-dim units.
#include <gtest/gtest.h>

#include "kvplan/kernels/launch.h"

namespace kvplan::kernels {
namespace {

EncodePackParams Launch(int tokens, int kv_heads) {
  EncodePackParams p;
  p.head_dim = 128;
  p.num_tokens = tokens;
  p.num_kv_heads = kv_heads;
  p.wgmma = true;
  return p;
}

// The sizes measured on the H200 (NOTES.md run 31), each side of the line.
TEST(EncodesVOnWgmmaTest, LaunchesWhereTheH200MeasuredAGain) {
  EXPECT_TRUE(EncodesVOnWgmma(Launch(32768, 8), /*slabs_per_cta=*/0));  // 1.06x
  EXPECT_TRUE(EncodesVOnWgmma(Launch(16384, 8), 0));                    // 1.06x
  EXPECT_FALSE(EncodesVOnWgmma(Launch(8192, 8), 0));                    // 0.97x
  EXPECT_FALSE(EncodesVOnWgmma(Launch(4096, 8), 0));                    // 0.88x
  EXPECT_FALSE(EncodesVOnWgmma(Launch(32768, 2), 0));                   // 0.96x
  EXPECT_TRUE(EncodesVOnWgmma(Launch(65536, 2), 0));  // the same token-heads as 16K x 8
}

TEST(EncodesVOnWgmmaTest, OtherDevicesHeadDimsAndForcedSlabCountsKeepTheSlabKernel) {
  EncodePackParams p = Launch(32768, 8);
  p.wgmma = false;  // a device without sm_90a code
  EXPECT_FALSE(EncodesVOnWgmma(p, 0));
  p = Launch(32768, 8);
  p.head_dim = 64;
  EXPECT_FALSE(EncodesVOnWgmma(p, 0));
  EXPECT_FALSE(EncodesVOnWgmma(Launch(32768, 8), /*slabs_per_cta=*/2));  // the slab kernel, forced
  EXPECT_FALSE(EncodesVOnWgmma(Launch(kFewTokenEncodeMaxTokens, 2048), 0));  // few-token kernel's
}

TEST(EncodesVOnWgmmaTest, ALowerThresholdTakesSmallLaunchesButNotTheFewTokenOnes) {
  EncodePackParams p = Launch(kFewTokenEncodeMaxTokens + 1, 2);
  EXPECT_FALSE(EncodesVOnWgmma(p, 0));
  p.wgmma_min_token_heads = 0;  // as the encode tests set it
  EXPECT_TRUE(EncodesVOnWgmma(p, 0));
  p.num_tokens = kFewTokenEncodeMaxTokens;
  EXPECT_FALSE(EncodesVOnWgmma(p, 0));
}

TEST(EncodesKOnWgmmaTest, KGoesWithVWhereItsGroupsAreWhole16DimUnits) {
  EncodePackParams p = Launch(32768, 8);
  EXPECT_FALSE(EncodesKOnWgmma(p, 0));  // groups of 2-dim blocks: the slab kernel's
  p.k_groups_whole = true;              // a 16-aligned plan's layer
  EXPECT_TRUE(EncodesKOnWgmma(p, 0));
  EXPECT_FALSE(EncodesKOnWgmma(p, /*slabs_per_cta=*/2));
  p.wgmma = false;
  EXPECT_FALSE(EncodesKOnWgmma(p, 0));
  p = Launch(8192, 8);  // below V's threshold, K stays too
  p.k_groups_whole = true;
  EXPECT_FALSE(EncodesKOnWgmma(p, 0));
}

}  // namespace
}  // namespace kvplan::kernels
