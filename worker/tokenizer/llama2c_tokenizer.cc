// tokenizer.bin, as llama2.c's export writes it (little-endian):
//
//   file   := max_token_length:int32  record{vocab_size}
//   record := score:float32  len:int32  piece:byte[len]
//
// Record i is token i. Ids 0, 1, 2 are <unk>, BOS and EOS; ids 3..258 are the
// byte tokens "<0x00>".."<0xFF>"; the rest are merged pieces whose score ranks
// the merge (higher first). A file must hold at least those 259 records, and
// no piece may be longer than max_token_length.
#include "worker/tokenizer/llama2c_tokenizer.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "worker/tokenizer/absl_view.h"
#include "worker/tokenizer/json_file.h"

namespace kvplan::tokenizer_internal {
namespace {

constexpr int32_t kBosId = 1;
constexpr int32_t kEosId = 2;
constexpr int32_t kByteTokenOffset = 3;
constexpr int32_t kMinVocabSize = kByteTokenOffset + 256;
// llama2.c's `encode` only merges pairs scoring above this.
constexpr float kNoMergeScore = -1e10f;

class Llama2cTokenizer final : public Tokenizer {
 public:
  Llama2cTokenizer(std::vector<std::string> pieces, std::vector<float> scores)
      : pieces_(std::move(pieces)), scores_(std::move(scores)) {
    ids_.reserve(pieces_.size());
    // llama2.c finds pieces by binary search; with a repeated piece it could
    // land on either copy. The first id is the deterministic choice.
    for (size_t i = 0; i < pieces_.size(); ++i) ids_.try_emplace(pieces_[i], i);
  }

  absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text, bool add_bos) const override;
  std::string Decode(absl::Span<const int32_t> ids) const override;
  std::optional<int32_t> bos_id() const override { return kBosId; }
  std::optional<int32_t> eos_id() const override { return kEosId; }
  int32_t vocab_size() const override { return static_cast<int32_t>(pieces_.size()); }
  bool adds_bos_by_default() const override { return true; }

 private:
  std::optional<int32_t> Lookup(std::string_view piece) const {
    auto it = ids_.find(AbslView(piece));
    if (it == ids_.end()) return std::nullopt;
    return it->second;
  }
  void MergeByScore(std::vector<int32_t>* tokens) const;

  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  absl::flat_hash_map<std::string, int32_t> ids_;
};

absl::StatusOr<std::vector<int32_t>> Llama2cTokenizer::Encode(std::string_view text,
                                                              bool add_bos) const {
  std::vector<int32_t> ids;
  if (add_bos) ids.push_back(kBosId);
  if (text.empty()) return ids;

  std::vector<int32_t> tokens;
  tokens.reserve(text.size() + 1);
  // llama2.c assumes " " is a piece (SentencePiece's add_dummy_prefix); when
  // it is not, the byte token keeps the id valid where llama2.c would write -1.
  tokens.push_back(Lookup(" ").value_or(kByteTokenOffset + ' '));
  // Bytes are gathered into a character up to 4 bytes long, ending where the
  // next byte is not a continuation byte (llama2.c's loop, malformed input
  // included); a character that is not a piece is spelled in byte tokens.
  std::string_view::size_type start = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if ((static_cast<uint8_t>(text[i]) & 0xC0) != 0x80) start = i;
    const size_t len = i + 1 - start;
    const bool next_continues =
        i + 1 < text.size() && (static_cast<uint8_t>(text[i + 1]) & 0xC0) == 0x80;
    if (next_continues && len < 4) continue;
    const std::string_view ch = text.substr(start, len);
    if (std::optional<int32_t> id = Lookup(ch)) {
      tokens.push_back(*id);
    } else {
      for (char c : ch) tokens.push_back(kByteTokenOffset + static_cast<uint8_t>(c));
    }
    start = i + 1;
  }
  MergeByScore(&tokens);
  ids.insert(ids.end(), tokens.begin(), tokens.end());
  return ids;
}

