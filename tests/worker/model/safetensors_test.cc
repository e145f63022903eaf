#include "worker/model/safetensors.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/worker/model/test_util.h"
#include "worker/model/checkpoint.h"

namespace kvplan {
namespace {

using ::kvplan::model_test::F32Bytes;
using ::kvplan::model_test::HeaderAndData;
using ::kvplan::model_test::MakeTestDir;
using ::kvplan::model_test::SafetensorsBytes;
using ::kvplan::model_test::TestTensor;
using ::kvplan::model_test::WriteBytes;
using ::testing::AllOf;
using ::testing::HasSubstr;

// Opens `bytes` written to a file of the running test's directory.
absl::StatusOr<SafetensorsFile> OpenBytes(const std::string& bytes,
                                          const std::string& name = "t.safetensors") {
  const std::filesystem::path path = MakeTestDir() / name;
  WriteBytes(path, bytes);
  return SafetensorsFile::Open(path);
}

TEST(SafetensorsTest, ReadsTensorsWithoutCopying) {
  const std::string bytes = SafetensorsBytes(
      {{.name = "ids", .dtype = "I64", .shape = {1}, .bytes = std::string(8, '\0')},
       {.name = "a", .shape = {2, 3}, .bytes = F32Bytes({1, 2, 3, 4, 5, 6})},
       {.name = "b", .dtype = "BF16", .shape = {2}, .bytes = std::string(4, '\x3f')}});
  absl::StatusOr<SafetensorsFile> file = OpenBytes(bytes);
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_EQ(file->tensors().size(), 3u);
  const TensorView* a = file->Find("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->dtype, DType::kF32);
  EXPECT_EQ(a->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a->num_elements(), 6);
  ASSERT_EQ(a->bytes.size(), 24u);
  float third = 0;
  std::memcpy(&third, a->bytes.data() + 8, 4);
  EXPECT_EQ(third, 3.0f);
  EXPECT_EQ(file->Find("b")->dtype, DType::kBF16);
  // Integer tensors parse (their sizes are checked) but are not compute types.
  EXPECT_EQ(file->Find("ids")->dtype, DType::kOther);
  EXPECT_EQ(file->Find("ids")->dtype_name, "I64");
  EXPECT_EQ(file->Find("missing"), nullptr);
}

TEST(SafetensorsTest, RefusesFileShorterThanHeaderLength) {
  absl::StatusOr<SafetensorsFile> file = OpenBytes("\x10\0\0", "short.safetensors");
  EXPECT_EQ(file.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(file.status().message(),
              AllOf(HasSubstr("short.safetensors"), HasSubstr("shorter than its 8-byte header")));
}

TEST(SafetensorsTest, RefusesTruncatedFile) {
  std::string bytes = SafetensorsBytes(
      {{.name = "weight", .shape = {4, 4}, .bytes = F32Bytes(std::vector<float>(16, 1.0f))}});
  bytes.resize(bytes.size() - 10);
  absl::StatusOr<SafetensorsFile> file = OpenBytes(bytes);
  EXPECT_EQ(file.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(file.status().message(),
              AllOf(HasSubstr("t.safetensors"), HasSubstr("'weight'"), HasSubstr("past the end")));
}

TEST(SafetensorsTest, RefusesHeaderLengthPastTheFile) {
  std::string bytes = HeaderAndData("{}", "");
  bytes[0] = '\x40';  // Claims a 64-byte header; the file has 2.
  absl::StatusOr<SafetensorsFile> file = OpenBytes(bytes);
  EXPECT_EQ(file.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(file.status().message(),
              AllOf(HasSubstr("header length 64 runs past the end"), HasSubstr("t.safetensors")));
}

TEST(SafetensorsTest, RefusesMalformedJson) {
  absl::StatusOr<SafetensorsFile> file = OpenBytes(HeaderAndData("{\"a\": [", ""));
  EXPECT_EQ(file.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(file.status().message(), HasSubstr("malformed JSON"));
}

TEST(SafetensorsTest, RefusesMalformedEntry) {
  absl::StatusOr<SafetensorsFile> file =
      OpenBytes(HeaderAndData(R"({"w": {"dtype": "F32", "shape": [1]}})", "abcd"));
  EXPECT_EQ(file.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(file.status().message(), AllOf(HasSubstr("'w'"), HasSubstr("data_offsets")));
}

TEST(SafetensorsTest, RefusesUnknownDtype) {
  absl::StatusOr<SafetensorsFile> file = OpenBytes(
      HeaderAndData(R"({"w": {"dtype": "Q4_K", "shape": [1], "data_offsets": [0, 1]}})", "x"));
  EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(file.status().message(), AllOf(HasSubstr("'w'"), HasSubstr("Q4_K")));
}

TEST(SafetensorsTest, RefusesSizeNotMatchingShape) {
  absl::StatusOr<SafetensorsFile> file = OpenBytes(SafetensorsBytes(
      {{.name = "w", .shape = {3, 3}, .bytes = F32Bytes(std::vector<float>(8, 0.0f))}}));
  EXPECT_EQ(file.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(file.status().message(), AllOf(HasSubstr("'w'"), HasSubstr("hold 32 bytes"),
                                             HasSubstr("[3, 3]"), HasSubstr("needs 36")));
}

TEST(SafetensorsTest, RefusesOverlappingTensors) {
  // Header of 48 bytes keeps the data 8-aligned.
  std::string header = R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},)"
                       R"( "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})";
  while ((8 + header.size()) % 8 != 0) header += ' ';
  absl::StatusOr<SafetensorsFile> file = OpenBytes(HeaderAndData(header, std::string(16, '\0')));
  EXPECT_EQ(file.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(file.status().message(),
              AllOf(HasSubstr("'b'"), HasSubstr("overlaps"), HasSubstr("'a'")));
}

TEST(SafetensorsTest, RefusesMisalignedTensor) {
  std::string header = R"({"a": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2]},)"
                       R"( "b": {"dtype": "F32", "shape": [1], "data_offsets": [2, 6]}})";
  while ((8 + header.size()) % 8 != 0) header += ' ';
  absl::StatusOr<SafetensorsFile> file = OpenBytes(HeaderAndData(header, std::string(8, '\0')));
  EXPECT_EQ(file.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(file.status().message(), AllOf(HasSubstr("'b'"), HasSubstr("not aligned")));
}

TEST(SafetensorsTest, MissingFileIsNotFound) {
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Open(MakeTestDir() / "nope.safetensors");
  EXPECT_EQ(file.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(file.status().message(), HasSubstr("nope.safetensors"));
}

TEST(CheckpointTest, FindsTensorsAcrossShards) {
  const std::filesystem::path dir = MakeTestDir();
  WriteBytes(dir / "config.json", R"({"architectures": ["LlamaForCausalLM"]})");
  WriteBytes(dir / "s1.safetensors",
             SafetensorsBytes({{.name = "x", .shape = {1}, .bytes = F32Bytes({1})}}));
  WriteBytes(dir / "s2.safetensors",
             SafetensorsBytes({{.name = "y", .shape = {2}, .bytes = F32Bytes({2, 3})}}));
  WriteBytes(dir / "model.safetensors.index.json",
             R"({"weight_map": {"x": "s1.safetensors", "y": "s2.safetensors"}})");
  absl::StatusOr<Checkpoint> ckpt = Checkpoint::Open(dir);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  ASSERT_NE(ckpt->Find("y"), nullptr);
  EXPECT_EQ(ckpt->Find("y")->shape, (std::vector<int64_t>{2}));
  EXPECT_EQ(ckpt->TensorNames(), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(ckpt->total_bytes(), 12u);
  EXPECT_EQ(ckpt->config()["architectures"][0], "LlamaForCausalLM");
}

TEST(CheckpointTest, RefusesIndexNamingAbsentTensorOrShard) {
  const std::filesystem::path dir = MakeTestDir();
  WriteBytes(dir / "config.json", "{}");
  WriteBytes(dir / "s1.safetensors",
             SafetensorsBytes({{.name = "x", .shape = {1}, .bytes = F32Bytes({1})}}));
  WriteBytes(dir / "model.safetensors.index.json",
             R"({"weight_map": {"x": "s1.safetensors", "z": "s1.safetensors"}})");
  absl::StatusOr<Checkpoint> ckpt = Checkpoint::Open(dir);
  EXPECT_EQ(ckpt.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(ckpt.status().message(), AllOf(HasSubstr("'z'"), HasSubstr("s1.safetensors")));

  WriteBytes(dir / "model.safetensors.index.json",
             R"({"weight_map": {"x": "s1.safetensors", "z": "s9.safetensors"}})");
  ckpt = Checkpoint::Open(dir);
  EXPECT_EQ(ckpt.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(ckpt.status().message(), HasSubstr("s9.safetensors"));

  WriteBytes(dir / "model.safetensors.index.json", R"({"weight_map": {"x": "../s1.safetensors"}})");
  ckpt = Checkpoint::Open(dir);
  EXPECT_EQ(ckpt.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CheckpointTest, RefusesDirectoryWithoutWeightsOrConfig) {
  const std::filesystem::path dir = MakeTestDir();
  absl::StatusOr<Checkpoint> ckpt = Checkpoint::Open(dir);
  EXPECT_EQ(ckpt.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(ckpt.status().message(), HasSubstr("config.json"));
  WriteBytes(dir / "config.json", "{}");
  ckpt = Checkpoint::Open(dir);
  EXPECT_EQ(ckpt.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(ckpt.status().message(), HasSubstr("model.safetensors"));
  WriteBytes(dir / "config.json", "{not json");
  ckpt = Checkpoint::Open(dir);
  EXPECT_EQ(ckpt.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ckpt.status().message(), HasSubstr("config.json"));
}

}  // namespace
}  // namespace kvplan
