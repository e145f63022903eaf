// The fragment decode kernel's code tables (kvplan/kernels/fragment_tables.h):
// every entry and replica holds the codebook's fp16 centroids, and the tables
// sit where the kernel's one-LOP3 addressing needs them.
#include "kvplan/kernels/fragment_tables.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "core/codebook.h"
#include "core/half.h"

namespace kvplan::kernels {
namespace {

TEST(FragmentTablesTest, EveryEntryAndReplicaHoldsTheCodebook) {
  const std::vector<uint32_t> image = FragmentTableImage();
  ASSERT_EQ(image.size() * 4, static_cast<size_t>(kFragmentTableBytes));
  const auto* bytes = reinterpret_cast<const uint8_t*>(image.data());
  for (int bits = 1; bits <= 8; ++bits) {
    const Codebook& book = LloydMaxCodebook(bits);
    const int start = FragmentTableStart(bits), stride = FragmentTableStride(bits);
    for (int e = 0; e < FragmentTableEntries(bits); ++e) {
      if (bits <= 4) {
        const int n = 1 << bits;
        for (int replica = 0; replica < stride / 4; ++replica) {
          uint16_t lo, hi;
          std::memcpy(&lo, bytes + start + e * stride + 4 * replica, 2);
          std::memcpy(&hi, bytes + start + e * stride + 4 * replica + 2, 2);
          ASSERT_EQ(lo, FloatToHalf(book.centroids[e % n])) << bits << " bits, entry " << e;
          ASSERT_EQ(hi, FloatToHalf(book.centroids[e / n])) << bits << " bits, entry " << e;
        }
      } else {
        uint16_t c;
        std::memcpy(&c, bytes + start + e * stride, 2);
        ASSERT_EQ(c, FloatToHalf(book.centroids[e])) << bits << " bits, code " << e;
      }
    }
    EXPECT_EQ(FragmentUnitCentroid(bits, 0), book.centroids[0]);
  }
}

TEST(FragmentTablesTest, TablesAreDisjointAndAlignedToTheirSize) {
  for (int a = 1; a <= 8; ++a) {
    const int size = FragmentTableEntries(a) * FragmentTableStride(a);
    const int start = FragmentTableStart(a);
    EXPECT_EQ(size & (size - 1), 0) << a << " bits: a power-of-two size";
    // A lookup ORs an offset below `size` into the start: no carries.
    EXPECT_EQ(start % size, 0) << a << " bits";
    EXPECT_LE(start + size, kFragmentTableBytes) << a << " bits";
    for (int b = a + 1; b <= 8; ++b) {
      const int other = FragmentTableStart(b);
      const int other_size = FragmentTableEntries(b) * FragmentTableStride(b);
      EXPECT_TRUE(start + size <= other || other + other_size <= start) << a << " and " << b;
    }
  }
}

}  // namespace
}  // namespace kvplan::kernels
