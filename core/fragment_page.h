// The fragment-native KV page (format version 2): the page of core/packed_page.h
// re-laid so that each lane of a decode warp loads the codes of its tensor-core
// fragments as one contiguous run, and every code's position in that run is a
// constant of the plan. A decode kernel generated and compiled per plan
// (kvplan/kernels/jit.h) then extracts each code pair with one shift and one
// mask: 55-58% of copy bandwidth against the version-1 kernel's 33-39% on the
// same plans (bench/kernels/NOTES.md run 19, the design probe). SIMT needs
// every lane's code at a given run position to have the same width, so K width
// groups must be multiples of 8 dims (plan option k_group_align 8 or 16).
//
// Grammar (P = kPageTokens = 64 slots, tiles of T = 16; hd = head dim, a
// multiple of 16; G = number of K groups):
//   page     := tile_0 .. tile_3                  tile i holds slots 16i .. 16i+15
//   tile     := k_runs v_runs norms
//   k_runs   := 32 lane runs of W_K words, lane-interleaved (run storage below)
//   v_runs   := 32 lane runs of W_V words, likewise
//   norms    := for g in 0..7: for s in 0..G: fp16 n'(row g), fp16 n'(row g + 8)
//               of K group s (s < G) or of V (s = G)        (32·(G+1) bytes)
// Lane l = 4g + t. Rows r are slots within the tile. K coordinates are the
// permuted positions of the K GroupLayout (groups contiguous); half-slice h
// covers coordinates 8h .. 8h+7, all of one group, width w_h.
//   K run of lane (g, t): for h = 0 .. hd/8 - 1, four codes of w_h bits:
//     (row g, coord 8h+2t), (row g, 8h+2t+1), (row g+8, 8h+2t), (row g+8, 8h+2t+1)
//     — the A-fragment registers of an m16n8k16 MMA over 16-coordinate slices.
//   V run of lane (g, t): for m = 0 .. hd/16 - 1, for j = 0, 1, four codes at
//     v_bits: (dim 16m+g, row 8j+2t), (dim 16m+g, row 8j+2t+1), (dim 16m+g+8,
//     row 8j+2t), (dim 16m+g+8, row 8j+2t+1) — Vᵀ's A fragments.
//   Codes fill a run LSB first (run bit i = bit i mod 32 of word i / 32); the
//   run's trailing bits up to a whole word are unused.
//   Run storage of W words per lane: ⌊W/4⌋ chunks of 16 bytes per lane (chunk
//   c: bytes 512c + 16·lane, words 4c .. 4c+3), then, if W mod 4 >= 2, 8 bytes
//   per lane, then, if W is odd, 4 bytes per lane: a lane loads its run with
//   16-, 8- and 4-byte loads, and each load instruction of a warp reads one
//   contiguous block.
// Every part is a multiple of 16 bytes. Fp16 values are little-endian. A slot
// never written holds whatever the buffer held.
//
// Example:
//   absl::StatusOr<FragmentPageLayout> layout = FragmentPageLayout::Create(k_layout, 3);
//   std::vector<uint8_t> page(layout->page_bytes());
//   WriteRecordsToFragmentPage(*layout, k_record, v_record, /*slot=*/5, absl::MakeSpan(page));
#ifndef KVPLAN_CORE_FRAGMENT_PAGE_H_
#define KVPLAN_CORE_FRAGMENT_PAGE_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/fragment_geometry.h"  // the grammar's arithmetic; FragmentRunWordOffset
#include "core/group_layout.h"

namespace kvplan {

// Version of the grammar above (core/packed_page.h is version 1).
inline constexpr int kFragmentPageFormatVersion = 2;

class FragmentPageLayout {
 public:
  // InvalidArgument, naming the problem and the fix, when `k_layout` is invalid,
  // head_dim is not a multiple of 16, a K group's size is not a multiple of 8
  // (build the plan with k_group_align 8 or 16), or v_bits is outside [1, 8].
  static absl::StatusOr<FragmentPageLayout> Create(const GroupLayout& k_layout, int v_bits);

  const GroupLayout& k_layout() const { return k_layout_; }
  int head_dim() const { return k_layout_.head_dim; }
  int v_bits() const { return v_bits_; }
  int num_k_groups() const { return static_cast<int>(k_layout_.groups.size()); }

  // Words per lane run; width and run bit of half-slice h's codes.
  int k_run_words() const { return k_run_words_; }
  int v_run_words() const { return v_run_words_; }
  int half_slice_bits(int h) const { return half_bits_[h]; }
  int half_slice_offset(int h) const { return half_offsets_[h]; }

  // Byte sizes and offsets within a tile / page.
  size_t v_runs_offset() const { return 128 * static_cast<size_t>(k_run_words_); }
  size_t norms_offset() const { return 128 * static_cast<size_t>(k_run_words_ + v_run_words_); }
  size_t tile_bytes() const {
    return norms_offset() + 32 * static_cast<size_t>(num_k_groups() + 1);
  }
  size_t page_bytes() const;
  double bytes_per_token() const;

  // Code of (slot, coordinate within K group `group`) / of (slot, V dim), and
  // the norms, read from a page.
  int KCode(absl::Span<const uint8_t> page, int group, int slot, int coordinate) const;
  int VCode(absl::Span<const uint8_t> page, int slot, int dim) const;
  float KNorm(absl::Span<const uint8_t> page, int group, int slot) const;
  float VNorm(absl::Span<const uint8_t> page, int slot) const;

 private:
  FragmentPageLayout() = default;

  GroupLayout k_layout_;
  int v_bits_ = 0;
  int k_run_words_ = 0;
  int v_run_words_ = 0;
  std::vector<int> half_bits_;     // [hd / 8]
  std::vector<int> half_offsets_;  // [hd / 8], run bit of the half's first code
};

// Stores one token's K and V records (grouped_quantizer.h grammar) into `slot`
// of `page`, changing no other slot's bits; the inverse reads them back bit for
// bit. Preconditions (else nothing happens): slot in [0, kPageTokens), records
// and page at least as large as the layouts need.
void WriteRecordsToFragmentPage(const FragmentPageLayout& layout,
                                absl::Span<const uint8_t> k_record,
                                absl::Span<const uint8_t> v_record, int slot,
                                absl::Span<uint8_t> page);
void ReadRecordsFromFragmentPage(const FragmentPageLayout& layout, absl::Span<const uint8_t> page,
                                 int slot, absl::Span<uint8_t> k_record,
                                 absl::Span<uint8_t> v_record);

}  // namespace kvplan

#endif  // KVPLAN_CORE_FRAGMENT_PAGE_H_
