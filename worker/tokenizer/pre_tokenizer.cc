#include "worker/tokenizer/pre_tokenizer.h"

#include <algorithm>
#include <optional>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "nlohmann/json.hpp"
#include "worker/tokenizer/byte_level.h"
#include "worker/tokenizer/hf_pattern.h"
#include "worker/tokenizer/regex.h"

namespace kvplan::tokenizer_internal {
namespace {

// GPT-2's pattern, which ByteLevel applies itself when `use_regex` is set.
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// What happens to the matched delimiters, as `tokenizers` names it.
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

std::optional<SplitBehavior> ParseBehavior(std::string_view name) {
  if (name == "Removed") return SplitBehavior::kRemoved;
  if (name == "Isolated") return SplitBehavior::kIsolated;
  if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous") return SplitBehavior::kContiguous;
  return std::nullopt;
}

// Cuts `word` at the matches of `regex` and appends the non-empty pieces.
absl::Status SplitWord(const Regex& regex, SplitBehavior behavior, bool invert,
                       std::string_view word, std::vector<std::string>* out) {
  std::vector<Regex::Match> matches;
  if (absl::Status s = regex.FindAll(word, &matches); !s.ok()) return s;
  // The word as consecutive intervals, each a match or the gap between two.
  struct Interval {
    size_t begin;
    size_t end;
    bool is_match;
  };
  std::vector<Interval> intervals;
  intervals.reserve(2 * matches.size() + 1);
  size_t last = 0;
  for (const Regex::Match& m : matches) {
    if (m.begin > last) intervals.push_back({last, m.begin, invert});
    intervals.push_back({m.begin, m.end, !invert});
    last = m.end;
  }
  if (last < word.size()) intervals.push_back({last, word.size(), invert});

  std::vector<Interval> pieces;
  pieces.reserve(intervals.size());
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::kIsolated:
      pieces = intervals;
      break;
    case SplitBehavior::kRemoved:
      for (const Interval& i : intervals) {
        if (!i.is_match) pieces.push_back(i);
      }
      break;
    case SplitBehavior::kContiguous:
      for (const Interval& i : intervals) {
        if (i.is_match == previous_match && !pieces.empty()) {
          pieces.back().end = i.end;
        } else {
          pieces.push_back(i);
        }
        previous_match = i.is_match;
      }
      break;
    case SplitBehavior::kMergedWithPrevious:
      for (const Interval& i : intervals) {
        if (i.is_match && !previous_match && !pieces.empty()) {
          pieces.back().end = i.end;
        } else {
          pieces.push_back(i);
        }
        previous_match = i.is_match;
      }
      break;
    case SplitBehavior::kMergedWithNext:
      for (auto it = intervals.rbegin(); it != intervals.rend(); ++it) {
        if (it->is_match && !previous_match && !pieces.empty()) {
          pieces.back().begin = it->begin;
        } else {
          pieces.push_back(*it);
        }
        previous_match = it->is_match;
      }
      std::reverse(pieces.begin(), pieces.end());
      break;
  }
  for (const Interval& p : pieces) {
    if (p.end > p.begin) out->emplace_back(word.substr(p.begin, p.end - p.begin));
  }
  return absl::OkStatus();
}

// Applies `split_one` to every word, collecting the pieces in order.
template <typename SplitOne>
absl::Status ForEachWord(std::vector<std::string>* words, SplitOne split_one) {
  std::vector<std::string> out;
  out.reserve(words->size());
  for (size_t i = 0; i < words->size(); ++i) {
    if (absl::Status s = split_one(i, (*words)[i], &out); !s.ok()) return s;
  }
  *words = std::move(out);
  return absl::OkStatus();
}

class SequencePreTokenizer final : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> steps)
      : steps_(std::move(steps)) {}
  absl::Status PreTokenize(std::vector<std::string>* words, bool at_text_start) const override {
    for (const auto& step : steps_) {
      if (absl::Status s = step->PreTokenize(words, at_text_start); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

class SplitPreTokenizer final : public PreTokenizer {
 public:
  SplitPreTokenizer(Regex regex, SplitBehavior behavior, bool invert)
      : regex_(std::move(regex)), behavior_(behavior), invert_(invert) {}
  absl::Status PreTokenize(std::vector<std::string>* words, bool) const override {
    return ForEachWord(words, [this](size_t, std::string& word, std::vector<std::string>* out) {
      return SplitWord(regex_, behavior_, invert_, word, out);
    });
  }

 private:
  Regex regex_;
  SplitBehavior behavior_;
  bool invert_;
};

// Maps each word's bytes to the byte-level alphabet, after the optional prefix
// space and GPT-2 split.
class ByteLevelPreTokenizer final : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, std::optional<Regex> regex)
      : add_prefix_space_(add_prefix_space), regex_(std::move(regex)) {}
  absl::Status PreTokenize(std::vector<std::string>* words, bool) const override {
    const ByteLevelAlphabet& alphabet = ByteLevelAlphabet::Get();
    return ForEachWord(words, [&](size_t, std::string& word, std::vector<std::string>* out) {
      // `tokenizers` adds the space to every word it is handed, not only the
      // first of the text.
      if (add_prefix_space_ && (word.empty() || word[0] != ' ')) word.insert(0, " ");
      const size_t first = out->size();
      if (regex_.has_value()) {
        if (absl::Status s = SplitWord(*regex_, SplitBehavior::kIsolated, false, word, out);
            !s.ok()) {
          return s;
        }
      } else if (!word.empty()) {
        out->push_back(std::move(word));
      }
      for (size_t i = first; i < out->size(); ++i) (*out)[i] = alphabet.Encode((*out)[i]);
      return absl::OkStatus();
    });
  }

 private:
  bool add_prefix_space_;
  std::optional<Regex> regex_;
};

enum class PrependScheme { kAlways, kFirst, kNever };

// SentencePiece's word boundary marker: spaces become `replacement` ('▁'),
// which is also put in front of the text, and words start at each marker.
class MetaspacePreTokenizer final : public PreTokenizer {
 public:
  MetaspacePreTokenizer(std::string replacement, PrependScheme scheme, std::optional<Regex> split)
      : replacement_(std::move(replacement)), scheme_(scheme), split_(std::move(split)) {}
  absl::Status PreTokenize(std::vector<std::string>* words, bool at_text_start) const override {
    return ForEachWord(words, [&](size_t i, std::string& word, std::vector<std::string>* out) {
      word = absl::StrReplaceAll(word, {{" ", replacement_}});
      const bool prepend = scheme_ == PrependScheme::kAlways ||
                           (scheme_ == PrependScheme::kFirst && i == 0 && at_text_start);
      if (prepend && !word.starts_with(replacement_)) word.insert(0, replacement_);
      if (split_.has_value()) {
        return SplitWord(*split_, SplitBehavior::kMergedWithNext, false, word, out);
      }
      if (!word.empty()) out->push_back(std::move(word));
      return absl::OkStatus();
    });
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
  std::optional<Regex> split_;
};

bool GetBool(const nlohmann::json& spec, const char* key, bool default_value) {
  auto it = spec.find(key);
  return (it != spec.end() && it->is_boolean()) ? it->get<bool>() : default_value;
}

absl::StatusOr<std::unique_ptr<PreTokenizer>> MetaspaceFromJson(const nlohmann::json& spec) {
  std::string replacement = "\xE2\x96\x81";  // U+2581 '▁'
  if (auto it = spec.find("replacement"); it != spec.end()) {
    if (!it->is_string() || it->get_ref<const std::string&>().empty()) {
      return absl::InvalidArgumentError("Metaspace 'replacement' must be a non-empty string");
    }
    replacement = it->get<std::string>();
  }
  PrependScheme scheme = PrependScheme::kAlways;
  if (auto it = spec.find("prepend_scheme"); it != spec.end() && !it->is_null()) {
    const std::string name = it->is_string() ? it->get<std::string>() : it->dump();
    if (name == "always") {
      scheme = PrependScheme::kAlways;
    } else if (name == "first") {
      scheme = PrependScheme::kFirst;
    } else if (name == "never") {
      scheme = PrependScheme::kNever;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("Metaspace prepend_scheme '", name, "' is not one of always, first, never"));
    }
  } else if (!GetBool(spec, "add_prefix_space", true)) {
    scheme = PrependScheme::kNever;  // Files written before prepend_scheme existed.
  }
  std::optional<Regex> split;
  if (GetBool(spec, "split", true)) {
    absl::StatusOr<Regex> re = Regex::Compile(replacement, /*literal=*/true);
    if (!re.ok()) return re.status();
    split = *std::move(re);
  }
  return std::make_unique<MetaspacePreTokenizer>(std::move(replacement), scheme, std::move(split));
}

}  // namespace

