// Bit-exact IEEE 754 binary32 <-> binary16 conversion.
//
// Packed caches store group norms as fp16. The conversion is part of the cache
// format, so it is written out here rather than left to whatever the compiler or
// CPU offers (`_Float16` and F16C are not available everywhere, and CUDA's
// intrinsics must agree with the CPU reference bit for bit). Rounding is to
// nearest, ties to even; subnormals, signed zeros, infinities and NaN payloads
// are handled as IEEE 754 specifies. Everything is constexpr.
//
// Example:
//   uint16_t h = FloatToHalf(1.0f);      // 0x3c00
//   float f = HalfToFloat(0x3555);       // 0.333251953125
//   FloatToHalf(65520.0f);               // 0x7c00 (+inf: rounds past 65504)
//   FloatToHalfSaturate(1e9f);           // 0x7bff (65504)
#ifndef KVPLAN_CORE_HALF_H_
#define KVPLAN_CORE_HALF_H_

#include <bit>
#include <cstdint>

namespace kvplan {

// Largest finite fp16 value, as its bit pattern and as a float.
inline constexpr uint16_t kHalfMaxBits = 0x7bff;
inline constexpr float kHalfMax = 65504.0f;

// Rounds `f` to the nearest fp16 (ties to even). Values at or beyond 65520 in
// magnitude become ±inf; NaN stays NaN with its sign and the top 10 bits of its
// payload (quieted only when those bits are all zero, so that it stays a NaN).
constexpr uint16_t FloatToHalf(float f) {
  const uint32_t bits = std::bit_cast<uint32_t>(f);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t exponent = (bits >> 23) & 0xffu;
  const uint32_t mantissa = bits & 0x7fffffu;

  if (exponent == 0xffu) {
    if (mantissa == 0) return sign | 0x7c00u;  // ±inf
    uint32_t payload = mantissa >> 13;
    if (payload == 0) payload = 0x200u;  // would read as inf; keep it a NaN
    return static_cast<uint16_t>(sign | 0x7c00u | payload);
  }

  // Unbiased exponent; fp32 subnormals (exponent 0) are far below fp16's range.
  const int e = static_cast<int>(exponent) - 127;
  if (exponent == 0 || e < -25) return sign;  // |f| < 2^-25: rounds to ±0

  const uint32_t significand = mantissa | 0x800000u;  // 24 bits with the hidden one
  // The fp16 result counts units of 2^(e_h - 10) for normals and 2^-24 for
  // subnormals: shift the 24-bit significand down to that unit and round.
  const int half_exponent = e + 15;
  const int shift = half_exponent >= 1 ? 13 : 14 - half_exponent;  // 13..24
  uint32_t units = significand >> shift;
  const uint32_t remainder = significand & ((1u << shift) - 1u);
  const uint32_t halfway = 1u << (shift - 1);
  if (remainder > halfway || (remainder == halfway && (units & 1u) != 0)) ++units;

  if (half_exponent >= 1) {
    // `units` includes the hidden bit (0x400); adding the biased exponent on top
    // lets a mantissa carry roll into the exponent, and past 30 into inf.
    const uint32_t result = (static_cast<uint32_t>(half_exponent - 1) << 10) + units;
    if (result >= 0x7c00u) return sign | 0x7c00u;
    return static_cast<uint16_t>(sign | result);
  }
  // Subnormal (a carry to 0x400 correctly yields the smallest normal).
  return static_cast<uint16_t>(sign | units);
}

// Like FloatToHalf but clamps finite values beyond the fp16 range to ±65504
// instead of turning them into ±inf, which would poison every dot product with
// the decoded vector. Infinities and NaN convert as in FloatToHalf.
constexpr uint16_t FloatToHalfSaturate(float f) {
  const uint16_t h = FloatToHalf(f);
  const bool became_inf = (h & 0x7fffu) == 0x7c00u;
  const bool was_inf = (std::bit_cast<uint32_t>(f) & 0x7fffffffu) == 0x7f800000u;
  if (became_inf && !was_inf) return static_cast<uint16_t>((h & 0x8000u) | kHalfMaxBits);
  return h;
}

// Exact: every fp16 value is representable as an fp32.
constexpr float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  uint32_t mantissa = h & 0x3ffu;

  if (exponent == 0x1fu) return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));
  if (exponent == 0) {
    if (mantissa == 0) return std::bit_cast<float>(sign);  // ±0
    // Subnormal: mantissa·2^-24. Normalize so the leading one becomes hidden.
    int e = -14;
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      --e;
    }
    mantissa &= 0x3ffu;
    return std::bit_cast<float>(sign | (static_cast<uint32_t>(e + 127) << 23) | (mantissa << 13));
  }
  return std::bit_cast<float>(sign | ((exponent - 15 + 127) << 23) | (mantissa << 13));
}

}  // namespace kvplan

#endif  // KVPLAN_CORE_HALF_H_
