// The two directions between one token's K and V records (grouped_quantizer.h
// grammar: code segments per group, then the fp16 group norms) and a page of
// any grammar: each page layout supplies where a code or norm lives, this file
// walks the records once, so that every grammar converts records alike.
//
// A page addressing type P provides:
//   void SetKCode(int group, int coordinate, int code);  // coordinate within the group
//   int KCode(int group, int coordinate) const;
//   void SetKNormBits(int group, uint16_t fp16);
//   uint16_t KNormBits(int group) const;
//   void SetVCode(int coordinate, int code);
//   int VCode(int coordinate) const;
//   void SetVNormBits(uint16_t fp16);
//   uint16_t VNormBits() const;
// bound to one page and one token slot.
//
// Example (core/packed_page.cc):
//   ScatterRecords(k_layout, v_bits, k_record, v_record, SlotOfPackedPage{...});
#ifndef KVPLAN_CORE_PAGE_RECORDS_H_
#define KVPLAN_CORE_PAGE_RECORDS_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "core/bit_packing.h"
#include "core/group_layout.h"

namespace kvplan::page_records {

inline uint16_t LoadHalfBits(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

inline void StoreHalfBits(uint16_t h, uint8_t* p) {
  p[0] = static_cast<uint8_t>(h & 0xff);
  p[1] = static_cast<uint8_t>(h >> 8);
}

// Bytes of a V record: codes at v_bits over head_dim, then one fp16 norm.
inline size_t VRecordBytes(int head_dim, int v_bits) {
  return PackedCodeBytes(head_dim, v_bits) + kGroupNormBytes;
}

// The precondition of both directions: a slot of the page, and records and
// page at least as large as the layouts need.
inline bool RecordsFitPage(const GroupLayout& k, int v_bits, size_t page_bytes_needed,
                           size_t k_record_bytes, size_t v_record_bytes, size_t page_bytes,
                           int slot, int page_tokens) {
  return slot >= 0 && slot < page_tokens && k_record_bytes >= k.PackedBytes() &&
         v_record_bytes >= VRecordBytes(k.head_dim, v_bits) && page_bytes >= page_bytes_needed;
}

// Records -> page slot.
template <class Page>
void ScatterRecords(const GroupLayout& k, int v_bits, absl::Span<const uint8_t> k_record,
                    absl::Span<const uint8_t> v_record, Page&& page) {
  std::vector<uint8_t> codes(k.head_dim);
  size_t segment = 0;
  for (int g = 0; g < static_cast<int>(k.groups.size()); ++g) {
    const QuantGroup& group = k.groups[g];
    const size_t bytes = PackedCodeBytes(group.size, group.bits);
    UnpackCodes(k_record.subspan(segment, bytes), group.bits,
                absl::MakeSpan(codes.data(), group.size));
    segment += bytes;
    for (int i = 0; i < group.size; ++i) page.SetKCode(g, i, codes[i]);
    page.SetKNormBits(g, LoadHalfBits(k_record.data() + k.CodeBytes() + kGroupNormBytes * g));
  }
  const size_t v_code_bytes = PackedCodeBytes(k.head_dim, v_bits);
  UnpackCodes(v_record.first(v_code_bytes), v_bits, absl::MakeSpan(codes));
  for (int j = 0; j < k.head_dim; ++j) page.SetVCode(j, codes[j]);
  page.SetVNormBits(LoadHalfBits(v_record.data() + v_code_bytes));
}

// Page slot -> records (bit for bit what GroupedQuantizer wrote, padding zero).
template <class Page>
void GatherRecords(const GroupLayout& k, int v_bits, const Page& page, absl::Span<uint8_t> k_record,
                   absl::Span<uint8_t> v_record) {
  std::vector<uint8_t> codes(k.head_dim);
  size_t segment = 0;
  for (int g = 0; g < static_cast<int>(k.groups.size()); ++g) {
    const QuantGroup& group = k.groups[g];
    for (int i = 0; i < group.size; ++i) codes[i] = static_cast<uint8_t>(page.KCode(g, i));
    const size_t bytes = PackedCodeBytes(group.size, group.bits);
    PackCodes(absl::MakeConstSpan(codes.data(), group.size), group.bits,
              k_record.subspan(segment, bytes));
    segment += bytes;
    StoreHalfBits(page.KNormBits(g), k_record.data() + k.CodeBytes() + kGroupNormBytes * g);
  }
  for (int j = 0; j < k.head_dim; ++j) codes[j] = static_cast<uint8_t>(page.VCode(j));
  const size_t v_code_bytes = PackedCodeBytes(k.head_dim, v_bits);
  PackCodes(codes, v_bits, v_record.first(v_code_bytes));
  StoreHalfBits(page.VNormBits(), v_record.data() + v_code_bytes);
}

}  // namespace kvplan::page_records

#endif  // KVPLAN_CORE_PAGE_RECORDS_H_
