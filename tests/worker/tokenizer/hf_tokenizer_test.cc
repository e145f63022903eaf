// Synthetic tokenizer.json files, written to a temporary directory, with
// expectations worked out by hand (and checked against Hugging Face
// `tokenizers`): SentencePiece-style BPE with byte fallback (Llama-2/Mistral
// layout), byte-level BPE variants (GPT-2, Llama-3), and load errors.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/worker/tokenizer/test_util.h"
#include "worker/tokenizer/byte_level.h"
#include "worker/tokenizer/tokenizer.h"

namespace kvplan {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using json = nlohmann::json;
using tokenizer_test::MakeTestDir;
using tokenizer_test::WriteFile;

constexpr char kMeta[] = "\xE2\x96\x81";  // '▁'

std::string M(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '_') {
      out += kMeta;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

json AddedToken(int id, const std::string& content, bool special) {
  return {{"id", id},        {"content", content},  {"single_word", false}, {"lstrip", false},
          {"rstrip", false}, {"normalized", false}, {"special", special}};
}

// Llama-2's layout: <unk> <s> </s>, 256 byte tokens, then pieces ('_' is '▁').
//   259 _   260 h   261 e   262 l   263 o   264 w   265 r   266 d
//   267 _h  268 ll  269 _he 270 llo 271 _hello 272 or 273 _w 274 _wor 275 ld
json SentencePieceModel() {
  json vocab = json::object();
  vocab["<unk>"] = 0;
  vocab["<s>"] = 1;
  vocab["</s>"] = 2;
  for (int b = 0; b < 256; ++b) vocab[absl::StrFormat("<0x%02X>", b)] = 3 + b;
  const char* pieces[] = {"_",  "h",   "e",   "l",      "o",  "w",  "r",    "d", "_h",
                          "ll", "_he", "llo", "_hello", "or", "_w", "_wor", "ld"};
  int id = 259;
  for (const char* p : pieces) vocab[M(p)] = id++;
  json merges = json::array();
  for (const char* m : {"_ h", "l l", "_h e", "ll o", "_he llo", "o r", "_ w", "_w or", "l d"}) {
    merges.push_back(M(m));
  }
  return {{"type", "BPE"},
          {"dropout", nullptr},
          {"unk_token", "<unk>"},
          {"continuing_subword_prefix", nullptr},
          {"end_of_word_suffix", nullptr},
          {"fuse_unk", true},
          {"byte_fallback", true},
          {"ignore_merges", false},
          {"vocab", vocab},
          {"merges", merges}};
}

json BosTemplate(const std::string& bos, int bos_id) {
  return {{"type", "TemplateProcessing"},
          {"single", json::array({{{"SpecialToken", {{"id", bos}, {"type_id", 0}}}},
                                  {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
          {"pair", json::array()},
          {"special_tokens", {{bos, {{"id", bos}, {"ids", {bos_id}}, {"tokens", {bos}}}}}}};
}

json LlamaTwoTokenizerJson() {
  return {{"version", "1.0"},
          {"added_tokens", json::array({AddedToken(0, "<unk>", true), AddedToken(1, "<s>", true),
                                        AddedToken(2, "</s>", true)})},
          {"normalizer",
           {{"type", "Sequence"},
            {"normalizers",
             json::array(
                 {{{"type", "Prepend"}, {"prepend", kMeta}},
                  {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", kMeta}}})}}},
          {"pre_tokenizer", nullptr},
          {"post_processor", BosTemplate("<s>", 1)},
          {"decoder",
           {{"type", "Sequence"},
            {"decoders",
             json::array({{{"type", "Replace"}, {"pattern", {{"String", kMeta}}}, {"content", " "}},
                          {{"type", "ByteFallback"}},
                          {{"type", "Fuse"}},
                          {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}}},
          {"model", SentencePieceModel()}};
}

json LlamaTwoConfigJson() {
  return {{"add_bos_token", true},
          {"add_eos_token", false},
          {"bos_token", {{"__type", "AddedToken"}, {"content", "<s>"}}},
          {"eos_token", "</s>"},
          {"clean_up_tokenization_spaces", false}};
}

std::unique_ptr<Tokenizer> LoadFromJson(const json& tokenizer,
                                        const std::optional<json>& config = std::nullopt) {
  const std::filesystem::path dir = MakeTestDir();
  WriteFile(dir / "tokenizer.json", tokenizer.dump(2));
  if (config) WriteFile(dir / "tokenizer_config.json", config->dump(2));
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = LoadTokenizer(dir);
  EXPECT_TRUE(tok.ok()) << tok.status();
  return tok.ok() ? *std::move(tok) : nullptr;
}

absl::Status LoadError(const json& tokenizer) {
  const std::filesystem::path dir = MakeTestDir();
  WriteFile(dir / "tokenizer.json", tokenizer.dump());
  return LoadTokenizer(dir).status();
}

std::vector<int32_t> EncodeOk(const Tokenizer& tok, std::string_view text, bool add_bos) {
  absl::StatusOr<std::vector<int32_t>> ids = tok.Encode(text, add_bos);
  EXPECT_TRUE(ids.ok()) << ids.status();
  return ids.ok() ? *ids : std::vector<int32_t>{};
}

constexpr int32_t Byte(uint8_t b) { return 3 + b; }

TEST(SentencePieceBpeTest, MergesByRankAfterPrependAndReplace) {
  std::unique_ptr<Tokenizer> tok = LoadFromJson(LlamaTwoTokenizerJson(), LlamaTwoConfigJson());
  ASSERT_NE(tok, nullptr);
  // "_hello_world": _h, ll, _he, llo, _hello, then or, _w, _wor, ld.
  EXPECT_THAT(EncodeOk(*tok, "hello world", false), ElementsAre(271, 274, 275));
  EXPECT_THAT(EncodeOk(*tok, "hello world", true), ElementsAre(1, 271, 274, 275));
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_TRUE(tok->adds_bos_by_default());
  EXPECT_EQ(tok->vocab_size(), 276);
}

TEST(SentencePieceBpeTest, UnknownCharactersFallBackToBytes) {
  std::unique_ptr<Tokenizer> tok = LoadFromJson(LlamaTwoTokenizerJson(), LlamaTwoConfigJson());
  ASSERT_NE(tok, nullptr);
  // 'é' is C3 A9; the emoji is F0 9F 99 82.
  EXPECT_THAT(EncodeOk(*tok, "h\xC3\xA9", false), ElementsAre(267, Byte(0xC3), Byte(0xA9)));
  EXPECT_THAT(EncodeOk(*tok, "\xF0\x9F\x99\x82", false),
              ElementsAre(259, Byte(0xF0), Byte(0x9F), Byte(0x99), Byte(0x82)));
  EXPECT_EQ(tok->Decode({267, Byte(0xC3), Byte(0xA9)}), "h\xC3\xA9");
  EXPECT_EQ(tok->Decode({259, Byte(0xF0), Byte(0x9F), Byte(0x99), Byte(0x82)}), "\xF0\x9F\x99\x82");
}

TEST(SentencePieceBpeTest, DecodeStripsThePrependedSpaceAndSkipsSpecials) {
  std::unique_ptr<Tokenizer> tok = LoadFromJson(LlamaTwoTokenizerJson(), LlamaTwoConfigJson());
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->Decode({1, 271, 274, 275, 2}), "hello world");
  // The Strip decoder removes one leading space whatever the first token is.
  EXPECT_EQ(tok->Decode({274, 275}), "world");
  // A cut inside a character leaves its raw bytes.
  EXPECT_EQ(tok->Decode({267, Byte(0xC3)}), "h\xC3");
}

TEST(SentencePieceBpeTest, RepeatedSpacesAndEmptyText) {
  std::unique_ptr<Tokenizer> tok = LoadFromJson(LlamaTwoTokenizerJson(), LlamaTwoConfigJson());
  ASSERT_NE(tok, nullptr);
  // "  hello" -> "___hello": no "_ _" merge, so two lone markers.
  EXPECT_THAT(EncodeOk(*tok, "  hello", false), ElementsAre(259, 259, 271));
  EXPECT_EQ(tok->Decode({259, 259, 271}), "  hello");
  EXPECT_THAT(EncodeOk(*tok, "", false), IsEmpty());
  EXPECT_THAT(EncodeOk(*tok, "", true), ElementsAre(1));
}

TEST(SentencePieceBpeTest, SpecialTokensInTextAndNormalizerPerSegment) {
  std::unique_ptr<Tokenizer> tok = LoadFromJson(LlamaTwoTokenizerJson(), LlamaTwoConfigJson());
  ASSERT_NE(tok, nullptr);
  // Each plain segment is normalized on its own, so both get a '▁' in front.
  EXPECT_THAT(EncodeOk(*tok, "hello</s>hello", false), ElementsAre(271, 2, 271));
}

TEST(SentencePieceBpeTest, UnknownTokenWithoutByteFallbackIsFused) {
  json spec = LlamaTwoTokenizerJson();
  spec["model"]["byte_fallback"] = false;
  std::unique_ptr<Tokenizer> tok = LoadFromJson(spec, LlamaTwoConfigJson());
  ASSERT_NE(tok, nullptr);
  // "_héé" : '_h', then two unknown characters fused into one <unk>.
  EXPECT_THAT(EncodeOk(*tok, "h\xC3\xA9\xC3\xA9", false), ElementsAre(267, 0));
  spec["model"]["fuse_unk"] = false;
  tok = LoadFromJson(spec, LlamaTwoConfigJson());
  ASSERT_NE(tok, nullptr);
  EXPECT_THAT(EncodeOk(*tok, "h\xC3\xA9\xC3\xA9", false), ElementsAre(267, 0, 0));
}

// Newer Llama-2/Mistral exports: no normalizer, Metaspace pre-tokenizer and
// decoder with prepend_scheme "first".
json MetaspaceTokenizerJson() {
  json spec = LlamaTwoTokenizerJson();
  spec["normalizer"] = nullptr;
  spec["pre_tokenizer"] = {
      {"type", "Metaspace"}, {"replacement", kMeta}, {"prepend_scheme", "first"}, {"split", false}};
  spec["decoder"] = {
      {"type", "Metaspace"}, {"replacement", kMeta}, {"prepend_scheme", "first"}, {"split", false}};
  return spec;
}

TEST(SentencePieceBpeTest, MetaspacePreTokenizerAndDecoder) {
  std::unique_ptr<Tokenizer> tok = LoadFromJson(MetaspaceTokenizerJson(), LlamaTwoConfigJson());
  ASSERT_NE(tok, nullptr);
  EXPECT_THAT(EncodeOk(*tok, "hello world", false), ElementsAre(271, 274, 275));
  EXPECT_EQ(tok->Decode({271, 274, 275}), "hello world");
  // prepend_scheme "first": only text that starts the input gets the marker;
  // after a special token "hello" is h, e, llo.
  EXPECT_THAT(EncodeOk(*tok, "<s>hello", false), ElementsAre(1, 260, 261, 270));
}

TEST(SentencePieceBpeTest, MetaspaceSplitGivesTheSameMergesHere) {
  json spec = MetaspaceTokenizerJson();
  spec["pre_tokenizer"]["split"] = true;
  std::unique_ptr<Tokenizer> tok = LoadFromJson(spec, LlamaTwoConfigJson());
  ASSERT_NE(tok, nullptr);
  EXPECT_THAT(EncodeOk(*tok, "hello world", false), ElementsAre(271, 274, 275));
}

// Byte-level vocabulary: id b is the alphabet character of byte b, then
//   256 "he" (h e)   257 "iĠ" (i Ġ)   258 "Ġworld" (no merge makes it)
//   259 "Ġw" (Ġ w)   260 "<|eot_id|>" (special)   261 "<tool>" (not special)
json ByteLevelTokenizerJson(json pre_tokenizer, bool ignore_merges) {
  const tokenizer_internal::ByteLevelAlphabet& alphabet =
      tokenizer_internal::ByteLevelAlphabet::Get();
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[alphabet.CharFor(static_cast<uint8_t>(b))] = b;
  vocab["he"] = 256;
  vocab[alphabet.Encode("i ")] = 257;
  vocab[alphabet.Encode(" world")] = 258;
  vocab[alphabet.Encode(" w")] = 259;
  json merges = json::array({json::array({"h", "e"}), json::array({"i", alphabet.CharFor(' ')}),
                             json::array({alphabet.CharFor(' '), "w"})});
  return {{"version", "1.0"},
          {"added_tokens",
           json::array({AddedToken(260, "<|eot_id|>", true), AddedToken(261, "<tool>", false)})},
          {"normalizer", nullptr},
          {"pre_tokenizer", pre_tokenizer},
          {"post_processor",
           {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}}},
          {"decoder",
           {{"type", "ByteLevel"},
            {"add_prefix_space", true},
            {"trim_offsets", true},
            {"use_regex", true}}},
          {"model",
           {{"type", "BPE"},
            {"dropout", nullptr},
            {"unk_token", nullptr},
            {"fuse_unk", false},
            {"byte_fallback", false},
            {"ignore_merges", ignore_merges},
            {"vocab", vocab},
            {"merges", merges}}}};
}

json Gpt2PreTokenizer(bool use_regex) {
  return {{"type", "ByteLevel"},
          {"add_prefix_space", true},
          {"trim_offsets", true},
          {"use_regex", use_regex}};
}

// Llama-3's (and doc-llama-h64's) Split pattern.
constexpr char kLlama3Pattern[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|)"
    R"( ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

json Llama3PreTokenizer() {
  return {{"type", "Sequence"},
          {"pretokenizers", json::array({{{"type", "Split"},
                                          {"pattern", {{"Regex", kLlama3Pattern}}},
                                          {"behavior", "Isolated"},
                                          {"invert", false}},
                                         {{"type", "ByteLevel"},
                                          {"add_prefix_space", false},
                                          {"trim_offsets", true},
                                          {"use_regex", false}}})}};
}

TEST(ByteLevelBpeTest, Gpt2RegexKeepsMergesInsideWords) {
  std::unique_ptr<Tokenizer> tok =
      LoadFromJson(ByteLevelTokenizerJson(Gpt2PreTokenizer(true), false));
  ASSERT_NE(tok, nullptr);
  // add_prefix_space: " hi there" -> "Ġhi" "Ġthere"; "iĠ" would cross words.
  EXPECT_THAT(EncodeOk(*tok, "hi there", false),
              ElementsAre(' ', 'h', 'i', ' ', 't', 256, 'r', 'e'));
  EXPECT_EQ(tok->Decode({' ', 'h', 'i', ' ', 't', 256, 'r', 'e'}), " hi there");
  // Nothing names a BOS: add_bos changes nothing.
  EXPECT_EQ(tok->bos_id(), std::nullopt);
  EXPECT_FALSE(tok->adds_bos_by_default());
  EXPECT_EQ(EncodeOk(*tok, "hi", true), EncodeOk(*tok, "hi", false));
}

TEST(ByteLevelBpeTest, WithoutRegexMergesCrossSpaces) {
  std::unique_ptr<Tokenizer> tok =
      LoadFromJson(ByteLevelTokenizerJson(Gpt2PreTokenizer(false), false));
  ASSERT_NE(tok, nullptr);
  EXPECT_THAT(EncodeOk(*tok, "hi there", false), ElementsAre(' ', 'h', 257, 't', 256, 'r', 'e'));
}

TEST(ByteLevelBpeTest, Llama3SplitAndIgnoreMerges) {
  std::unique_ptr<Tokenizer> merging =
      LoadFromJson(ByteLevelTokenizerJson(Llama3PreTokenizer(), false));
  std::unique_ptr<Tokenizer> whole =
      LoadFromJson(ByteLevelTokenizerJson(Llama3PreTokenizer(), true));
  ASSERT_NE(merging, nullptr);
  ASSERT_NE(whole, nullptr);
  // "Ġworld" is in the vocabulary but no merges lead to it.
  EXPECT_THAT(EncodeOk(*merging, " world", false), ElementsAre(259, 'o', 'r', 'l', 'd'));
  EXPECT_THAT(EncodeOk(*whole, " world", false), ElementsAre(258));
  // Contractions are their own words; digits go in threes.
  EXPECT_THAT(EncodeOk(*merging, "he's 12345", false),
              ElementsAre(256, '\'', 's', ' ', '1', '2', '3', '4', '5'));
}

TEST(ByteLevelBpeTest, AddedTokensSplitFirstAndDecodeByKind) {
  std::unique_ptr<Tokenizer> tok =
      LoadFromJson(ByteLevelTokenizerJson(Llama3PreTokenizer(), false));
  ASSERT_NE(tok, nullptr);
  EXPECT_THAT(EncodeOk(*tok, "he<|eot_id|>he<tool>", false), ElementsAre(256, 260, 256, 261));
  // Special tokens are left out of the text; plain added tokens stay.
  EXPECT_EQ(tok->Decode({256, 260, 256, 261}), "hehe<tool>");
  EXPECT_EQ(tok->vocab_size(), 262);
}

TEST(ByteLevelBpeTest, MergesAsSpaceSeparatedStrings) {
  json spec = ByteLevelTokenizerJson(Llama3PreTokenizer(), false);
  json merges = json::array();
  for (const json& pair : spec["model"]["merges"]) {
    merges.push_back(pair[0].get<std::string>() + " " + pair[1].get<std::string>());
  }
  spec["model"]["merges"] = merges;
  std::unique_ptr<Tokenizer> tok = LoadFromJson(spec);
  ASSERT_NE(tok, nullptr);
  EXPECT_THAT(EncodeOk(*tok, " whe", false), ElementsAre(259, 256));
}

TEST(ByteLevelBpeTest, CleanUpTokenizationSpacesFromConfig) {
  std::unique_ptr<Tokenizer> tok = LoadFromJson(ByteLevelTokenizerJson(Llama3PreTokenizer(), false),
                                                json{{"clean_up_tokenization_spaces", true}});
  ASSERT_NE(tok, nullptr);
  absl::StatusOr<std::vector<int32_t>> ids = tok->Encode("he 's here , ok .", false);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(tok->Decode(*ids), "he's here, ok.");
}

TEST(HfTokenizerLoadTest, UnsupportedModelTypeIsNamed) {
  json spec = LlamaTwoTokenizerJson();
  spec["model"] = {{"type", "WordPiece"}, {"vocab", {{"a", 0}}}, {"unk_token", "a"}};
  absl::Status status = LoadError(spec);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(status.ToString(), HasSubstr("model type 'WordPiece' is not supported"));
  EXPECT_THAT(status.ToString(), HasSubstr("tokenizer.json"));
}

TEST(HfTokenizerLoadTest, UnsupportedComponentsAreNamed) {
  json spec = LlamaTwoTokenizerJson();
  spec["normalizer"] = {{"type", "NFKC"}};
  absl::Status status = LoadError(spec);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(status.ToString(), HasSubstr("normalizer type 'NFKC'"));

  spec = LlamaTwoTokenizerJson();
  spec["pre_tokenizer"] = {{"type", "BertPreTokenizer"}};
  status = LoadError(spec);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(status.ToString(), HasSubstr("pre_tokenizer type 'BertPreTokenizer'"));

  spec = LlamaTwoTokenizerJson();
  spec["decoder"] = {{"type", "WordPiece"}, {"prefix", "##"}};
  status = LoadError(spec);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(status.ToString(), HasSubstr("decoder type 'WordPiece'"));

  spec = LlamaTwoTokenizerJson();
  spec["model"]["dropout"] = 0.1;
  status = LoadError(spec);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(status.ToString(), HasSubstr("'dropout'"));
}

TEST(HfTokenizerLoadTest, MalformedContentsAreInvalidArgument) {
  json spec = LlamaTwoTokenizerJson();
  spec["model"]["merges"].push_back(M("_hello q"));
  absl::Status status = LoadError(spec);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.ToString(), HasSubstr("merge #9"));
  EXPECT_THAT(status.ToString(), HasSubstr("'q' is not in the vocabulary"));

  spec = LlamaTwoTokenizerJson();
  spec["pre_tokenizer"] = {
      {"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
  status = LoadError(spec);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.ToString(), HasSubstr("(unclosed"));

  spec = LlamaTwoTokenizerJson();
  spec.erase("model");
  status = LoadError(spec);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.ToString(), HasSubstr("no 'model'"));
}

TEST(HfTokenizerLoadTest, BrokenJsonNamesTheFile) {
  const std::filesystem::path dir = MakeTestDir();
  WriteFile(dir / "tokenizer.json", "{\"model\": {\"type\": \"BPE\",");
  absl::Status status = LoadTokenizer(dir).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.ToString(), HasSubstr("tokenizer.json is not valid JSON"));
}

TEST(HfTokenizerLoadTest, ConfigNamingAnUnknownBosIsAnError) {
  const std::filesystem::path dir = MakeTestDir();
  WriteFile(dir / "tokenizer.json", LlamaTwoTokenizerJson().dump());
  WriteFile(dir / "tokenizer_config.json", json{{"bos_token", "<|start|>"}}.dump());
  absl::Status status = LoadTokenizer(dir).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.ToString(), HasSubstr("bos_token '<|start|>'"));
}

TEST(HfTokenizerLoadTest, ConfigCanTurnBosOff) {
  json config = LlamaTwoConfigJson();
  config["add_bos_token"] = false;
  std::unique_ptr<Tokenizer> tok = LoadFromJson(LlamaTwoTokenizerJson(), config);
  ASSERT_NE(tok, nullptr);
  EXPECT_FALSE(tok->adds_bos_by_default());
  EXPECT_EQ(tok->bos_id(), 1);  // Still there for callers that want it.
}

TEST(LoadTokenizerTest, MissingPathsAndFormats) {
  const std::filesystem::path dir = MakeTestDir();
  absl::Status status = LoadTokenizer(dir / "nope").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.ToString(), HasSubstr("nope"));

  status = LoadTokenizer(dir).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.ToString(), HasSubstr("neither tokenizer.json nor tokenizer.bin"));

  WriteFile(dir / "tokenizer.model", "not really protobuf");
  status = LoadTokenizer(dir).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(status.ToString(), HasSubstr("tokenizer.model"));

  status = LoadTokenizer(dir / "tokenizer.model").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
}

TEST(LoadTokenizerTest, LoadsAJsonFileByPathWithItsConfig) {
  const std::filesystem::path dir = MakeTestDir();
  WriteFile(dir / "tokenizer.json", LlamaTwoTokenizerJson().dump());
  json config = LlamaTwoConfigJson();
  config["add_bos_token"] = false;
  WriteFile(dir / "tokenizer_config.json", config.dump());
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = LoadTokenizer(dir / "tokenizer.json");
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_FALSE((*tok)->adds_bos_by_default());
}

}  // namespace
}  // namespace kvplan
