// Builds the encode's code grids (code_grid.h) from the checked-in Lloyd–Max
// codebooks (core/codebook.h). Host only.
//
// Example:
//   CodeGrid grid;
//   if (absl::Status s = FillCodeGrid(grid); !s.ok()) return s;
#ifndef KVPLAN_KERNELS_CODE_GRID_BUILDER_H_
#define KVPLAN_KERNELS_CODE_GRID_BUILDER_H_

#include "absl/status/status.h"
#include "kvplan/kernels/code_grid.h"

namespace kvplan::kernels {

// Every width's cells and header. Internal error, naming the width and the
// cell, where a cell would hold two boundaries or a boundary lies outside
// ±(H_b - 1/2) w_b: kCodeGridLog2Width / kCodeGridHalfCells no longer fit the
// codebooks.
absl::Status FillCodeGrid(CodeGrid& grid);

}  // namespace kvplan::kernels

#endif  // KVPLAN_KERNELS_CODE_GRID_BUILDER_H_
