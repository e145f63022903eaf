// UTF-8 helpers shared by the tokenizers: validation and code-point stepping.
//
// The tokenizers work on UTF-8 bytes and only need to know where one code
// point ends and the next begins; nothing here decodes to UTF-32.
//
// Example:
//   std::optional<size_t> bad = FindInvalidUtf8("caf\xc3\xa9");  // nullopt
//   size_t n = Utf8SequenceLength('\xc3');                        // 2
#ifndef KVPLAN_WORKER_TOKENIZER_UTF8_H_
#define KVPLAN_WORKER_TOKENIZER_UTF8_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kvplan::tokenizer_internal {

// Length of the UTF-8 sequence that `lead` starts, judged from the lead byte
// alone: 1 for ASCII and for bytes that cannot start a sequence (so that a
// caller stepping through arbitrary bytes always advances), else 2..4.
inline size_t Utf8SequenceLength(char lead) {
  const auto b = static_cast<uint8_t>(lead);
  if (b < 0xC0) return 1;
  if (b < 0xE0) return 2;
  if (b < 0xF0) return 3;
  if (b < 0xF8) return 4;
  return 1;
}

// Returns the byte offset of the first ill-formed sequence in `text` (overlong
// forms, surrogates and code points above U+10FFFF count as ill-formed), or
// nullopt when all of `text` is well-formed UTF-8.
std::optional<size_t> FindInvalidUtf8(std::string_view text);

// Appends the UTF-8 encoding of `code_point` (which must be <= U+10FFFF).
void AppendUtf8(uint32_t code_point, std::string* out);

}  // namespace kvplan::tokenizer_internal

#endif  // KVPLAN_WORKER_TOKENIZER_UTF8_H_
