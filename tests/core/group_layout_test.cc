#include "core/group_layout.h"

#include <gtest/gtest.h>

#include <array>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "core/random.h"

namespace kvplan {
namespace {

std::vector<std::array<int, 2>> SplitHalfDims(int head_dim) {
  const int l = head_dim / 2;
  std::vector<std::array<int, 2>> dims(l);
  for (int i = 0; i < l; ++i) dims[i] = {i, i + l};
  return dims;
}

std::vector<std::array<int, 2>> InterleavedDims(int head_dim) {
  std::vector<std::array<int, 2>> dims(head_dim / 2);
  for (int i = 0; i < head_dim / 2; ++i) dims[i] = {2 * i, 2 * i + 1};
  return dims;
}

void ExpectInvalid(const absl::Status& status, const std::string& needle) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), needle)) << status;
}

TEST(GroupLayoutTest, SplitHalfGroupsByAscendingWidth) {
  absl::StatusOr<GroupLayout> layout = BuildGroupLayout({3, 2, 3, 2}, SplitHalfDims(8));
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_EQ(layout->head_dim, 8);
  EXPECT_EQ(layout->permutation, (std::vector<int>{1, 5, 3, 7, 0, 4, 2, 6}));
  EXPECT_EQ(layout->groups, (std::vector<QuantGroup>{{.bits = 2, .offset = 0, .size = 4},
                                                     {.bits = 3, .offset = 4, .size = 4}}));
  EXPECT_EQ(layout->CodeBytes(), 3u);  // 4·2 bits = 1 byte, 4·3 bits = 2 bytes
  EXPECT_EQ(layout->NormBytes(), 4u);
  EXPECT_EQ(layout->PackedBytes(), 7u);
  EXPECT_TRUE(ValidateGroupLayout(*layout).ok());
}

TEST(GroupLayoutTest, InterleavedKeepsBlockOrderWithinGroups) {
  absl::StatusOr<GroupLayout> layout = BuildGroupLayout({8, 1, 4, 1}, InterleavedDims(8));
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_EQ(layout->permutation, (std::vector<int>{2, 3, 6, 7, 4, 5, 0, 1}));
  EXPECT_EQ(layout->groups, (std::vector<QuantGroup>{{.bits = 1, .offset = 0, .size = 4},
                                                     {.bits = 4, .offset = 4, .size = 2},
                                                     {.bits = 8, .offset = 6, .size = 2}}));
  EXPECT_EQ(layout->CodeBytes(), 1u + 1u + 2u);
  EXPECT_EQ(layout->PackedBytes(), 4u + 6u);
}

TEST(GroupLayoutTest, EqualWidthsFormOneGroupInBlockOrder) {
  absl::StatusOr<GroupLayout> layout = BuildGroupLayout({3, 3, 3}, SplitHalfDims(6));
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_EQ(layout->permutation, (std::vector<int>{0, 3, 1, 4, 2, 5}));
  ASSERT_EQ(layout->groups.size(), 1u);
  EXPECT_EQ(layout->groups[0], (QuantGroup{.bits = 3, .offset = 0, .size = 6}));
}

TEST(GroupLayoutTest, UniformLayoutIsOneIdentityGroup) {
  absl::StatusOr<GroupLayout> layout = UniformLayout(128, 3);
  ASSERT_TRUE(layout.ok()) << layout.status();
  ASSERT_EQ(layout->permutation.size(), 128u);
  for (int p = 0; p < 128; ++p) EXPECT_EQ(layout->permutation[p], p);
  EXPECT_EQ(layout->groups, (std::vector<QuantGroup>{{.bits = 3, .offset = 0, .size = 128}}));
  EXPECT_EQ(layout->CodeBytes(), 48u);
  EXPECT_EQ(layout->PackedBytes(), 50u);
  EXPECT_TRUE(ValidateGroupLayout(*layout).ok());
}

TEST(GroupLayoutTest, ByteAccountingOfARealisticK3Allocation) {
  // hd 128: 16 blocks at 2, 32 at 3, 16 at 4 bits (avg 3 b/dim).
  std::vector<int> bits(64);
  for (int i = 0; i < 64; ++i) bits[i] = i < 16 ? 4 : (i < 48 ? 3 : 2);
  absl::StatusOr<GroupLayout> layout = BuildGroupLayout(bits, SplitHalfDims(128));
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_EQ(layout->CodeBytes(), 8u + 24u + 16u);
  EXPECT_EQ(layout->NormBytes(), 6u);
  EXPECT_EQ(layout->PackedBytes(), 54u);
}

