#include "core/half.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include "core/random.h"

namespace kvplan {
namespace {

// The conversions are usable at compile time.
static_assert(FloatToHalf(1.0f) == 0x3c00);
static_assert(FloatToHalf(-2.0f) == 0xc000);
static_assert(HalfToFloat(0x3555) == 0.333251953125f);
static_assert(FloatToHalfSaturate(1e9f) == kHalfMaxBits);

float Bits(uint32_t bits) { return std::bit_cast<float>(bits); }
bool IsHalfNan(uint16_t h) { return (h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0; }

TEST(HalfTest, EdgeValues) {
  EXPECT_EQ(FloatToHalf(0.0f), 0x0000);
  EXPECT_EQ(FloatToHalf(-0.0f), 0x8000);
  EXPECT_EQ(FloatToHalf(1.0f), 0x3c00);
  EXPECT_EQ(FloatToHalf(1.0f / 3.0f), 0x3555);
  EXPECT_EQ(FloatToHalf(65504.0f), 0x7bff);    // largest finite
  EXPECT_EQ(FloatToHalf(65519.996f), 0x7bff);  // just below the inf threshold
  EXPECT_EQ(FloatToHalf(65520.0f), 0x7c00);    // halfway to 2^16: ties to "even" inf
  EXPECT_EQ(FloatToHalf(-1e10f), 0xfc00);
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -14)), 0x0400);     // smallest normal
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -24)), 0x0001);     // smallest subnormal
  EXPECT_EQ(FloatToHalf(std::ldexp(1023.0f, -24)), 0x03ff);  // largest subnormal
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -25)), 0x0000);     // tie to even (0)
  EXPECT_EQ(FloatToHalf(std::nextafter(std::ldexp(1.0f, -25), 1.0f)), 0x0001);
  EXPECT_EQ(FloatToHalf(std::ldexp(3.0f, -25)), 0x0002);   // tie between 1 and 2 units
  EXPECT_EQ(FloatToHalf(-std::ldexp(1.0f, -26)), 0x8000);  // underflow keeps the sign
  EXPECT_EQ(FloatToHalf(std::numeric_limits<float>::denorm_min()), 0x0000);
  // Subnormal rounding that carries into the smallest normal.
  EXPECT_EQ(FloatToHalf(std::ldexp(1023.5f, -24)), 0x0400);
  // Ties to even in the normal range: 1 + 2^-11 is halfway between 1 and 1 + 2^-10.
  EXPECT_EQ(FloatToHalf(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  EXPECT_EQ(FloatToHalf(1.0f + std::ldexp(3.0f, -11)), 0x3c02);
  // Mantissa carry into the exponent: just below 2 rounds up to 2.
  EXPECT_EQ(FloatToHalf(std::nextafter(2.0f, 0.0f)), 0x4000);
  EXPECT_EQ(FloatToHalf(std::numeric_limits<float>::infinity()), 0x7c00);
  EXPECT_EQ(FloatToHalf(-std::numeric_limits<float>::infinity()), 0xfc00);
  EXPECT_TRUE(IsHalfNan(FloatToHalf(std::numeric_limits<float>::quiet_NaN())));
  // A NaN whose payload lives only in the low 13 bits must not become inf.
  EXPECT_EQ(FloatToHalf(Bits(0x7f800001u)), 0x7e00);
  EXPECT_EQ(FloatToHalf(Bits(0xffc00000u)), 0xfe00);
}

TEST(HalfTest, SaturatingConversion) {
  EXPECT_EQ(FloatToHalfSaturate(65520.0f), 0x7bff);
  EXPECT_EQ(FloatToHalfSaturate(-3e38f), 0xfbff);
  EXPECT_EQ(FloatToHalfSaturate(1.5f), 0x3e00);
  EXPECT_EQ(FloatToHalfSaturate(std::numeric_limits<float>::infinity()), 0x7c00);
  EXPECT_TRUE(IsHalfNan(FloatToHalfSaturate(std::numeric_limits<float>::quiet_NaN())));
}

TEST(HalfTest, HalfToFloatMatchesDefinitionForEveryHalf) {
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    const int exponent = (h >> 10) & 0x1f;
    const int mantissa = h & 0x3ff;
    const float sign = (h & 0x8000) ? -1.0f : 1.0f;
    const float f = HalfToFloat(static_cast<uint16_t>(h));
    if (exponent == 0x1f) {
      if (mantissa == 0) {
        EXPECT_EQ(f, sign * std::numeric_limits<float>::infinity()) << std::hex << h;
      } else {
        EXPECT_TRUE(std::isnan(f)) << std::hex << h;
      }
      continue;
    }
    const float expected = exponent == 0
                               ? sign * std::ldexp(static_cast<float>(mantissa), -24)
                               : sign * std::ldexp(1.0f + mantissa / 1024.0f, exponent - 15);
    EXPECT_EQ(std::bit_cast<uint32_t>(f), std::bit_cast<uint32_t>(expected)) << std::hex << h;
  }
}

TEST(HalfTest, EveryHalfRoundTrips) {
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    EXPECT_EQ(FloatToHalf(HalfToFloat(static_cast<uint16_t>(h))), h) << std::hex << h;
  }
}

TEST(HalfTest, RoundsToNearestEvenAtEveryMidpoint) {
  // For each pair of adjacent positive halves the midpoint is an fp32; it must
  // go to the even neighbour and the floats either side of it to the nearer one.
  for (uint16_t h = 0; h < 0x7c00; ++h) {
    const uint16_t next = static_cast<uint16_t>(h + 1);
    const float lo = HalfToFloat(h);
    const float hi = next == 0x7c00 ? 65536.0f : HalfToFloat(next);
    const float mid = 0.5f * (lo + hi);
    ASSERT_GT(mid, lo);
    ASSERT_LT(mid, hi);
    const uint16_t even = (h & 1) == 0 ? h : next;
    EXPECT_EQ(FloatToHalf(mid), even) << std::hex << h;
    EXPECT_EQ(FloatToHalf(std::nextafter(mid, 0.0f)), h) << std::hex << h;
    EXPECT_EQ(FloatToHalf(std::nextafter(mid, 1e30f)), next) << std::hex << h;
    EXPECT_EQ(FloatToHalf(-mid), even | 0x8000) << std::hex << h;
  }
}

#if defined(__FLT16_MAX__)
TEST(HalfTest, AgreesWithCompilerFloat16OnRandomFloats) {
  // An independent implementation (libgcc / F16C) on random bit patterns.
  DeterministicRng rng(2024);
  for (int i = 0; i < 2'000'000; ++i) {
    const uint64_t word = rng.NextU64();
    // Half the draws anywhere, half concentrated where fp16 is finite.
    uint32_t bits = static_cast<uint32_t>(word);
    if (i % 2 == 1) bits = (bits & 0x807fffffu) | ((100u + (word >> 32) % 45u) << 23);
    const float f = Bits(bits);
    if (std::isnan(f)) continue;
    const _Float16 reference = static_cast<_Float16>(f);
    EXPECT_EQ(FloatToHalf(f), std::bit_cast<uint16_t>(reference)) << std::hex << bits;
  }
}
#endif

}  // namespace
}  // namespace kvplan
