#include "worker/tokenizer/prompt_file.h"

#include <filesystem>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/worker/tokenizer/test_util.h"

namespace kvplan {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using tokenizer_test::MakeTestDir;
using tokenizer_test::SharedPath;
using tokenizer_test::WriteFile;

absl::Status ParseError(std::string_view contents) {
  return ParsePrompts(contents, "prompts.jsonl").status();
}

TEST(PromptFileTest, ReadsTextAndIdsAndIgnoresOtherFields) {
  const std::filesystem::path path = MakeTestDir() / "prompts.jsonl";
  WriteFile(path,
            "{\"id\": \"p0\", \"text\": \"Hello, world!\"}\n"
            "\n"
            "{\"ids\": [0, 407, 3601], \"source\": {\"nested\": true}}\r\n"
            "{\"text\": \"\"}");
  absl::StatusOr<std::vector<Prompt>> prompts = ReadPromptFile(path);
  ASSERT_TRUE(prompts.ok()) << prompts.status();
  ASSERT_EQ(prompts->size(), 3u);
  ASSERT_NE((*prompts)[0].text(), nullptr);
  EXPECT_EQ(*(*prompts)[0].text(), "Hello, world!");
  EXPECT_EQ((*prompts)[0].ids(), nullptr);
  EXPECT_EQ((*prompts)[0].line, 1);
  ASSERT_NE((*prompts)[1].ids(), nullptr);
  EXPECT_THAT(*(*prompts)[1].ids(), ElementsAre(0, 407, 3601));
  EXPECT_EQ((*prompts)[1].line, 3);
  ASSERT_NE((*prompts)[2].text(), nullptr);
  EXPECT_EQ(*(*prompts)[2].text(), "");
}

TEST(PromptFileTest, MalformedLinesNameTheirLine) {
  absl::Status status = ParseError("{\"text\": \"a\"}\n{\"text\": \"b\"}\n{\"text\": \"c\"\n");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.ToString(), HasSubstr("prompts.jsonl:3: malformed JSON"));

  status = ParseError("{\"text\": \"a\"}\n{\"id\": \"p1\"}\n");
  EXPECT_THAT(status.ToString(), HasSubstr("prompts.jsonl:2: has neither \"text\" nor \"ids\""));

  status = ParseError("{\"text\": \"a\", \"ids\": [1]}\n");
  EXPECT_THAT(status.ToString(), HasSubstr("prompts.jsonl:1: has both"));

  status = ParseError("[1, 2]\n");
  EXPECT_THAT(status.ToString(), HasSubstr(":1: expected a JSON object"));

  status = ParseError("{\"text\": 5}\n");
  EXPECT_THAT(status.ToString(), HasSubstr(":1: \"text\" is not a string"));
}

TEST(PromptFileTest, IdsMustBeNonNegativeInt32Integers) {
  for (const char* bad : {"1.5", "\"3\"", "-1", "2147483648", "null", "true"}) {
    SCOPED_TRACE(bad);
    absl::Status status = ParseError(std::string("{\"ids\": [1]}\n{\"ids\": [4, ") + bad + "]}\n");
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(status.ToString(), HasSubstr("prompts.jsonl:2: \"ids\"[1] = "));
  }
  EXPECT_THAT(ParseError("{\"ids\": []}").ToString(), HasSubstr(":1: \"ids\" is not a non-empty"));
  EXPECT_THAT(ParseError("{\"ids\": 7}").ToString(), HasSubstr(":1: \"ids\" is not a non-empty"));
  absl::StatusOr<std::vector<Prompt>> ok = ParsePrompts("{\"ids\": [2147483647]}", "x");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_THAT(*(*ok)[0].ids(), ElementsAre(2147483647));
}

TEST(PromptFileTest, EmptyFilesAreErrors) {
  const std::filesystem::path dir = MakeTestDir();
  WriteFile(dir / "empty.jsonl", "");
  absl::Status status = ReadPromptFile(dir / "empty.jsonl").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.ToString(), HasSubstr("no prompts"));
  EXPECT_THAT(status.ToString(), HasSubstr("empty.jsonl"));

  WriteFile(dir / "blank.jsonl", "\n  \n\r\n");
  EXPECT_THAT(ReadPromptFile(dir / "blank.jsonl").status().ToString(), HasSubstr("no prompts"));
}

TEST(PromptFileTest, MissingFileIsNotFound) {
  absl::Status status = ReadPromptFile(MakeTestDir() / "absent.jsonl").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.ToString(), HasSubstr("absent.jsonl"));
}

TEST(PromptFileTest, ReadsTheSharedCalibrationPrompts) {
  std::optional<std::filesystem::path> path = SharedPath("data/calib-prompts.jsonl");
  if (!path) GTEST_SKIP() << "shared/data/calib-prompts.jsonl is absent";
  absl::StatusOr<std::vector<Prompt>> prompts = ReadPromptFile(*path);
  ASSERT_TRUE(prompts.ok()) << prompts.status();
  EXPECT_EQ(prompts->size(), 4000u);
  for (const Prompt& p : *prompts) ASSERT_NE(p.text(), nullptr) << "line " << p.line;
}

}  // namespace
}  // namespace kvplan
