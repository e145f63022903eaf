// When a fragment step encodes its new tokens in its own first launch
// (FragmentPrologueFusesAppend, kvplan/kernels/launch.h), on the CPU: only
// where the fused grid is resident at once, as measured on the H200.
#include <gtest/gtest.h>

#include "kvplan/kernels/launch.h"

namespace kvplan::kernels {
namespace {

bool Fuses(int kv_heads, int batch, int tokens, int sms = 132) {
  PackedDecodeParams p;
  p.num_kv_heads = kv_heads;
  p.batch = batch;
  EncodePackParams append;
  append.num_tokens = tokens;
  append.num_sms = sms;
  return FragmentPrologueFusesAppend(p, append);
}

// NOTES run 30: fused, Llama-3.1-8B batch 1 (32 CTAs) 26.5 -> 23.9 µs, Qwen2.5-3B
// batch 16 (128 CTAs) 57.6 -> 53.0; Llama batch 16 (512 CTAs) gained nothing.
TEST(FusedAppendTest, FusesWhereTheGridFitsTheGpuAtOnce) {
  EXPECT_TRUE(Fuses(8, 1, 1));     // Llama batch 1
  EXPECT_TRUE(Fuses(2, 16, 16));   // Qwen batch 16
  EXPECT_TRUE(Fuses(8, 8, 8));     // 256 CTAs of 264 places
  EXPECT_FALSE(Fuses(8, 16, 16));  // Llama batch 16
  EXPECT_FALSE(Fuses(8, 1, 1, /*sms=*/1));
  // More new tokens than sequences: the grid's rows are the larger count.
  EXPECT_TRUE(Fuses(2, 1, 33));
  EXPECT_FALSE(Fuses(2, 1, 34));
}

TEST(FusedAppendTest, NothingToFuseWithoutTokensOrSequences) {
  EXPECT_FALSE(Fuses(8, 1, 0));
  EXPECT_FALSE(Fuses(8, 0, 1));
}

}  // namespace
}  // namespace kvplan::kernels
