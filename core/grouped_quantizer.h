// The CPU reference quantizer of Block-GTQ: TurboQuant-MSE per width group.
//
// For one (layer, KV head), a GroupLayout says which head dimensions form each
// group and at which width; each group g of d dimensions has its own rotation
// R_g. A token's vector x (head_dim values, original dimension order) is coded
// group by group:
//   n  = ‖x_g‖,  u = x_g / n,  y = R_g·u              (y_i ~ N(0, 1/d) roughly)
//   code_i = Lloyd–Max index of y_i·√d in the unit-variance codebook
//   ĉ  = c[code] / √d,  n' = n / ‖ĉ‖                  (norm correction)
//   x̂_g = R_gᵀ·ĉ·n'
// The norm correction (the paper's) makes ‖x̂_g‖ = ‖x_g‖ up to fp16 rounding.
// Relative to coding with the true norm it costs error at low widths and saves
// a little at high ones (it removes the radial part of the error): at d = 128,
// ‖x - x̂‖²/‖x‖² is the Lloyd–Max MSE(b) +10% at 1 bit, +1% at 2, -2% at 3 and
// -3% at 4 (tests/core/grouped_quantizer_test.cc derives this).
// A zero group codes to zero norm and decodes to exact zeros.
//
// Packed record of one token (format version kPackedRecordFormatVersion):
//   record     := segment_0 ... segment_{G-1} norm_0 ... norm_{G-1}
//   segment_g  := the d_g codes of group g in rotated-coordinate order, packed at
//                 bits_g as in bit_packing.h (PackedCodeBytes(d_g, bits_g) bytes)
//   norm_g     := n' as IEEE fp16, little-endian (2 bytes); norms beyond 65504
//                 saturate to 65504 rather than become inf
// Groups appear in layout order (ascending width). PackedBytes() is the size.
//
// Arithmetic (the reference the CUDA kernels are held to, within tolerance):
// ‖x_g‖² and ‖c[code]‖² are fp64 sums of four interleaved partial sums; the
// rotations are fp32, element i of R·v summing j = 0, 1, ... in order with
// separately rounded products (no FMA); z_i = (R·x_g)_i · fp32(√d / n). So
// every build and SIMD width codes alike, and batched and single-token calls
// agree bit for bit.
//
// Example:
//   GroupLayout layout = *UniformLayout(128, 3);
//   std::vector<Rotation> rotations = {HaarRotation(128, seed)};
//   absl::StatusOr<GroupedQuantizer> q = GroupedQuantizer::Create(layout, rotations);
//   std::vector<uint8_t> record(q->PackedBytes());  // 48 code bytes + 2 norm bytes
//   q->Encode(key, absl::MakeSpan(record));
//   std::vector<float> decoded(128);
//   q->Decode(record, absl::MakeSpan(decoded));
#ifndef KVPLAN_CORE_GROUPED_QUANTIZER_H_
#define KVPLAN_CORE_GROUPED_QUANTIZER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/group_layout.h"
#include "core/rotation.h"

namespace kvplan {

// Version of the packed record grammar above.
inline constexpr int kPackedRecordFormatVersion = 1;

// Immutable after Create; every method is const and thread-safe, and none
// allocates (scratch lives on the stack, about 34 KB). Calls whose span sizes
// break the stated preconditions write nothing.
class GroupedQuantizer {
 public:
  // `rotations[g]` is group g's rotation; its dim must equal the group's size.
  // The matrices are copied (into the kernels' layout). InvalidArgument if the
  // layout is invalid (ValidateGroupLayout), the number of rotations differs
  // from the number of groups, or a dim does not match.
  static absl::StatusOr<GroupedQuantizer> Create(GroupLayout layout,
                                                 absl::Span<const Rotation> rotations);

  const GroupLayout& layout() const { return layout_; }
  // content_hash of each group's rotation, in group order: what a plan names.
  const std::vector<std::string>& rotation_hashes() const { return rotation_hashes_; }
  int head_dim() const { return layout_.head_dim; }
  // Bytes of one token's record: layout().PackedBytes().
  size_t PackedBytes() const { return packed_bytes_; }

