#include "worker/tokenizer/byte_level.h"

#include "worker/tokenizer/utf8.h"

namespace kvplan::tokenizer_internal {

const ByteLevelAlphabet& ByteLevelAlphabet::Get() {
  static const ByteLevelAlphabet* const kAlphabet = new ByteLevelAlphabet();
  return *kAlphabet;
}

ByteLevelAlphabet::ByteLevelAlphabet() {
  byte_of_code_point_.fill(-1);
  uint32_t next_unprintable = 0x100;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool printable =
        (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    const uint32_t cp = printable ? b : next_unprintable++;
    AppendUtf8(cp, &chars_[b]);
    byte_of_code_point_[cp] = static_cast<int16_t>(b);
  }
}

std::string ByteLevelAlphabet::Encode(std::string_view bytes) const {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) out += chars_[static_cast<uint8_t>(c)];
  return out;
}

bool ByteLevelAlphabet::Decode(std::string_view text, std::string* bytes) const {
  const size_t original_size = bytes->size();
  size_t i = 0;
  while (i < text.size()) {
    const auto b0 = static_cast<uint8_t>(text[i]);
    uint32_t cp;
    if (b0 < 0x80) {
      cp = b0;
      i += 1;
    } else if ((b0 & 0xE0) == 0xC0 && i + 1 < text.size()) {
      // Every character of the alphabet is below U+0800: two bytes at most.
      cp = ((b0 & 0x1Fu) << 6) | (static_cast<uint8_t>(text[i + 1]) & 0x3Fu);
      i += 2;
    } else {
      bytes->resize(original_size);
      return false;
    }
    if (cp >= byte_of_code_point_.size() || byte_of_code_point_[cp] < 0) {
      bytes->resize(original_size);
      return false;
    }
    bytes->push_back(static_cast<char>(byte_of_code_point_[cp]));
  }
  return true;
}

}  // namespace kvplan::tokenizer_internal
