// llama2.c tokenizer.bin: stories260K's reference prompt and continuation, a
// synthetic vocabulary for merge order and byte fallback, and corrupt files.
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/worker/tokenizer/test_util.h"
#include "worker/tokenizer/tokenizer.h"

namespace kvplan {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using tokenizer_test::MakeTestDir;
using tokenizer_test::ReadFile;
using tokenizer_test::SharedPath;
using tokenizer_test::WriteFile;

std::vector<int32_t> EncodeOk(const Tokenizer& tok, std::string_view text, bool add_bos) {
  absl::StatusOr<std::vector<int32_t>> ids = tok.Encode(text, add_bos);
  EXPECT_TRUE(ids.ok()) << ids.status();
  return ids.ok() ? *ids : std::vector<int32_t>{};
}

TEST(Llama2cTokenizerTest, Stories260kReference) {
  std::optional<std::filesystem::path> dir = SharedPath("models/stories260K/hf");
  if (!dir) GTEST_SKIP() << "shared/models/stories260K/hf is absent";
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = LoadTokenizer(*dir);
  ASSERT_TRUE(tok.ok()) << tok.status();
  const nlohmann::json reference = nlohmann::json::parse(ReadFile(*dir / "reference.json"));
  const std::string prompt = reference["prompt"].get<std::string>();
  const auto prompt_ids = reference["prompt_token_ids"].get<std::vector<int32_t>>();
  EXPECT_EQ(EncodeOk(**tok, prompt, true), prompt_ids);
  EXPECT_EQ((*tok)->Decode(prompt_ids), prompt);

  // greedy_token_ids start with the prompt (BOS included); greedy_text is the
  // pieces after BOS concatenated, so it keeps the dummy-prefix space that
  // llama2.c's decode drops after BOS.
  const auto greedy_ids = reference["greedy_token_ids"].get<std::vector<int32_t>>();
  const std::string greedy_text = reference["greedy_text"].get<std::string>();
  ASSERT_TRUE(greedy_text.starts_with(" " + prompt));
  EXPECT_EQ((*tok)->Decode(greedy_ids), greedy_text.substr(1));
  EXPECT_EQ((*tok)->Decode(absl::MakeConstSpan(greedy_ids).subspan(1)), greedy_text);

  EXPECT_EQ((*tok)->bos_id(), 1);
  EXPECT_EQ((*tok)->eos_id(), 2);
  EXPECT_EQ((*tok)->vocab_size(), 512);
  EXPECT_TRUE((*tok)->adds_bos_by_default());
}

// Serializes a tokenizer.bin: <unk>, BOS, EOS, the 256 byte tokens, `pieces`.
std::string MakeTokenizerBin(const std::vector<std::pair<std::string, float>>& pieces) {
  std::vector<std::pair<std::string, float>> all = {
      {"<unk>", 0.0f}, {"\n<s>\n", 0.0f}, {"\n</s>\n", 0.0f}};
  for (int b = 0; b < 256; ++b) all.emplace_back(absl::StrFormat("<0x%02X>", b), 0.0f);
  all.insert(all.end(), pieces.begin(), pieces.end());
  int32_t max_len = 0;
  for (const auto& [piece, score] : all) max_len = std::max<int32_t>(max_len, piece.size());
  std::string out;
  auto put = [&out](const void* p, size_t n) { out.append(static_cast<const char*>(p), n); };
  put(&max_len, 4);
  for (const auto& [piece, score] : all) {
    const auto len = static_cast<int32_t>(piece.size());
    put(&score, 4);
    put(&len, 4);
    out += piece;
  }
  return out;
}

// 259 " "  260 "a"  261 "b"  262 "ab"(1)  263 "ba"(1)  264 " a"(0.5)  265 "aba"(3)
// 266 "bb"(-2e10: below llama2.c's merge threshold)
std::unique_ptr<Tokenizer> LoadSynthetic() {
  const std::filesystem::path path = MakeTestDir() / "tokenizer.bin";
  WriteFile(path, MakeTokenizerBin({{" ", 0.0f},
                                    {"a", 0.0f},
                                    {"b", 0.0f},
                                    {"ab", 1.0f},
                                    {"ba", 1.0f},
                                    {" a", 0.5f},
                                    {"aba", 3.0f},
                                    {"bb", -2e10f}}));
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = LoadTokenizer(path);
  EXPECT_TRUE(tok.ok()) << tok.status();
  return tok.ok() ? *std::move(tok) : nullptr;
}

TEST(Llama2cTokenizerTest, HighestScoreFirstLeftmostOnTies) {
  std::unique_ptr<Tokenizer> tok = LoadSynthetic();
  ASSERT_NE(tok, nullptr);
  // " a b a": "ab" and "ba" tie at 1, the left one wins, then "aba" (3).
  // Had "ba" won, " a" (0.5) would have come next: {264, 263}.
  EXPECT_THAT(EncodeOk(*tok, "aba", false), ElementsAre(259, 265));
  EXPECT_THAT(EncodeOk(*tok, "aba", true), ElementsAre(1, 259, 265));
  EXPECT_THAT(EncodeOk(*tok, "a", false), ElementsAre(264));
  EXPECT_THAT(EncodeOk(*tok, "bb", false), ElementsAre(259, 261, 261));
}

TEST(Llama2cTokenizerTest, EmptyTextHasNoDummyPrefix) {
  std::unique_ptr<Tokenizer> tok = LoadSynthetic();
  ASSERT_NE(tok, nullptr);
  EXPECT_THAT(EncodeOk(*tok, "", false), IsEmpty());
  EXPECT_THAT(EncodeOk(*tok, "", true), ElementsAre(1));
}

TEST(Llama2cTokenizerTest, ByteFallbackAndDecode) {
  std::unique_ptr<Tokenizer> tok = LoadSynthetic();
  ASSERT_NE(tok, nullptr);
  // 'é' (C3 A9) is no piece: its bytes are ids 3 + byte.
  EXPECT_THAT(EncodeOk(*tok, "\xC3\xA9", false), ElementsAre(259, 3 + 0xC3, 3 + 0xA9));
  EXPECT_EQ(tok->Decode({1, 259, 3 + 0xC3, 3 + 0xA9, 2}), "\xC3\xA9");
  // The space after BOS is the dummy prefix; elsewhere it is text.
  EXPECT_EQ(tok->Decode({1, 264, 259, 265}), "a aba");
  EXPECT_EQ(tok->Decode({264, 259, 265}), " a aba");
  // Invalid UTF-8 is encoded byte by byte, as llama2.c does.
  EXPECT_THAT(EncodeOk(*tok, "\xFF", false), ElementsAre(259, 3 + 0xFF));
}

TEST(Llama2cTokenizerTest, TruncatedFilesAreDataLoss) {
  const std::string good = MakeTokenizerBin({{" ", 0.0f}});
  const std::filesystem::path dir = MakeTestDir();
  // Cut inside record 100's piece, then inside record 259's header.
  const size_t record_100_piece = 4 + 3 * 8 + 5 + 5 + 6 + 97 * (8 + 6) + 8 + 2;
  WriteFile(dir / "tokenizer.bin", good.substr(0, record_100_piece));
  absl::Status status = LoadTokenizer(dir).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.ToString(), HasSubstr("record 100 is truncated"));

