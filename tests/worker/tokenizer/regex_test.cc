#include "worker/tokenizer/regex.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kvplan::tokenizer_internal {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Match = Regex::Match;

TEST(RegexTest, FindsUnicodeClassesAndSkipsEmptyMatches) {
  absl::StatusOr<Regex> re = Regex::Compile(R"(\p{N}{1,3}|\p{L}+|x*)");
  ASSERT_TRUE(re.ok()) << re.status();
  std::vector<Match> m;
  ASSERT_TRUE(re->FindAll("ab 12345 \xC3\xA9t\xC3\xA9", &m).ok());
  EXPECT_THAT(m, ElementsAre(Match{0, 2}, Match{3, 6}, Match{6, 8}, Match{9, 14}));
}

TEST(RegexTest, UnicodeWhitespaceAndCaseInsensitiveGroups) {
  absl::StatusOr<Regex> re = Regex::Compile(R"((?i:'s)|\s+)");
  ASSERT_TRUE(re.ok()) << re.status();
  std::vector<Match> m;
  // U+3000 (ideographic space) is whitespace under PCRE2_UCP.
  ASSERT_TRUE(re->FindAll("it'S\xE3\x80\x80x", &m).ok());
  EXPECT_THAT(m, ElementsAre(Match{2, 4}, Match{4, 7}));
}

TEST(RegexTest, LiteralPatterns) {
  absl::StatusOr<Regex> re = Regex::Compile("a.b", /*literal=*/true);
  ASSERT_TRUE(re.ok()) << re.status();
  std::vector<Match> m;
  ASSERT_TRUE(re->FindAll("axb a.b", &m).ok());
  EXPECT_THAT(m, ElementsAre(Match{4, 7}));
}

TEST(RegexTest, BadPatternNamesOffset) {
  absl::StatusOr<Regex> re = Regex::Compile("ab(c");
  ASSERT_FALSE(re.ok());
  EXPECT_EQ(re.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(re.status().ToString(), HasSubstr("/ab(c/ at offset 4"));
}

TEST(RegexTest, DeepBacktrackingFallsBackFromJit) {
  // Each repetition of the group leaves a backtracking frame: 100k of them
  // overflow the JIT's default stack (PCRE2_ERROR_JIT_STACKLIMIT), and the
  // interpreter, which keeps them on the heap, must take over.
  absl::StatusOr<Regex> re = Regex::Compile("(?:a|b)*x");
  ASSERT_TRUE(re.ok()) << re.status();
  const std::string text = std::string(100000, 'a') + "x";
  std::vector<Match> m;
  ASSERT_TRUE(re->FindAll(text, &m).ok());
  EXPECT_THAT(m, ElementsAre(Match{0, 100001}));
}

TEST(RegexTest, LongWhitespaceRuns) {
  absl::StatusOr<Regex> re = Regex::Compile(R"(\s+(?!\S)|\s+)");
  ASSERT_TRUE(re.ok()) << re.status();
  const std::string text = std::string(500000, ' ') + "x";
  std::vector<Match> m;
  ASSERT_TRUE(re->FindAll(text, &m).ok());
  EXPECT_THAT(m, ElementsAre(Match{0, 499999}, Match{499999, 500000}));
}

}  // namespace
}  // namespace kvplan::tokenizer_internal
