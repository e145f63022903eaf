// The GPT-2 byte-level alphabet: each of the 256 byte values stands for one
// printable Unicode character, so that byte-level BPE vocabularies can be
// written as (JSON) strings. Printable Latin-1 bytes stand for themselves; the
// 68 others (controls, space, ...) take U+0100.. in byte order, so ' ' is 'Ġ'
// (U+0120) and '\n' is 'Ċ' (U+010A).
//
// Example:
//   const ByteLevelAlphabet& a = ByteLevelAlphabet::Get();
//   a.Encode("a b")              // "aĠb"
//   a.Decode("aĠb", &bytes)      // true, bytes == "a b"
#ifndef KVPLAN_WORKER_TOKENIZER_BYTE_LEVEL_H_
#define KVPLAN_WORKER_TOKENIZER_BYTE_LEVEL_H_

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace kvplan::tokenizer_internal {

class ByteLevelAlphabet {
 public:
  // The one alphabet (it is a fixed table); built on first use, thread-safe.
  static const ByteLevelAlphabet& Get();

  // The character, UTF-8 encoded, that stands for `byte`.
  const std::string& CharFor(uint8_t byte) const { return chars_[byte]; }

  // Replaces every byte of `bytes` by its character.
  std::string Encode(std::string_view bytes) const;

  // Appends to `*bytes` the bytes that the characters of `text` stand for and
  // returns true; returns false, appending nothing, when a character of `text`
  // is not in the alphabet.
  bool Decode(std::string_view text, std::string* bytes) const;

 private:
  ByteLevelAlphabet();

  std::array<std::string, 256> chars_;
  // Byte for code points U+0000..U+01FF (the alphabet's range); -1 if none.
  std::array<int16_t, 0x200> byte_of_code_point_;
};

}  // namespace kvplan::tokenizer_internal

#endif  // KVPLAN_WORKER_TOKENIZER_BYTE_LEVEL_H_
