#include "core/packed_page.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <vector>

#include "core/group_layout.h"
#include "core/grouped_quantizer.h"
#include "core/random.h"
#include "core/rotation.h"
#include "tests/core/page_round_trip.h"

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
    testing::ExpectRecordsRoundTrip(*PackedPageLayout::Create(k_layout, v_bits), WriteRecordsToPage,
                                    ReadRecordsFromPage, v_bits);
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
