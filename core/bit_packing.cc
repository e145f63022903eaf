#include "core/bit_packing.h"

#include <cstddef>
#include <cstdint>

#include "absl/types/span.h"

namespace kvplan {
namespace {

// Eight codes of w <= 4 bits are exactly w bytes of the LSB-first bitstream,
// so both directions work a chunk of eight codes at a time through one word.
constexpr size_t kCodesPerChunk = 8;

bool SegmentFits(size_t num_codes, int bits, size_t bytes) {
  return bits >= 1 && bits <= 8 && bytes >= PackedCodeBytes(num_codes, bits);
}

}  // namespace

void PackCodes(absl::Span<const uint8_t> codes, int bits, absl::Span<uint8_t> out) {
  // A violated precondition writes nothing rather than past the end of `out`.
  if (!SegmentFits(codes.size(), bits, out.size())) return;
  const uint32_t mask = (1u << bits) - 1u;
  if (bits > 4) {
    for (size_t i = 0; i < codes.size(); ++i) out[i] = static_cast<uint8_t>(codes[i] & mask);
    return;
  }
  const size_t n = codes.size();
  const size_t full = n / kCodesPerChunk;
  const uint8_t* in = codes.data();
  uint8_t* dst = out.data();
  for (size_t chunk = 0; chunk < full; ++chunk, in += kCodesPerChunk, dst += bits) {
    uint32_t word = 0;
    for (size_t k = 0; k < kCodesPerChunk; ++k) word |= (in[k] & mask) << (k * bits);
    for (int byte = 0; byte < bits; ++byte) dst[byte] = static_cast<uint8_t>(word >> (8 * byte));
  }
  const size_t rest = n - full * kCodesPerChunk;
  if (rest == 0) return;
  uint32_t word = 0;  // the padding bits above the last code stay zero
  for (size_t k = 0; k < rest; ++k) word |= (in[k] & mask) << (k * bits);
  const size_t rest_bytes = PackedCodeBytes(rest, bits);
  for (size_t byte = 0; byte < rest_bytes; ++byte) {
    dst[byte] = static_cast<uint8_t>(word >> (8 * byte));
  }
}

void UnpackCodes(absl::Span<const uint8_t> packed, int bits, absl::Span<uint8_t> codes) {
  if (!SegmentFits(codes.size(), bits, packed.size())) return;
  const uint32_t mask = (1u << bits) - 1u;
  if (bits > 4) {
    for (size_t i = 0; i < codes.size(); ++i) codes[i] = static_cast<uint8_t>(packed[i] & mask);
    return;
  }
  const size_t n = codes.size();
  const size_t full = n / kCodesPerChunk;
  const uint8_t* src = packed.data();
  uint8_t* out = codes.data();
  for (size_t chunk = 0; chunk < full; ++chunk, src += bits, out += kCodesPerChunk) {
    uint32_t word = 0;
    for (int byte = 0; byte < bits; ++byte) word |= static_cast<uint32_t>(src[byte]) << (8 * byte);
    for (size_t k = 0; k < kCodesPerChunk; ++k) {
      out[k] = static_cast<uint8_t>((word >> (k * bits)) & mask);
    }
  }
  const size_t rest = n - full * kCodesPerChunk;
  if (rest == 0) return;
  uint32_t word = 0;
  const size_t rest_bytes = PackedCodeBytes(rest, bits);
  for (size_t byte = 0; byte < rest_bytes; ++byte) {
    word |= static_cast<uint32_t>(src[byte]) << (8 * byte);
  }
  for (size_t k = 0; k < rest; ++k) out[k] = static_cast<uint8_t>((word >> (k * bits)) & mask);
}

}  // namespace kvplan
