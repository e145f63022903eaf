#include "core/file_io.h"

#include <unistd.h>

#include <filesystem>

#include "gtest/gtest.h"

namespace kvplan {
namespace {

TEST(FileIoTest, WriteAtomicallyThenReadBack) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("kvplan_file_io_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::filesystem::path path = dir / "x.bin";
  const std::string payload("a\0b\xff", 4);
  ASSERT_TRUE(WriteFileAtomically(path, payload).ok());
  ASSERT_TRUE(WriteFileAtomically(path, payload + payload).ok());  // Replaces.
  absl::StatusOr<std::string> back = ReadFile(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, payload + payload);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir), {}), 1) << "temp file left";
  EXPECT_EQ(ReadFile(path, 3).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadFile(dir).status().code(), absl::StatusCode::kInvalidArgument);
  absl::Status missing = ReadFile(dir / "nope").status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.message().find("nope"), absl::string_view::npos);
  EXPECT_FALSE(WriteFileAtomically(dir / "no" / "such" / "dir", "x").ok());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace kvplan
