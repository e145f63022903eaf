#include "core/grouped_quantizer.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "absl/types/span.h"
#include "core/bit_packing.h"
#include "core/codebook.h"
#include "core/group_layout.h"
#include "core/half.h"
#include "core/rotation.h"

namespace kvplan {
namespace {

// Tokens whose rotations share one pass over a rotation matrix.
constexpr int kTile = 4;
// Group sizes are padded to whole panels of this many columns (the widest
// register tile below: 4 vectors of 8).
constexpr int kColumns = 32;
constexpr int kMaxStride = (kMaxHeadDim + kColumns - 1) / kColumns * kColumns;

// GCC/Clang vector extension: portable source, lowered to SSE pairs on the
// baseline target and to single AVX registers in the AVX2 clone below.
using Float8 = float __attribute__((vector_size(32)));
using Int8 = int32_t __attribute__((vector_size(32)));

int RoundUpToColumns(int n) { return (n + kColumns - 1) / kColumns * kColumns; }

// Rotation matrices are stored panel-major: columns in panels of kColumns, each
// panel holding all rows contiguously ([stride / kColumns][rows][kColumns]), so
// the kernel below streams memory sequentially instead of striding across rows.
size_t PanelIndex(int row, int column, int rows) {
  return (static_cast<size_t>(column / kColumns) * rows + row) * kColumns + column % kColumns;
}

// out[t][i] = Σ_{j<rows} M[j][i] · in[t][j] for TOKENS tokens and every column i
// of the panel-major `panels`, summed in j order: each output is the sequential
// fp32 sum a scalar loop would give, whatever the vector width or tile shape.
// A tile of VECTORS·8 columns keeps TOKENS·VECTORS accumulators in registers:
// enough independent add chains to hide the add latency, few enough not to spill.
template <int TOKENS, int VECTORS>
[[gnu::always_inline]] inline void AxpyRowsTile(const float* panels, int rows, int stride,
                                                const float* in, int in_stride, float* out) {
  static_assert(kColumns % (8 * VECTORS) == 0);
  for (int i0 = 0; i0 < stride; i0 += 8 * VECTORS) {
    Float8 acc[TOKENS][VECTORS] = {};
    const float* row = panels + PanelIndex(0, i0, rows);
    for (int j = 0; j < rows; ++j, row += kColumns) {
      Float8 r[VECTORS];  // unaligned loads (memcpy, not a vector-typed helper: -Wpsabi)
#pragma GCC unroll 8
      for (int v = 0; v < VECTORS; ++v) std::memcpy(&r[v], row + 8 * v, sizeof(Float8));
#pragma GCC unroll 4
      for (int t = 0; t < TOKENS; ++t) {
        const float s = in[t * in_stride + j];
#pragma GCC unroll 8
        for (int v = 0; v < VECTORS; ++v) acc[t][v] += r[v] * s;
      }
    }
#pragma GCC unroll 4
    for (int t = 0; t < TOKENS; ++t) {
#pragma GCC unroll 8
      for (int v = 0; v < VECTORS; ++v) {
        std::memcpy(out + t * stride + i0 + 8 * v, &acc[t][v], sizeof(Float8));
      }
    }
  }
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define KVPLAN_MULTIVERSION __attribute__((target_clones("avx2", "default")))
#else
#define KVPLAN_MULTIVERSION
#endif

// AxpyRowsTile for 1..kTile tokens; `stride` (a multiple of kColumns) is the
// padded column count, in is [tokens][in_stride], out is [tokens][stride].
KVPLAN_MULTIVERSION
void AxpyRows(const float* panels, int rows, int stride, const float* in, int in_stride, int tokens,
              float* out) {
  switch (tokens) {
    case 1:
      return AxpyRowsTile<1, 4>(panels, rows, stride, in, in_stride, out);
    case 2:
      return AxpyRowsTile<2, 4>(panels, rows, stride, in, in_stride, out);
    case 3:
      return AxpyRowsTile<3, 2>(panels, rows, stride, in, in_stride, out);
    default:
      return AxpyRowsTile<4, 2>(panels, rows, stride, in, in_stride, out);
  }
}

// codes[i] = number of unit boundaries strictly below z_i = t[i]·scale (fp32),
// for i < n (n padded to whole vectors; values beyond the group are padding
// whose codes go unused).
KVPLAN_MULTIVERSION
void QuantizeCoordinates(const float* t, int n, float scale, int bits, const float* boundaries,
                         uint8_t* codes) {
  const int num_boundaries = (1 << bits) - 1;
  if (bits <= 4) {
    // At most 15 boundaries: counting them all is branch-free and vectorizes.
    using Byte8 = uint8_t __attribute__((vector_size(8)));
    for (int i0 = 0; i0 < n; i0 += 8) {
      Float8 z;
      std::memcpy(&z, t + i0, sizeof(z));
      z *= scale;
      Int8 count = {};
      for (int k = 0; k < num_boundaries; ++k) count -= (Float8{} + boundaries[k]) < z;
      const Byte8 narrow = __builtin_convertvector(count, Byte8);
      std::memcpy(codes + i0, &narrow, sizeof(narrow));
    }
    return;
  }
  // Up to 255 boundaries: branch-free lower bound, `bits` probes per value.
  for (int i = 0; i < n; ++i) {
    const float z = t[i] * scale;
    int pos = 0;
    for (int step = 1 << (bits - 1); step > 0; step >>= 1) {
      pos += boundaries[pos + step - 1] < z ? step : 0;
    }
    codes[i] = static_cast<uint8_t>(pos);
  }
}

// Sums of n terms in fp64 as four interleaved partial sums (index mod 4),
// combined as (s0 + s1) + (s2 + s3): a fixed order, without one long chain of
// dependent adds.
template <typename Term>
double SumOf4Lanes(int n, Term term) {
  double s[4] = {0.0, 0.0, 0.0, 0.0};
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    s[0] += term(i);
    s[1] += term(i + 1);
    s[2] += term(i + 2);
    s[3] += term(i + 3);
  }
  for (int lane = 0; i < n; ++i, ++lane) s[lane] += term(i);
  return (s[0] + s[1]) + (s[2] + s[3]);
}

// fp32(√d / n), the factor from a group's rotated coordinates to z; 0 for a
// zero norm (every coordinate codes as 0.0 would, and n' is 0, so the group
// decodes to exact zeros) and for a non-finite one (codes as zeros, keeps its
// inf/NaN norm, which decodes non-finite).
float CodeScale(double norm, double sqrt_size) {
  return norm > 0.0 && std::isfinite(norm) ? static_cast<float>(sqrt_size / norm) : 0.0f;
}

// ‖x_g‖ of the gathered group values, fp64.
double GroupNorm(const float* gathered, int size) {
  return std::sqrt(SumOf4Lanes(
      size, [gathered](int i) { return static_cast<double>(gathered[i]) * gathered[i]; }));
}

void StoreHalf(uint16_t h, uint8_t* out) {
  out[0] = static_cast<uint8_t>(h & 0xff);
  out[1] = static_cast<uint8_t>(h >> 8);
}

uint16_t LoadHalf(const uint8_t* in) {
  return static_cast<uint16_t>(in[0] | (static_cast<uint16_t>(in[1]) << 8));
}

}  // namespace

absl::StatusOr<GroupedQuantizer> GroupedQuantizer::Create(GroupLayout layout,
                                                          absl::Span<const Rotation> rotations) {
  if (absl::Status status = ValidateGroupLayout(layout); !status.ok()) return status;
  if (rotations.size() != layout.groups.size()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("layout has %d groups but %d rotations were given", layout.groups.size(),
                        rotations.size()));
  }
  GroupedQuantizer quantizer;
  size_t code_bytes = 0;
  for (size_t g = 0; g < layout.groups.size(); ++g) {
    const QuantGroup& spec = layout.groups[g];
    const Rotation& rotation = rotations[g];
    if (rotation.dim != spec.size ||
        rotation.matrix.size() != static_cast<size_t>(spec.size) * spec.size) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "group %d (%d bits) has %d dimensions but its rotation has dim %d with %d values", g,
          spec.bits, spec.size, rotation.dim, rotation.matrix.size()));
    }
    Group group;
    group.bits = spec.bits;
    group.offset = spec.offset;
    group.size = spec.size;
    group.stride = RoundUpToColumns(spec.size);
    group.code_offset = code_bytes;
    code_bytes += PackedCodeBytes(spec.size, spec.bits);
    group.sqrt_size = std::sqrt(static_cast<double>(spec.size));
    const size_t d = spec.size, stride = group.stride;
    group.forward.assign(d * stride, 0.0f);
    group.inverse.assign(d * stride, 0.0f);
    for (size_t i = 0; i < d; ++i) {
      for (size_t j = 0; j < d; ++j) {
        const float r = rotation.matrix[i * d + j];
        group.forward[PanelIndex(static_cast<int>(j), static_cast<int>(i), spec.size)] = r;
        group.inverse[PanelIndex(static_cast<int>(i), static_cast<int>(j), spec.size)] = r;
      }
    }
    const Codebook& book = LloydMaxCodebook(spec.bits);
    group.boundaries = book.boundaries;
    for (float c : book.centroids) {
      group.centroid_square.push_back(static_cast<double>(c) * c);
      group.scaled_centroids.push_back(static_cast<float>(c / group.sqrt_size));
    }
    quantizer.groups_.push_back(std::move(group));
    quantizer.rotation_hashes_.push_back(rotation.content_hash);
  }
  for (size_t g = 0; g < quantizer.groups_.size(); ++g) {
    quantizer.groups_[g].norm_offset = code_bytes + kGroupNormBytes * g;
  }
  quantizer.packed_bytes_ = layout.PackedBytes();
  quantizer.layout_ = std::move(layout);
  return quantizer;
}

