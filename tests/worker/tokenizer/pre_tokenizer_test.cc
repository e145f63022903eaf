// Pre-tokenizers from their tokenizer.json specs; expectations are what
// Hugging Face `tokenizers` gives for the same specs and inputs.
#include "worker/tokenizer/pre_tokenizer.h"

#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace kvplan::tokenizer_internal {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using json = nlohmann::json;

std::vector<std::string> PreTokenize(const json& spec, std::string text,
                                     bool at_text_start = true) {
  absl::StatusOr<std::unique_ptr<PreTokenizer>> pre = PreTokenizerFromJson(spec);
  EXPECT_TRUE(pre.ok()) << pre.status();
  if (!pre.ok()) return {};
  std::vector<std::string> words = {std::move(text)};
  absl::Status status = (*pre)->PreTokenize(&words, at_text_start);
  EXPECT_TRUE(status.ok()) << status;
  return words;
}

json Split(const std::string& behavior, bool invert) {
  return {{"type", "Split"},
          {"pattern", {{"String", "-"}}},
          {"behavior", behavior},
          {"invert", invert}};
}

TEST(PreTokenizerTest, SplitBehaviors) {
  EXPECT_THAT(PreTokenize(Split("Removed", false), "a-b--c"), ElementsAre("a", "b", "c"));
  EXPECT_THAT(PreTokenize(Split("Removed", true), "a-b--c"), ElementsAre("-", "-", "-"));
  EXPECT_THAT(PreTokenize(Split("Isolated", false), "a-b--c"),
              ElementsAre("a", "-", "b", "-", "-", "c"));
  EXPECT_THAT(PreTokenize(Split("MergedWithPrevious", false), "a-b--c"),
              ElementsAre("a-", "b-", "-", "c"));
  EXPECT_THAT(PreTokenize(Split("MergedWithPrevious", true), "a-b--c"),
              ElementsAre("a", "-b", "-", "-c"));
  EXPECT_THAT(PreTokenize(Split("MergedWithNext", false), "a-b--c"),
              ElementsAre("a", "-b", "-", "-c"));
  EXPECT_THAT(PreTokenize(Split("MergedWithNext", false), "--a-"), ElementsAre("-", "-a", "-"));
  EXPECT_THAT(PreTokenize(Split("Contiguous", false), "a-b--c"),
              ElementsAre("a", "-", "b", "--", "c"));
  EXPECT_THAT(PreTokenize(Split("Contiguous", false), "--a-"), ElementsAre("--", "a", "-"));
}

TEST(PreTokenizerTest, UnknownSplitBehaviorIsNamed) {
  absl::StatusOr<std::unique_ptr<PreTokenizer>> pre =
      PreTokenizerFromJson(Split("Sideways", false));
  ASSERT_FALSE(pre.ok());
  EXPECT_EQ(pre.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(pre.status().ToString(), HasSubstr("'Sideways'"));
}

TEST(PreTokenizerTest, ByteLevelWithGpt2Regex) {
  const json spec = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}};
  EXPECT_THAT(PreTokenize(spec, "Hi,  you're 12345!"),
              ElementsAre("\xC4\xA0Hi", ",", "\xC4\xA0", "\xC4\xA0you", "'re",
                          "\xC4\xA0"
                          "12345",
                          "!"));
}

TEST(PreTokenizerTest, ByteLevelPrefixesEveryWordItIsGiven) {
  const json spec = {
      {"type", "Sequence"},
      {"pretokenizers",
       json::array({{{"type", "Split"}, {"pattern", {{"String", " "}}}, {"behavior", "Removed"}},
                    {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", false}}})}};
  EXPECT_THAT(PreTokenize(spec, "a b  c"), ElementsAre("\xC4\xA0"
                                                       "a",
                                                       "\xC4\xA0"
                                                       "b",
                                                       "\xC4\xA0"
                                                       "c"));
}

TEST(PreTokenizerTest, MetaspaceSchemes) {
  const json always = {{"type", "Metaspace"},
                       {"replacement", "\xE2\x96\x81"},
                       {"prepend_scheme", "always"},
                       {"split", true}};
  EXPECT_THAT(PreTokenize(always, "hello  big world"),
              ElementsAre("\xE2\x96\x81hello", "\xE2\x96\x81",
                          "\xE2\x96\x81"
                          "big",
                          "\xE2\x96\x81world"));
  const json first = {
      {"type", "Sequence"},
      {"pretokenizers",
       json::array({{{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", "Isolated"}},
                    {{"type", "Metaspace"},
                     {"replacement", "\xE2\x96\x81"},
                     {"prepend_scheme", "first"},
                     {"split", false}}})}};
  EXPECT_THAT(PreTokenize(first, "a b-c d"), ElementsAre("\xE2\x96\x81"
                                                         "a\xE2\x96\x81"
                                                         "b",
                                                         "-",
                                                         "c\xE2\x96\x81"
                                                         "d"));
  EXPECT_THAT(PreTokenize(first, "a b", /*at_text_start=*/false), ElementsAre("a\xE2\x96\x81"
                                                                              "b"));
  // Files from before prepend_scheme: add_prefix_space false means never.
  const json legacy = {
      {"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"add_prefix_space", false}};
  EXPECT_THAT(PreTokenize(legacy, "a b"), ElementsAre("a",
                                                      "\xE2\x96\x81"
                                                      "b"));
}

TEST(PreTokenizerTest, Digits) {
  EXPECT_THAT(PreTokenize({{"type", "Digits"}, {"individual_digits", false}}, "ab12c345"),
              ElementsAre("ab", "12", "c", "345"));
  EXPECT_THAT(PreTokenize({{"type", "Digits"}, {"individual_digits", true}}, "ab12c345"),
              ElementsAre("ab", "1", "2", "c", "3", "4", "5"));
}

TEST(PreTokenizerTest, NullMeansNoPreTokenizer) {
  absl::StatusOr<std::unique_ptr<PreTokenizer>> pre = PreTokenizerFromJson(json());
  ASSERT_TRUE(pre.ok());
  EXPECT_EQ(*pre, nullptr);
}

}  // namespace
}  // namespace kvplan::tokenizer_internal
