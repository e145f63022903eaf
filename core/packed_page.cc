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

uint16_t LoadHalfBits(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

void StoreHalfBits(uint16_t h, uint8_t* p) {
  p[0] = static_cast<uint8_t>(h & 0xff);
  p[1] = static_cast<uint8_t>(h >> 8);
}

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
  const QuantGroup& g = k_layout_.groups[group];
  return ReadStreamCode(page.data() + k_block_offsets_[group], g.bits,
                        static_cast<size_t>(slot) * g.size + coordinate);
}

int PackedPageLayout::VCode(absl::Span<const uint8_t> page, int slot, int coordinate) const {
  return ReadStreamCode(page.data() + v_block_offset_, v_bits_,
                        static_cast<size_t>(coordinate) * kPageTokens + slot);
}

float PackedPageLayout::KNorm(absl::Span<const uint8_t> page, int group, int slot) const {
  return HalfToFloat(
      LoadHalfBits(page.data() + k_norm_offset_ +
                   kGroupNormBytes * (static_cast<size_t>(group) * kPageTokens + slot)));
}

float PackedPageLayout::VNorm(absl::Span<const uint8_t> page, int slot) const {
  return HalfToFloat(LoadHalfBits(page.data() + v_norm_offset_ + kGroupNormBytes * slot));
}

namespace {

// The shared precondition of the record <-> page conversions: a slot of the
// page, and records and page at least as large as the layouts need.
bool RecordsFitPage(const PackedPageLayout& layout, size_t k_record_bytes, size_t v_record_bytes,
                    size_t page_bytes, int slot) {
  return slot >= 0 && slot < kPageTokens && k_record_bytes >= layout.k_layout().PackedBytes() &&
         v_record_bytes >= PackedCodeBytes(layout.head_dim(), layout.v_bits()) + kGroupNormBytes &&
         page_bytes >= layout.page_bytes();
}

}  // namespace

void WriteRecordsToPage(const PackedPageLayout& layout, absl::Span<const uint8_t> k_record,
                        absl::Span<const uint8_t> v_record, int slot, absl::Span<uint8_t> page) {
  if (!RecordsFitPage(layout, k_record.size(), v_record.size(), page.size(), slot)) return;
  const GroupLayout& k = layout.k_layout();
  const int hd = layout.head_dim();
  const size_t v_code_bytes = PackedCodeBytes(hd, layout.v_bits());
  std::vector<uint8_t> codes(hd);
  size_t segment = 0;
  for (int g = 0; g < layout.num_k_groups(); ++g) {
    const QuantGroup& group = k.groups[g];
    const size_t bytes = PackedCodeBytes(group.size, group.bits);
    UnpackCodes(k_record.subspan(segment, bytes), group.bits,
                absl::MakeSpan(codes.data(), group.size));
    segment += bytes;
    uint8_t* stream = page.data() + layout.k_block_offset(g);
    for (int i = 0; i < group.size; ++i) {
      WriteStreamCode(stream, group.bits, static_cast<size_t>(slot) * group.size + i, codes[i]);
    }
    const uint8_t* norm = k_record.data() + k.CodeBytes() + kGroupNormBytes * g;
    StoreHalfBits(LoadHalfBits(norm),
                  page.data() + layout.k_norm_offset() +
                      kGroupNormBytes * (static_cast<size_t>(g) * kPageTokens + slot));
  }
  UnpackCodes(v_record.first(v_code_bytes), layout.v_bits(), absl::MakeSpan(codes));
  uint8_t* v_stream = page.data() + layout.v_block_offset();
  for (int j = 0; j < hd; ++j) {
    WriteStreamCode(v_stream, layout.v_bits(), static_cast<size_t>(j) * kPageTokens + slot,
                    codes[j]);
  }
  StoreHalfBits(LoadHalfBits(v_record.data() + v_code_bytes),
                page.data() + layout.v_norm_offset() + kGroupNormBytes * slot);
}

void ReadRecordsFromPage(const PackedPageLayout& layout, absl::Span<const uint8_t> page, int slot,
                         absl::Span<uint8_t> k_record, absl::Span<uint8_t> v_record) {
  if (!RecordsFitPage(layout, k_record.size(), v_record.size(), page.size(), slot)) return;
  const GroupLayout& k = layout.k_layout();
  const int hd = layout.head_dim();
  const size_t v_code_bytes = PackedCodeBytes(hd, layout.v_bits());
  std::vector<uint8_t> codes(hd);
  size_t segment = 0;
  for (int g = 0; g < layout.num_k_groups(); ++g) {
    const QuantGroup& group = k.groups[g];
    for (int i = 0; i < group.size; ++i)
      codes[i] = static_cast<uint8_t>(layout.KCode(page, g, slot, i));
    const size_t bytes = PackedCodeBytes(group.size, group.bits);
    PackCodes(absl::MakeConstSpan(codes.data(), group.size), group.bits,
              k_record.subspan(segment, bytes));
    segment += bytes;
    const uint8_t* norm = page.data() + layout.k_norm_offset() +
                          kGroupNormBytes * (static_cast<size_t>(g) * kPageTokens + slot);
    StoreHalfBits(LoadHalfBits(norm), k_record.data() + k.CodeBytes() + kGroupNormBytes * g);
  }
  for (int j = 0; j < hd; ++j) codes[j] = static_cast<uint8_t>(layout.VCode(page, slot, j));
  PackCodes(codes, layout.v_bits(), v_record.first(v_code_bytes));
  StoreHalfBits(LoadHalfBits(page.data() + layout.v_norm_offset() + kGroupNormBytes * slot),
                v_record.data() + v_code_bytes);
}

}  // namespace kvplan
