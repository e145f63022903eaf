#include "core/packed_page.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <vector>

#include "core/group_layout.h"
#include "core/grouped_quantizer.h"
#include "core/random.h"
#include "core/rotation.h"

namespace kvplan {
namespace {

GroupLayout LayoutWithEveryWidth(int head_dim) {
  const int blocks = head_dim / 2;
  std::vector<int> widths(blocks);
  std::vector<std::array<int, 2>> dims(blocks);
  for (int i = 0; i < blocks; ++i) {
    widths[i] = 1 + (i * 5 + 1) % 8;
    dims[i] = {i, i + blocks};
  }
  return *BuildGroupLayout(widths, dims);
}

TEST(PackedPageTest, RecordsRoundTripBitForBitAndLeaveOtherSlotsAlone) {
  const GroupLayout k_layout = LayoutWithEveryWidth(64);
  ASSERT_EQ(k_layout.groups.size(), 8u);
  for (int v_bits = 1; v_bits <= 8; ++v_bits) {
    const PackedPageLayout layout = *PackedPageLayout::Create(k_layout, v_bits);
    std::vector<Rotation> rotations;
    for (const QuantGroup& g : k_layout.groups) rotations.push_back(HaarRotation(g.size, g.bits));
    const GroupedQuantizer kq = *GroupedQuantizer::Create(k_layout, rotations);
    const GroupedQuantizer vq =
        *GroupedQuantizer::Create(*UniformLayout(64, v_bits), {HaarRotation(64, 9)});
    DeterministicRng rng(v_bits);
    std::vector<uint8_t> page(layout.page_bytes());
    for (uint8_t& b : page) b = static_cast<uint8_t>(rng.NextU64());
    std::vector<std::vector<uint8_t>> k_records, v_records;
    for (int slot : {0, 1, 31, 62, 63}) {
      std::vector<float> x(64), y(64);
      for (float& f : x) f = static_cast<float>(rng.NextGaussian());
      for (float& f : y) f = static_cast<float>(rng.NextGaussian());
      std::vector<uint8_t> kr(kq.PackedBytes()), vr(vq.PackedBytes());
      kq.Encode(x, absl::MakeSpan(kr));
      vq.Encode(y, absl::MakeSpan(vr));
      const std::vector<uint8_t> before = page;
      WriteRecordsToPage(layout, kr, vr, slot, absl::MakeSpan(page));
      std::vector<uint8_t> kb(kr.size()), vb(vr.size());
      ReadRecordsFromPage(layout, page, slot, absl::MakeSpan(kb), absl::MakeSpan(vb));
      EXPECT_EQ(kb, kr) << "v_bits " << v_bits << " slot " << slot;
      EXPECT_EQ(vb, vr) << "v_bits " << v_bits << " slot " << slot;
      // Every other slot reads back as before.
      for (int other = 0; other < kPageTokens; other += 7) {
        if (other == slot) continue;
        std::vector<uint8_t> k0(kr.size()), v0(vr.size()), k1(kr.size()), v1(vr.size());
        ReadRecordsFromPage(layout, before, other, absl::MakeSpan(k0), absl::MakeSpan(v0));
        ReadRecordsFromPage(layout, page, other, absl::MakeSpan(k1), absl::MakeSpan(v1));
        EXPECT_EQ(k0, k1);
        EXPECT_EQ(v0, v1);
      }
    }
  }
}

TEST(PackedPageTest, PartsAreSixteenByteAlignedAndDense) {
  const GroupLayout k_layout = LayoutWithEveryWidth(128);
  const PackedPageLayout layout = *PackedPageLayout::Create(k_layout, 3);
  size_t code_bits = 0;
  for (int g = 0; g < layout.num_k_groups(); ++g) {
    EXPECT_EQ(layout.k_block_offset(g) % 16, 0u);
    code_bits += static_cast<size_t>(k_layout.groups[g].size) * k_layout.groups[g].bits;
  }
  EXPECT_EQ(layout.k_norm_offset(), code_bits * kPageTokens / 8);
  EXPECT_EQ(layout.v_block_offset() % 16, 0u);
  EXPECT_EQ(layout.v_norm_offset() % 16, 0u);
  EXPECT_EQ(layout.page_bytes() % 16, 0u);
  // Codes, 8 fp16 K norms, 3-bit V codes, one V norm per token.
  EXPECT_EQ(layout.bytes_per_token(), code_bits / 8.0 + 16 + 48 + 2);
}

TEST(PackedPageTest, RejectsBadWidths) {
  EXPECT_FALSE(PackedPageLayout::Create(*UniformLayout(64, 3), 0).ok());
  EXPECT_FALSE(PackedPageLayout::Create(*UniformLayout(64, 3), 9).ok());
  EXPECT_FALSE(PackedPageLayout::Create(*UniformLayout(63, 3), 3).ok());
}

}  // namespace
}  // namespace kvplan
