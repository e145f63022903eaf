// The `added_tokens` of a tokenizer.json: tokens (special ones such as
// "<|begin_of_text|>" and plain ones) that are cut out of the text before
// normalization and BPE, and map straight to their ids.
//
// Matching is leftmost-longest on the raw text. `lstrip`/`rstrip` let a token
// swallow the ASCII whitespace before/after it; `single_word` rejects a match
// that touches a word character. (Tokens marked `normalized` are matched on the
// raw text too: for the byte-level and SentencePiece pipelines supported here
// this only differs for added tokens that contain spaces.)
//
// Example (added tokens "<|eot|>" = 5):
//   std::vector<AddedVocabulary::Segment> s = added.Split("hi<|eot|>yo");
//   // s == {{"hi", nullopt}, {"<|eot|>", 5}, {"yo", nullopt}}
#ifndef KVPLAN_WORKER_TOKENIZER_ADDED_VOCABULARY_H_
#define KVPLAN_WORKER_TOKENIZER_ADDED_VOCABULARY_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "nlohmann/json_fwd.hpp"

namespace kvplan::tokenizer_internal {

struct AddedToken {
  int32_t id = 0;
  std::string content;
  // Left out of decoded text (BOS, EOS, chat markers).
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
};

class AddedVocabulary {
 public:
  // A piece of the text: an added token (`id` set) or a run of plain text.
  struct Segment {
    std::string_view text;
    std::optional<int32_t> id;
  };

  // From the `added_tokens` list of a tokenizer.json (null means none).
  // Errors: InvalidArgument naming the bad entry.
  static absl::StatusOr<AddedVocabulary> FromJson(const nlohmann::json& added_tokens);

  // Cuts `text` into segments that point into it; plain-text segments are
  // never empty.
  std::vector<Segment> Split(std::string_view text) const;

  std::optional<int32_t> TokenToId(std::string_view content) const;
  // The added token with `id`, or nullptr.
  const AddedToken* FindById(int32_t id) const;
  // One past the largest id, or 0 when there are no added tokens.
  int32_t id_limit() const { return id_limit_; }

 private:
  // Length of the match of `token` at `pos`, whitespace stripped by
  // lstrip/rstrip included from `*match_begin`; 0 when it does not match.
  size_t MatchAt(const AddedToken& token, std::string_view text, size_t pos, size_t floor,
                 size_t* match_begin) const;

  std::vector<AddedToken> tokens_;
  absl::flat_hash_map<std::string, size_t> by_content_;
  absl::flat_hash_map<int32_t, size_t> by_id_;
  // Indices into tokens_ of the tokens starting with each byte, longest first.
  std::array<std::vector<size_t>, 256> by_first_byte_;
  int32_t id_limit_ = 0;
};

}  // namespace kvplan::tokenizer_internal

#endif  // KVPLAN_WORKER_TOKENIZER_ADDED_VOCABULARY_H_
