// Lloyd–Max scalar quantizer codebooks for a unit-variance Gaussian, 1..8 bits.
//
// TurboQuant-MSE rotates a unit vector so that each coordinate is close to
// N(0, 1/d), then codes every coordinate with the optimal (Lloyd–Max) scalar
// quantizer of that distribution. The codebooks are part of the cache format: a
// cache encoded on one node is decoded on another, so the tables are checked-in
// fp32 constants (codebook_tables.inc), identical on every machine, rather than
// solved at start-up with whatever libm the machine has. SolveLloydMaxGaussian
// is the generator that produced them; a test re-solves every width and checks
// the checked-in table against it.
//
// Regenerating codebook_tables.inc (only needed if the generator changes), from
// the project root with the test binary built:
//   KVPLAN_WRITE_CODEBOOKS=core/codebook_tables.inc build/bin/core_tests
//       --gtest_filter=CodebookTablesTest.WriteTablesWhenRequested
//
// A codebook is named by the SHA-256 of its canonical bytes, as rotations are,
// so a plan can name the exact tables its cache is coded with:
//   centroid bytes := 2^bits IEEE binary32 values, ascending, each little-endian.
// The centroids alone fix a codebook: its width is log2 of their count and its
// boundaries are their fp32 midpoints.
//
// Example:
//   const Codebook& book = LloydMaxCodebook(2);
//   // book.centroids  == {-1.510418, -0.452780, 0.452780, 1.510418} (to 6 places)
//   // book.boundaries == {-0.981599, 0, 0.981599}
//   // book.mse        == 0.117482 (expected squared error per N(0,1) coordinate)
//   // book.content_hash == Sha256Hex(CodebookCentroidBytes(book.centroids))
#ifndef KVPLAN_CORE_CODEBOOK_H_
#define KVPLAN_CORE_CODEBOOK_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace kvplan {

// Code widths with a codebook, in bits per coordinate.
inline constexpr int kMinCodeBits = 1;
inline constexpr int kMaxCodeBits = 8;

struct Codebook {
  // Bits per coordinate; there are 2^bits codes.
  int bits = 0;
  // Reconstruction levels for N(0, 1), ascending and exactly symmetric
  // (centroids[k] == -centroids[2^bits - 1 - k]). Code k decodes to centroids[k].
  std::vector<float> centroids;
  // 2^bits - 1 decision boundaries, boundaries[k] = 0.5f * (centroids[k] +
  // centroids[k + 1]) evaluated in fp32. A value z codes to the number of
  // boundaries strictly below it, so a value on a boundary takes the lower code.
  std::vector<float> boundaries;
  // Expected squared error per coordinate for X ~ N(0, 1) with exactly these
  // fp32 centroids and boundaries.
  double mse = 0.0;
  // Lowercase hex SHA-256 of CodebookCentroidBytes(centroids).
  std::string content_hash;
};

// The checked-in codebook for `bits` in [kMinCodeBits, kMaxCodeBits]. The result
// lives for the whole program; thread-safe. Widths outside the range are clamped
// to it (callers validate widths at their boundary, e.g. GroupLayout).
const Codebook& LloydMaxCodebook(int bits);

// The canonical bytes of a codebook's centroids (the grammar above).
std::string CodebookCentroidBytes(absl::Span<const float> centroids);

// Solves the Lloyd–Max conditions for N(0, 1) at `bits` in [1, 8]: returns the
// 2^bits ascending, exactly symmetric centroids in fp64. Starts from the
// asymptotically optimal companded quantizer (cells of equal N(0, 3) mass) and
// iterates the Lloyd map c <- centroid(cells(c)), accelerated by Newton's method
// on its fixed point (the map's Jacobian is tridiagonal); a Newton step is taken
// only when it keeps the levels ordered and shrinks the residual, otherwise a
// plain Lloyd step. Stops when max_k |centroid_k(c) - c_k| < `tol`, after at most
// `max_iters` steps of either kind. 8 bits converges to 1e-12 in well under a
// millisecond.
//
// Errors: InvalidArgument for bits outside [1, 8], tol <= 0 or max_iters < 1;
// Internal if not converged within max_iters.
absl::StatusOr<std::vector<double>> SolveLloydMaxGaussian(int bits, double tol = 1e-12,
                                                          int max_iters = 1000);

// Expected squared error E[(X - Q(X))^2] for X ~ N(0, 1) of the scalar quantizer
// with ascending `centroids` and the `centroids.size() - 1` ascending decision
// `boundaries` between them (cell k is (boundaries[k-1], boundaries[k]]).
// Evaluated in fp64 cell by cell. Sizes that do not fit return NaN.
double GaussianQuantizerMse(absl::Span<const float> centroids, absl::Span<const float> boundaries);

}  // namespace kvplan

#endif  // KVPLAN_CORE_CODEBOOK_H_
