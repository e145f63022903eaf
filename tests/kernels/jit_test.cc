// Run-time compilation (kvplan/kernels/jit.h): NVRTC compiles without a GPU, so
// the compile and cache tests run everywhere; loading and launching skip
// without a device.
#include "kvplan/kernels/jit.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "tests/kernels/gpu_test_util.h"

namespace kvplan::kernels {
namespace {

// out[i] = i * factor, through the kvplan device headers and the standard
// headers NVRTC lacks (jit_include maps them onto libcu++).
constexpr char kScaleSource[] = R"(
#include <cstdint>
#include <type_traits>
#include <utility>
#include "kvplan/kernels/device_utils.cuh"

template <int... I>
__device__ int Count(std::integer_sequence<int, I...>) { return sizeof...(I); }

extern "C" __global__ void Scale(uint32_t* out, int n, uint32_t factor) {
  static_assert(std::is_same_v<uint32_t, unsigned int>, "32-bit words");
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = static_cast<uint32_t>(i) * factor * (Count(std::make_integer_sequence<int, 3>{}) - 2);
}
)";

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

class JitCompileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cache_ = std::filesystem::path(::testing::TempDir()) /
             ("kvplan_jit_" +
              std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::remove_all(cache_);
  }
  void TearDown() override { std::filesystem::remove_all(cache_); }
  std::filesystem::path cache_;
};

TEST_F(JitCompileTest, CompilesKernelHeadersToACubin) {
  absl::StatusOr<std::string> cubin = CompileCubin(kScaleSource, "scale.cu", JitOptions{});
  ASSERT_TRUE(cubin.ok()) << cubin.status();
  ASSERT_GT(cubin->size(), 64u);
  EXPECT_EQ(cubin->substr(0, 4), std::string("\x7f"
                                             "ELF",
                                             4));
}

TEST_F(JitCompileTest, RefusesBadSourceWithTheCompilerLog) {
  absl::StatusOr<std::string> cubin =
      CompileCubin("extern \"C\" __global__ void Broken(int* out) { out[0] = undeclared_name; }",
                   "broken.cu", JitOptions{});
  ASSERT_EQ(cubin.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(cubin.status().message().find("broken.cu"), std::string::npos) << cubin.status();
  EXPECT_NE(cubin.status().message().find("undeclared_name"), std::string::npos) << cubin.status();
}

TEST_F(JitCompileTest, RefusesAVirtualArchitecture) {
  JitOptions options;
  options.arch = "compute_90";
  absl::StatusOr<std::string> cubin = CompileCubin(kScaleSource, "scale.cu", options);
  ASSERT_FALSE(cubin.ok());
  EXPECT_NE(cubin.status().message().find("compute_90"), std::string::npos) << cubin.status();
}

TEST_F(JitCompileTest, CachesByContentAndReplacesACorruptFile) {
  JitOptions options;
  options.cache_dir = cache_.string();
  absl::StatusOr<std::string> first = CompileCubin(kScaleSource, "scale.cu", options);
  ASSERT_TRUE(first.ok()) << first.status();
  const std::filesystem::path file =
      cache_ / (CubinCacheKey(kScaleSource, JitOptionsDigest(options)) + ".cubin");
  ASSERT_TRUE(std::filesystem::exists(file));
  EXPECT_EQ(ReadFile(file), *first);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(cache_),
                          std::filesystem::directory_iterator()),
            1);

  // A hit returns the file's bytes: plant a different valid-looking cubin.
  const std::string planted = std::string(
                                  "\x7f"
                                  "ELF",
                                  4) +
                              std::string(100, 'x');
  std::ofstream(file, std::ios::binary | std::ios::trunc) << planted;
  absl::StatusOr<std::string> hit = CompileCubin(kScaleSource, "scale.cu", options);
  ASSERT_TRUE(hit.ok()) << hit.status();
  EXPECT_EQ(*hit, planted);

  // A file that is not a cubin is compiled again and replaced.
  std::ofstream(file, std::ios::binary | std::ios::trunc) << "truncated";
  absl::StatusOr<std::string> again = CompileCubin(kScaleSource, "scale.cu", options);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *first);
  EXPECT_EQ(ReadFile(file), *first);
}

TEST_F(JitCompileTest, KeyCoversSourceDefinesAndArchitecture) {
  JitOptions base;
  JitOptions defined = base;
  defined.defines = {"KVPLAN_TEST_VALUE=1"};
  JitOptions arch = base;
  arch.arch = "sm_80";
  const std::string key = CubinCacheKey(kScaleSource, JitOptionsDigest(base));
  EXPECT_EQ(key.size(), 64u);
  EXPECT_EQ(key, CubinCacheKey(kScaleSource, JitOptionsDigest(base)));
  EXPECT_NE(key, CubinCacheKey(std::string(kScaleSource) + " ", JitOptionsDigest(base)));
  EXPECT_NE(key, CubinCacheKey(kScaleSource, JitOptionsDigest(defined)));
  EXPECT_NE(key, CubinCacheKey(kScaleSource, JitOptionsDigest(arch)));
}

