// A uniform grid over each codebook width's boundaries, so that the wgmma
// encode finds a value's code with one shared-memory load instead of a binary
// search (`bits` dependent loads per value: the largest phase of K's quantize
// in the Nsight profile of NOTES.md run 38).
//
// Width b's grid has cells j = -H_b .. H_b of width w_b, a power of two times
// kCodeGridScale (the encode's z and boundaries are scaled by 2^20). Cell j
// holds the values z with round(z / w_b) = j, i.e. the closed interval
// [(j - 1/2) w_b, (j + 1/2) w_b]: z / w_b is exact, so one fma that adds
// 1.5 · 2^23 rounds it to j in its low mantissa bits (GridCode adds the
// cell's index in the table as well). w_b is below the width's
// smallest gap between boundaries, so a cell holds at most one boundary, and
//   code(z) = k_j + (B[k_j] < z),  k_j = #{boundaries below the cell},
// which is the CPU's count of boundaries strictly below z (core/codebook.h)
// for every z, including z on a boundary. Values beyond ±H_b w_b take the end
// cells (every boundary lies inside ±(H_b - 1/2) w_b) and NaN the lowest, so
// they code as the CPU's: 0 below, 2^b - 1 above, 0 for NaN.
//
// The tables are built on the host (code_grid_builder.h) into CodeTables
// (params.h) and staged in shared memory by the encode.
//
// Example (device):
//   const CodeGridWidth& g = grid.widths[bits - 1];
//   const int code = GridCode(z, g, grid.cells);
#ifndef KVPLAN_KERNELS_CODE_GRID_H_
#define KVPLAN_KERNELS_CODE_GRID_H_

#include <cstdint>
#if !defined(__CUDA_ARCH__)
#include <cmath>
#include <cstring>
#endif

#include "kvplan/kernels/host_device.h"

namespace kvplan::kernels {

// z and the boundaries as the wgmma encode compares them: times 2^20
// (encode_pack.cuh's kSumScale).
inline constexpr float kCodeGridScale = 1048576.0f;
// Per width b = 1..8: log2 of w_b / kCodeGridScale (below the smallest gap
// between b's boundaries: 9.8e-1, 5.0e-1, 2.6e-1 .. 1.7e-2 from b = 2 on) and
// H_b (every boundary inside ±(H_b - 1/2) w_b). FillCodeGrid checks both
// against the checked-in codebooks.
inline constexpr int kCodeGridLog2Width[8] = {1, -1, -1, -2, -3, -4, -5, -6};
inline constexpr int kCodeGridHalfCells[8] = {1, 3, 4, 11, 25, 57, 128, 282};
inline constexpr int kCodeGridCells = [] {
  int cells = 0;
  for (int h : kCodeGridHalfCells) cells += 2 * h + 1;
  return cells;
}();

// One cell: the lowest boundary not below it (scaled; +inf past the last),
// and k_j.
struct CodeCell {
  float boundary;
  int32_t below;
};

// One width's grid: 1 / w_b, -H_b · w_b, 1.5 · 2^23 + o_b (o_b: the index of
// its cell j = 0 in CodeGrid::cells) and that plus H_b as float bits
// (GridCode's top cell).
inline constexpr float kCodeGridRound = 12582912.0f;  // 1.5 · 2^23
inline constexpr int32_t kCodeGridRoundBits = 0x4B400000;
struct CodeGridWidth {
  float inv_width;
  float low;
  float round;
  int32_t top_bits;
};

struct alignas(16) CodeGrid {
  CodeGridWidth widths[8];
  CodeCell cells[kCodeGridCells];
};

KVPLAN_HOST_DEVICE inline int32_t FloatBits(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_int(x);
#else
  int32_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  return bits;
#endif
}

// The code of z at width g: the number of g's boundaries strictly below z.
KVPLAN_HOST_DEVICE inline int GridCode(float z, const CodeGridWidth& g, const CodeCell* cells) {
  // Values below -H w, and NaN (fmaxf returns the other operand), take the
  // lowest cell.
  const float clamped = fmaxf(z, g.low);
  // 1.5 · 2^23 + o + round(clamped / w): the cell's index o + j in the low
  // mantissa bits of a positive float, whose bits grow with its value, so
  // values above +H w (+inf too) clamp to the top cell as integers (one min,
  // not a second fminf), and the index is the bits less a constant (one
  // multiply-add to the cell's address).
  const int32_t bits = FloatBits(fmaf(clamped, g.inv_width, g.round));
  const CodeCell cell = cells[(bits < g.top_bits ? bits : g.top_bits) - kCodeGridRoundBits];
  return cell.below + (cell.boundary < z ? 1 : 0);
}

}  // namespace kvplan::kernels

#endif  // KVPLAN_KERNELS_CODE_GRID_H_