absl::StatusOr<std::unique_ptr<PreTokenizer>> PreTokenizerFromJson(const nlohmann::json& spec) {
  if (spec.is_null()) return nullptr;
  auto type_it = spec.is_object() ? spec.find("type") : spec.end();
  if (type_it == spec.end() || !type_it->is_string()) {
    return absl::InvalidArgumentError(absl::StrCat("pre_tokenizer has no 'type': ", spec.dump()));
  }
  const std::string& type = type_it->get_ref<const std::string&>();
  if (type == "Sequence") {
    auto list = spec.find("pretokenizers");
    if (list == spec.end() || !list->is_array()) {
      return absl::InvalidArgumentError("Sequence pre_tokenizer has no 'pretokenizers' list");
    }
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (const nlohmann::json& item : *list) {
      absl::StatusOr<std::unique_ptr<PreTokenizer>> step = PreTokenizerFromJson(item);
      if (!step.ok()) return step.status();
      if (*step != nullptr) steps.push_back(*std::move(step));
    }
    return std::make_unique<SequencePreTokenizer>(std::move(steps));
  }
  if (type == "Split") {
    auto pattern_it = spec.find("pattern");
    absl::StatusOr<Regex> regex = PatternFromJson(
        pattern_it == spec.end() ? nlohmann::json() : *pattern_it, "Split pre_tokenizer");
    if (!regex.ok()) return regex.status();
    auto behavior_it = spec.find("behavior");
    const std::string behavior_name = behavior_it != spec.end() && behavior_it->is_string()
                                          ? behavior_it->get<std::string>()
                                          : "";
    std::optional<SplitBehavior> behavior = ParseBehavior(behavior_name);
    if (!behavior) {
      return absl::UnimplementedError(absl::StrCat(
          "Split pre_tokenizer behavior '", behavior_name, "' is not supported (supported: ",
          "Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous)"));
    }
    return std::make_unique<SplitPreTokenizer>(*std::move(regex), *behavior,
                                               GetBool(spec, "invert", false));
  }
  if (type == "ByteLevel") {
    std::optional<Regex> regex;
    if (GetBool(spec, "use_regex", true)) {
      absl::StatusOr<Regex> re = Regex::Compile(kGpt2Pattern);
      if (!re.ok()) return re.status();
      regex = *std::move(re);
    }
    return std::make_unique<ByteLevelPreTokenizer>(GetBool(spec, "add_prefix_space", true),
                                                   std::move(regex));
  }
  if (type == "Metaspace") return MetaspaceFromJson(spec);
  if (type == "Digits") {
    absl::StatusOr<Regex> regex =
        Regex::Compile(GetBool(spec, "individual_digits", false) ? R"(\p{N})" : R"(\p{N}+)");
    if (!regex.ok()) return regex.status();
    return std::make_unique<SplitPreTokenizer>(*std::move(regex), SplitBehavior::kIsolated, false);
  }
  return absl::UnimplementedError(absl::StrCat("pre_tokenizer type '", type,
                                               "' is not supported (supported: Sequence, ",
                                               "Split, ByteLevel, Metaspace, Digits)"));
}

}  // namespace kvplan::tokenizer_internal
