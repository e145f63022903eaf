// The packed KV page: how one (layer, KV head) stores K and V codes of
// kPageTokens tokens, laid out for coalesced loads and for the fused decode
// attention kernel (kernels/), and how a page converts to and from the
// per-token records of grouped_quantizer.h.
//
// A page holds the codes of every token of a segment contiguously, so a kernel
// that reads a page moves one contiguous run of bytes; token slots are
// addressed by their index τ in [0, kPageTokens).
//
// Page grammar (format version kPackedPageFormatVersion; P = kPageTokens = 64):
//   page       := k_block_0 ... k_block_{G-1} k_norms v_block v_norms
//   k_block_g  := a code stream of P·d_g codes of K group g at bits_g,
//                 token-major: the code of (slot τ, rotated coordinate i) is
//                 stream element τ·d_g + i
//   k_norms    := fp16 n'[g][τ] for g in [0, G), τ in [0, P)   (2·P·G bytes)
//   v_block    := a code stream of P·head_dim codes at v_bits, dim-major: the
//                 code of (slot τ, rotated coordinate j) is element j·P + τ
//   v_norms    := fp16 n'[τ] for τ in [0, P)                    (2·P bytes)
//   code stream at width w (1..8): element e occupies stream bits
//                 [e·w, (e+1)·w), LSB first, stream bit i = bit (i mod 8) of
//                 byte floor(i / 8) — bit_packing.h's bitstream, here for
//                 every width (the record's one-byte codes for w >= 5 would
//                 cost 8 bits where w suffice).
// K groups are those of the K GroupLayout (ascending width); V is uniform
// TQ-MSE (one group of head_dim at v_bits, identity permutation). With P = 64
// every part is a whole number of 16-byte units, so every part starts 16-byte
// aligned when the page does. Fp16 values are little-endian. A slot never
// written holds whatever the buffer held; readers mask slots past the
// sequence length (attention) and never rely on their contents.
//
// Conversion: the record of grouped_quantizer.h (segments then norms) maps to a
// slot of the page code by code: WriteRecordsToPage / ReadRecordsFromPage.
//
// Example:
//   absl::StatusOr<PackedPageLayout> layout = PackedPageLayout::Create(k_layout, 3);
//   std::vector<uint8_t> page(layout->page_bytes());
//   WriteRecordsToPage(*layout, k_record, v_record, /*slot=*/5, absl::MakeSpan(page));
#ifndef KVPLAN_CORE_PACKED_PAGE_H_
#define KVPLAN_CORE_PACKED_PAGE_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/group_layout.h"

namespace kvplan {

// Version of the page grammar above.
inline constexpr int kPackedPageFormatVersion = 1;
// Token slots per page.
inline constexpr int kPageTokens = 64;

// Bits one code occupies in a page's code stream of width `bits`: dense for
// every width (unlike the record, whose codes of 5..8 bits take a byte each).
constexpr int CodeStrideBits(int bits) { return bits; }

class PackedPageLayout {
 public:
  // InvalidArgument if `k_layout` is invalid, v_bits is outside [1, 8] or the
  // head dimension is odd.
  static absl::StatusOr<PackedPageLayout> Create(const GroupLayout& k_layout, int v_bits);

  const GroupLayout& k_layout() const { return k_layout_; }
  int head_dim() const { return k_layout_.head_dim; }
  int v_bits() const { return v_bits_; }
  int num_k_groups() const { return static_cast<int>(k_layout_.groups.size()); }

  // Byte offsets within a page.
  size_t k_block_offset(int group) const { return k_block_offsets_[group]; }
  size_t k_norm_offset() const { return k_norm_offset_; }
  size_t v_block_offset() const { return v_block_offset_; }
  size_t v_norm_offset() const { return v_norm_offset_; }
  // Total bytes of a page; a multiple of 16.
  size_t page_bytes() const { return page_bytes_; }
  // page_bytes() / kPageTokens: what a token costs in the cache, norms included.
  double bytes_per_token() const { return static_cast<double>(page_bytes_) / kPageTokens; }

  // Code of (slot, coordinate) of K group `group` / of V, read from a page.
  int KCode(absl::Span<const uint8_t> page, int group, int slot, int coordinate) const;
  int VCode(absl::Span<const uint8_t> page, int slot, int coordinate) const;
  float KNorm(absl::Span<const uint8_t> page, int group, int slot) const;
  float VNorm(absl::Span<const uint8_t> page, int slot) const;

 private:
  PackedPageLayout() = default;

  GroupLayout k_layout_;
  int v_bits_ = 0;
  std::vector<size_t> k_block_offsets_;
  size_t k_norm_offset_ = 0;
  size_t v_block_offset_ = 0;
  size_t v_norm_offset_ = 0;
  size_t page_bytes_ = 0;
};

// Stores one token's K record (grouped_quantizer.h grammar for layout.k_layout())
// and V record (uniform layout at v_bits) into `slot` of `page`, changing no
// other slot's bits. Preconditions (else nothing is written): slot in
// [0, kPageTokens), record and page sizes at least what the layouts need.
void WriteRecordsToPage(const PackedPageLayout& layout, absl::Span<const uint8_t> k_record,
                        absl::Span<const uint8_t> v_record, int slot, absl::Span<uint8_t> page);

// The inverse: rebuilds slot `slot`'s K and V records (bit for bit what
// GroupedQuantizer wrote, padding bits zero). Same preconditions.
void ReadRecordsFromPage(const PackedPageLayout& layout, absl::Span<const uint8_t> page, int slot,
                         absl::Span<uint8_t> k_record, absl::Span<uint8_t> v_record);

}  // namespace kvplan

#endif  // KVPLAN_CORE_PACKED_PAGE_H_
