#include "worker/tokenizer/hf_tokenizer.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "nlohmann/json.hpp"
#include "worker/tokenizer/absl_view.h"
#include "worker/tokenizer/added_vocabulary.h"
#include "worker/tokenizer/bpe_model.h"
#include "worker/tokenizer/decoder.h"
#include "worker/tokenizer/json_file.h"
#include "worker/tokenizer/normalizer.h"
#include "worker/tokenizer/pre_tokenizer.h"
#include "worker/tokenizer/utf8.h"

namespace kvplan::tokenizer_internal {
namespace {

class HfTokenizer final : public Tokenizer {
 public:
  struct Parts {
    AddedVocabulary added;
    std::unique_ptr<Normalizer> normalizer;
    std::unique_ptr<PreTokenizer> pre_tokenizer;
    std::unique_ptr<BpeModel> model;
    std::unique_ptr<Decoder> decoder;
    std::optional<int32_t> bos_id;
    std::optional<int32_t> eos_id;
    bool adds_bos = false;
    bool clean_up_tokenization_spaces = false;
  };

  explicit HfTokenizer(Parts parts) : parts_(std::move(parts)) {}

  absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text, bool add_bos) const override;
  std::string Decode(absl::Span<const int32_t> ids) const override;
  std::optional<int32_t> bos_id() const override { return parts_.bos_id; }
  std::optional<int32_t> eos_id() const override { return parts_.eos_id; }
  int32_t vocab_size() const override {
    return std::max(parts_.model->vocab_size(), parts_.added.id_limit());
  }
  bool adds_bos_by_default() const override { return parts_.adds_bos; }

 private:
  Parts parts_;
};

absl::StatusOr<std::vector<int32_t>> HfTokenizer::Encode(std::string_view text,
                                                         bool add_bos) const {
  if (std::optional<size_t> bad = FindInvalidUtf8(text)) {
    return absl::InvalidArgumentError(
        absl::StrCat("text is not valid UTF-8: ill-formed sequence at byte ", *bad));
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 2);
  if (add_bos && parts_.bos_id) ids.push_back(*parts_.bos_id);
  std::vector<std::string> words;
  for (const AddedVocabulary::Segment& segment : parts_.added.Split(text)) {
    if (segment.id) {
      ids.push_back(*segment.id);
      continue;
    }
    std::string normalized(segment.text);
    if (parts_.normalizer != nullptr) {
      if (absl::Status s = parts_.normalizer->Normalize(&normalized); !s.ok()) return s;
    }
    if (normalized.empty()) continue;
    words.assign(1, std::move(normalized));
    if (parts_.pre_tokenizer != nullptr) {
      const bool at_text_start = segment.text.data() == text.data();
      if (absl::Status s = parts_.pre_tokenizer->PreTokenize(&words, at_text_start); !s.ok()) {
        return s;
      }
    }
    for (const std::string& word : words) parts_.model->EncodeWord(word, &ids);
  }
  return ids;
}

// transformers' `clean_up_tokenization`: English spacing before punctuation
// and contractions, undone in this order.
std::string CleanUpTokenizationSpaces(std::string text) {
  static constexpr std::pair<std::string_view, std::string_view> kRules[] = {
      {" .", "."},     {" ?", "?"},   {" !", "!"},   {" ,", ","},     {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : kRules)
    text = absl::StrReplaceAll(text, {{AbslView(from), AbslView(to)}});
  return text;
}

std::string HfTokenizer::Decode(absl::Span<const int32_t> ids) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (id == parts_.bos_id || id == parts_.eos_id) continue;
    if (const AddedToken* added = parts_.added.FindById(id)) {
      if (!added->special) tokens.push_back(added->content);
      continue;
    }
    if (const std::string* token = parts_.model->IdToToken(id)) tokens.push_back(*token);
  }
  std::string text;
  if (parts_.decoder != nullptr) {
    parts_.decoder->DecodeChain(&tokens);
    text = absl::StrJoin(tokens, "");
  } else {
    text = absl::StrJoin(tokens, " ");
  }
  if (parts_.clean_up_tokenization_spaces) text = CleanUpTokenizationSpaces(std::move(text));
  return text;
}

// A token named in tokenizer_config.json: "<s>" or {"content": "<s>", ...}.
std::optional<std::string> ConfigTokenContent(const nlohmann::json& config, const char* key) {
  auto it = config.find(key);
  if (it == config.end()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) {
    auto content = it->find("content");
    if (content != it->end() && content->is_string()) return content->get<std::string>();
  }
  return std::nullopt;
}

