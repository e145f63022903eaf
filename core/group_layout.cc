#include "core/group_layout.h"

#include <array>
#include <cstddef>
#include <numeric>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "absl/types/span.h"
#include "core/bit_packing.h"
#include "core/codebook.h"

namespace kvplan {
namespace {

bool ValidBits(int bits) { return bits >= kMinCodeBits && bits <= kMaxCodeBits; }

}  // namespace

size_t GroupLayout::CodeBytes() const {
  size_t bytes = 0;
  for (const QuantGroup& group : groups) bytes += PackedCodeBytes(group.size, group.bits);
  return bytes;
}

absl::StatusOr<GroupLayout> BuildGroupLayout(absl::Span<const int> block_bits,
                                             absl::Span<const std::array<int, 2>> block_dims) {
  const size_t num_blocks = block_bits.size();
  if (num_blocks == 0) return absl::InvalidArgumentError("group layout needs at least one block");
  if (num_blocks > static_cast<size_t>(kMaxHeadDim / 2)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("group layout has %d blocks; at most %d (head_dim %d) are supported",
                        num_blocks, kMaxHeadDim / 2, kMaxHeadDim));
  }
  if (block_dims.size() != num_blocks) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "block_bits has %d entries but block_dims has %d", num_blocks, block_dims.size()));
  }
  const int head_dim = static_cast<int>(2 * num_blocks);
  std::vector<int> block_of_dim(head_dim, -1);
  for (size_t block = 0; block < num_blocks; ++block) {
    if (!ValidBits(block_bits[block])) {
      return absl::InvalidArgumentError(
          absl::StrFormat("block %d has %d bits; widths must be in [%d, %d]", block,
                          block_bits[block], kMinCodeBits, kMaxCodeBits));
    }
    for (int dim : block_dims[block]) {
      if (dim < 0 || dim >= head_dim) {
        return absl::InvalidArgumentError(
            absl::StrFormat("block %d has dimension %d, outside [0, %d)", block, dim, head_dim));
      }
      if (block_of_dim[dim] != -1) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "dimension %d belongs to both block %d and block %d", dim, block_of_dim[dim], block));
      }
      block_of_dim[dim] = static_cast<int>(block);
    }
  }
  // 2·L dimensions, each seen once by L blocks of two: all are covered.

  GroupLayout layout;
  layout.head_dim = head_dim;
  layout.permutation.reserve(head_dim);
  for (int bits = kMinCodeBits; bits <= kMaxCodeBits; ++bits) {
    const int offset = static_cast<int>(layout.permutation.size());
    for (size_t block = 0; block < num_blocks; ++block) {
      if (block_bits[block] != bits) continue;
      layout.permutation.push_back(block_dims[block][0]);
      layout.permutation.push_back(block_dims[block][1]);
    }
    const int size = static_cast<int>(layout.permutation.size()) - offset;
    if (size > 0) layout.groups.push_back(QuantGroup{bits, offset, size});
  }
  return layout;
}

absl::StatusOr<GroupLayout> UniformLayout(int head_dim, int bits) {
  if (head_dim < 1 || head_dim > kMaxHeadDim) {
    return absl::InvalidArgumentError(
        absl::StrFormat("head_dim must be in [1, %d], got %d", kMaxHeadDim, head_dim));
  }
  if (!ValidBits(bits)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("bits must be in [%d, %d], got %d", kMinCodeBits, kMaxCodeBits, bits));
  }
  GroupLayout layout;
  layout.head_dim = head_dim;
  layout.permutation.resize(head_dim);
  std::iota(layout.permutation.begin(), layout.permutation.end(), 0);
  layout.groups.push_back(QuantGroup{bits, 0, head_dim});
  return layout;
}

absl::Status ValidateGroupLayout(const GroupLayout& layout) {
  if (layout.head_dim < 1 || layout.head_dim > kMaxHeadDim) {
    return absl::InvalidArgumentError(absl::StrFormat("layout head_dim must be in [1, %d], got %d",
                                                      kMaxHeadDim, layout.head_dim));
  }
  if (layout.permutation.size() != static_cast<size_t>(layout.head_dim)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("layout permutation has %d entries for head_dim %d",
                        layout.permutation.size(), layout.head_dim));
  }
  std::vector<bool> seen(layout.head_dim, false);
  for (size_t p = 0; p < layout.permutation.size(); ++p) {
    const int dim = layout.permutation[p];
    if (dim < 0 || dim >= layout.head_dim) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "layout permutation[%d] = %d is outside [0, %d)", p, dim, layout.head_dim));
    }
    if (seen[dim]) {
      return absl::InvalidArgumentError(
          absl::StrFormat("layout permutation lists dimension %d twice", dim));
    }
    seen[dim] = true;
  }
  if (layout.groups.empty()) return absl::InvalidArgumentError("layout has no groups");
  int next_offset = 0;
  for (size_t g = 0; g < layout.groups.size(); ++g) {
    const QuantGroup& group = layout.groups[g];
    if (!ValidBits(group.bits)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("layout group %d has %d bits; widths must be in [%d, %d]", g, group.bits,
                          kMinCodeBits, kMaxCodeBits));
    }
    if (g > 0 && group.bits <= layout.groups[g - 1].bits) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "layout group %d has %d bits after a group of %d; widths must strictly ascend", g,
          group.bits, layout.groups[g - 1].bits));
    }
    if (group.offset != next_offset || group.size < 1 ||
        group.size > layout.head_dim - group.offset) {
      return absl::InvalidArgumentError(
          absl::StrFormat("layout group %d spans [%d, %d); groups must tile [0, %d) in order", g,
                          group.offset, group.offset + group.size, layout.head_dim));
    }
    next_offset += group.size;
  }
  if (next_offset != layout.head_dim) {
    return absl::InvalidArgumentError(absl::StrFormat("layout groups cover [0, %d) of head_dim %d",
                                                      next_offset, layout.head_dim));
  }
  return absl::OkStatus();
}

}  // namespace kvplan
