#include "core/fragment_page.h"

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "absl/types/span.h"
#include "core/fragment_geometry.h"
#include "core/group_layout.h"
#include "core/half.h"
#include "core/packed_page.h"
#include "core/page_records.h"

namespace kvplan {
namespace {

constexpr int kTilesPerPage = kPageTokens / kFragmentTileTokens;
static_assert(kTilesPerPage * kFragmentTileTokens == kPageTokens, "whole tiles per page");

int WordsForBits(int bits) { return (bits + 31) / 32; }

// `width` bits of lane `lane`'s run starting at run bit `bit`, LSB first.
int ReadRunBits(const uint8_t* block, int words, int lane, int bit, int width) {
  int value = 0;
  for (int k = 0; k < width; ++k) {
    const int b = bit + k;
    const uint8_t* word = block + FragmentRunWordOffset(words, lane, b / 32);
    value |= ((word[(b % 32) / 8] >> (b % 8)) & 1) << k;
  }
  return value;
}

void WriteRunBits(uint8_t* block, int words, int lane, int bit, int width, int value) {
  for (int k = 0; k < width; ++k) {
    const int b = bit + k;
    uint8_t& byte = block[FragmentRunWordOffset(words, lane, b / 32) + (b % 32) / 8];
    byte = static_cast<uint8_t>((byte & ~(1u << (b % 8))) | (((value >> k) & 1u) << (b % 8)));
  }
}

// Where a code lives: its run block within the page, lane and run bit.
struct RunPosition {
  size_t block = 0;
  int lane = 0;
  int bit = 0;
};

// One slot of a fragment page, for page_records.h.
template <typename Byte>
class FragmentPageSlot {
 public:
  FragmentPageSlot(const FragmentPageLayout& layout, Byte* page, int slot)
      : layout_(layout), page_(page), slot_(slot) {}

  void SetKCode(int group, int coordinate, int code) {
    const RunPosition at = KPosition(group, coordinate);
    WriteRunBits(page_ + at.block, layout_.k_run_words(), at.lane, at.bit,
                 layout_.k_layout().groups[group].bits, code);
  }
  int KCode(int group, int coordinate) const {
    const RunPosition at = KPosition(group, coordinate);
    return ReadRunBits(page_ + at.block, layout_.k_run_words(), at.lane, at.bit,
                       layout_.k_layout().groups[group].bits);
  }
  void SetKNormBits(int group, uint16_t bits) {
    page_records::StoreHalfBits(bits, page_ + NormOffset(group));
  }
  uint16_t KNormBits(int group) const {
    return page_records::LoadHalfBits(page_ + NormOffset(group));
  }
  void SetVCode(int dim, int code) {
    const RunPosition at = VPosition(dim);
    WriteRunBits(page_ + at.block, layout_.v_run_words(), at.lane, at.bit, layout_.v_bits(), code);
  }
  int VCode(int dim) const {
    const RunPosition at = VPosition(dim);
    return ReadRunBits(page_ + at.block, layout_.v_run_words(), at.lane, at.bit, layout_.v_bits());
  }
  void SetVNormBits(uint16_t bits) {
    page_records::StoreHalfBits(bits, page_ + NormOffset(layout_.num_k_groups()));
  }
  uint16_t VNormBits() const {
    return page_records::LoadHalfBits(page_ + NormOffset(layout_.num_k_groups()));
  }

 private:
  size_t TileOffset() const {
    return static_cast<size_t>(slot_ / kFragmentTileTokens) * layout_.tile_bytes();
  }
  int Row() const { return slot_ % kFragmentTileTokens; }

  RunPosition KPosition(int group, int coordinate) const {
    const int p = layout_.k_layout().groups[group].offset + coordinate;
    const int h = p / kFragmentHalfSliceDims;
    return {TileOffset(), FragmentKLane(Row(), p),
            FragmentKRunBit(layout_.half_slice_offset(h), layout_.half_slice_bits(h), Row(), p)};
  }
  RunPosition VPosition(int dim) const {
    return {TileOffset() + layout_.v_runs_offset(), FragmentVLane(Row(), dim),
            FragmentVRunBit(layout_.v_bits(), Row(), dim)};
  }
  size_t NormOffset(int norm_slot) const {
    return TileOffset() + layout_.norms_offset() +
           FragmentNormByte(Row(), layout_.num_k_groups(), norm_slot);
  }