TEST_F(JitCompileTest, KeyCoversTheContentsOfIncludedHeaders) {
  std::filesystem::create_directories(cache_ / "headers");
  const std::filesystem::path header = cache_ / "headers" / "value.h";
  std::ofstream(header) << "#define KVPLAN_TEST_VALUE 1\n";
  JitOptions options;
  options.include_dirs = {(cache_ / "headers").string()};
  const std::string source =
      "#include \"value.h\"\nextern \"C\" __global__ void K(int* o) { *o = KVPLAN_TEST_VALUE; }\n";
  const std::string before = CubinCacheKey(source, JitOptionsDigest(options));
  EXPECT_EQ(CubinCacheKey(source, JitOptionsDigest(options)), before);
  std::ofstream(header, std::ios::trunc) << "#define KVPLAN_TEST_VALUE 2\n";
  EXPECT_NE(CubinCacheKey(source, JitOptionsDigest(options)), before)
      << "a changed header must not reuse the old cubin";
}

TEST_F(JitCompileTest, UncreatableCacheDirIsFailedPrecondition) {
  JitOptions options;
  options.cache_dir = "/proc/kvplan-jit-cache";  // not creatable, even as root
  absl::StatusOr<std::string> cubin = CompileCubin(kScaleSource, "scale.cu", options);
  ASSERT_EQ(cubin.status().code(), absl::StatusCode::kFailedPrecondition) << cubin.status();
  EXPECT_NE(cubin.status().message().find("/proc/kvplan-jit-cache"), std::string::npos);
}

// Options for device 0's architecture (sm_90a on Hopper, as the shipped kernels).
JitOptions ForDevice0() {
  int major = 0, minor = 0;
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0);
  cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, 0);
  JitOptions options;
  options.arch = "sm_" + std::to_string(10 * major + minor) + (major == 9 ? "a" : "");
  return options;
}

TEST(JitLibraryTest, LoadsAndLaunchesACompiledKernel) {
  KVPLAN_SKIP_WITHOUT_GPU();
  absl::StatusOr<std::string> cubin = CompileCubin(kScaleSource, "scale.cu", ForDevice0());
  ASSERT_TRUE(cubin.ok()) << cubin.status();
  absl::StatusOr<JitLibrary> library = JitLibrary::Load(*cubin);
  ASSERT_TRUE(library.ok()) << library.status();
  absl::StatusOr<cudaKernel_t> kernel = library->Kernel("Scale");
  ASSERT_TRUE(kernel.ok()) << kernel.status();

  const int n = 1000;
  testing::DeviceBuffer<uint32_t> out(n);
  uint32_t* out_ptr = out.get();
  int count = n;
  uint32_t factor = 7;
  void* args[] = {&out_ptr, &count, &factor};
  KVPLAN_CUDA_OK(cudaLaunchKernel(reinterpret_cast<const void*>(*kernel), dim3(4), dim3(256), args,
                                  0, nullptr));
  KVPLAN_CUDA_OK(cudaDeviceSynchronize());
  const std::vector<uint32_t> got = out.ToHost();
  for (int i = 0; i < n; ++i) ASSERT_EQ(got[i], 7u * i) << "element " << i;
}

TEST(JitLibraryTest, UnknownKernelIsNotFound) {
  KVPLAN_SKIP_WITHOUT_GPU();
  absl::StatusOr<std::string> cubin = CompileCubin(kScaleSource, "scale.cu", ForDevice0());
  ASSERT_TRUE(cubin.ok()) << cubin.status();
  absl::StatusOr<JitLibrary> library = JitLibrary::Load(*cubin);
  ASSERT_TRUE(library.ok()) << library.status();
  absl::StatusOr<cudaKernel_t> kernel = library->Kernel("NoSuchKernel");
  ASSERT_EQ(kernel.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(kernel.status().message().find("NoSuchKernel"), std::string::npos);
}

TEST(JitLibraryTest, RefusesBytesThatAreNotACubin) {
  // Checked before the driver is asked: no device needed.
  absl::StatusOr<JitLibrary> library = JitLibrary::Load("not a cubin at all");
  ASSERT_EQ(library.status().code(), absl::StatusCode::kInvalidArgument) << library.status();
  EXPECT_NE(library.status().message().find("not one"), std::string::npos);
}

}  // namespace
}  // namespace kvplan::kernels
