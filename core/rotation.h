// Haar-random orthogonal matrices: the random rotations of TurboQuant-MSE.
//
// Rotating a vector by a Haar-random orthogonal matrix makes each coordinate of
// the unit vector close to N(0, 1/d), whatever the input's direction, which is
// what lets one fixed scalar codebook serve every group. A cache encoded with a
// rotation can only be decoded with the same bits, so a Rotation is an exact
// fp32 matrix named by the SHA-256 of its bytes; plans carry or name it, and a
// consumer never regenerates it from a platform RNG. HaarRotation is the
// producer's generator: deterministic (its own PRNG, fp64 Householder QR),
// rounded once to fp32. RotationFromMatrix admits a matrix from a file or the
// wire after checking it.
//
// Matrix bytes (what the content hash covers):
//   dim·dim IEEE binary32 values, row-major, each little-endian.
// The rotation maps x to y = M·x, y_i = Σ_j matrix[i·dim + j]·x_j.
//
// Example:
//   Rotation r = HaarRotation(/*dim=*/64, /*seed=*/7);
//   // r.matrix.size() == 4096, r.content_hash is 64 lowercase hex digits
//   absl::StatusOr<Rotation> copy = RotationFromBytes(64, RotationMatrixBytes(r.matrix));
//   // copy->content_hash == r.content_hash
#ifndef KVPLAN_CORE_ROTATION_H_
#define KVPLAN_CORE_ROTATION_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace kvplan {

// Largest |M·Mᵀ - I| entry RotationFromMatrix accepts. A Haar matrix rounded to
// fp32 is off by ~1e-7 at d = 128 and ~1e-6 at d = 1024; a matrix meant for
// another dimension or a corrupted one is off by far more.
inline constexpr double kRotationOrthogonalityTolerance = 1e-5;

// Largest dimension accepted: beyond any head dimension, and it bounds the
// O(dim³) orthogonality check (about a second at this size).
inline constexpr int kMaxRotationDim = 1024;

struct Rotation {
  int dim = 0;
  // dim·dim fp32 values, row-major.
  std::vector<float> matrix;
  // Lowercase hex SHA-256 of RotationMatrixBytes(matrix).
  std::string content_hash;
};

// The Haar-random rotation of `dim` (1 <= dim <= kMaxRotationDim) for `seed`:
// the dim·dim matrix G of DeterministicRng(seed).NextGaussian() values filled
// row by row, factored G = QR by Householder reflections in fp64, made Haar by
// Q·diag(sign(diag R)) (Mezzadri 2007), and rounded to fp32. Identical bytes on
// every IEEE 754 machine. A dim outside the range yields an empty Rotation
// (dim 0, no matrix).
Rotation HaarRotation(int dim, uint64_t seed);

// Wraps a matrix received from a file or the wire, after checking it:
// InvalidArgument if dim is outside [1, kMaxRotationDim], matrix.size() !=
// dim·dim, an entry is not finite, or some |(M·Mᵀ - I)_ij| exceeds
// kRotationOrthogonalityTolerance (the message names the entry).
absl::StatusOr<Rotation> RotationFromMatrix(int dim, std::vector<float> matrix);

// As RotationFromMatrix, from the little-endian bytes RotationMatrixBytes writes.
// InvalidArgument also if bytes.size() != 4·dim·dim.
absl::StatusOr<Rotation> RotationFromBytes(int dim, std::string_view bytes);

// The canonical bytes of a matrix: each value's IEEE binary32 bits, little-endian.
std::string RotationMatrixBytes(absl::Span<const float> matrix);

}  // namespace kvplan

#endif  // KVPLAN_CORE_ROTATION_H_