  // x: [head_dim], original dimension order. out: at least PackedBytes() bytes;
  // exactly PackedBytes() are written.
  void Encode(absl::Span<const float> x, absl::Span<uint8_t> out) const;
  // in: at least PackedBytes() bytes (one record). x: [head_dim], original order.
  void Decode(absl::Span<const uint8_t> in, absl::Span<float> x) const;

  // Many tokens at once; results equal per-token calls bit for bit, but each
  // rotation is streamed once per four tokens. x: [num_tokens, head_dim]
  // row-major (num_tokens = x.size() / head_dim, which must divide exactly);
  // out: [num_tokens, PackedBytes()].
  void EncodeBatch(absl::Span<const float> x, absl::Span<uint8_t> out) const;
  // in: [num_tokens, PackedBytes()]; x: [num_tokens, head_dim], with
  // num_tokens = x.size() / head_dim and in.size() >= num_tokens·PackedBytes().
  void DecodeBatch(absl::Span<const uint8_t> in, absl::Span<float> x) const;

  // Decodes without undoing the rotations: y = [R_g·x̂_g for each group], in
  // permuted order (group g at positions [offset_g, offset_g + d_g)). With
  // RotateQuery, q·x̂ = RotateQuery(q)·y, so attention can rotate q once
  // instead of un-rotating every key. y: [head_dim].
  void DecodeRotated(absl::Span<const uint8_t> in, absl::Span<float> y) const;
  // q_rot = [R_g·q_g for each group] in permuted order. q: [head_dim] original
  // order; q_rot: [head_dim].
  void RotateQuery(absl::Span<const float> q, absl::Span<float> q_rot) const;

  // The values Encode(x) quantizes, with Encode's rounding: z[offset_g + i] =
  // (R_g·x_g)_i · fp32(√d_g / ‖x_g‖) (0 for a zero or non-finite norm), in
  // permuted order; code_i is the number of codebook boundaries strictly below
  // z_i. For holding other encoders (the CUDA kernel) to Encode within a
  // tolerance near boundaries. x, z: [head_dim].
  void CodedCoordinates(absl::Span<const float> x, absl::Span<float> z) const;

 private:
  struct Group {
    int bits = 0;
    int offset = 0;
    int size = 0;
    // Columns of the padded matrices below: size rounded up to whole SIMD
    // panels; padding is zero.
    int stride = 0;
    size_t code_offset = 0;  // of the segment within the record
    size_t norm_offset = 0;
    double sqrt_size = 0.0;
    // Rᵀ and R, [size rows][stride columns] stored panel-major (see the .cc):
    // y = Σ_j forward[j]·x_j and x = Σ_i inverse[i]·y_i, row by row.
    std::vector<float> forward;
    std::vector<float> inverse;
    std::vector<float> boundaries;        // unit codebook, 2^bits - 1
    std::vector<double> centroid_square;  // c_k², 2^bits
    std::vector<float> scaled_centroids;  // c_k / √size, rounded from fp64
  };

  GroupedQuantizer() = default;

  // Encode/decode `tokens` (1..kTile) records; strides are of x and records.
  void EncodeTile(const float* x, size_t x_stride, int tokens, uint8_t* out) const;
  void DecodeTile(const uint8_t* in, int tokens, float* x, size_t x_stride) const;
  // Group g's coordinates of one head vector x, in the layout's order
  // (gathered), and Rᵀ applied to them (rotated): both [g.stride] buffers.
  void GatherAndRotate(const Group& g, absl::Span<const float> x, float* gathered,
                       float* rotated) const;

  GroupLayout layout_;
  std::vector<std::string> rotation_hashes_;
  std::vector<Group> groups_;
  size_t packed_bytes_ = 0;
};

}  // namespace kvplan

#endif  // KVPLAN_CORE_GROUPED_QUANTIZER_H_
