#include "worker/tokenizer/added_vocabulary.h"

#include <algorithm>
#include <cctype>
#include <climits>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "worker/tokenizer/absl_view.h"

namespace kvplan::tokenizer_internal {
namespace {

bool IsAsciiSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

// Bytes of non-ASCII characters count as word characters: a token marked
// single_word should not split "naïve" either.
bool IsWordByte(char c) {
  const auto b = static_cast<unsigned char>(c);
  return b >= 0x80 || std::isalnum(b) || c == '_';
}

bool GetBool(const nlohmann::json& entry, const char* key) {
  auto it = entry.find(key);
  return it != entry.end() && it->is_boolean() && it->get<bool>();
}

}  // namespace

absl::StatusOr<AddedVocabulary> AddedVocabulary::FromJson(const nlohmann::json& added_tokens) {
  AddedVocabulary vocab;
  if (added_tokens.is_null()) return vocab;
  if (!added_tokens.is_array()) return absl::InvalidArgumentError("'added_tokens' is not a list");
  for (size_t i = 0; i < added_tokens.size(); ++i) {
    const nlohmann::json& entry = added_tokens[i];
    auto id = entry.is_object() ? entry.find("id") : entry.end();
    auto content = entry.is_object() ? entry.find("content") : entry.end();
    if (!entry.is_object() || id == entry.end() || !id->is_number_integer() ||
        id->get<int64_t>() < 0 || id->get<int64_t>() > INT32_MAX || content == entry.end() ||
        !content->is_string() || content->get_ref<const std::string&>().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("added_tokens[", i, "] needs a non-negative integer 'id' and a non-empty ",
                       "string 'content': ", entry.dump()));
    }
    AddedToken token;
    token.id = static_cast<int32_t>(id->get<int64_t>());
    token.content = content->get<std::string>();
    token.special = GetBool(entry, "special");
    token.lstrip = GetBool(entry, "lstrip");
    token.rstrip = GetBool(entry, "rstrip");
    token.single_word = GetBool(entry, "single_word");
    if (vocab.by_id_.contains(token.id) || vocab.by_content_.contains(token.content)) {
      return absl::InvalidArgumentError(absl::StrCat("added_tokens[", i, "] repeats id ", token.id,
                                                     " or content '", token.content, "'"));
    }
    vocab.by_id_.emplace(token.id, vocab.tokens_.size());
    vocab.by_content_.emplace(token.content, vocab.tokens_.size());
    vocab.id_limit_ = std::max(vocab.id_limit_, token.id + 1);
    vocab.tokens_.push_back(std::move(token));
  }
  for (size_t i = 0; i < vocab.tokens_.size(); ++i) {
    vocab.by_first_byte_[static_cast<unsigned char>(vocab.tokens_[i].content[0])].push_back(i);
  }
  for (auto& bucket : vocab.by_first_byte_) {
    std::stable_sort(bucket.begin(), bucket.end(), [&vocab](size_t a, size_t b) {
      return vocab.tokens_[a].content.size() > vocab.tokens_[b].content.size();
    });
  }
  return vocab;
}

size_t AddedVocabulary::MatchAt(const AddedToken& token, std::string_view text, size_t pos,
                                size_t floor, size_t* match_begin) const {
  if (text.substr(pos, token.content.size()) != token.content) return 0;
  size_t end = pos + token.content.size();
  if (token.single_word) {
    const bool clear_before = pos == 0 || !IsWordByte(text[pos - 1]);
    const bool clear_after = end == text.size() || !IsWordByte(text[end]);
    if (!clear_before || !clear_after) return 0;
  }
  size_t begin = pos;
  if (token.lstrip) {
    while (begin > floor && IsAsciiSpace(text[begin - 1])) --begin;
  }
  if (token.rstrip) {
    while (end < text.size() && IsAsciiSpace(text[end])) ++end;
  }
  *match_begin = begin;
  return end - begin;
}

std::vector<AddedVocabulary::Segment> AddedVocabulary::Split(std::string_view text) const {
  std::vector<Segment> segments;
  size_t plain_begin = 0;  // Start of the plain text not yet emitted.
  size_t pos = 0;
  while (pos < text.size()) {
    const auto& bucket = by_first_byte_[static_cast<unsigned char>(text[pos])];
    const AddedToken* found = nullptr;
    size_t match_begin = 0;
    size_t match_len = 0;
    for (size_t index : bucket) {
      match_len = MatchAt(tokens_[index], text, pos, plain_begin, &match_begin);
      if (match_len > 0) {
        found = &tokens_[index];
        break;
      }
    }
    if (found == nullptr) {
      ++pos;
      continue;
    }
    if (match_begin > plain_begin) {
      segments.push_back({text.substr(plain_begin, match_begin - plain_begin), std::nullopt});
    }
    segments.push_back({text.substr(match_begin, match_len), found->id});
    pos = plain_begin = match_begin + match_len;
  }
  if (plain_begin < text.size()) segments.push_back({text.substr(plain_begin), std::nullopt});
  return segments;
}

std::optional<int32_t> AddedVocabulary::TokenToId(std::string_view content) const {
  auto it = by_content_.find(AbslView(content));
  if (it == by_content_.end()) return std::nullopt;
  return tokens_[it->second].id;
}

const AddedToken* AddedVocabulary::FindById(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

}  // namespace kvplan::tokenizer_internal
