// A pseudo-random generator whose output is the same on every machine.
//
// Rotation matrices are derived from a seed, and test and benchmark data should
// be the same wherever they run. The C++ standard fixes the engines
// (std::mt19937_64) but not the distributions, and libm's log/sin/cos may differ
// in the last bit between C libraries, so this file defines everything itself:
// xoshiro256** seeded through SplitMix64 (Blackman & Vigna), uniform doubles
// from the top 53 bits, and Gaussians by Marsaglia's polar method with a
// logarithm built from IEEE +, -, *, / only. The sequence for a seed is part of
// the contract: changing it changes every rotation derived from a seed.
//
// Example:
//   DeterministicRng rng(/*seed=*/42);
//   double z = rng.NextGaussian();  // same value on every platform
//   uint64_t word = rng.NextU64();
#ifndef KVPLAN_CORE_RANDOM_H_
#define KVPLAN_CORE_RANDOM_H_

#include <array>
#include <cstdint>

namespace kvplan {

// One SplitMix64 step: advances `state` by the golden-ratio increment and
// returns the mixed output. With state 1234567 the first outputs are
// 6457827717110365317, 3203168211198807973, 9817491932198370423.
uint64_t SplitMix64(uint64_t& state);

// xoshiro256** with its 256-bit state filled by four SplitMix64 outputs of the
// seed. Not cryptographic. Thread-compatible (one instance per thread).
class DeterministicRng {
 public:
  explicit DeterministicRng(uint64_t seed);

  uint64_t NextU64();
  // Uniform on [0, 1) with 53 random bits.
  double NextUniform();
  // Standard normal. Values come in pairs from the polar method; the second of
  // a pair is returned by the next call.
  double NextGaussian();

 private:
  std::array<uint64_t, 4> state_;
  bool has_spare_ = false;
  double spare_ = 0.0;
};

// Natural logarithm of a finite x > 0 from IEEE basic operations only (frexp,
// +, -, *, /), so it rounds identically everywhere; accurate to a few ulp.
// Returns NaN for x <= 0 or non-finite x.
double PortableLog(double x);

}  // namespace kvplan

#endif  // KVPLAN_CORE_RANDOM_H_
