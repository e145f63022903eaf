#include "worker/tokenizer/decoder.h"

#include <optional>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "nlohmann/json.hpp"
#include "worker/tokenizer/absl_view.h"
#include "worker/tokenizer/byte_level.h"

namespace kvplan::tokenizer_internal {
namespace {

constexpr std::string_view kMetaspace = "\xE2\x96\x81";  // U+2581 '▁'

class SequenceDecoder final : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> steps)
      : steps_(std::move(steps)) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (const auto& step : steps_) step->DecodeChain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

class ByteLevelDecoder final : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    const ByteLevelAlphabet& alphabet = ByteLevelAlphabet::Get();
    std::string bytes;
    for (const std::string& token : *tokens) {
      // A token outside the alphabet (an added token such as "<|eot|>") is
      // its own text, as in `tokenizers`.
      if (!alphabet.Decode(token, &bytes)) bytes += token;
    }
    tokens->assign(1, std::move(bytes));
  }
};

class MetaspaceDecoder final : public Decoder {
 public:
  MetaspaceDecoder(std::string replacement, bool strip_first)
      : replacement_(std::move(replacement)), strip_first_(strip_first) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (size_t i = 0; i < tokens->size(); ++i) {
      // The first token loses every marker, not only a leading one: that is
      // what `tokenizers` does, and what round-trips its prepended marker.
      (*tokens)[i] =
          absl::StrReplaceAll((*tokens)[i], {{replacement_, (i == 0 && strip_first_) ? "" : " "}});
    }
  }

 private:
  std::string replacement_;
  bool strip_first_;
};

class ReplaceDecoder final : public Decoder {
 public:
  ReplaceDecoder(std::string pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (std::string& token : *tokens) token = absl::StrReplaceAll(token, {{pattern_, content_}});
  }

 private:
  std::string pattern_;
  std::string content_;
};

// Runs of "<0xXX>" tokens become the bytes they name.
class ByteFallbackDecoder final : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::vector<std::string> out;
    out.reserve(tokens->size());
    std::string pending;
    for (std::string& token : *tokens) {
      if (std::optional<char> byte = ParseByteToken(token)) {
        pending.push_back(*byte);
        continue;
      }
      if (!pending.empty()) out.push_back(std::exchange(pending, {}));
      out.push_back(std::move(token));
    }
    if (!pending.empty()) out.push_back(std::move(pending));
    *tokens = std::move(out);
  }

 private:
  static std::optional<char> ParseByteToken(std::string_view token) {
    if (token.size() != 6 || !token.starts_with("<0x") || token.back() != '>') return std::nullopt;
    int value = 0;
    for (char c : token.substr(3, 2)) {
      int digit;
      if (c >= '0' && c <= '9') {
        digit = c - '0';
      } else if (c >= 'A' && c <= 'F') {
        digit = c - 'A' + 10;
      } else if (c >= 'a' && c <= 'f') {
        digit = c - 'a' + 10;
      } else {
        return std::nullopt;
      }
      value = value * 16 + digit;
    }
    return static_cast<char>(value);
  }
};

class FuseDecoder final : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::string all = absl::StrJoin(*tokens, "");
    tokens->assign(1, std::move(all));
  }
};

// Removes up to `start` leading and `stop` trailing copies of `content` from
// each token.
class StripDecoder final : public Decoder {
 public:
  StripDecoder(std::string content, size_t start, size_t stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (std::string& token : *tokens) {
      std::string_view rest = token;
      for (size_t i = 0; i < start_ && rest.starts_with(content_); ++i) {
        rest.remove_prefix(content_.size());
      }
      for (size_t i = 0; i < stop_ && rest.ends_with(content_); ++i) {
        rest.remove_suffix(content_.size());
      }
      token = std::string(rest);
    }
  }

 private:
  std::string content_;
  size_t start_;
  size_t stop_;
};

absl::StatusOr<std::string> GetString(const nlohmann::json& spec, const char* key,
                                      std::string_view type) {
  auto it = spec.find(key);
  if (it == spec.end() || !it->is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat(AbslView(type), " decoder needs a string '", key, "': ", spec.dump()));
  }
  return it->get<std::string>();
}

absl::StatusOr<size_t> GetCount(const nlohmann::json& spec, const char* key) {
  auto it = spec.find(key);
  if (it == spec.end()) return 0;
  if (!it->is_number_unsigned()) {
    return absl::InvalidArgumentError(
        absl::StrCat("Strip decoder '", key, "' must be a non-negative integer: ", spec.dump()));
  }
  return it->get<size_t>();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Decoder>> DecoderFromJson(const nlohmann::json& spec) {
  if (spec.is_null()) return nullptr;
  auto type_it = spec.is_object() ? spec.find("type") : spec.end();
  if (type_it == spec.end() || !type_it->is_string()) {
    return absl::InvalidArgumentError(absl::StrCat("decoder has no 'type': ", spec.dump()));
  }
  const std::string& type = type_it->get_ref<const std::string&>();
  if (type == "Sequence") {
    auto list = spec.find("decoders");
    if (list == spec.end() || !list->is_array()) {
      return absl::InvalidArgumentError("Sequence decoder has no 'decoders' list");
    }
    std::vector<std::unique_ptr<Decoder>> steps;
    for (const nlohmann::json& item : *list) {
      absl::StatusOr<std::unique_ptr<Decoder>> step = DecoderFromJson(item);
      if (!step.ok()) return step.status();
      if (*step != nullptr) steps.push_back(*std::move(step));
    }
    return std::make_unique<SequenceDecoder>(std::move(steps));
  }
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Metaspace") {
    std::string replacement(kMetaspace);
    if (spec.contains("replacement")) {
      absl::StatusOr<std::string> r = GetString(spec, "replacement", type);
      if (!r.ok()) return r.status();
      replacement = *std::move(r);
    }
    bool strip_first = true;
    if (auto it = spec.find("prepend_scheme"); it != spec.end() && it->is_string()) {
      strip_first = it->get<std::string>() != "never";
    } else if (auto legacy = spec.find("add_prefix_space");
               legacy != spec.end() && legacy->is_boolean()) {
      strip_first = legacy->get<bool>();
    }
    return std::make_unique<MetaspaceDecoder>(std::move(replacement), strip_first);
  }
  if (type == "Replace") {
    absl::StatusOr<std::string> content = GetString(spec, "content", type);
    if (!content.ok()) return content.status();
    auto pattern = spec.find("pattern");
    if (pattern == spec.end() || !pattern->is_object() || !pattern->contains("String") ||
        !(*pattern)["String"].is_string()) {
      return absl::UnimplementedError(
          absl::StrCat("Replace decoder supports {\"String\": ...} patterns only, not ",
                       pattern == spec.end() ? std::string("none") : pattern->dump()));
    }
    return std::make_unique<ReplaceDecoder>((*pattern)["String"].get<std::string>(),
                                            *std::move(content));
  }
  if (type == "Strip") {
    absl::StatusOr<std::string> content = GetString(spec, "content", type);
    if (!content.ok()) return content.status();
    absl::StatusOr<size_t> start = GetCount(spec, "start");
    if (!start.ok()) return start.status();
    absl::StatusOr<size_t> stop = GetCount(spec, "stop");
    if (!stop.ok()) return stop.status();
    return std::make_unique<StripDecoder>(*std::move(content), *start, *stop);
  }
  return absl::UnimplementedError(
      absl::StrCat("decoder type '", type, "' is not supported (supported: Sequence, ByteLevel, ",
                   "Metaspace, Replace, ByteFallback, Fuse, Strip)"));
}

}  // namespace kvplan::tokenizer_internal