void GroupedQuantizer::EncodeTile(const float* x, size_t x_stride, int tokens, uint8_t* out) const {
  alignas(64) float gathered[kTile * kMaxStride];
  alignas(64) float rotated[kTile * kMaxStride];
  alignas(64) uint8_t codes[kMaxStride];
  const int* permutation = layout_.permutation.data();
  for (const Group& g : groups_) {
    double norm[kTile];
    for (int t = 0; t < tokens; ++t) {
      const float* xt = x + t * x_stride;
      float* gt = gathered + t * g.stride;
      for (int i = 0; i < g.size; ++i) gt[i] = xt[permutation[g.offset + i]];
      norm[t] = GroupNorm(gt, g.size);
    }
    // Rotate the unnormalized group; the 1/n and √d scales fold into one
    // multiply in QuantizeCoordinates, which leaves the codes scale-invariant.
    AxpyRows(g.forward.data(), g.size, g.stride, gathered, g.stride, tokens, rotated);
    for (int t = 0; t < tokens; ++t) {
      const float scale = CodeScale(norm[t], g.sqrt_size);
      QuantizeCoordinates(rotated + t * g.stride, g.stride, scale, g.bits, g.boundaries.data(),
                          codes);
      const double* square = g.centroid_square.data();
      const double code_norm2 = SumOf4Lanes(g.size, [&](int i) { return square[codes[i]]; });
      // n' = n / ‖c[codes]/√d‖; ‖c[codes]‖ > 0 because no centroid is zero.
      const double corrected = norm[t] * g.sqrt_size / std::sqrt(code_norm2);
      uint8_t* record = out + t * packed_bytes_;
      PackCodes(absl::MakeConstSpan(codes, g.size), g.bits,
                absl::MakeSpan(record + g.code_offset, PackedCodeBytes(g.size, g.bits)));
      StoreHalf(FloatToHalfSaturate(static_cast<float>(corrected)), record + g.norm_offset);
    }
  }
}

