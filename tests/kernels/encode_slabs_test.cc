// The encode launch's slabs per CTA (kvplan/kernels/encode_slabs.h), on the
// CPU: the counts measured fastest on the H200, one wave for small launches,
// about two for large ones.
#include "kvplan/kernels/encode_slabs.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>

namespace kvplan::kernels {
namespace {

constexpr int kSms = 132;

int64_t Ctas(int slabs, int heads, int per_cta) {
  return int64_t{(slabs + per_cta - 1) / per_cta} * heads * 2;
}

// NOTES run 28 (call 7, K3V3a16 plans): 64-token slabs of the launch, KV heads.
TEST(EncodeSlabsTest, PicksTheCountsMeasuredFastestOnTheH200) {
  EXPECT_EQ(EncodeSlabsPerCta(64, 8, kSms), 4);    // Llama 4K: 49.1 µs (2: 56.1, 8: 71.1)
  EXPECT_EQ(EncodeSlabsPerCta(64, 2, kSms), 1);    // Qwen 4K: 22.3 µs (2: 23.5, 4: 40.0)
  EXPECT_EQ(EncodeSlabsPerCta(256, 8, kSms), 8);   // Llama 16K: 179.9 µs (4: 194.4)
  EXPECT_EQ(EncodeSlabsPerCta(512, 2, kSms), 8);   // Qwen 32K: 96.4 µs (4: 100.5)
  EXPECT_EQ(EncodeSlabsPerCta(512, 8, kSms), 16);  // Llama 32K: 331.6 µs (8: 346.5)
}

TEST(EncodeSlabsTest, SmallLaunchesTakeOneWaveAndLargeOnesAboutTwo) {
  for (int sms : {1, 66, 132}) {
    for (int heads : {1, 2, 8, 32}) {
      for (int slabs = 1; slabs <= 2048; slabs = slabs * 3 / 2 + 1) {
        SCOPED_TRACE(::testing::Message() << sms << " SMs, " << heads << " heads, " << slabs);
        const int per = EncodeSlabsPerCta(slabs, heads, sms);
        ASSERT_GE(per, 1);
        ASSERT_LE(per, 16);
        if (per > 1) {
          EXPECT_EQ(per % 2, 0);
        }
        // A wave: 2 CTAs per SM, or one CTA per (KV head, K|V) if that is more.
        const int64_t wave = std::max<int64_t>(2 * sms, 2 * heads);
        if (per <= 8 && Ctas(slabs, heads, per) > wave) {
          // Only where one wave would need more than 8 slabs per CTA: two then.
          EXPECT_GT(Ctas(slabs, heads, 8), wave);
          EXPECT_LE(Ctas(slabs, heads, per), 2 * wave);
        }
        if (per < 16) {
          EXPECT_LE(Ctas(slabs, heads, per), 2 * wave);
        }
        // No fewer slabs per CTA would keep to one wave within 8 slabs.
        if (per > 1 && per <= 8) {
          EXPECT_GT(Ctas(slabs, heads, per - 2 > 0 ? per - 2 : 1), wave);
        }
      }
    }
  }
}

TEST(EncodeSlabsTest, DegenerateShapesGiveOneSlab) {
  EXPECT_EQ(EncodeSlabsPerCta(0, 8, kSms), 1);
  EXPECT_EQ(EncodeSlabsPerCta(1, 0, 0), 1);
}

// The wgmma encode (one CTA per SM) of K and V: one wave per kind or, where
// that adds no round of slabs to a warpgroup, the whole grid one wave.
TEST(EncodeSlabsTest, WgmmaGridIsOneWavePerKindOrOneInAll) {
  constexpr int kKinds = 2;  // K and V
  for (int sms : {1, 66, 132}) {
    for (int heads : {1, 2, 8, 32, 200}) {
      for (int slabs = 1; slabs <= 4096; slabs = slabs * 3 / 2 + 1) {
        SCOPED_TRACE(::testing::Message() << sms << " SMs, " << heads << " heads, " << slabs);
        const int per = WgmmaEncodeSlabsPerCta(slabs, heads, sms, /*warpgroups=*/3);
        ASSERT_GE(per, 1);
        ASSERT_LE(per, slabs);
        // CTAs of one (head, kind); a wave holds one per SM, or one per
        // (head, kind) where those outnumber the SMs.
        const auto ctas = [&](int per_cta) { return int64_t{(slabs + per_cta - 1) / per_cta}; };
        const auto waves = [&](int per_cta, int kinds_in_wave) {
          const int64_t wave = std::max<int64_t>(sms, int64_t{heads} * kinds_in_wave);
          return (ctas(per_cta) * heads * kKinds + wave - 1) / wave;
        };
        if (waves(per, kKinds) == 1) {
          if (per > 1) {
            EXPECT_GT(waves(per - 1, kKinds), 1);  // as thin as one wave allows
          }
        } else {
          EXPECT_EQ(waves(per, 1), kKinds);  // a wave per kind
          if (per > 1) {
            EXPECT_GT(waves(per - 1, 1), kKinds);
          }
        }
      }
    }
  }
}

// NOTES run 34 (K3V3a16, µs per launch of K and V).
TEST(EncodeSlabsTest, WgmmaLaunchesOfTheBenchmarks) {
  EXPECT_EQ(WgmmaEncodeSlabsPerCta(16, 8, kSms, 3), 2);    // Llama 1K: 16.4 (1 per CTA: 23.0)
  EXPECT_EQ(WgmmaEncodeSlabsPerCta(64, 2, kSms, 3), 2);    // Qwen 4K: 16.3 (1: 22.9)
  EXPECT_EQ(WgmmaEncodeSlabsPerCta(512, 8, kSms, 3), 32);  // Llama 32K: 232.5 (64: 273)
  EXPECT_EQ(WgmmaEncodeSlabsPerCta(512, 2, kSms, 3), 8);   // Qwen 32K: 72.5 (16: 77.3)
  EXPECT_EQ(WgmmaEncodeSlabsPerCta(0, 8, kSms, 3), 1);
  EXPECT_EQ(WgmmaEncodeSlabsPerCta(1, 0, 0, 0), 1);
}

}  // namespace
}  // namespace kvplan::kernels
