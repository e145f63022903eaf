// Deterministic codecs and data for the GPU tests: group layouts with chosen
// or random widths (any, or in whole 8- or 16-dim units), Haar rotations,
// fp32 activations, and CPU-built pages.
//
// Example:
//   HeadCodec codec = RandomCodec(/*head_dim=*/128, /*avg_bits=*/3.0, /*seed=*/7);
//   std::vector<float> x = RandomVector(n * 128, /*seed=*/1);
#ifndef KVPLAN_TESTS_KERNELS_CODEC_FIXTURES_H_
#define KVPLAN_TESTS_KERNELS_CODEC_FIXTURES_H_

#include <array>
#include <cstdint>
#include <vector>

#include "core/group_layout.h"
#include "core/random.h"
#include "core/rotation.h"
#include "kvplan/kernels/packed_plan.h"

namespace kvplan::kernels::testing {

// Split-half blocks (i, i + hd/2) with the given widths; rotations seeded from `seed`.
inline HeadCodec CodecFromWidths(const std::vector<int>& widths, uint64_t seed) {
  const int blocks = static_cast<int>(widths.size());
  std::vector<std::array<int, 2>> dims(blocks);
  for (int i = 0; i < blocks; ++i) dims[i] = {i, i + blocks};
  HeadCodec codec;
  codec.k_layout = *BuildGroupLayout(widths, dims);
  for (size_t g = 0; g < codec.k_layout.groups.size(); ++g) {
    codec.k_rotations.push_back(HaarRotation(codec.k_layout.groups[g].size, seed * 131 + g));
  }
  codec.v_rotation = HaarRotation(2 * blocks, seed * 131 + 99);
  return codec;
}

// Widths averaging about avg_bits with an uneven spread over 1..8.
inline HeadCodec RandomCodec(int head_dim, double avg_bits, uint64_t seed) {
  DeterministicRng rng(seed);
  const int blocks = head_dim / 2;
  std::vector<int> widths(blocks);
  for (int i = 0; i < blocks; ++i) {
    const double w = avg_bits + 1.5 * rng.NextGaussian();
    widths[i] = std::min(8, std::max(1, static_cast<int>(std::lround(w))));
  }
  return CodecFromWidths(widths, seed);
}

// Widths in units of unit_dims dims (8: what fragment-native pages need; 16:
// a 16-aligned plan's), unit u at 1 + u mod 8 (every_width) or uneven widths
// around avg_bits.
inline HeadCodec AlignedCodec(int head_dim, double avg_bits, uint64_t seed, bool every_width,
                              int unit_dims = 8) {
  DeterministicRng rng(seed);
  const int blocks = head_dim / 2, unit_blocks = unit_dims / 2;
  std::vector<int> widths(blocks);
  for (int u = 0; u < blocks / unit_blocks; ++u) {
    const int w = every_width ? 1 + u % 8
                              : std::min(8, std::max(1, static_cast<int>(std::lround(
                                                            avg_bits + 1.5 * rng.NextGaussian()))));
    for (int i = 0; i < unit_blocks; ++i) widths[unit_blocks * u + i] = w;
  }
  return CodecFromWidths(widths, seed);
}

inline std::vector<float> RandomVector(size_t n, uint64_t seed, double scale = 1.0) {
  DeterministicRng rng(seed);
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(scale * rng.NextGaussian());
  return v;
}

}  // namespace kvplan::kernels::testing

#endif  // KVPLAN_TESTS_KERNELS_CODEC_FIXTURES_H_