void GroupedQuantizer::DecodeTile(const uint8_t* in, int tokens, float* x, size_t x_stride) const {
  alignas(64) float weights[kTile * kMaxStride];
  alignas(64) float restored[kTile * kMaxStride];
  alignas(64) uint8_t codes[kMaxStride];
  const int* permutation = layout_.permutation.data();
  for (const Group& g : groups_) {
    for (int t = 0; t < tokens; ++t) {
      const uint8_t* record = in + t * packed_bytes_;
      UnpackCodes(absl::MakeConstSpan(record + g.code_offset, PackedCodeBytes(g.size, g.bits)),
                  g.bits, absl::MakeSpan(codes, g.size));
      const float norm = HalfToFloat(LoadHalf(record + g.norm_offset));
      float* w = weights + t * g.stride;
      for (int i = 0; i < g.size; ++i) w[i] = g.scaled_centroids[codes[i]] * norm;
    }
    AxpyRows(g.inverse.data(), g.size, g.stride, weights, g.stride, tokens, restored);
    for (int t = 0; t < tokens; ++t) {
      const float* r = restored + t * g.stride;
      float* xt = x + t * x_stride;
      for (int i = 0; i < g.size; ++i) xt[permutation[g.offset + i]] = r[i];
    }
  }
}

void GroupedQuantizer::Encode(absl::Span<const float> x, absl::Span<uint8_t> out) const {
  if (x.size() != static_cast<size_t>(head_dim()) || out.size() < packed_bytes_) return;
  EncodeTile(x.data(), x.size(), 1, out.data());
}

