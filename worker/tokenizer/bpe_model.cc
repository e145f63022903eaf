#include "worker/tokenizer/bpe_model.h"

#include <algorithm>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "nlohmann/json.hpp"
#include "worker/tokenizer/absl_view.h"
#include "worker/tokenizer/utf8.h"

namespace kvplan::tokenizer_internal {
namespace {

// Ids beyond this are surely a corrupt file, and would make the id-indexed
// tables huge.
constexpr int64_t kMaxTokenId = (int64_t{1} << 24) - 1;
// Only short words are cached: they are the ones that repeat, and merging a
// long word costs far more than the lookup saves anyway.
constexpr size_t kMaxCachedWordBytes = 64;
// Bounds the cache's memory (~100 bytes an entry). Once full it admits no more
// words, as `tokenizers` does: the words that repeat most were seen early, and
// no eviction bookkeeping slows the hits.
constexpr size_t kWordCacheCapacity = 1 << 17;

// Whether a nullable option is set to something other than its "off" value.
bool IsSet(const nlohmann::json& model, const char* key) {
  auto it = model.find(key);
  if (it == model.end() || it->is_null()) return false;
  if (it->is_string()) return !it->get_ref<const std::string&>().empty();
  if (it->is_number()) return it->get<double>() != 0.0;
  return true;
}

bool GetBool(const nlohmann::json& model, const char* key, bool default_value) {
  auto it = model.find(key);
  return (it != model.end() && it->is_boolean()) ? it->get<bool>() : default_value;
}

}  // namespace

class BpeModel::WordCache {
 public:
  bool Lookup(std::string_view word, std::vector<int32_t>* ids) const {
    absl::ReaderMutexLock lock(&mutex_);
    auto it = map_.find(AbslView(word));
    if (it == map_.end()) return false;
    ids->insert(ids->end(), it->second.begin(), it->second.end());
    return true;
  }
  void Insert(std::string_view word, std::vector<int32_t> ids) {
    absl::MutexLock lock(&mutex_);
    if (map_.size() >= kWordCacheCapacity) return;
    map_.try_emplace(AbslView(word), std::move(ids));
  }

 private:
  mutable absl::Mutex mutex_;
  absl::flat_hash_map<std::string, std::vector<int32_t>> map_ ABSL_GUARDED_BY(mutex_);
};

BpeModel::BpeModel() : cache_(std::make_unique<WordCache>()) { byte_ids_.fill(-1); }
BpeModel::~BpeModel() = default;

absl::StatusOr<std::unique_ptr<BpeModel>> BpeModel::FromJson(const nlohmann::json& model) {
  if (!model.is_object()) return absl::InvalidArgumentError("BPE model is not a JSON object");
  for (const char* key : {"dropout", "continuing_subword_prefix", "end_of_word_suffix"}) {
    if (IsSet(model, key)) {
      return absl::UnimplementedError(
          absl::StrCat("BPE option '", key, "' is not supported (it is ", model[key].dump(), ")"));
    }
  }
  std::unique_ptr<BpeModel> bpe(new BpeModel());
  bpe->fuse_unk_ = GetBool(model, "fuse_unk", false);
  bpe->byte_fallback_ = GetBool(model, "byte_fallback", false);
  bpe->ignore_merges_ = GetBool(model, "ignore_merges", false);

  auto vocab = model.find("vocab");
  if (vocab == model.end() || !vocab->is_object()) {
    return absl::InvalidArgumentError("BPE model has no 'vocab' object");
  }
  bpe->vocab_.reserve(vocab->size());
  int64_t max_id = -1;
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > kMaxTokenId) {
      return absl::InvalidArgumentError(absl::StrCat("BPE vocab entry '", it.key(), "' has id ",
                                                     it->dump(), "; ids are integers in [0, ",
                                                     kMaxTokenId, "]"));
    }
    const int64_t id = it->get<int64_t>();
    max_id = std::max(max_id, id);
    bpe->vocab_.emplace(it.key(), static_cast<int32_t>(id));
  }
  bpe->tokens_.resize(static_cast<size_t>(max_id + 1));
  bpe->has_token_.resize(static_cast<size_t>(max_id + 1), false);
  for (const auto& [token, id] : bpe->vocab_) {
    if (bpe->has_token_[id]) {
      return absl::InvalidArgumentError(absl::StrCat("BPE vocab gives id ", id, " to both '",
                                                     bpe->tokens_[id], "' and '", token, "'"));
    }
    bpe->tokens_[id] = token;
    bpe->has_token_[id] = true;
  }

  if (auto unk = model.find("unk_token"); unk != model.end() && !unk->is_null()) {
    if (!unk->is_string()) return absl::InvalidArgumentError("BPE 'unk_token' is not a string");
    bpe->unk_id_ = bpe->TokenToId(unk->get_ref<const std::string&>());
    if (!bpe->unk_id_) {
      return absl::InvalidArgumentError(absl::StrCat(
          "BPE unk_token '", unk->get_ref<const std::string&>(), "' is not in the vocabulary"));
    }
  }
  for (int b = 0; b < 256; ++b) {
    if (auto id = bpe->TokenToId(absl::StrFormat("<0x%02X>", b))) bpe->byte_ids_[b] = *id;
  }

  auto merges = model.find("merges");
  if (merges == model.end() || !merges->is_array()) {
    return absl::InvalidArgumentError("BPE model has no 'merges' list");
  }
  bpe->merges_.reserve(merges->size());
  for (size_t rank = 0; rank < merges->size(); ++rank) {
    const nlohmann::json& merge = (*merges)[rank];
    std::string left, right;
    if (merge.is_string()) {
      const std::string& s = merge.get_ref<const std::string&>();
      const size_t space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos) {
        return absl::InvalidArgumentError(
            absl::StrCat("BPE merge #", rank, " '", s, "' is not two tokens split by one space"));
      }
      left = s.substr(0, space);
      right = s.substr(space + 1);
    } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() &&
               merge[1].is_string()) {
      left = merge[0].get<std::string>();
      right = merge[1].get<std::string>();
    } else {
      return absl::InvalidArgumentError(absl::StrCat("BPE merge #", rank, " ", merge.dump(),
                                                     " is neither \"a b\" nor [\"a\", \"b\"]"));
    }
    const std::optional<int32_t> left_id = bpe->TokenToId(left);
    const std::optional<int32_t> right_id = bpe->TokenToId(right);
    const std::optional<int32_t> new_id = bpe->TokenToId(left + right);
    if (!left_id || !right_id || !new_id) {
      const std::string& missing = !left_id ? left : !right_id ? right : left + right;
      return absl::InvalidArgumentError(absl::StrCat("BPE merge #", rank, " '", left, " ", right,
                                                     "': '", missing,
                                                     "' is not in the vocabulary"));
    }
    // A repeated pair keeps its last rank, as in `tokenizers`.
    bpe->merges_.insert_or_assign(PairKey(*left_id, *right_id),
                                  Merge{static_cast<int32_t>(rank), *new_id});
  }
  return bpe;
}