void Llama2cTokenizer::MergeByScore(std::vector<int32_t>* tokens) const {
  // llama2.c rescans all pairs after every merge (quadratic); a heap of
  // candidate pairs over a linked list merges in the same order: highest
  // score first, leftmost among equal scores (list indices grow left to right).
  struct Node {
    int32_t id;
    int32_t prev;
    int32_t next;
  };
  std::vector<Node> nodes(tokens->size());
  for (size_t i = 0; i < nodes.size(); ++i) {
    nodes[i] = {(*tokens)[i], static_cast<int32_t>(i) - 1, static_cast<int32_t>(i) + 1};
  }
  nodes.back().next = -1;
  struct Candidate {
    float score;
    int32_t left;
    int32_t right;
    int32_t left_id;
    int32_t right_id;
    int32_t merged_id;
  };
  auto after = [](const Candidate& a, const Candidate& b) {
    return a.score != b.score ? a.score < b.score : a.left > b.left;
  };
  std::vector<Candidate> heap;
  std::string buffer;
  auto push_pair = [&](int32_t left) {
    if (left < 0 || nodes[left].next < 0) return;
    const int32_t right = nodes[left].next;
    buffer = pieces_[nodes[left].id];
    buffer += pieces_[nodes[right].id];
    std::optional<int32_t> merged = Lookup(buffer);
    if (!merged || !(scores_[*merged] > kNoMergeScore)) return;
    heap.push_back({scores_[*merged], left, right, nodes[left].id, nodes[right].id, *merged});
    std::push_heap(heap.begin(), heap.end(), after);
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(nodes.size()); ++i) push_pair(i);

  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), after);
    const Candidate c = heap.back();
    heap.pop_back();
    // Stale unless both ends are still the same adjacent tokens.
    Node& left = nodes[c.left];
    if (left.next != c.right || left.id != c.left_id || nodes[c.right].id != c.right_id) continue;
    left.id = c.merged_id;
    left.next = nodes[c.right].next;
    if (left.next >= 0) nodes[left.next].prev = c.left;
    nodes[c.right].id = -1;  // Unlinked; makes entries naming it stale.
    push_pair(left.prev);
    push_pair(c.left);
  }
  tokens->clear();
  for (int32_t i = 0; i >= 0; i = nodes[i].next) tokens->push_back(nodes[i].id);
}

std::string Llama2cTokenizer::Decode(absl::Span<const int32_t> ids) const {
  std::string text;
  int32_t previous = -1;
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size()) continue;
    const int32_t before = std::exchange(previous, id);
    if (id == kBosId || id == kEosId) continue;
    std::string_view piece = pieces_[id];
    // SentencePiece's dummy prefix: the first word after BOS has no space.
    if (before == kBosId && piece.starts_with(' ')) piece.remove_prefix(1);
    if (id >= kByteTokenOffset && id < kByteTokenOffset + 256 && piece.size() == 6 &&
        piece.starts_with("<0x")) {
      text.push_back(static_cast<char>(id - kByteTokenOffset));
    } else {
      text.append(piece);
    }
  }
  return text;
}

template <typename T>
bool ReadScalar(std::string_view data, size_t* offset, T* value) {
  if (data.size() - *offset < sizeof(T)) return false;
  std::memcpy(value, data.data() + *offset, sizeof(T));
  *offset += sizeof(T);
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadLlama2cTokenizer(
    const std::filesystem::path& tokenizer_bin) {
  absl::StatusOr<std::string> data = ReadFileToString(tokenizer_bin);
  if (!data.ok()) return data.status();
  const std::string name = tokenizer_bin.string();
  size_t offset = 0;
  int32_t max_token_length = 0;
  if (!ReadScalar(*data, &offset, &max_token_length) || max_token_length <= 0) {
    return absl::DataLossError(absl::StrCat(name, ": no valid max_token_length header (file is ",
                                            data->size(), " bytes)"));
  }
  std::vector<std::string> pieces;
  std::vector<float> scores;
  while (offset < data->size()) {
    const size_t record = pieces.size();
    float score = 0;
    int32_t len = 0;
    if (!ReadScalar(*data, &offset, &score) || !ReadScalar(*data, &offset, &len)) {
      return absl::DataLossError(
          absl::StrCat(name, ": record ", record, " is truncated in its score/length header"));
    }
    if (len < 0 || len > max_token_length) {
      return absl::DataLossError(absl::StrCat(name, ": record ", record, " has length ", len,
                                              ", outside [0, max_token_length=", max_token_length,
                                              "]"));
    }
    if (data->size() - offset < static_cast<size_t>(len)) {
      return absl::DataLossError(absl::StrCat(name, ": record ", record, " is truncated: ", len,
                                              " piece bytes announced, ", data->size() - offset,
                                              " left"));
    }
    pieces.emplace_back(data->data() + offset, static_cast<size_t>(len));
    scores.push_back(score);
    offset += static_cast<size_t>(len);
  }
  if (pieces.size() < static_cast<size_t>(kMinVocabSize)) {
    return absl::DataLossError(absl::StrCat(name, ": ", pieces.size(), " tokens; a llama2.c ",
                                            "tokenizer has at least ", kMinVocabSize,
                                            " (<unk>, BOS, EOS and 256 byte tokens)"));
  }
  return std::make_unique<Llama2cTokenizer>(std::move(pieces), std::move(scores));
}

}  // namespace kvplan::tokenizer_internal