  WriteFile(dir / "tokenizer.bin", good.substr(0, good.size() - 1 - 8 + 3));
  status = LoadTokenizer(dir).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.ToString(), HasSubstr("record 259"));

  WriteFile(dir / "tokenizer.bin", good.substr(0, 2));
  status = LoadTokenizer(dir).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.ToString(), HasSubstr("max_token_length"));

  // Whole records, but too few for the byte tokens.
  WriteFile(dir / "tokenizer.bin", good.substr(0, 4 + 3 * 8 + 5 + 5 + 6));
  status = LoadTokenizer(dir).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.ToString(), HasSubstr("3 tokens"));
}

TEST(Llama2cTokenizerTest, TruncatedStoriesTokenizerIsDataLoss) {
  std::optional<std::filesystem::path> bin = SharedPath("models/stories260K/hf/tokenizer.bin");
  if (!bin) GTEST_SKIP() << "shared/models/stories260K/hf/tokenizer.bin is absent";
  const std::string data = ReadFile(*bin);
  const std::filesystem::path path = MakeTestDir() / "tokenizer.bin";
  WriteFile(path, data.substr(0, data.size() / 2));
  absl::Status status = LoadTokenizer(path).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.ToString(), HasSubstr("truncated"));
}

TEST(Llama2cTokenizerTest, OverlongPieceIsDataLoss) {
  std::string data = MakeTokenizerBin({{" ", 0.0f}});
  const int32_t max_len = 2;  // Every "<0xXX>" piece is longer.
  std::memcpy(data.data(), &max_len, 4);
  const std::filesystem::path path = MakeTestDir() / "tokenizer.bin";
  WriteFile(path, data);
  absl::Status status = LoadTokenizer(path).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.ToString(), HasSubstr("record 0 has length 5"));
}

}  // namespace
}  // namespace kvplan
