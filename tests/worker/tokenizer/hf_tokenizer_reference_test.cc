// doc-llama-h64's byte-level BPE tokenizer.json against the encodings that the
// Hugging Face implementation produced (shared/reference/...vectors.json).
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/worker/tokenizer/test_util.h"
#include "worker/tokenizer/prompt_file.h"
#include "worker/tokenizer/tokenizer.h"

namespace kvplan {
namespace {

using ::testing::ElementsAre;
using tokenizer_test::ReadFile;
using tokenizer_test::SharedPath;

class DocLlamaTokenizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_dir_ = SharedPath("models/doc-llama-h64");
    vectors_ = SharedPath("reference/doc-llama-h64.vectors.json");
    if (!model_dir_ || !vectors_) {
      GTEST_SKIP() << "shared/models/doc-llama-h64 or shared/reference/doc-llama-h64.vectors.json "
                      "is absent";
    }
    absl::StatusOr<std::unique_ptr<Tokenizer>> tok = LoadTokenizer(*model_dir_);
    ASSERT_TRUE(tok.ok()) << tok.status();
    tokenizer_ = *std::move(tok);
    reference_ = nlohmann::json::parse(ReadFile(*vectors_));
  }

  std::optional<std::filesystem::path> model_dir_;
  std::optional<std::filesystem::path> vectors_;
  std::unique_ptr<Tokenizer> tokenizer_;
  nlohmann::json reference_;
};

TEST_F(DocLlamaTokenizerTest, SpecialTokensAndBos) {
  EXPECT_EQ(tokenizer_->bos_id(), 0);
  EXPECT_EQ(tokenizer_->eos_id(), 1);
  EXPECT_EQ(tokenizer_->vocab_size(), 4096);
  // No add_bos_token in tokenizer_config.json: the post-processor template
  // (BOS then the text) decides.
  EXPECT_TRUE(tokenizer_->adds_bos_by_default());
}

TEST_F(DocLlamaTokenizerTest, MatchesReferenceEncodings) {
  ASSERT_TRUE(reference_.contains("tokenizer"));
  ASSERT_FALSE(reference_["tokenizer"].empty());
  for (const nlohmann::json& entry : reference_["tokenizer"]) {
    const std::string text = entry["text"].get<std::string>();
    SCOPED_TRACE("text: \"" + text + "\"");
    const auto ids = entry["ids"].get<std::vector<int32_t>>();
    const auto ids_with_bos = entry["ids_with_bos"].get<std::vector<int32_t>>();
    absl::StatusOr<std::vector<int32_t>> encoded = tokenizer_->Encode(text, false);
    ASSERT_TRUE(encoded.ok()) << encoded.status();
    EXPECT_EQ(*encoded, ids);
    absl::StatusOr<std::vector<int32_t>> encoded_bos = tokenizer_->Encode(text, true);
    ASSERT_TRUE(encoded_bos.ok()) << encoded_bos.status();
    EXPECT_EQ(*encoded_bos, ids_with_bos);
    EXPECT_EQ(tokenizer_->Decode(ids), text);
    EXPECT_EQ(tokenizer_->Decode(ids_with_bos), text);
  }
}

TEST_F(DocLlamaTokenizerTest, GreedyOutputDecodesToReferenceText) {
  if (!reference_.contains("greedy")) GTEST_SKIP() << "reference has no greedy section";
  const nlohmann::json& greedy = reference_["greedy"];
  const auto prompt_ids = greedy["prompt_ids"].get<std::vector<int32_t>>();
  const auto output_ids = greedy["output_ids"].get<std::vector<int32_t>>();
  const std::string output_text = greedy["output_text"].get<std::string>();
  // output_ids begin with the prompt; output_text is the decoded whole.
  ASSERT_GE(output_ids.size(), prompt_ids.size());
  EXPECT_TRUE(std::equal(prompt_ids.begin(), prompt_ids.end(), output_ids.begin()));
  EXPECT_EQ(tokenizer_->Decode(output_ids), output_text);
  EXPECT_TRUE(output_text.starts_with(tokenizer_->Decode(prompt_ids)));
  absl::StatusOr<std::vector<int32_t>> reencoded =
      tokenizer_->Encode(tokenizer_->Decode(prompt_ids), true);
  ASSERT_TRUE(reencoded.ok()) << reencoded.status();
  EXPECT_EQ(*reencoded, prompt_ids);
}

TEST_F(DocLlamaTokenizerTest, SpecialTokenTextEncodesToItsId) {
  absl::StatusOr<std::vector<int32_t>> ids =
      tokenizer_->Encode("Hello<|end_of_text|><|begin_of_text|>", false);
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_THAT(*ids, ElementsAre(41, 1034, 80, 1, 0));
  EXPECT_EQ(tokenizer_->Decode(*ids), "Hello");
}

