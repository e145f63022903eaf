#include "core/fragment_page.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "core/bit_packing.h"
#include "core/group_layout.h"
#include "core/grouped_quantizer.h"
#include "core/packed_page.h"
#include "core/random.h"
#include "core/rotation.h"
#include "tests/core/page_round_trip.h"

namespace kvplan {
namespace {

// Split-half RoPE blocks whose widths repeat every `run` blocks, so that each
// width group is a multiple of 2·run dims.
GroupLayout Layout(int head_dim, int run) {
  const int blocks = head_dim / 2;
  std::vector<int> widths(blocks);
  std::vector<std::array<int, 2>> dims(blocks);
  for (int i = 0; i < blocks; ++i) {
    widths[i] = 1 + (i / run) % 8;
    dims[i] = {i, i + blocks};
  }
  return *BuildGroupLayout(widths, dims);
}

TEST(FragmentPageTest, RecordsRoundTripAndLeaveOtherSlotsAlone) {
  // hd 64 with 8-dim groups (every width once), hd 128 with 16-dim groups.
  for (int v_bits = 1; v_bits <= 8; ++v_bits) {
    for (const auto& [hd, run] : std::vector<std::array<int, 2>>{{64, 4}, {128, 8}}) {
      testing::ExpectRecordsRoundTrip(*FragmentPageLayout::Create(Layout(hd, run), v_bits),
                                      WriteRecordsToFragmentPage, ReadRecordsFromFragmentPage,
                                      100 * hd + v_bits);
    }
  }
}

// The grammar spelled out for one code: uniform 3-bit K at hd 128, coordinate
// 19 of slot 20. Half-slice 2 (coordinates 16-23) starts at run bit 4·3·2 = 24;
// coordinate 19 is the odd code of lane column t = 1; slot 20 is row 4 of tile
// 1, so lane 4·4 + 1 = 17, run bit 24 + 3·1 = 27: bits 3-5 of byte 3 of word 0.
TEST(FragmentPageTest, PlacesACodeWhereTheGrammarSays) {
  const GroupLayout k_layout = *UniformLayout(128, 3);
  const FragmentPageLayout layout = *FragmentPageLayout::Create(k_layout, 3);
  ASSERT_EQ(layout.k_run_words(), 6);
  std::vector<uint8_t> codes(128, 0);
  codes[19] = 5;
  std::vector<uint8_t> k_record(k_layout.PackedBytes(), 0),
      v_record(PackedCodeBytes(128, 3) + 2, 0);
  PackCodes(codes, 3, absl::MakeSpan(k_record));
  std::vector<uint8_t> page(layout.page_bytes(), 0);
  WriteRecordsToFragmentPage(layout, k_record, v_record, 20, absl::MakeSpan(page));
  const size_t byte = layout.tile_bytes() + FragmentRunWordOffset(6, 17, 0) + 3;
  EXPECT_EQ(FragmentRunWordOffset(6, 17, 0), 16 * 17);
  for (size_t i = 0; i < page.size(); ++i) {
    ASSERT_EQ(page[i], i == byte ? 5 << 3 : 0) << "byte " << i;
  }
  EXPECT_EQ(layout.KCode(page, 0, 20, 19), 5);

  // V dim 21 of the same slot: m-tile 1, dim row 5 (lane row g = 5), slot row
  // 4 (j = 0, lane column t = 2, even): lane 22, run bit 3·8·1 = 24.
  std::vector<uint8_t> v_codes(128, 0);
  v_codes[21] = 6;
  PackCodes(v_codes, 3, absl::MakeSpan(v_record));
  std::fill(k_record.begin(), k_record.end(), 0);
  std::fill(page.begin(), page.end(), 0);
  WriteRecordsToFragmentPage(layout, k_record, v_record, 20, absl::MakeSpan(page));
  const size_t v_byte =
      layout.tile_bytes() + layout.v_runs_offset() + FragmentRunWordOffset(6, 22, 0) + 3;
  for (size_t i = 0; i < page.size(); ++i) ASSERT_EQ(page[i], i == v_byte ? 6 : 0) << "byte " << i;
  EXPECT_EQ(layout.VCode(page, 20, 21), 6);
}

// A lower-row, odd code of a multi-width layout with a 5-word run: hd 64 with
// 8-dim groups of widths 1..8; coordinate 29 is code 5 of the 4-bit group
// (coordinates 24-31 = half-slice 3, run bit 4·(1+2+3) = 24), lane column 2,
// odd; slot 57 is row 9 of tile 3 (lane row 1, second row): lane 6, run bit
// 24 + 4·(2 + 1) = 36 = bits 4-7 of byte 0 of word 1.
TEST(FragmentPageTest, PlacesACodeOfAMultiWidthLayoutWhereTheGrammarSays) {
  const GroupLayout k_layout = Layout(64, 4);
  const FragmentPageLayout layout = *FragmentPageLayout::Create(k_layout, 2);
  ASSERT_EQ(layout.k_run_words(), 5);  // 4 · (1 + ... + 8) = 144 bits
  ASSERT_EQ(k_layout.groups[3].bits, 4);
  ASSERT_EQ(k_layout.groups[3].offset, 24);
  std::vector<uint8_t> k_record(k_layout.PackedBytes(), 0), v_record(PackedCodeBytes(64, 2) + 2, 0);
  size_t segment = 0;
  for (int g = 0; g < 3; ++g)
    segment += PackedCodeBytes(k_layout.groups[g].size, k_layout.groups[g].bits);
  std::vector<uint8_t> group_codes(8, 0);
  group_codes[5] = 9;
  PackCodes(group_codes, 4, absl::MakeSpan(k_record).subspan(segment));
  std::vector<uint8_t> page(layout.page_bytes(), 0);
  WriteRecordsToFragmentPage(layout, k_record, v_record, 57, absl::MakeSpan(page));
  const size_t byte = 3 * layout.tile_bytes() + FragmentRunWordOffset(5, 6, 1);
  EXPECT_EQ(FragmentRunWordOffset(5, 6, 1), 16 * 6 + 4);
  for (size_t i = 0; i < page.size(); ++i)
    ASSERT_EQ(page[i], i == byte ? 9 << 4 : 0) << "byte " << i;
  EXPECT_EQ(layout.KCode(page, 3, 57, 5), 9);
}

TEST(FragmentPageTest, RunStorageIsAPermutationOfWholeWords) {
  for (int words = 1; words <= 9; ++words) {
    std::set<size_t> seen;
    for (int lane = 0; lane < 32; ++lane) {
      for (int w = 0; w < words; ++w) {
        const size_t offset = FragmentRunWordOffset(words, lane, w);
        EXPECT_EQ(offset % 4, 0u);
        EXPECT_LT(offset, 128u * words);
        EXPECT_TRUE(seen.insert(offset).second)
            << words << " words: lane " << lane << " word " << w;
      }
    }
    // A lane's 16-byte chunks are contiguous (one 16-byte load each).
    for (int w = 0; w + 4 <= words / 4 * 4; w += 4) {
      EXPECT_EQ(FragmentRunWordOffset(words, 5, w + 3), FragmentRunWordOffset(words, 5, w) + 12);
    }
  }
}

TEST(FragmentPageTest, SizesOfAK3V3Llama128Page) {
  // 8-aligned K3 at hd 128 (Σ widths = 3 · 64 blocks): five groups (widths 1..5); V3.
  std::vector<int> widths;
  for (const auto& [width, blocks] :
       std::vector<std::array<int, 2>>{{1, 8}, {2, 12}, {3, 24}, {4, 12}, {5, 8}}) {
    widths.insert(widths.end(), blocks, width);
  }
  std::vector<std::array<int, 2>> dims(64);
  for (int i = 0; i < 64; ++i) dims[i] = {i, i + 64};
  const GroupLayout k_layout = *BuildGroupLayout(widths, dims);
  ASSERT_EQ(k_layout.groups.size(), 5u);
  const FragmentPageLayout layout = *FragmentPageLayout::Create(k_layout, 3);
  EXPECT_EQ(layout.k_run_words(), 6);  // 8 · Σ bits / 2 / 32 = 384 / 64
  EXPECT_EQ(layout.v_run_words(), 6);
  EXPECT_EQ(layout.tile_bytes(), 128u * 12 + 32 * 6);
  EXPECT_EQ(layout.page_bytes() % 16, 0u);
  EXPECT_DOUBLE_EQ(layout.bytes_per_token(), 108.0);
}

// The contract with the plan option: k_group_align 8 allocations always fit a
// fragment page; the greedy's need not (that is why the option exists).
TEST(FragmentPageTest, HoldsEveryEightAlignedAllocation) {
  DeterministicRng rng(5);
  int greedy_refused = 0;
  for (int head = 0; head < 32; ++head) {
    const int hd = head % 2 == 0 ? 128 : 64, blocks = hd / 2;
    std::vector<double> scores(blocks);
    for (double& x : scores) x = std::exp(2.0 * rng.NextGaussian());
    std::vector<std::array<int, 2>> dims(blocks);
    for (int i = 0; i < blocks; ++i) dims[i] = {i, i + blocks};
    for (double avg : {2.0, 3.0, 4.0}) {
      const std::vector<int> aligned = *GroupAlignedAllocate(scores, {.avg_bits = avg}, 4);
      const absl::StatusOr<FragmentPageLayout> page =
          FragmentPageLayout::Create(*BuildGroupLayout(aligned, dims), 3);
      EXPECT_TRUE(page.ok()) << "head " << head << " K" << avg << ": " << page.status();
      const std::vector<int> greedy = *GreedyAllocate(scores, {.avg_bits = avg});
      if (!FragmentPageLayout::Create(*BuildGroupLayout(greedy, dims), 3).ok()) ++greedy_refused;
    }
  }
  EXPECT_GT(greedy_refused, 0) << "these energies should give some greedy groups of 2-6 dims";
}

TEST(FragmentPageTest, RefusesLayoutsItCannotHold) {
  const absl::StatusOr<FragmentPageLayout> small_groups =
      FragmentPageLayout::Create(Layout(32, 1), 3);  // 4-dim groups
  ASSERT_EQ(small_groups.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(small_groups.status().message().find("k_group_align 8"), std::string::npos)
      << small_groups.status();
  const absl::StatusOr<FragmentPageLayout> odd_dim =
      FragmentPageLayout::Create(*UniformLayout(72, 3), 3);
  ASSERT_EQ(odd_dim.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(odd_dim.status().message().find("multiple of 16"), std::string::npos)
      << odd_dim.status();
  EXPECT_EQ(FragmentPageLayout::Create(*UniformLayout(64, 3), 9).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(FragmentPageLayout::Create(*UniformLayout(64, 3), 0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kvplan
