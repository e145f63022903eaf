#include "worker/tokenizer/added_vocabulary.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace kvplan::tokenizer_internal {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::json;

json Token(int id, const std::string& content, bool lstrip = false, bool rstrip = false,
           bool single_word = false) {
  return {{"id", id},           {"content", content}, {"special", true},
          {"lstrip", lstrip},   {"rstrip", rstrip},   {"single_word", single_word},
          {"normalized", false}};
}

// Segments as "text" or "#id" for compact expectations.
std::vector<std::string> Show(const AddedVocabulary& added, std::string_view text) {
  std::vector<std::string> out;
  for (const AddedVocabulary::Segment& s : added.Split(text)) {
    out.push_back(s.id ? "#" + std::to_string(*s.id) : std::string(s.text));
  }
  return out;
}

TEST(AddedVocabularyTest, LeftmostLongestMatch) {
  absl::StatusOr<AddedVocabulary> added = AddedVocabulary::FromJson(
      json::array({Token(10, "<|a|>"), Token(11, "<|a|><|a|>"), Token(12, "<|b")}));
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_THAT(Show(*added, "x<|a|><|a|><|a|>y<|b|>"),
              ::testing::ElementsAre("x", "#11", "#10", "y", "#12", "|>"));
  EXPECT_THAT(Show(*added, "plain"), ::testing::ElementsAre("plain"));
  EXPECT_THAT(Show(*added, ""), ::testing::IsEmpty());
  EXPECT_EQ(added->TokenToId("<|b"), 12);
  EXPECT_EQ(added->FindById(11)->content, "<|a|><|a|>");
  EXPECT_EQ(added->id_limit(), 13);
}

TEST(AddedVocabularyTest, StripAndSingleWord) {
  absl::StatusOr<AddedVocabulary> added = AddedVocabulary::FromJson(
      json::array({Token(5, "<mask>", /*lstrip=*/true), Token(6, "<eol>", false, /*rstrip=*/true),
                   Token(7, "cat", false, false, /*single_word=*/true)}));
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_THAT(Show(*added, "a  <mask> b"), ::testing::ElementsAre("a", "#5", " b"));
  EXPECT_THAT(Show(*added, "a<eol> \n b"), ::testing::ElementsAre("a", "#6", "b"));
  EXPECT_THAT(Show(*added, "a cat, concat cats"),
              ::testing::ElementsAre("a ", "#7", ", concat cats"));
}

TEST(AddedVocabularyTest, MalformedEntriesAreNamed) {
  absl::StatusOr<AddedVocabulary> added =
      AddedVocabulary::FromJson(json::array({Token(1, "<s>"), json{{"id", "two"}}}));
  ASSERT_FALSE(added.ok());
  EXPECT_THAT(added.status().ToString(), HasSubstr("added_tokens[1]"));
  added = AddedVocabulary::FromJson(json::array({Token(1, "<s>"), Token(1, "</s>")}));
  ASSERT_FALSE(added.ok());
  EXPECT_THAT(added.status().ToString(), HasSubstr("repeats id 1"));
}

}  // namespace
}  // namespace kvplan::tokenizer_internal