std::optional<int32_t> BpeModel::TokenToId(std::string_view token) const {
  auto it = vocab_.find(AbslView(token));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::IdToToken(int32_t id) const {
  if (id < 0 || id >= vocab_size() || !has_token_[id]) return nullptr;
  return &tokens_[id];
}

void BpeModel::EncodeWord(std::string_view word, std::vector<int32_t>* ids) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (auto id = TokenToId(word)) {
      ids->push_back(*id);
      return;
    }
  }
  const bool cacheable = word.size() <= kMaxCachedWordBytes;
  if (cacheable && cache_->Lookup(word, ids)) return;
  const size_t first = ids->size();
  MergeWord(word, ids);
  if (cacheable) cache_->Insert(word, std::vector<int32_t>(ids->begin() + first, ids->end()));
}

void BpeModel::MergeWord(std::string_view word, std::vector<int32_t>* ids) const {
  // The word as a doubly linked list of symbols; a merge folds the right
  // symbol into the left one, so a live symbol's index never changes and the
  // heap can name pairs by the index of their left symbol.
  struct Symbol {
    int32_t id;
    int32_t prev;
    int32_t next;
    bool alive;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  auto append = [&symbols](int32_t id) {
    const auto index = static_cast<int32_t>(symbols.size());
    symbols.push_back({id, index - 1, index + 1, true});
  };
  bool last_was_unk = false;
  for (size_t i = 0; i < word.size();) {
    const size_t len = std::min(Utf8SequenceLength(word[i]), word.size() - i);
    const std::string_view ch = word.substr(i, len);
    i += len;
    if (auto id = TokenToId(ch)) {
      append(*id);
      last_was_unk = false;
      continue;
    }
    if (byte_fallback_ && std::all_of(ch.begin(), ch.end(), [this](char c) {
          return byte_ids_[static_cast<uint8_t>(c)] >= 0;
        })) {
      for (char c : ch) append(byte_ids_[static_cast<uint8_t>(c)]);
      last_was_unk = false;
      continue;
    }
    if (unk_id_) {
      if (!(fuse_unk_ && last_was_unk)) append(*unk_id_);
      last_was_unk = true;
    }
    // Without an unknown token the character is dropped, as `tokenizers` does.
  }
  if (symbols.empty()) return;
  symbols.back().next = -1;

  // Candidate merges, lowest rank first and leftmost among equal ranks. An
  // entry goes stale when either symbol changes; it is recognized on pop by
  // the pair no longer producing the same token (the check `tokenizers` makes).
  struct Candidate {
    int32_t rank;
    int32_t left;
    int32_t new_id;
  };
  auto later = [](const Candidate& a, const Candidate& b) {
    return a.rank != b.rank ? a.rank > b.rank : a.left > b.left;
  };
  std::vector<Candidate> heap;
  auto push_pair = [&](int32_t left) {
    if (left < 0) return;
    const int32_t right = symbols[left].next;
    if (right < 0) return;
    auto it = merges_.find(PairKey(symbols[left].id, symbols[right].id));
    if (it == merges_.end()) return;
    heap.push_back({it->second.rank, left, it->second.new_id});
    std::push_heap(heap.begin(), heap.end(), later);
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i) push_pair(i);

  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    const Candidate top = heap.back();
    heap.pop_back();
    Symbol& left = symbols[top.left];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    auto it = merges_.find(PairKey(left.id, right.id));
    if (it == merges_.end() || it->second.new_id != top.new_id) continue;
    left.id = top.new_id;
    right.alive = false;
    left.next = right.next;
    if (left.next >= 0) symbols[left.next].prev = top.left;
    push_pair(left.prev);
    push_pair(top.left);
  }
  for (int32_t i = 0; i >= 0; i = symbols[i].next) ids->push_back(symbols[i].id);
}

}  // namespace kvplan::tokenizer_internal
