#include "core/rotation.h"

#include <bit>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "absl/types/span.h"
#include "core/byte_io.h"
#include "core/digest.h"
#include "core/random.h"

namespace kvplan {
namespace {

// Q of G = QR with diag(R) made non-negative, for row-major n×n G, in place.
// Householder rather than Gram–Schmidt: orthogonal to working precision however
// ill-conditioned the Gaussian draw happens to be.
void HaarQFromGaussian(int n, std::vector<double>& a) {
  auto at = [n](std::vector<double>& m, int i, int j) -> double& {
    return m[static_cast<size_t>(i) * n + j];
  };
  // Reflector k is I - 2·v·vᵀ/(vᵀv) acting on rows k..n-1; v stored per k.
  std::vector<std::vector<double>> reflectors(n);
  std::vector<double> v_norm2(n, 0.0);
  std::vector<double> r_sign(n, 1.0);
  for (int k = 0; k < n; ++k) {
    const int len = n - k;
    double norm2 = 0.0;
    for (int i = 0; i < len; ++i) norm2 += at(a, k + i, k) * at(a, k + i, k);
    if (k == n - 1) {
      r_sign[k] = at(a, k, k) < 0.0 ? -1.0 : 1.0;
      break;
    }
    // Reflect x onto alpha·e1 with alpha of opposite sign to x0: no cancellation
    // in v0 = x0 - alpha. Then R_kk = alpha.
    const double x0 = at(a, k, k);
    const double alpha = x0 < 0.0 ? std::sqrt(norm2) : -std::sqrt(norm2);
    std::vector<double>& v = reflectors[k];
    v.resize(len);
    for (int i = 0; i < len; ++i) v[i] = at(a, k + i, k);
    v[0] -= alpha;
    double vv = 0.0;
    for (int i = 0; i < len; ++i) vv += v[i] * v[i];
    v_norm2[k] = vv;
    r_sign[k] = alpha < 0.0 ? -1.0 : 1.0;
    if (vv == 0.0) continue;  // zero column (probability 0): identity reflector
    for (int j = k; j < n; ++j) {
      double dot = 0.0;
      for (int i = 0; i < len; ++i) dot += v[i] * at(a, k + i, j);
      const double scale = 2.0 * dot / vv;
      for (int i = 0; i < len; ++i) at(a, k + i, j) -= scale * v[i];
    }
  }
  // Q = H_0·H_1·…·H_{n-2}, accumulated from the right onto the identity.
  std::vector<double> q(static_cast<size_t>(n) * n, 0.0);
  for (int i = 0; i < n; ++i) at(q, i, i) = 1.0;
  for (int k = n - 2; k >= 0; --k) {
    const std::vector<double>& v = reflectors[k];
    const double vv = v_norm2[k];
    if (vv == 0.0) continue;
    const int len = n - k;
    for (int j = 0; j < n; ++j) {
      double dot = 0.0;
      for (int i = 0; i < len; ++i) dot += v[i] * at(q, k + i, j);
      const double scale = 2.0 * dot / vv;
      for (int i = 0; i < len; ++i) at(q, k + i, j) -= scale * v[i];
    }
  }
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j) at(q, i, j) *= r_sign[j];
  }
  a.swap(q);
}

absl::Status CheckRotation(int dim, const std::vector<float>& matrix) {
  if (dim < 1 || dim > kMaxRotationDim) {
    return absl::InvalidArgumentError(
        absl::StrFormat("rotation dim must be in [1, %d], got %d", kMaxRotationDim, dim));
  }
  const size_t n = static_cast<size_t>(dim);
  if (matrix.size() != n * n) {
    return absl::InvalidArgumentError(
        absl::StrFormat("rotation of dim %d needs %d values, got %d", dim, n * n, matrix.size()));
  }
  for (size_t k = 0; k < matrix.size(); ++k) {
    if (!std::isfinite(matrix[k])) {
      return absl::InvalidArgumentError(
          absl::StrFormat("rotation entry (%d, %d) is not finite: %g", k / n, k % n, matrix[k]));
    }
  }
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = i; j < n; ++j) {
      double dot = 0.0;
      for (size_t k = 0; k < n; ++k) {
        dot += static_cast<double>(matrix[i * n + k]) * static_cast<double>(matrix[j * n + k]);
      }
      const double error = std::abs(dot - (i == j ? 1.0 : 0.0));
      if (!(error <= kRotationOrthogonalityTolerance)) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "rotation of dim %d is not orthogonal: (M·Mᵀ)[%d][%d] = %.9g, off by %.3g > %g", dim, i,
            j, dot, error, kRotationOrthogonalityTolerance));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string RotationMatrixBytes(absl::Span<const float> matrix) {
  std::string bytes;
  AppendFloat32LittleEndian(bytes, std::span<const float>(matrix.data(), matrix.size()));
  return bytes;
}

Rotation HaarRotation(int dim, uint64_t seed) {
  if (dim < 1 || dim > kMaxRotationDim) return Rotation{};
  const size_t n = static_cast<size_t>(dim);
  std::vector<double> a(n * n);
  DeterministicRng rng(seed);
  for (double& value : a) value = rng.NextGaussian();
  HaarQFromGaussian(dim, a);
  Rotation rotation;
  rotation.dim = dim;
  rotation.matrix.assign(a.begin(), a.end());  // one rounding, fp64 -> fp32
  rotation.content_hash = Sha256Hex(RotationMatrixBytes(rotation.matrix));
  return rotation;
}

absl::StatusOr<Rotation> RotationFromMatrix(int dim, std::vector<float> matrix) {
  if (absl::Status status = CheckRotation(dim, matrix); !status.ok()) return status;
  Rotation rotation;
  rotation.dim = dim;
  rotation.content_hash = Sha256Hex(RotationMatrixBytes(matrix));
  rotation.matrix = std::move(matrix);
  return rotation;
}

absl::StatusOr<Rotation> RotationFromBytes(int dim, std::string_view bytes) {
  if (dim < 1 || dim > kMaxRotationDim) {
    return absl::InvalidArgumentError(
        absl::StrFormat("rotation dim must be in [1, %d], got %d", kMaxRotationDim, dim));
  }
  const size_t values = static_cast<size_t>(dim) * dim;
  if (bytes.size() != 4 * values) {
    return absl::InvalidArgumentError(absl::StrFormat("rotation of dim %d needs %d bytes, got %d",
                                                      dim, 4 * values, bytes.size()));
  }
  std::vector<float> matrix(values);
  for (size_t k = 0; k < values; ++k) {
    uint32_t bits = 0;
    for (int b = 0; b < 4; ++b) {
      bits |= static_cast<uint32_t>(static_cast<unsigned char>(bytes[4 * k + b])) << (8 * b);
    }
    matrix[k] = std::bit_cast<float>(bits);
  }
  return RotationFromMatrix(dim, std::move(matrix));
}

}  // namespace kvplan
