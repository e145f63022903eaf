// Where each code and norm of a fragment-native page lives (the grammar of
// core/fragment_page.h), as plain constexpr arithmetic shared by core
// (fragment_page.cc) and the CUDA encode kernel (kernels/encode_pack.cuh), so
// that both place every bit the same way. C++17, no dependencies: .cu files
// include it.
//
// Example (K coordinate p of tile row r, half-slice h = p / 8):
//   const int lane = FragmentKLane(r, p);
//   const int bit = FragmentKRunBit(half_offset[h], half_bits[h], r, p);
//   // word bit / 32 of lane's run at FragmentRunWordOffset(k_run_words, lane, bit / 32)
#ifndef KVPLAN_CORE_FRAGMENT_GEOMETRY_H_
#define KVPLAN_CORE_FRAGMENT_GEOMETRY_H_

#if defined(__CUDACC__)
#define KVPLAN_FRAGMENT_HD __host__ __device__
#else
#define KVPLAN_FRAGMENT_HD
#endif

namespace kvplan {

// Slots per tile: the M of the MMA.
inline constexpr int kFragmentTileTokens = 16;
// K coordinates per half-slice: the unit every K group must be a multiple of.
inline constexpr int kFragmentHalfSliceDims = 8;

// Byte offset, within a run block of `words` words per lane, of word `word` of
// lane `lane`'s run: 16-byte chunks per lane, then an 8-byte and a 4-byte part.
KVPLAN_FRAGMENT_HD constexpr int FragmentRunWordOffset(int words, int lane, int word) {
  const int chunks = words / 4, rest = words - 4 * chunks;
  if (word < 4 * chunks) return 512 * (word / 4) + 16 * lane + 4 * (word % 4);
  if (rest >= 2 && word < 4 * chunks + 2) return 512 * chunks + 8 * lane + 4 * (word - 4 * chunks);
  return 512 * chunks + (rest >= 2 ? 256 : 0) + 4 * lane;
}

// K: permuted coordinate p of tile row `row` is code 2·(row / 8) + (p odd) of
// its half-slice h = p / 8 in the run of lane (row % 8, (p % 8) / 2);
// half_offset and half_bits are h's first run bit and width.
KVPLAN_FRAGMENT_HD constexpr int FragmentKLane(int row, int p) {
  return 4 * (row % 8) + p % kFragmentHalfSliceDims / 2;
}
KVPLAN_FRAGMENT_HD constexpr int FragmentKRunBit(int half_offset, int half_bits, int row, int p) {
  return half_offset + half_bits * (2 * (row / 8) + p % 2);
}

// V (Vᵀ's A fragments): dim `dim` of tile row `row` is in m-tile dim / 16,
// row half row / 8, in the run of lane (dim % 8, (row % 8) / 2).
KVPLAN_FRAGMENT_HD constexpr int FragmentVLane(int row, int dim) {
  return 4 * (dim % 8) + row % 8 / 2;
}
KVPLAN_FRAGMENT_HD constexpr int FragmentVRunBit(int v_bits, int row, int dim) {
  return v_bits * (8 * (dim / 16) + 4 * (row / 8) + 2 * (dim % 16 / 8) + row % 2);
}

// Byte, within a tile's norms, of norm slot `slot` (K group slot < G, V at
// slot = G) of tile row `row`.
KVPLAN_FRAGMENT_HD constexpr int FragmentNormByte(int row, int num_k_groups, int slot) {
  return 4 * ((row % 8) * (num_k_groups + 1) + slot) + 2 * (row / 8);
}

}  // namespace kvplan

#undef KVPLAN_FRAGMENT_HD

#endif  // KVPLAN_CORE_FRAGMENT_GEOMETRY_H_