TEST(GroupLayoutTest, OddSegmentsRoundUpToWholeBytes) {
  // One block (2 dims) at 3 bits is 6 bits -> 1 byte; three blocks at 5 bits
  // are 6 bytes, one per code.
  absl::StatusOr<GroupLayout> layout = BuildGroupLayout({3, 5, 5, 5}, SplitHalfDims(8));
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_EQ(layout->CodeBytes(), 1u + 6u);
}

TEST(GroupLayoutTest, RandomAllocationsValidate) {
  DeterministicRng rng(3);
  for (int trial = 0; trial < 200; ++trial) {
    const int l = 1 + static_cast<int>(rng.NextU64() % 64);
    std::vector<int> bits(l);
    for (int& b : bits) b = 1 + static_cast<int>(rng.NextU64() % 8);
    const bool interleaved = trial % 2 == 0;
    absl::StatusOr<GroupLayout> layout =
        BuildGroupLayout(bits, interleaved ? InterleavedDims(2 * l) : SplitHalfDims(2 * l));
    ASSERT_TRUE(layout.ok()) << layout.status();
    EXPECT_TRUE(ValidateGroupLayout(*layout).ok()) << ValidateGroupLayout(*layout);
    size_t expected_bits = 0;
    for (const QuantGroup& g : layout->groups) expected_bits += g.size * g.bits;
    size_t allocated_bits = 0;
    for (int b : bits) allocated_bits += 2 * b;
    EXPECT_EQ(expected_bits, allocated_bits);
  }
}

TEST(GroupLayoutTest, BuildRejectsBadInput) {
  ExpectInvalid(BuildGroupLayout({}, {}).status(), "at least one block");
  ExpectInvalid(BuildGroupLayout({3, 3}, SplitHalfDims(2)).status(), "block_dims has 1");
  ExpectInvalid(BuildGroupLayout({3, 9}, SplitHalfDims(4)).status(), "block 1 has 9 bits");
  ExpectInvalid(BuildGroupLayout({0, 3}, SplitHalfDims(4)).status(), "block 0 has 0 bits");
  ExpectInvalid(BuildGroupLayout({3, 3}, {{0, 2}, {1, 4}}).status(),
                "block 1 has dimension 4, outside [0, 4)");
  ExpectInvalid(BuildGroupLayout({3, 3}, {{0, -1}, {1, 2}}).status(), "dimension -1");
  ExpectInvalid(BuildGroupLayout({3, 3}, {{0, 2}, {2, 1}}).status(),
                "dimension 2 belongs to both block 0 and block 1");
  ExpectInvalid(BuildGroupLayout(std::vector<int>(513, 3), SplitHalfDims(1026)).status(),
                "at most 512");
}

TEST(GroupLayoutTest, UniformRejectsBadInput) {
  ExpectInvalid(UniformLayout(0, 3).status(), "head_dim");
  ExpectInvalid(UniformLayout(kMaxHeadDim + 1, 3).status(), "head_dim");
  ExpectInvalid(UniformLayout(128, 0).status(), "bits");
  ExpectInvalid(UniformLayout(128, 9).status(), "bits");
}

TEST(GroupLayoutTest, ValidateNamesTheViolation) {
  const GroupLayout good = *BuildGroupLayout({3, 2, 3, 2}, SplitHalfDims(8));
  GroupLayout bad = good;
  bad.permutation[3] = 1;
  ExpectInvalid(ValidateGroupLayout(bad), "dimension 1 twice");
  bad = good;
  bad.permutation[0] = 8;
  ExpectInvalid(ValidateGroupLayout(bad), "permutation[0] = 8");
  bad = good;
  bad.permutation.pop_back();
  ExpectInvalid(ValidateGroupLayout(bad), "7 entries for head_dim 8");
  bad = good;
  std::swap(bad.groups[0].bits, bad.groups[1].bits);
  ExpectInvalid(ValidateGroupLayout(bad), "strictly ascend");
  bad = good;
  bad.groups[1].offset = 5;
  ExpectInvalid(ValidateGroupLayout(bad), "group 1 spans [5, 9)");
  bad = good;
  bad.groups[1].size = 3;
  ExpectInvalid(ValidateGroupLayout(bad), "cover [0, 7)");
  bad = good;
  bad.groups[0].bits = 0;
  ExpectInvalid(ValidateGroupLayout(bad), "group 0 has 0 bits");
  bad = good;
  bad.groups.clear();
  ExpectInvalid(ValidateGroupLayout(bad), "no groups");
  bad = good;
  bad.head_dim = 0;
  ExpectInvalid(ValidateGroupLayout(bad), "head_dim");
}

}  // namespace
}  // namespace kvplan