void GroupedQuantizer::Decode(absl::Span<const uint8_t> in, absl::Span<float> x) const {
  if (x.size() != static_cast<size_t>(head_dim()) || in.size() < packed_bytes_) return;
  DecodeTile(in.data(), 1, x.data(), x.size());
}

void GroupedQuantizer::EncodeBatch(absl::Span<const float> x, absl::Span<uint8_t> out) const {
  const size_t hd = static_cast<size_t>(head_dim());
  const size_t tokens = x.size() / hd;
  if (x.size() % hd != 0 || out.size() < tokens * packed_bytes_) return;
  for (size_t t = 0; t < tokens; t += kTile) {
    const int tile = static_cast<int>(std::min<size_t>(kTile, tokens - t));
    EncodeTile(x.data() + t * hd, hd, tile, out.data() + t * packed_bytes_);
  }
}

void GroupedQuantizer::DecodeBatch(absl::Span<const uint8_t> in, absl::Span<float> x) const {
  const size_t hd = static_cast<size_t>(head_dim());
  const size_t tokens = x.size() / hd;
  if (x.size() % hd != 0 || in.size() < tokens * packed_bytes_) return;
  for (size_t t = 0; t < tokens; t += kTile) {
    const int tile = static_cast<int>(std::min<size_t>(kTile, tokens - t));
    DecodeTile(in.data() + t * packed_bytes_, tile, x.data() + t * hd, hd);
  }
}

void GroupedQuantizer::DecodeRotated(absl::Span<const uint8_t> in, absl::Span<float> y) const {
  if (y.size() != static_cast<size_t>(head_dim()) || in.size() < packed_bytes_) return;
  alignas(64) uint8_t codes[kMaxStride];
  for (const Group& g : groups_) {
    UnpackCodes(in.subspan(g.code_offset, PackedCodeBytes(g.size, g.bits)), g.bits,
                absl::MakeSpan(codes, g.size));
    const float norm = HalfToFloat(LoadHalf(in.data() + g.norm_offset));
    for (int i = 0; i < g.size; ++i) y[g.offset + i] = g.scaled_centroids[codes[i]] * norm;
  }
}

void GroupedQuantizer::GatherAndRotate(const Group& g, absl::Span<const float> x, float* gathered,
                                       float* rotated) const {
  for (int i = 0; i < g.size; ++i) gathered[i] = x[layout_.permutation[g.offset + i]];
  AxpyRows(g.forward.data(), g.size, g.stride, gathered, g.stride, 1, rotated);
}

void GroupedQuantizer::RotateQuery(absl::Span<const float> q, absl::Span<float> q_rot) const {
  if (q.size() != static_cast<size_t>(head_dim()) || q_rot.size() != q.size()) return;
  alignas(64) float gathered[kMaxStride];
  alignas(64) float rotated[kMaxStride];
  for (const Group& g : groups_) {
    GatherAndRotate(g, q, gathered, rotated);
    std::copy(rotated, rotated + g.size, q_rot.begin() + g.offset);
  }
}

void GroupedQuantizer::CodedCoordinates(absl::Span<const float> x, absl::Span<float> z) const {
  if (x.size() != static_cast<size_t>(head_dim()) || z.size() != x.size()) return;
  alignas(64) float gathered[kMaxStride];
  alignas(64) float rotated[kMaxStride];
  for (const Group& g : groups_) {
    GatherAndRotate(g, x, gathered, rotated);
    const float scale = CodeScale(GroupNorm(gathered, g.size), g.sqrt_size);
    // The same product as QuantizeCoordinates forms (rotated · scale, fp32).
    for (int i = 0; i < g.size; ++i) z[g.offset + i] = rotated[i] * scale;
  }
}

}  // namespace kvplan
