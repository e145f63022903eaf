#include "core/random.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

namespace kvplan {
namespace {

TEST(RandomTest, SplitMix64KnownAnswers) {
  // The published SplitMix64 sequence for seed 1234567.
  uint64_t state = 1234567;
  EXPECT_EQ(SplitMix64(state), 6457827717110365317ull);
  EXPECT_EQ(SplitMix64(state), 3203168211198807973ull);
  EXPECT_EQ(SplitMix64(state), 9817491932198370423ull);
  EXPECT_EQ(SplitMix64(state), 4593380528125082431ull);
  EXPECT_EQ(SplitMix64(state), 16408922859458223821ull);
}

TEST(RandomTest, SequenceIsPinned) {
  // Rotations derive from these sequences: a change here changes every
  // seed-derived rotation, and must be deliberate.
  DeterministicRng rng(1);
  EXPECT_EQ(rng.NextU64(), 0xb3f2af6d0fc710c5ull);
  EXPECT_EQ(rng.NextU64(), 0x853b559647364ceaull);
  DeterministicRng gaussian(1);
  EXPECT_EQ(gaussian.NextGaussian(), 0x1.e267c87ac62ebp+0);
  EXPECT_EQ(gaussian.NextGaussian(), 0x1.84abd879d0e18p-3);
}

TEST(RandomTest, SameSeedSameSequenceDifferentSeedsDiffer) {
  DeterministicRng a(99), b(99), c(100);
  int differing = 0;
  for (int i = 0; i < 100; ++i) {
    const uint64_t x = a.NextU64();
    EXPECT_EQ(x, b.NextU64());
    differing += x != c.NextU64();
  }
  EXPECT_EQ(differing, 100);
}

TEST(RandomTest, UniformIsInUnitIntervalWithRightMoments) {
  DeterministicRng rng(5);
  const int n = 400000;
  double sum = 0.0, sum2 = 0.0;
  for (int i = 0; i < n; ++i) {
    const double u = rng.NextUniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
    sum2 += u * u;
  }
  EXPECT_NEAR(sum / n, 0.5, 3e-3);
  EXPECT_NEAR(sum2 / n - (sum / n) * (sum / n), 1.0 / 12.0, 2e-3);
}

TEST(RandomTest, GaussianMomentsAndTails) {
  DeterministicRng rng(11);
  const int n = 1000000;
  double sum = 0.0, sum2 = 0.0, sum4 = 0.0;
  int beyond_two = 0;
  for (int i = 0; i < n; ++i) {
    const double z = rng.NextGaussian();
    sum += z;
    sum2 += z * z;
    sum4 += z * z * z * z;
    beyond_two += std::abs(z) > 2.0;
  }
  EXPECT_NEAR(sum / n, 0.0, 5e-3);
  EXPECT_NEAR(sum2 / n, 1.0, 5e-3);
  EXPECT_NEAR(sum4 / n, 3.0, 3e-2);
  EXPECT_NEAR(static_cast<double>(beyond_two) / n, 0.0455003, 1.5e-3);  // 2·Q(2)
}

TEST(RandomTest, PortableLogMatchesLibm) {
  DeterministicRng rng(3);
  for (int i = 0; i < 100000; ++i) {
    const double x =
        std::ldexp(0.5 + rng.NextUniform(), static_cast<int>(rng.NextU64() % 200) - 100);
    const double expected = std::log(x);
    EXPECT_NEAR(PortableLog(x), expected, 4e-16 * std::max(1.0, std::abs(expected))) << x;
  }
  EXPECT_EQ(PortableLog(1.0), 0.0);
  EXPECT_TRUE(std::isnan(PortableLog(0.0)));
  EXPECT_TRUE(std::isnan(PortableLog(-1.0)));
  EXPECT_TRUE(std::isnan(PortableLog(INFINITY)));
}

}  // namespace
}  // namespace kvplan
