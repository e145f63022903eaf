// Packing of b-bit quantization codes into bytes: the code segment layout of the
// packed KV cache (DESIGN.md §2).
//
// Grammar of one segment of n codes at width w (1 <= w <= 8):
//   w <= 4:  an LSB-first bitstream. Code k occupies stream bits [k·w, (k+1)·w),
//            its least significant bit first; stream bit i is bit (i mod 8) of
//            byte floor(i / 8). Hence 1-bit: 8 codes per byte, code 0 in bit 0;
//            2-bit: 4 per byte; 3-bit: 8 codes in 3 bytes, read as one
//            little-endian 24-bit word; 4-bit: 2 per byte, low nibble first.
//            The segment is ceil(n·w / 8) bytes; unused high bits of the last
//            byte are zero.
//   w >= 5:  one byte per code (n bytes), high 8 - w bits zero.
// Segments are byte-aligned: a record is the concatenation of its segments.
//
// Example:
//   std::vector<uint8_t> codes = {0, 1, 2, 3, 4, 5, 6, 7};
//   std::vector<uint8_t> bytes(PackedCodeBytes(codes.size(), 3));  // 3 bytes
//   PackCodes(codes, 3, absl::MakeSpan(bytes));  // {0x88, 0xc6, 0xfa}
//   UnpackCodes(bytes, 3, absl::MakeSpan(codes));  // codes again
#ifndef KVPLAN_CORE_BIT_PACKING_H_
#define KVPLAN_CORE_BIT_PACKING_H_

#include <cstddef>
#include <cstdint>

#include "absl/types/span.h"

namespace kvplan {

// Bytes that a segment of `num_codes` codes at `bits` per code occupies.
// `bits` must be in [1, 8].
constexpr size_t PackedCodeBytes(size_t num_codes, int bits) {
  return bits <= 4 ? (num_codes * static_cast<size_t>(bits) + 7) / 8 : num_codes;
}

// Packs `codes` (each < 2^bits; higher bits are ignored) at `bits` in [1, 8] into
// the first PackedCodeBytes(codes.size(), bits) bytes of `out`, padding included.
// Preconditions: bits in [1, 8], out.size() >= PackedCodeBytes(codes.size(), bits);
// a call that violates them writes nothing. Bytes of `out` past the segment are
// left untouched. Thread-compatible.
void PackCodes(absl::Span<const uint8_t> codes, int bits, absl::Span<uint8_t> out);

// Inverse of PackCodes: reads codes.size() codes at `bits` from the start of
// `packed` into `codes`. Padding bits are ignored. Preconditions: bits in
// [1, 8], packed.size() >= PackedCodeBytes(codes.size(), bits); a call that
// violates them writes nothing.
void UnpackCodes(absl::Span<const uint8_t> packed, int bits, absl::Span<uint8_t> codes);

}  // namespace kvplan

#endif  // KVPLAN_CORE_BIT_PACKING_H_
