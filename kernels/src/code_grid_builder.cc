#include "kvplan/kernels/code_grid_builder.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "core/codebook.h"
#include "kvplan/kernels/code_grid.h"

namespace kvplan::kernels {

absl::Status FillCodeGrid(CodeGrid& grid) {
  std::memset(&grid, 0, sizeof(grid));
  int first = 0;
  for (int bits = 1; bits <= 8; ++bits) {
    const int half = kCodeGridHalfCells[bits - 1];
    // Exact: a power of two times 2^20, and the scaled fp32 boundaries.
    const double width =
        std::ldexp(static_cast<double>(kCodeGridScale), kCodeGridLog2Width[bits - 1]);
    std::vector<float> boundaries;
    for (float b : LloydMaxCodebook(bits).boundaries) boundaries.push_back(b * kCodeGridScale);
    const int n = static_cast<int>(boundaries.size());
    const double inside = (half - 0.5) * width;
    if (boundaries.front() <= -inside || boundaries.back() >= inside) {
      return absl::InternalError(absl::StrFormat(
          "code grid of width %d: a boundary lies outside +-(H - 1/2) w with H = %d; raise "
          "kCodeGridHalfCells[%d]",
          bits, half, bits - 1));
    }
    CodeGridWidth& header = grid.widths[bits - 1];
    header.inv_width = static_cast<float>(1.0 / width);
    header.low = static_cast<float>(-half * width);
    header.round = kCodeGridRound + static_cast<float>(first + half);
    header.top_bits = kCodeGridRoundBits + first + 2 * half;
    for (int j = -half; j <= half; ++j) {
      const double lo = (j - 0.5) * width, hi = (j + 0.5) * width;
      int below = 0, inside_cell = 0;
      for (float b : boundaries) {
        below += b < lo;
        inside_cell += lo <= b && b <= hi;
      }
      if (inside_cell > 1) {
        return absl::InternalError(absl::StrFormat(
            "code grid of width %d: cell %d holds %d boundaries; lower kCodeGridLog2Width[%d]",
            bits, j, inside_cell, bits - 1));
      }
      CodeCell& cell = grid.cells[first + half + j];
      cell.boundary = below < n ? boundaries[below] : std::numeric_limits<float>::infinity();
      cell.below = below;
    }
    first += 2 * half + 1;
  }
  return absl::OkStatus();
}

}  // namespace kvplan::kernels
