#include "core/codebook.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <numbers>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "absl/types/span.h"
#include "core/byte_io.h"
#include "core/digest.h"

namespace kvplan {
namespace {

// kLloydMaxCentroids1 .. kLloydMaxCentroids8 and kLloydMaxMse.
#include "core/codebook_tables.inc"

constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;
constexpr double kInf = std::numeric_limits<double>::infinity();

double Pdf(double x) { return std::isinf(x) ? 0.0 : kInvSqrt2Pi * std::exp(-0.5 * x * x); }

// P(a < X <= b) for a <= b. A difference of two nearly equal CDF values loses
// digits, so cells near the origin use erf (small there) and tail cells erfc.
double Mass(double a, double b) {
  if (a < 0.0 && b > 0.0) return 0.5 * (std::erf(b * kInvSqrt2) - std::erf(a * kInvSqrt2));
  if (a < 0.0) return Mass(-b, -a);  // mirror onto the positive half line
  if (a < 1.0) return 0.5 * (std::erf(b * kInvSqrt2) - std::erf(a * kInvSqrt2));
  return 0.5 * (std::erfc(a * kInvSqrt2) - std::erfc(b * kInvSqrt2));
}

// φ(a) - φ(b) = ∫_a^b x φ(x) dx for 0 <= a <= b, without the cancellation of
// subtracting two nearly equal densities: φ(a)·(1 - exp(-(b² - a²)/2)).
double PdfDrop(double a, double b) {
  if (std::isinf(b)) return Pdf(a);
  return -Pdf(a) * std::expm1(-0.5 * (b - a) * (b + a));
}

// The Lloyd–Max problem is symmetric, so it is solved on the positive half line
// only: m = 2^(bits-1) positive levels c_0 < ... < c_{m-1}, cell j = (t_j, t_{j+1}]
// with t_0 = 0, t_j = (c_{j-1} + c_j)/2, t_m = inf. The negative half mirrors it
// exactly, which is what makes the stored tables exactly symmetric.
struct HalfLine {
  std::vector<double> t;  // m + 1 boundaries
  std::vector<double> mass;
  std::vector<double> centroid;  // the Lloyd map T(c)
};

void EvaluateCells(const std::vector<double>& c, HalfLine& h) {
  const size_t m = c.size();
  h.t.assign(m + 1, 0.0);
  for (size_t j = 1; j < m; ++j) h.t[j] = 0.5 * (c[j - 1] + c[j]);
  h.t[m] = kInf;
  h.mass.resize(m);
  h.centroid.resize(m);
  for (size_t j = 0; j < m; ++j) {
    h.mass[j] = Mass(h.t[j], h.t[j + 1]);
    h.centroid[j] = PdfDrop(h.t[j], h.t[j + 1]) / h.mass[j];
  }
}

double MaxResidual(const std::vector<double>& c, const HalfLine& h) {
  double r = 0.0;
  for (size_t j = 0; j < c.size(); ++j) r = std::max(r, std::abs(h.centroid[j] - c[j]));
  return r;
}

bool StrictlyIncreasingPositive(const std::vector<double>& c) {
  if (!(c[0] > 0.0) || !std::isfinite(c.back())) return false;
  for (size_t j = 1; j < c.size(); ++j) {
    if (!(c[j] > c[j - 1])) return false;
  }
  return true;
}

// Newton step for F(c) = T(c) - c. With cell k = (a, b] and centroid T_k,
//   ∂T_k/∂a = φ(a)(T_k - a)/P_k,  ∂T_k/∂b = φ(b)(b - T_k)/P_k,
// and each inner boundary is the mean of its two neighbouring levels, so the
// Jacobian is tridiagonal. For a log-concave density the cell derivatives sum to
// less than one, which makes J - I diagonally dominant: Thomas' algorithm without
// pivoting is stable. Returns c + δ.
std::vector<double> NewtonStep(const std::vector<double>& c, const HalfLine& h) {
  const size_t m = c.size();
  std::vector<double> lower(m, 0.0), diag(m, 0.0), upper(m, 0.0), rhs(m, 0.0);
  for (size_t k = 0; k < m; ++k) {
    const double a = h.t[k], b = h.t[k + 1];
    const double da = Pdf(a) * (h.centroid[k] - a) / h.mass[k];
    const double db = std::isinf(b) ? 0.0 : Pdf(b) * (b - h.centroid[k]) / h.mass[k];
    diag[k] = -1.0;
    if (k > 0) {  // a = (c_{k-1} + c_k)/2; t_0 = 0 is fixed
      lower[k] = 0.5 * da;
      diag[k] += 0.5 * da;
    }
    if (k + 1 < m) {  // b = (c_k + c_{k+1})/2
      upper[k] = 0.5 * db;
      diag[k] += 0.5 * db;
    }
    rhs[k] = c[k] - h.centroid[k];  // J δ = -F
  }
  for (size_t k = 1; k < m; ++k) {
    const double w = lower[k] / diag[k - 1];
    diag[k] -= w * upper[k - 1];
    rhs[k] -= w * rhs[k - 1];
  }
  std::vector<double> next(c);
  double delta = rhs[m - 1] / diag[m - 1];
  next[m - 1] += delta;
  for (size_t k = m - 1; k-- > 0;) {
    delta = (rhs[k] - upper[k] * delta) / diag[k];
    next[k] += delta;
  }
  return next;
}

// x with P(X > x) = p for p in (0, 1/2], by bisection (only used for the
// starting point, where precision is irrelevant beyond ordering).
double UpperQuantile(double p) {
  double lo = 0.0, hi = 40.0;
  for (int i = 0; i < 200 && hi - lo > 1e-15; ++i) {
    const double mid = 0.5 * (lo + hi);
    if (0.5 * std::erfc(mid * kInvSqrt2) > p) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return 0.5 * (lo + hi);
}

const float* CheckedInCentroids(int bits) {
  static constexpr std::array<const float*, kMaxCodeBits> kTables = {
      kLloydMaxCentroids1, kLloydMaxCentroids2, kLloydMaxCentroids3, kLloydMaxCentroids4,
      kLloydMaxCentroids5, kLloydMaxCentroids6, kLloydMaxCentroids7, kLloydMaxCentroids8};
  return kTables[bits - 1];
}

std::array<Codebook, kMaxCodeBits> BuildCodebooks() {
  std::array<Codebook, kMaxCodeBits> books;
  for (int bits = kMinCodeBits; bits <= kMaxCodeBits; ++bits) {
    Codebook& book = books[bits - 1];
    const int n = 1 << bits;
    const float* table = CheckedInCentroids(bits);
    book.bits = bits;
    book.centroids.assign(table, table + n);
    book.boundaries.resize(n - 1);
    for (int k = 0; k + 1 < n; ++k) {
      book.boundaries[k] = 0.5f * (book.centroids[k] + book.centroids[k + 1]);
    }
    book.mse = kLloydMaxMse[bits - 1];
    book.content_hash = Sha256Hex(CodebookCentroidBytes(book.centroids));
  }
  return books;
}

}  // namespace

std::string CodebookCentroidBytes(absl::Span<const float> centroids) {
  std::string bytes;
  AppendFloat32LittleEndian(bytes, std::span<const float>(centroids.data(), centroids.size()));
  return bytes;
}

const Codebook& LloydMaxCodebook(int bits) {
  static const std::array<Codebook, kMaxCodeBits>* const kBooks =
      new std::array<Codebook, kMaxCodeBits>(BuildCodebooks());
  return (*kBooks)[std::clamp(bits, kMinCodeBits, kMaxCodeBits) - 1];
}

absl::StatusOr<std::vector<double>> SolveLloydMaxGaussian(int bits, double tol, int max_iters) {
  if (bits < kMinCodeBits || bits > kMaxCodeBits) {
    return absl::InvalidArgumentError(absl::StrFormat("Lloyd–Max bits must be in [%d, %d], got %d",
                                                      kMinCodeBits, kMaxCodeBits, bits));
  }
  if (!(tol > 0.0)) {
    return absl::InvalidArgumentError(absl::StrFormat("tolerance must be > 0, got %g", tol));
  }
  if (max_iters < 1) {
    return absl::InvalidArgumentError(absl::StrFormat("max_iters must be >= 1, got %d", max_iters));
  }

  const size_t m = size_t{1} << (bits - 1);
  // Start from the companded quantizer whose point density is proportional to
  // φ^(1/3) (Panter–Dite), i.e. cells of equal mass under N(0, 3): already
  // within a few percent of optimal at every width, so Newton starts close.
  std::vector<double> c(m);
  {
    std::vector<double> t(m + 1);
    t[0] = 0.0;
    t[m] = kInf;
    for (size_t j = 1; j < m; ++j) {
      t[j] = std::sqrt(3.0) * UpperQuantile(0.5 - 0.5 * static_cast<double>(j) / m);
    }
    for (size_t j = 0; j < m; ++j) c[j] = PdfDrop(t[j], t[j + 1]) / Mass(t[j], t[j + 1]);
  }

  HalfLine h;
  EvaluateCells(c, h);
  double residual = MaxResidual(c, h);
  HalfLine trial;
  for (int iter = 0; iter < max_iters && !(residual < tol); ++iter) {
    std::vector<double> next = NewtonStep(c, h);
    bool accepted = false;
    if (StrictlyIncreasingPositive(next)) {
      EvaluateCells(next, trial);
      const double trial_residual = MaxResidual(next, trial);
      if (trial_residual < residual) {
        c.swap(next);
        std::swap(h, trial);
        residual = trial_residual;
        accepted = true;
      }
    }
    if (!accepted) {  // Lloyd step: never increases distortion, keeps the order
      c = h.centroid;
      EvaluateCells(c, h);
      residual = MaxResidual(c, h);
    }
  }
  if (!(residual < tol)) {
    return absl::InternalError(
        absl::StrFormat("Lloyd–Max for %d bits did not converge in %d iterations "
                        "(residual %g, tolerance %g)",
                        bits, max_iters, residual, tol));
  }

  std::vector<double> full(2 * m);
  for (size_t j = 0; j < m; ++j) {
    full[m + j] = c[j];
    full[m - 1 - j] = -c[j];
  }
  return full;
}

double GaussianQuantizerMse(absl::Span<const float> centroids, absl::Span<const float> boundaries) {
  if (centroids.empty() || boundaries.size() + 1 != centroids.size()) {
    return std::numeric_limits<double>::quiet_NaN();
  }
  // Per cell (a, b] with level c: ∫(x - c)²φ = M2 - 2c·M1 + c²·P, where
  // P = mass, M1 = φ(a) - φ(b), M2 = P + aφ(a) - bφ(b). The terms cancel to a
  // few parts in 1e5 for the narrow 8-bit cells, far below what fp32 tables need.
  const size_t n = centroids.size();
  double total = 0.0;
  for (size_t k = 0; k < n; ++k) {
    const double a = k == 0 ? -kInf : boundaries[k - 1];
    const double b = k + 1 == n ? kInf : boundaries[k];
    const double c = centroids[k];
    const double p = Mass(a, b);
    const double m1 = Pdf(a) - Pdf(b);
    const double a_pdf = std::isinf(a) ? 0.0 : a * Pdf(a);
    const double b_pdf = std::isinf(b) ? 0.0 : b * Pdf(b);
    const double m2 = p + a_pdf - b_pdf;
    total += m2 - 2.0 * c * m1 + c * c * p;
  }
  return total;
}

}  // namespace kvplan
