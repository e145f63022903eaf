#include "core/bit_packing.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/types/span.h"
#include "core/random.h"

namespace kvplan {
namespace {

static_assert(PackedCodeBytes(0, 3) == 0);
static_assert(PackedCodeBytes(128, 3) == 48);
static_assert(PackedCodeBytes(7, 5) == 7);

std::vector<uint8_t> Pack(const std::vector<uint8_t>& codes, int bits) {
  std::vector<uint8_t> out(PackedCodeBytes(codes.size(), bits), 0xee);
  PackCodes(codes, bits, absl::MakeSpan(out));
  return out;
}

std::vector<uint8_t> Unpack(const std::vector<uint8_t>& packed, int bits, size_t n) {
  std::vector<uint8_t> codes(n, 0xee);
  UnpackCodes(packed, bits, absl::MakeSpan(codes));
  return codes;
}

struct Golden {
  int bits;
  std::vector<uint8_t> codes;
  std::vector<uint8_t> bytes;
};

// Expected bytes worked out by hand from the grammar in bit_packing.h.
TEST(BitPackingTest, GoldenBytesForEveryWidth) {
  const std::vector<Golden> goldens = {
      // 1-bit, LSB first: bits 1,0,1,1,0,0,0,1 -> 0b10001101; then 1,1 -> 0b11.
      {1, {1, 0, 1, 1, 0, 0, 0, 1, 1, 1}, {0x8d, 0x03}},
      // 2-bit: 0 | 1<<2 | 2<<4 | 3<<6 = 0xe4; 3 | 2<<2 | 1<<4 = 0x1b.
      {2, {0, 1, 2, 3, 3, 2, 1}, {0xe4, 0x1b}},
      // 3-bit: codes 0..7 form the 24-bit little-endian word 0xfac688; the tail
      // 5 | 3<<3 = 0x1d starts the next 3-byte group (30 bits -> 4 bytes).
      {3, {0, 1, 2, 3, 4, 5, 6, 7, 5, 3}, {0x88, 0xc6, 0xfa, 0x1d}},
      // 4-bit, low nibble first.
      {4, {1, 2, 3, 4, 15}, {0x21, 0x43, 0x0f}},
      {5, {31, 0, 17}, {0x1f, 0x00, 0x11}},
      {6, {63, 42}, {0x3f, 0x2a}},
      {7, {127, 100}, {0x7f, 0x64}},
      {8, {255, 128, 7}, {0xff, 0x80, 0x07}},
  };
  for (const Golden& g : goldens) {
    SCOPED_TRACE(absl::StrFormat("bits %d", g.bits));
    EXPECT_EQ(Pack(g.codes, g.bits), g.bytes);
    EXPECT_EQ(Unpack(g.bytes, g.bits, g.codes.size()), g.codes);
  }
}

TEST(BitPackingTest, ThreeBitCodesFillThreeBytesPerEight) {
  // A full 128-dim group at 3 bits: 48 bytes, each 3-byte group the same word.
  std::vector<uint8_t> codes(128);
  for (size_t k = 0; k < codes.size(); ++k) codes[k] = static_cast<uint8_t>(k % 8);
  const std::vector<uint8_t> bytes = Pack(codes, 3);
  ASSERT_EQ(bytes.size(), 48u);
  for (size_t k = 0; k < bytes.size(); k += 3) {
    EXPECT_EQ(bytes[k], 0x88);
    EXPECT_EQ(bytes[k + 1], 0xc6);
    EXPECT_EQ(bytes[k + 2], 0xfa);
  }
}

TEST(BitPackingTest, HighBitsOfCodesAreIgnored) {
  EXPECT_EQ(Pack({0xff, 0xf8}, 3), (std::vector<uint8_t>{0x07}));
  EXPECT_EQ(Pack({0xff, 0x10}, 4), (std::vector<uint8_t>{0x0f}));
  EXPECT_EQ(Pack({0xff}, 5), (std::vector<uint8_t>{0x1f}));
}

TEST(BitPackingTest, RoundTripsEveryWidthAndCountWithZeroPadding) {
  DeterministicRng rng(7);
  for (int bits = 1; bits <= 8; ++bits) {
    for (size_t n = 0; n <= 41; ++n) {
      SCOPED_TRACE(absl::StrFormat("bits %d n %d", bits, n));
      std::vector<uint8_t> codes(n);
      for (uint8_t& c : codes) c = static_cast<uint8_t>(rng.NextU64() & ((1u << bits) - 1));
      const size_t size = PackedCodeBytes(n, bits);
      // Sentinels after the segment must survive.
      std::vector<uint8_t> out(size + 3, 0xa5);
      PackCodes(codes, bits, absl::MakeSpan(out));
      EXPECT_EQ(out[size], 0xa5);
      EXPECT_EQ(out[size + 1], 0xa5);
      EXPECT_EQ(out[size + 2], 0xa5);
      if (bits <= 4 && n * bits % 8 != 0) {
        const uint8_t used = static_cast<uint8_t>((1u << (n * bits % 8)) - 1);
        EXPECT_EQ(out[size - 1] & ~used, 0) << "padding bits must be zero";
      }
      if (bits > 4) {
        for (size_t k = 0; k < n; ++k) EXPECT_EQ(out[k] >> bits, 0);
      }
      EXPECT_EQ(Unpack(out, bits, n), codes);
    }
  }
}

TEST(BitPackingTest, UnpackIgnoresPaddingBits) {
  // Garbage in the padding (e.g. a corrupted or foreign writer) does not leak.
  EXPECT_EQ(Unpack({0xf1}, 1, 1), (std::vector<uint8_t>{1}));
  EXPECT_EQ(Unpack({0xfa}, 3, 1), (std::vector<uint8_t>{2}));
  EXPECT_EQ(Unpack({0xe5}, 6, 1), (std::vector<uint8_t>{0x25}));
}

TEST(BitPackingTest, ViolatedPreconditionsWriteNothing) {
  std::vector<uint8_t> codes = {1, 2, 3};
  std::vector<uint8_t> small(1, 0x77);  // 3 codes at 3 bits need 2 bytes
  PackCodes(codes, 3, absl::MakeSpan(small));
  EXPECT_EQ(small[0], 0x77);
  std::vector<uint8_t> out(8, 0x77);
  PackCodes(codes, 0, absl::MakeSpan(out));
  PackCodes(codes, 9, absl::MakeSpan(out));
  EXPECT_EQ(out, std::vector<uint8_t>(8, 0x77));
  std::vector<uint8_t> unpacked(3, 0x77);
  UnpackCodes(small, 3, absl::MakeSpan(unpacked));
  EXPECT_EQ(unpacked, std::vector<uint8_t>(3, 0x77));
}

}  // namespace
}  // namespace kvplan
