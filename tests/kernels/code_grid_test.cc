// The encode's code grids (kvplan/kernels/code_grid.h), on the CPU: the same
// lookup the wgmma encode runs must give, for every width and every float
// near a boundary, a cell edge or the range's ends (and ±inf, NaN), the
// CPU quantizer's code: the number of boundaries strictly below z.
#include "kvplan/kernels/code_grid.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <vector>

#include "core/codebook.h"
#include "kvplan/kernels/code_grid_builder.h"

namespace kvplan::kernels {
namespace {

// The CPU quantizer's code of a scaled z (core/grouped_quantizer.cc counts
// boundaries below z·scale; here both sides carry kCodeGridScale, exactly).
int CountBelow(const std::vector<float>& scaled_boundaries, float z) {
  int count = 0;
  for (float b : scaled_boundaries) count += b < z;
  return count;
}

std::vector<float> ScaledBoundaries(int bits) {
  std::vector<float> scaled;
  for (float b : LloydMaxCodebook(bits).boundaries) scaled.push_back(b * kCodeGridScale);
  return scaled;
}

// Every float within a few ulps of each boundary and of each cell edge, the
// ends of the range and beyond, specials, and Gaussian values.
std::vector<float> Probes(int bits, const std::vector<float>& boundaries) {
  std::vector<float> probes;
  auto around = [&](float x) {
    float down = x, up = x;
    probes.push_back(x);
    for (int i = 0; i < 3; ++i) {
      down = std::nextafter(down, -std::numeric_limits<float>::infinity());
      up = std::nextafter(up, std::numeric_limits<float>::infinity());
      probes.push_back(down);
      probes.push_back(up);
    }
  };
  for (float b : boundaries) around(b);
  const int half = kCodeGridHalfCells[bits - 1];
  const double width = std::ldexp(double{kCodeGridScale}, kCodeGridLog2Width[bits - 1]);
  for (int j = -half - 2; j <= half + 2; ++j) around(static_cast<float>((j + 0.5) * width));
  const float inf = std::numeric_limits<float>::infinity();
  for (float x :
       {0.0f, -0.0f, 1e-30f, -1e-30f, std::numeric_limits<float>::denorm_min(),
        std::numeric_limits<float>::max(), -std::numeric_limits<float>::max(), inf, -inf}) {
    probes.push_back(x);
  }
  std::mt19937 rng(1234 + bits);
  std::normal_distribution<float> normal(0.0f, 1.5f);
  for (int i = 0; i < 20000; ++i) probes.push_back(normal(rng) * kCodeGridScale);
  return probes;
}

TEST(CodeGridTest, BuildsFromTheCheckedInCodebooks) {
  auto grid = std::make_unique<CodeGrid>();
  ASSERT_TRUE(FillCodeGrid(*grid).ok());
  int first = 0;
  for (int bits = 1; bits <= 8; ++bits) {
    const CodeGridWidth& g = grid->widths[bits - 1];
    const int half = kCodeGridHalfCells[bits - 1];
    EXPECT_EQ(g.round, kCodeGridRound + static_cast<float>(first + half)) << bits;
    EXPECT_EQ(g.top_bits, kCodeGridRoundBits + first + 2 * half) << bits;
    EXPECT_EQ(grid->cells[first].below, 0) << bits;
    EXPECT_EQ(grid->cells[first + 2 * half].below, (1 << bits) - 1) << bits;
    first += 2 * half + 1;
  }
  EXPECT_EQ(first, kCodeGridCells);
}

TEST(CodeGridTest, GivesTheCpuCodeForEveryProbedValueOfEveryWidth) {
  auto grid = std::make_unique<CodeGrid>();
  ASSERT_TRUE(FillCodeGrid(*grid).ok());
  for (int bits = 1; bits <= 8; ++bits) {
    const std::vector<float> boundaries = ScaledBoundaries(bits);
    int mismatches = 0;
    for (float z : Probes(bits, boundaries)) {
      const int want = CountBelow(boundaries, z);
      const int got = GridCode(z, grid->widths[bits - 1], grid->cells);
      if (got != want && ++mismatches <= 5) {
        ADD_FAILURE() << "width " << bits << ", z = " << z << ": code " << got << ", the CPU's "
                      << want;
      }
    }
    EXPECT_EQ(mismatches, 0) << "width " << bits;
  }
}

TEST(CodeGridTest, CodesNanAsZeroLikeTheCpu) {
  auto grid = std::make_unique<CodeGrid>();
  ASSERT_TRUE(FillCodeGrid(*grid).ok());
  for (int bits = 1; bits <= 8; ++bits) {
    EXPECT_EQ(
        GridCode(std::numeric_limits<float>::quiet_NaN(), grid->widths[bits - 1], grid->cells), 0)
        << bits;
    EXPECT_EQ(
        GridCode(-std::numeric_limits<float>::quiet_NaN(), grid->widths[bits - 1], grid->cells), 0)
        << bits;
  }
}

}  // namespace
}  // namespace kvplan::kernels
