// The BPE model of a Hugging Face tokenizer.json (`"model": {"type": "BPE"}`):
// splits one pre-tokenized word into characters and applies the ranked merges,
// lowest rank first, exactly as the `tokenizers` library does.
//
// Characters missing from the vocabulary become their `<0xXX>` byte tokens when
// `byte_fallback` is set (SentencePiece-style vocabularies), else the unknown
// token (consecutive ones fused into one with `fuse_unk`), else nothing.
//
// Example (vocab {a:0, b:1, c:2, ab:3, abc:4}, merges ["a b", "ab c"]):
//   std::vector<int32_t> ids;
//   model->EncodeWord("abcab", &ids);  // ids == {4, 3}
#ifndef KVPLAN_WORKER_TOKENIZER_BPE_MODEL_H_
#define KVPLAN_WORKER_TOKENIZER_BPE_MODEL_H_

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "nlohmann/json_fwd.hpp"

namespace kvplan::tokenizer_internal {

class BpeModel {
 public:
  // Builds the model from the `"model"` object of a tokenizer.json. Merges may
  // be "a b" strings or ["a", "b"] pairs; both halves and their concatenation
  // must be in the vocabulary. Errors: InvalidArgument naming the bad entry;
  // Unimplemented for options that change encoding and are not supported
  // (dropout, continuing_subword_prefix, end_of_word_suffix).
  static absl::StatusOr<std::unique_ptr<BpeModel>> FromJson(const nlohmann::json& model);

  ~BpeModel();

  // Appends the ids of `word` (one pre-token, already normalized and mapped)
  // to `*ids`. Thread-safe; recent short words are served from a cache.
  void EncodeWord(std::string_view word, std::vector<int32_t>* ids) const;

  std::optional<int32_t> TokenToId(std::string_view token) const;
  // The token of `id`, or nullptr when the vocabulary has no such id.
  const std::string* IdToToken(int32_t id) const;
  // One past the largest id of the vocabulary.
  int32_t vocab_size() const { return static_cast<int32_t>(tokens_.size()); }

 private:
  struct Merge {
    int32_t rank;
    int32_t new_id;
  };
  class WordCache;

  BpeModel();
  static uint64_t PairKey(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) |
           static_cast<uint32_t>(right);
  }
  void MergeWord(std::string_view word, std::vector<int32_t>* ids) const;

  absl::flat_hash_map<std::string, int32_t> vocab_;
  std::vector<std::string> tokens_;  // By id; "" where the vocabulary has a gap.
  std::vector<bool> has_token_;
  absl::flat_hash_map<uint64_t, Merge> merges_;  // By PairKey(left, right).
  std::optional<int32_t> unk_id_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  // Whole words found in the vocabulary skip merging (Llama-3's tokenizer.json).
  bool ignore_merges_ = false;
  // Id of each `<0xXX>` token; -1 where missing. Used only with byte_fallback_.
  std::array<int32_t, 256> byte_ids_;
  std::unique_ptr<WordCache> cache_;
};

}  // namespace kvplan::tokenizer_internal

#endif  // KVPLAN_WORKER_TOKENIZER_BPE_MODEL_H_
