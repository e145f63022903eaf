#include "core/random.h"

#include <cmath>
#include <cstdint>
#include <limits>


namespace kvplan {
namespace {

uint64_t RotateLeft(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

}  // namespace

uint64_t SplitMix64(uint64_t& state) {
  state += 0x9e3779b97f4a7c15ull;
  uint64_t z = state;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

DeterministicRng::DeterministicRng(uint64_t seed) {
  // SplitMix64 cannot yield four zero words in a row, so the xoshiro state is
  // never the all-zero fixed point.
  for (uint64_t& word : state_) word = SplitMix64(seed);
}

uint64_t DeterministicRng::NextU64() {
  const uint64_t result = RotateLeft(state_[1] * 5, 7) * 9;
  const uint64_t t = state_[1] << 17;
  state_[2] ^= state_[0];
  state_[3] ^= state_[1];
  state_[1] ^= state_[2];
  state_[0] ^= state_[3];
  state_[2] ^= t;
  state_[3] = RotateLeft(state_[3], 45);
  return result;
}

double DeterministicRng::NextUniform() { return static_cast<double>(NextU64() >> 11) * 0x1.0p-53; }

double DeterministicRng::NextGaussian() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  double u, v, s;
  do {
    u = 2.0 * NextUniform() - 1.0;
    v = 2.0 * NextUniform() - 1.0;
    s = u * u + v * v;
  } while (s >= 1.0 || s == 0.0);
  // sqrt is correctly rounded by IEEE 754; PortableLog replaces libm's log.
  const double factor = std::sqrt(-2.0 * PortableLog(s) / s);
  spare_ = v * factor;
  has_spare_ = true;
  return u * factor;
}

double PortableLog(double x) {
  if (!(x > 0.0) || !std::isfinite(x)) return std::numeric_limits<double>::quiet_NaN();
  // x = m·2^e exactly, then m moved into [√½, √2) so that f below is small.
  int e = 0;
  double m = std::frexp(x, &e);  // m in [0.5, 1)
  if (m < 0.70710678118654752440) {
    m *= 2.0;
    e -= 1;
  }
  // log m = 2·atanh(f) = 2(f + f³/3 + f⁵/5 + ...), f = (m-1)/(m+1), |f| <= 0.1716:
  // f² <= 0.0295, so 12 terms reach below 2^-53 relative.
  const double f = (m - 1.0) / (m + 1.0);
  const double f2 = f * f;
  double series = 1.0 / 25.0;
  for (int k = 11; k >= 0; --k) series = 1.0 / (2 * k + 1) + f2 * series;
  // ln 2 split so that e·kLn2Hi is exact for |e| < 2^11.
  constexpr double kLn2Hi = 6.93147180369123816490e-01;
  constexpr double kLn2Lo = 1.90821492927058770002e-10;
  return e * kLn2Hi + (e * kLn2Lo + 2.0 * f * series);
}

}  // namespace kvplan