  const FragmentPageLayout& layout_;
  Byte* page_;
  int slot_;
};

}  // namespace

absl::StatusOr<FragmentPageLayout> FragmentPageLayout::Create(const GroupLayout& k_layout,
                                                              int v_bits) {
  if (absl::Status status = ValidateGroupLayout(k_layout); !status.ok()) return status;
  if (v_bits < 1 || v_bits > 8) {
    return absl::InvalidArgumentError(absl::StrFormat("v_bits must be in [1, 8], got %d", v_bits));
  }
  if (k_layout.head_dim % 16 != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "fragment pages need head_dim a multiple of 16 (the MMA's k), got %d; use the version-1 "
        "page (core/packed_page.h) for this model",
        k_layout.head_dim));
  }
  for (const QuantGroup& g : k_layout.groups) {
    if (g.size % kFragmentHalfSliceDims != 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "fragment pages need K width groups of a multiple of %d dims, but the %d-bit group has "
          "%d; build the plan with k_group_align 8 (or 16)",
          kFragmentHalfSliceDims, g.bits, g.size));
    }
  }
  FragmentPageLayout layout;
  layout.k_layout_ = k_layout;
  layout.v_bits_ = v_bits;
  const int halves = k_layout.head_dim / kFragmentHalfSliceDims;
  layout.half_bits_.resize(halves);
  layout.half_offsets_.resize(halves);
  int bit = 0;
  for (const QuantGroup& g : k_layout.groups) {
    for (int h = g.offset / kFragmentHalfSliceDims;
         h < (g.offset + g.size) / kFragmentHalfSliceDims; ++h) {
      layout.half_bits_[h] = g.bits;
    }
  }
  for (int h = 0; h < halves; ++h) {
    layout.half_offsets_[h] = bit;
    bit += 4 * layout.half_bits_[h];
  }
  layout.k_run_words_ = WordsForBits(bit);
  layout.v_run_words_ = WordsForBits(k_layout.head_dim / 2 * v_bits);
  return layout;
}

size_t FragmentPageLayout::page_bytes() const { return kTilesPerPage * tile_bytes(); }

double FragmentPageLayout::bytes_per_token() const {
  return static_cast<double>(page_bytes()) / kPageTokens;
}

int FragmentPageLayout::KCode(absl::Span<const uint8_t> page, int group, int slot,
                              int coordinate) const {
  return FragmentPageSlot<const uint8_t>(*this, page.data(), slot).KCode(group, coordinate);
}

int FragmentPageLayout::VCode(absl::Span<const uint8_t> page, int slot, int dim) const {
  return FragmentPageSlot<const uint8_t>(*this, page.data(), slot).VCode(dim);
}

float FragmentPageLayout::KNorm(absl::Span<const uint8_t> page, int group, int slot) const {
  return HalfToFloat(FragmentPageSlot<const uint8_t>(*this, page.data(), slot).KNormBits(group));
}

float FragmentPageLayout::VNorm(absl::Span<const uint8_t> page, int slot) const {
  return HalfToFloat(FragmentPageSlot<const uint8_t>(*this, page.data(), slot).VNormBits());
}

void WriteRecordsToFragmentPage(const FragmentPageLayout& layout,
                                absl::Span<const uint8_t> k_record,
                                absl::Span<const uint8_t> v_record, int slot,
                                absl::Span<uint8_t> page) {
  if (!page_records::RecordsFitPage(layout.k_layout(), layout.v_bits(), layout.page_bytes(),
                                    k_record.size(), v_record.size(), page.size(), slot,
                                    kPageTokens)) {
    return;
  }
  page_records::ScatterRecords(layout.k_layout(), layout.v_bits(), k_record, v_record,
                               FragmentPageSlot<uint8_t>(layout, page.data(), slot));
}

void ReadRecordsFromFragmentPage(const FragmentPageLayout& layout, absl::Span<const uint8_t> page,
                                 int slot, absl::Span<uint8_t> k_record,
                                 absl::Span<uint8_t> v_record) {
  if (!page_records::RecordsFitPage(layout.k_layout(), layout.v_bits(), layout.page_bytes(),
                                    k_record.size(), v_record.size(), page.size(), slot,
                                    kPageTokens)) {
    return;
  }
  page_records::GatherRecords(layout.k_layout(), layout.v_bits(),
                              FragmentPageSlot<const uint8_t>(layout, page.data(), slot), k_record,
                              v_record);
}

}  // namespace kvplan