TEST_F(DocLlamaTokenizerTest, RejectsInvalidUtf8) {
  absl::StatusOr<std::vector<int32_t>> ids = tokenizer_->Encode("ok \xC3\x28", false);
  ASSERT_FALSE(ids.ok());
  EXPECT_EQ(ids.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ids.status().ToString(), ::testing::HasSubstr("byte 3"));
}

TEST_F(DocLlamaTokenizerTest, LongWhitespaceRunsEncode) {
  // `\s+(?!\S)` backtracks over the whole run: no quadratic blow-up, no
  // failure, and every byte comes back.
  const std::string text = "a" + std::string(200000, ' ') + "b";
  absl::StatusOr<std::vector<int32_t>> ids = tokenizer_->Encode(text, false);
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ(tokenizer_->Decode(*ids), text);
}

// The fidelity reference's token ids are the leading tokens of the text
// windows in shared/data.
TEST_F(DocLlamaTokenizerTest, MatchesBlockGtqReferenceWindows) {
  std::optional<std::filesystem::path> reference_path =
      SharedPath("reference/doc-llama-h64.blockgtq-reference.json");
  std::optional<std::filesystem::path> calib = SharedPath("data/calib-window.txt");
  std::optional<std::filesystem::path> test = SharedPath("data/test-window.txt");
  if (!reference_path || !calib || !test) {
    GTEST_SKIP() << "shared/reference/doc-llama-h64.blockgtq-reference.json or "
                    "shared/data/{calib,test}-window.txt is absent";
  }
  const nlohmann::json reference = nlohmann::json::parse(ReadFile(*reference_path));
  for (const auto& [window, key] :
       {std::pair{*calib, "calib_token_ids"}, std::pair{*test, "test_token_ids"}}) {
    SCOPED_TRACE(key);
    const auto expected = reference[key].get<std::vector<int32_t>>();
    absl::StatusOr<std::vector<int32_t>> ids = tokenizer_->Encode(ReadFile(window), false);
    ASSERT_TRUE(ids.ok()) << ids.status();
    ASSERT_GE(ids->size(), expected.size());
    ids->resize(expected.size());
    EXPECT_EQ(*ids, expected);
  }
}

// Every calibration prompt survives the round trip text -> ids -> text.
TEST_F(DocLlamaTokenizerTest, CalibrationPromptsRoundTrip) {
  std::optional<std::filesystem::path> path = SharedPath("data/calib-prompts.jsonl");
  if (!path) GTEST_SKIP() << "shared/data/calib-prompts.jsonl is absent";
  absl::StatusOr<std::vector<Prompt>> prompts = ReadPromptFile(*path);
  ASSERT_TRUE(prompts.ok()) << prompts.status();
  size_t tokens = 0;
  for (const Prompt& prompt : *prompts) {
    ASSERT_NE(prompt.text(), nullptr) << "line " << prompt.line;
    absl::StatusOr<std::vector<int32_t>> ids = tokenizer_->Encode(*prompt.text(), false);
    ASSERT_TRUE(ids.ok()) << "line " << prompt.line << ": " << ids.status();
    ASSERT_EQ(tokenizer_->Decode(*ids), *prompt.text()) << "line " << prompt.line;
    tokens += ids->size();
  }
  // Merges make tokens far fewer than bytes.
  EXPECT_GT(tokens, prompts->size());
}

// Encode is const and shares the BPE word cache: threads must agree with a
// single-threaded run (and stay clean under TSan).
TEST_F(DocLlamaTokenizerTest, ConcurrentEncodesAgree) {
  std::optional<std::filesystem::path> path = SharedPath("data/eval-prompts.jsonl");
  if (!path) GTEST_SKIP() << "shared/data/eval-prompts.jsonl is absent";
  absl::StatusOr<std::vector<Prompt>> prompts = ReadPromptFile(*path);
  ASSERT_TRUE(prompts.ok()) << prompts.status();
  constexpr int kThreads = 4;
  std::vector<std::vector<std::vector<int32_t>>> results(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (const Prompt& prompt : *prompts) {
        absl::StatusOr<std::vector<int32_t>> ids = tokenizer_->Encode(*prompt.text(), true);
        results[t].push_back(ids.ok() ? *std::move(ids) : std::vector<int32_t>{-1});
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 1; t < kThreads; ++t) EXPECT_EQ(results[t], results[0]) << "thread " << t;
  ASSERT_EQ(results[0].size(), prompts->size());
  EXPECT_NE(results[0][0], std::vector<int32_t>{-1});
}

}  // namespace
}  // namespace kvplan