// Id of the special token the post-processor puts before a single sequence.
std::optional<int32_t> LeadingSpecialId(const nlohmann::json& processor,
                                        const AddedVocabulary& added, const BpeModel& model) {
  if (!processor.is_object()) return std::nullopt;
  auto resolve = [&](const std::string& name) -> std::optional<int32_t> {
    if (auto id = added.TokenToId(name)) return id;
    return model.TokenToId(name);
  };
  const std::string type = processor.value("type", "");
  if (type == "Sequence") {
    auto list = processor.find("processors");
    if (list == processor.end() || !list->is_array()) return std::nullopt;
    for (const nlohmann::json& item : *list) {
      if (auto id = LeadingSpecialId(item, added, model)) return id;
    }
    return std::nullopt;
  }
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    auto cls = processor.find("cls");
    if (cls != processor.end() && cls->is_array() && cls->size() == 2 &&
        (*cls)[1].is_number_integer()) {
      return (*cls)[1].get<int32_t>();
    }
    return std::nullopt;
  }
  if (type != "TemplateProcessing") return std::nullopt;
  auto single = processor.find("single");
  if (single == processor.end() || !single->is_array() || single->empty()) return std::nullopt;
  const nlohmann::json& first = (*single)[0];
  if (!first.is_object() || !first.contains("SpecialToken")) return std::nullopt;
  const nlohmann::json& special = first["SpecialToken"];
  if (!special.is_object() || !special.contains("id") || !special["id"].is_string()) {
    return std::nullopt;
  }
  const std::string name = special["id"].get<std::string>();
  // The template's own table of special tokens gives the ids it inserts.
  if (auto table = processor.find("special_tokens");
      table != processor.end() && table->is_object() && table->contains(name)) {
    const nlohmann::json& entry = (*table)[name];
    if (entry.is_object() && entry.contains("ids") && entry["ids"].is_array() &&
        entry["ids"].size() == 1 && entry["ids"][0].is_number_integer()) {
      return entry["ids"][0].get<int32_t>();
    }
  }
  return resolve(name);
}

absl::Status WithFile(const std::filesystem::path& path, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat(path.string(), ": ", status.message()));
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Build(const nlohmann::json& root,
                                                 const nlohmann::json& config) {
  if (!root.is_object()) return absl::InvalidArgumentError("top level is not a JSON object");
  auto model_it = root.find("model");
  if (model_it == root.end() || !model_it->is_object()) {
    return absl::InvalidArgumentError("no 'model' object");
  }
  std::string model_type = model_it->value("type", "");
  if (model_type.empty() && model_it->contains("merges")) model_type = "BPE";  // Old files.
  if (model_type != "BPE") {
    return absl::UnimplementedError(
        absl::StrCat("model type '", model_type, "' is not supported (supported: BPE)"));
  }
  auto section = [&root](const char* key) {
    auto it = root.find(key);
    return it == root.end() ? nlohmann::json() : *it;
  };
  HfTokenizer::Parts parts;
  absl::StatusOr<std::unique_ptr<BpeModel>> model = BpeModel::FromJson(*model_it);
  if (!model.ok()) return model.status();
  parts.model = *std::move(model);
  absl::StatusOr<AddedVocabulary> added = AddedVocabulary::FromJson(section("added_tokens"));
  if (!added.ok()) return added.status();
  parts.added = *std::move(added);
  absl::StatusOr<std::unique_ptr<Normalizer>> normalizer =
      NormalizerFromJson(section("normalizer"));
  if (!normalizer.ok()) return normalizer.status();
  parts.normalizer = *std::move(normalizer);
  absl::StatusOr<std::unique_ptr<PreTokenizer>> pre_tokenizer =
      PreTokenizerFromJson(section("pre_tokenizer"));
  if (!pre_tokenizer.ok()) return pre_tokenizer.status();
  parts.pre_tokenizer = *std::move(pre_tokenizer);
  absl::StatusOr<std::unique_ptr<Decoder>> decoder = DecoderFromJson(section("decoder"));
  if (!decoder.ok()) return decoder.status();
  parts.decoder = *std::move(decoder);

  auto resolve = [&parts](const std::string& content) -> std::optional<int32_t> {
    if (auto id = parts.added.TokenToId(content)) return id;
    return parts.model->TokenToId(content);
  };
  const std::optional<int32_t> template_bos =
      LeadingSpecialId(section("post_processor"), parts.added, *parts.model);
  parts.bos_id = template_bos;
  for (const char* key : {"bos_token", "eos_token"}) {
    std::optional<std::string> content = ConfigTokenContent(config, key);
    if (!content) continue;
    std::optional<int32_t> id = resolve(*content);
    if (!id) {
      return absl::InvalidArgumentError(absl::StrCat("tokenizer_config.json ", key, " '", *content,
                                                     "' is not in the vocabulary"));
    }
    (std::string_view(key) == "bos_token" ? parts.bos_id : parts.eos_id) = id;
  }
  auto add_bos = config.find("add_bos_token");
  const bool adds_bos = (add_bos != config.end() && add_bos->is_boolean())
                            ? add_bos->get<bool>()
                            : template_bos.has_value();
  parts.adds_bos = adds_bos && parts.bos_id.has_value();
  auto clean_up = config.find("clean_up_tokenization_spaces");
  parts.clean_up_tokenization_spaces =
      clean_up != config.end() && clean_up->is_boolean() && clean_up->get<bool>();
  return std::make_unique<HfTokenizer>(std::move(parts));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadHfTokenizer(
    const std::filesystem::path& tokenizer_json,
    const std::optional<std::filesystem::path>& tokenizer_config_json) {
  absl::StatusOr<nlohmann::json> root = ReadJsonFile(tokenizer_json);
  if (!root.ok()) return root.status();
  nlohmann::json config = nlohmann::json::object();
  if (tokenizer_config_json) {
    absl::StatusOr<nlohmann::json> parsed = ReadJsonFile(*tokenizer_config_json);
    if (!parsed.ok()) return parsed.status();
    if (!parsed->is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat(tokenizer_config_json->string(), ": top level is not a JSON object"));
    }
    config = *std::move(parsed);
  }
  // Accessors below check types before reading; the catch is a backstop so
  // that no nlohmann exception can leave the library.
  try {
    absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = Build(*root, config);
    if (!tokenizer.ok()) return WithFile(tokenizer_json, tokenizer.status());
    return tokenizer;
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(tokenizer_json.string(), ": unexpected JSON structure: ", e.what()));
  }
}

}  // namespace kvplan::tokenizer_internal
