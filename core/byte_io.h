// Little-endian integers in byte strings: the integer encoding of every kvplan
// binary format (statistics, calibration files, plan sidecars).
//
// Example:
//   std::string out = "KVPB";
//   AppendLittleEndian(out, /*value=*/1, /*bytes=*/4);     // "KVPB\x01\0\0\0"
//   ByteReader in(out);
//   std::string_view magic;
//   uint64_t version = 0;
//   bool ok = in.Take(4, &magic) && in.LittleEndian(4, &version);  // true, 1
#ifndef KVPLAN_CORE_BYTE_IO_H_
#define KVPLAN_CORE_BYTE_IO_H_

#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace kvplan {

// Appends the low `bytes` (1..8) bytes of `value`, least significant first.
inline void AppendLittleEndian(std::string& out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

// Appends each value's IEEE binary32 bits, little-endian, in order: the
// canonical bytes of the fp32 artifacts that content hashes name (rotation
// matrices, codebook centroids), identical on every machine.
inline void AppendFloat32LittleEndian(std::string& out, std::span<const float> values) {
  out.reserve(out.size() + 4 * values.size());
  for (float v : values) AppendLittleEndian(out, std::bit_cast<uint32_t>(v), 4);
}

// Reads forward through a byte string; every read is bounds-checked and a read
// past the end fails (returns false) without moving.
class ByteReader {
 public:
  explicit ByteReader(std::string_view in) : in_(in) {}

  bool Take(size_t n, std::string_view* out) {
    if (n > in_.size() - pos_) return false;
    *out = in_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  // A `bytes`-byte (1..8) little-endian unsigned integer.
  bool LittleEndian(int bytes, uint64_t* value) {
    std::string_view raw;
    if (!Take(static_cast<size_t>(bytes), &raw)) return false;
    *value = 0;
    for (int i = 0; i < bytes; ++i) {
      *value |= static_cast<uint64_t>(static_cast<uint8_t>(raw[i])) << (8 * i);
    }
    return true;
  }
  size_t remaining() const { return in_.size() - pos_; }
  bool done() const { return pos_ == in_.size(); }

 private:
  std::string_view in_;
  size_t pos_ = 0;
};

}  // namespace kvplan

#endif  // KVPLAN_CORE_BYTE_IO_H_
