// Quantization groups of one (layer, KV head): which head dimensions are coded
// together, at which width, and how many bytes a token's record takes.
//
// Block-GTQ gives each RoPE block its own width; blocks of equal width form one
// group that is rotated and coded as a unit (TQ-MSE per group). The head's
// dimensions are permuted so that each group is contiguous:
//   - groups in ascending width;
//   - within a group, blocks in increasing block index, each contributing its
//     two dimensions (dim_a, dim_b) in that order.
// Uniform TQ-MSE (the K baseline, and the V quantizer) is the special case of
// one group over all head dimensions with the identity permutation.
//
// Bytes per token (the record of grouped_quantizer.h): the code segments,
// PackedCodeBytes(size, bits) each, then one fp16 norm (2 bytes) per group.
//
// Example (split-half, hd 8, so block i = dims (i, i + 4)):
//   absl::StatusOr<GroupLayout> layout =
//       BuildGroupLayout({3, 2, 3, 2}, {{0, 4}, {1, 5}, {2, 6}, {3, 7}});
//   // groups: {bits 2, offset 0, size 4}, {bits 3, offset 4, size 4}
//   // permutation: {1, 5, 3, 7, 0, 4, 2, 6}
//   // CodeBytes() = 1 + 2 = 3, NormBytes() = 4, PackedBytes() = 7
#ifndef KVPLAN_CORE_GROUP_LAYOUT_H_
#define KVPLAN_CORE_GROUP_LAYOUT_H_

#include <array>
#include <cstddef>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace kvplan {

// Largest head dimension a layout may have (each group gets a rotation of its
// size; see kMaxRotationDim).
inline constexpr int kMaxHeadDim = 1024;

// Bytes of one stored group norm (fp16).
inline constexpr size_t kGroupNormBytes = 2;

struct QuantGroup {
  // Bits per coordinate, in [kMinCodeBits, kMaxCodeBits].
  int bits = 0;
  // First permuted position of the group and its number of dimensions.
  int offset = 0;
  int size = 0;

  friend bool operator==(const QuantGroup&, const QuantGroup&) = default;
};

struct GroupLayout {
  int head_dim = 0;
  // permutation[p] = original head dimension at permuted position p.
  std::vector<int> permutation;
  // Contiguous, in ascending (distinct) width, covering [0, head_dim).
  std::vector<QuantGroup> groups;

  // Code bytes per token: Σ PackedCodeBytes(size, bits) over groups.
  size_t CodeBytes() const;
  // Norm bytes per token: kGroupNormBytes per group.
  size_t NormBytes() const { return kGroupNormBytes * groups.size(); }
  // CodeBytes() + NormBytes(): one token's packed record.
  size_t PackedBytes() const { return CodeBytes() + NormBytes(); }

  friend bool operator==(const GroupLayout&, const GroupLayout&) = default;
};

// Groups RoPE blocks by width. block_bits[i] is block i's width;
// block_dims[i] its two head dimensions. Every dimension of [0, 2·L) must occur
// in exactly one block (dimensions outside the rotary part are passed as static
// pairs too), so head_dim = 2·block_bits.size().
// InvalidArgument (naming the block) for: no blocks, more than kMaxHeadDim/2
// blocks, mismatched lengths, a width outside [1, 8], a dimension out of range
// or used twice.
absl::StatusOr<GroupLayout> BuildGroupLayout(absl::Span<const int> block_bits,
                                             absl::Span<const std::array<int, 2>> block_dims);

// One group of all `head_dim` dimensions at `bits`, identity permutation.
// InvalidArgument for head_dim outside [1, kMaxHeadDim] or bits outside [1, 8].
absl::StatusOr<GroupLayout> UniformLayout(int head_dim, int bits);

// OK when `layout` satisfies every invariant above (for layouts read from files
// or the wire); otherwise InvalidArgument naming the first violation.
absl::Status ValidateGroupLayout(const GroupLayout& layout);

}  // namespace kvplan

#endif  // KVPLAN_CORE_GROUP_LAYOUT_H_
