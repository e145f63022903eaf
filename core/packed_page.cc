#include "core/packed_page.h"

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "absl/types/span.h"
#include "core/bit_packing.h"
#include "core/group_layout.h"
#include "core/half.h"
#include "core/page_records.h"

namespace kvplan {
namespace {

// Element `index` of a code stream of width `bits` (page grammar). Codes never
// straddle more than two bytes because stride <= 8.
int ReadStreamCode(const uint8_t* stream, int bits, size_t index) {
  const int stride = CodeStrideBits(bits);
  const size_t bit = index * stride;
  const size_t byte = bit / 8;
  const int shift = static_cast<int>(bit % 8);
  uint32_t word = stream[byte];
  if (shift + stride > 8) word |= static_cast<uint32_t>(stream[byte + 1]) << 8;
  return static_cast<int>((word >> shift) & ((1u << bits) - 1u));
}

void WriteStreamCode(uint8_t* stream, int bits, size_t index, int code) {
  const int stride = CodeStrideBits(bits);
  const size_t bit = index * stride;
  const size_t byte = bit / 8;
  const int shift = static_cast<int>(bit % 8);
  // Clear the whole stride (for widths >= 5 the byte's high bits are zero).
  const uint32_t mask = ((1u << stride) - 1u) << shift;
  const uint32_t value = (static_cast<uint32_t>(code) & ((1u << bits) - 1u)) << shift;
  stream[byte] = static_cast<uint8_t>((stream[byte] & ~mask) | value);
  if (shift + stride > 8) {
    stream[byte + 1] = static_cast<uint8_t>((stream[byte + 1] & ~(mask >> 8)) | (value >> 8));
  }
}

using page_records::LoadHalfBits;
using page_records::StoreHalfBits;

// One slot of a page of this grammar, for page_records.h.
template <typename Byte>
class PackedPageSlot {
 public:
  PackedPageSlot(const PackedPageLayout& layout, Byte* page, int slot)
      : layout_(layout), page_(page), slot_(slot) {}

  void SetKCode(int group, int coordinate, int code) {
    const QuantGroup& g = layout_.k_layout().groups[group];
    WriteStreamCode(page_ + layout_.k_block_offset(group), g.bits,
                    static_cast<size_t>(slot_) * g.size + coordinate, code);
  }
  int KCode(int group, int coordinate) const {
    const QuantGroup& g = layout_.k_layout().groups[group];
    return ReadStreamCode(page_ + layout_.k_block_offset(group), g.bits,
                          static_cast<size_t>(slot_) * g.size + coordinate);
  }
  void SetKNormBits(int group, uint16_t bits) { StoreHalfBits(bits, page_ + KNormOffset(group)); }
  uint16_t KNormBits(int group) const { return LoadHalfBits(page_ + KNormOffset(group)); }
  void SetVCode(int coordinate, int code) {
    WriteStreamCode(page_ + layout_.v_block_offset(), layout_.v_bits(), VIndex(coordinate), code);
  }
  int VCode(int coordinate) const {
    return ReadStreamCode(page_ + layout_.v_block_offset(), layout_.v_bits(), VIndex(coordinate));
  }
  void SetVNormBits(uint16_t bits) { StoreHalfBits(bits, page_ + VNormOffset()); }
  uint16_t VNormBits() const { return LoadHalfBits(page_ + VNormOffset()); }

 private:
  size_t KNormOffset(int group) const {
    return layout_.k_norm_offset() +
           kGroupNormBytes * (static_cast<size_t>(group) * kPageTokens + slot_);
  }
  size_t VIndex(int coordinate) const {
    return static_cast<size_t>(coordinate) * kPageTokens + slot_;
  }
  size_t VNormOffset() const { return layout_.v_norm_offset() + kGroupNormBytes * slot_; }

  const PackedPageLayout& layout_;
  Byte* page_;
  int slot_;
};

}  // namespace

absl::StatusOr<PackedPageLayout> PackedPageLayout::Create(const GroupLayout& k_layout, int v_bits) {
  if (absl::Status status = ValidateGroupLayout(k_layout); !status.ok()) return status;
  if (v_bits < 1 || v_bits > 8) {
    return absl::InvalidArgumentError(absl::StrFormat("v_bits must be in [1, 8], got %d", v_bits));
  }
  if (k_layout.head_dim % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("packed pages need an even head_dim, got %d", k_layout.head_dim));
  }
  PackedPageLayout layout;
  layout.k_layout_ = k_layout;
  layout.v_bits_ = v_bits;
  size_t offset = 0;
  for (const QuantGroup& group : k_layout.groups) {
    layout.k_block_offsets_.push_back(offset);
    offset += static_cast<size_t>(kPageTokens) * group.size * CodeStrideBits(group.bits) / 8;
  }
  layout.k_norm_offset_ = offset;
  offset += kGroupNormBytes * kPageTokens * k_layout.groups.size();
  layout.v_block_offset_ = offset;
  offset += static_cast<size_t>(kPageTokens) * k_layout.head_dim * CodeStrideBits(v_bits) / 8;
  layout.v_norm_offset_ = offset;
  offset += kGroupNormBytes * kPageTokens;
  layout.page_bytes_ = (offset + 15) / 16 * 16;
  return layout;
}

int PackedPageLayout::KCode(absl::Span<const uint8_t> page, int group, int slot,
                            int coordinate) const {
  return PackedPageSlot<const uint8_t>(*this, page.data(), slot).KCode(group, coordinate);
}

int PackedPageLayout::VCode(absl::Span<const uint8_t> page, int slot, int coordinate) const {
  return PackedPageSlot<const uint8_t>(*this, page.data(), slot).VCode(coordinate);
}

float PackedPageLayout::KNorm(absl::Span<const uint8_t> page, int group, int slot) const {
  return HalfToFloat(PackedPageSlot<const uint8_t>(*this, page.data(), slot).KNormBits(group));
}

float PackedPageLayout::VNorm(absl::Span<const uint8_t> page, int slot) const {
  return HalfToFloat(PackedPageSlot<const uint8_t>(*this, page.data(), slot).VNormBits());
}

void WriteRecordsToPage(const PackedPageLayout& layout, absl::Span<const uint8_t> k_record,
                        absl::Span<const uint8_t> v_record, int slot, absl::Span<uint8_t> page) {
  if (!page_records::RecordsFitPage(layout.k_layout(), layout.v_bits(), layout.page_bytes(),
                                    k_record.size(), v_record.size(), page.size(), slot,
                                    kPageTokens)) {
    return;
  }
  page_records::ScatterRecords(layout.k_layout(), layout.v_bits(), k_record, v_record,
                               PackedPageSlot<uint8_t>(layout, page.data(), slot));
}

void ReadRecordsFromPage(const PackedPageLayout& layout, absl::Span<const uint8_t> page, int slot,
                         absl::Span<uint8_t> k_record, absl::Span<uint8_t> v_record) {
  if (!page_records::RecordsFitPage(layout.k_layout(), layout.v_bits(), layout.page_bytes(),
                                    k_record.size(), v_record.size(), page.size(), slot,
                                    kPageTokens)) {
    return;
  }
  page_records::GatherRecords(layout.k_layout(), layout.v_bits(),
                              PackedPageSlot<const uint8_t>(layout, page.data(), slot), k_record,
                              v_record);
}

}  // namespace kvplan
