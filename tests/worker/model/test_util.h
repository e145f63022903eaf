// Helpers for the model runtime tests: shared material, scratch directories,
// and writers for small safetensors files and checkpoints.
#ifndef KVPLAN_TESTS_WORKER_MODEL_TEST_UTIL_H_
#define KVPLAN_TESTS_WORKER_MODEL_TEST_UTIL_H_

#include <sys/wait.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/common/shared_path.h"

namespace kvplan::model_test {

// See tests/common/shared_path.h.
inline std::optional<std::filesystem::path> SharedPath(std::string_view relative) {
  return ::kvplan::testing::FindSharedPath(relative);
}

// Skips the running test when shared material is absent.
#define KVPLAN_REQUIRE_SHARED(var, relative)                                           \
  const std::optional<std::filesystem::path> var##_opt =                               \
      ::kvplan::model_test::SharedPath(relative);                                      \
  if (!var##_opt) GTEST_SKIP() << "../shared/" << (relative) << " is absent; skipped"; \
  const std::filesystem::path var = *var##_opt

// A fresh, empty directory for the running test, unique per call. Made with
// mkdtemp rather than by clearing a fixed path: PyTorch's wheel LibTorch
// exports a broken std::filesystem::remove_all that interposes libstdc++'s.
inline std::filesystem::path MakeTestDir() {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::filesystem::path parent = std::filesystem::path(::testing::TempDir()) / "kvplan_model";
  std::filesystem::create_directories(parent);
  std::string leaf = std::string(info->test_suite_name()) + "." + info->name() + ".XXXXXX";
  for (char& c : leaf) {
    if (c == '/') c = '_';  // Parameterized tests: "Devices/ReferenceTest.X/0".
  }
  std::string pattern = (parent / leaf).string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp " << pattern << " failed";
    return parent;
  }
  return pattern;
}

inline void WriteBytes(const std::filesystem::path& path, std::string_view contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

inline std::string ReadBytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// What a kvplan-worker run printed and how it exited.
struct WorkerRun {
  int exit_code = -1;
  std::string out, err;
};

// Runs the built kvplan-worker with `args` (already shell-quoted where needed),
// stdout and stderr captured apart. Needs KVPLAN_BINARY_DIR (the test targets
// define it).
inline WorkerRun RunWorker(const std::string& args) {
  const std::filesystem::path dir = MakeTestDir();
  const std::string command = std::string(KVPLAN_BINARY_DIR) + "/bin/kvplan-worker " + args +
                              " > " + (dir / "out").string() + " 2> " + (dir / "err").string();
  const int status = std::system(command.c_str());
  WorkerRun result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.out = ReadBytes(dir / "out");
  result.err = ReadBytes(dir / "err");
  return result;
}

inline std::string F32Bytes(const std::vector<float>& values) {
  std::string bytes(values.size() * 4, '\0');
  std::memcpy(bytes.data(), values.data(), bytes.size());
  return bytes;
}

// BF16 by rounding to nearest even (the values here are never NaN).
inline std::string BF16Bytes(const std::vector<float>& values) {
  std::string bytes(values.size() * 2, '\0');
  for (size_t i = 0; i < values.size(); ++i) {
    uint32_t bits = 0;
    std::memcpy(&bits, &values[i], 4);
    bits += 0x7fff + ((bits >> 16) & 1);
    const uint16_t half = static_cast<uint16_t>(bits >> 16);
    std::memcpy(bytes.data() + 2 * i, &half, 2);
  }
  return bytes;
}

struct TestTensor {
  std::string name;
  std::string dtype = "F32";
  std::vector<int64_t> shape;
  std::string bytes;
};

// The 8-byte little-endian length, then the header, then the data.
inline std::string HeaderAndData(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  const uint64_t len = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((len >> (8 * i)) & 0xff);
  return out + header + data;
}

// A well-formed safetensors file: tensors laid out in order, header padded
// with spaces to 8 bytes as the reference writer does.
inline std::string SafetensorsBytes(const std::vector<TestTensor>& tensors) {
  nlohmann::json header = nlohmann::json::object();
  std::string data;
  for (const TestTensor& t : tensors) {
    header[t.name] = {{"dtype", t.dtype},
                      {"shape", t.shape},
                      {"data_offsets", {data.size(), data.size() + t.bytes.size()}}};
    data += t.bytes;
  }
  header["__metadata__"] = {{"format", "pt"}};
  std::string text = header.dump();
  while ((8 + text.size()) % 8 != 0) text += ' ';
  return HeaderAndData(text, data);
}

}  // namespace kvplan::model_test

#endif  // KVPLAN_TESTS_WORKER_MODEL_TEST_UTIL_H_
