#include "worker/tokenizer/normalizer.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "worker/tokenizer/absl_view.h"
#include "worker/tokenizer/hf_pattern.h"
#include "worker/tokenizer/regex.h"

namespace kvplan::tokenizer_internal {
namespace {

class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> steps)
      : steps_(std::move(steps)) {}
  absl::Status Normalize(std::string* text) const override {
    for (const auto& step : steps_) {
      if (absl::Status s = step->Normalize(text); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

class PrependNormalizer final : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  absl::Status Normalize(std::string* text) const override {
    // `tokenizers` leaves empty text empty, so "" encodes to no tokens.
    if (!text->empty()) text->insert(0, prefix_);
    return absl::OkStatus();
  }

 private:
  std::string prefix_;
};

class ReplaceNormalizer final : public Normalizer {
 public:
  ReplaceNormalizer(Regex pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  absl::Status Normalize(std::string* text) const override {
    return ReplaceAll(pattern_, content_, text);
  }

 private:
  Regex pattern_;
  std::string content_;
};

// Strips Unicode whitespace (as PCRE2 \s understands it) from the ends.
class StripNormalizer final : public Normalizer {
 public:
  StripNormalizer(Regex left, Regex right, bool strip_left, bool strip_right)
      : left_(std::move(left)),
        right_(std::move(right)),
        strip_left_(strip_left),
        strip_right_(strip_right) {}
  absl::Status Normalize(std::string* text) const override {
    if (strip_right_) {
      if (absl::Status s = ReplaceAll(right_, "", text); !s.ok()) return s;
    }
    if (strip_left_) return ReplaceAll(left_, "", text);
    return absl::OkStatus();
  }

 private:
  Regex left_;
  Regex right_;
  bool strip_left_;
  bool strip_right_;
};

absl::StatusOr<std::string> GetString(const nlohmann::json& spec, const char* key,
                                      std::string_view type) {
  auto it = spec.find(key);
  if (it == spec.end() || !it->is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat(AbslView(type), " normalizer needs a string '", key, "': ", spec.dump()));
  }
  return it->get<std::string>();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Normalizer>> NormalizerFromJson(const nlohmann::json& spec) {
  if (spec.is_null()) return nullptr;
  auto type_it = spec.is_object() ? spec.find("type") : spec.end();
  if (type_it == spec.end() || !type_it->is_string()) {
    return absl::InvalidArgumentError(absl::StrCat("normalizer has no 'type': ", spec.dump()));
  }
  const std::string& type = type_it->get_ref<const std::string&>();
  if (type == "Sequence") {
    auto list = spec.find("normalizers");
    if (list == spec.end() || !list->is_array()) {
      return absl::InvalidArgumentError("Sequence normalizer has no 'normalizers' list");
    }
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (const nlohmann::json& item : *list) {
      absl::StatusOr<std::unique_ptr<Normalizer>> step = NormalizerFromJson(item);
      if (!step.ok()) return step.status();
      if (*step != nullptr) steps.push_back(*std::move(step));
    }
    return std::make_unique<SequenceNormalizer>(std::move(steps));
  }
  if (type == "Prepend") {
    absl::StatusOr<std::string> prefix = GetString(spec, "prepend", type);
    if (!prefix.ok()) return prefix.status();
    return std::make_unique<PrependNormalizer>(*std::move(prefix));
  }
  if (type == "Replace") {
    absl::StatusOr<std::string> content = GetString(spec, "content", type);
    if (!content.ok()) return content.status();
    auto pattern_it = spec.find("pattern");
    absl::StatusOr<Regex> pattern = PatternFromJson(
        pattern_it == spec.end() ? nlohmann::json() : *pattern_it, "Replace normalizer");
    if (!pattern.ok()) return pattern.status();
    return std::make_unique<ReplaceNormalizer>(*std::move(pattern), *std::move(content));
  }
  if (type == "Strip") {
    absl::StatusOr<Regex> left = Regex::Compile(R"(^\s+)");
    absl::StatusOr<Regex> right = Regex::Compile(R"(\s+\z)");
    if (!left.ok()) return left.status();
    if (!right.ok()) return right.status();
    auto flag = [&spec](const char* key) {
      auto it = spec.find(key);
      return it == spec.end() || !it->is_boolean() || it->get<bool>();
    };
    return std::make_unique<StripNormalizer>(*std::move(left), *std::move(right),
                                             flag("strip_left"), flag("strip_right"));
  }
  return absl::UnimplementedError(
      absl::StrCat("normalizer type '", type,
                   "' is not supported (supported: Sequence, Prepend, Replace, ", "Strip)"));
}

}  // namespace kvplan::tokenizer_internal
