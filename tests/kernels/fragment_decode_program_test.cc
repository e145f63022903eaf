// A plan's fragment decode kernels (kvplan/kernels/fragment_decode_program.h):
// compiled without a GPU, cached, refused where the fragment path cannot serve
// the plan yet; loaded on a GPU.
#include "kvplan/kernels/fragment_decode_program.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <iterator>
#include <string>

#include "tests/kernels/gpu_test_util.h"
#include "tests/kernels/plan_fixtures.h"

namespace kvplan::kernels {
namespace {

using testing::BlockGtqPlan;

int FilesIn(const std::filesystem::path& dir) {
  return static_cast<int>(std::distance(std::filesystem::directory_iterator(dir),
                                        std::filesystem::directory_iterator()));
}

TEST(FragmentDecodeProgramTest, CompilesEveryLayerOfAnEightAlignedPlanOnceThroughTheCache) {
  const KvPlan plan = *BlockGtqPlan(/*layers=*/3, /*head_dim=*/128, /*k_group_align=*/8, {});
  const std::filesystem::path cache =
      std::filesystem::path(::testing::TempDir()) / "kvplan_fragment_program_cache";
  std::filesystem::remove_all(cache);
  FragmentProgramOptions options;
  options.jit.cache_dir = cache.string();
  options.threads = 2;
  absl::StatusOr<FragmentDecodeProgram> program = FragmentDecodeProgram::Compile(plan, options);
  ASSERT_TRUE(program.ok()) << program.status();
  ASSERT_EQ(program->num_layers(), 3);
  EXPECT_GE(program->num_sources(), 1);
  EXPECT_LE(program->num_sources(), 3);
  EXPECT_EQ(FilesIn(cache), program->num_sources());
  for (int l = 0; l < 3; ++l) {
    EXPECT_EQ(program->cubin(l).substr(0, 4), std::string("\x7f"
                                                          "ELF",
                                                          4));
    int64_t largest = 0;
    for (int h = 0; h < plan.num_kv_heads; ++h) {
      const FragmentPageLayout& page = program->page_layout(l, h);
      EXPECT_EQ(page.k_layout(), *plan.KLayout(l, h));
      largest = std::max<int64_t>(largest, page.page_bytes());
    }
    EXPECT_EQ(program->page_stride(l), largest);
  }
  // Again: everything from the cache, byte for byte.
  absl::StatusOr<FragmentDecodeProgram> again = FragmentDecodeProgram::Compile(plan, options);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(FilesIn(cache), program->num_sources());
  for (int l = 0; l < 3; ++l) EXPECT_EQ(again->cubin(l), program->cubin(l));
  std::filesystem::remove_all(cache);
}

TEST(FragmentDecodeProgramTest, RefusesPlansTheFragmentPathCannotServeYet) {
  // Greedy K groups of any even size: not fragment pages.
  absl::StatusOr<FragmentDecodeProgram> greedy = FragmentDecodeProgram::Compile(
      *BlockGtqPlan(/*layers=*/2, /*head_dim=*/128, /*k_group_align=*/0, {}), {});
  ASSERT_EQ(greedy.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(greedy.status().message().find("k_group_align 8"), std::string::npos)
      << greedy.status();
  EXPECT_NE(greedy.status().message().find("layer 0, KV head"), std::string::npos)
      << greedy.status();
  // An exempt layer (K one 8-bit group, V8): pages fit, the kernel does not yet.
  absl::StatusOr<FragmentDecodeProgram> exempt = FragmentDecodeProgram::Compile(
      *BlockGtqPlan(/*layers=*/2, /*head_dim=*/128, /*k_group_align=*/8, {1}), {});
  ASSERT_EQ(exempt.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(exempt.status().message().find("layer 1"), std::string::npos) << exempt.status();
  EXPECT_NE(exempt.status().message().find("V8"), std::string::npos) << exempt.status();
}

TEST(FragmentDecodeProgramTest, LoadsEveryLayersKernels) {
  KVPLAN_SKIP_WITHOUT_GPU();
  FragmentProgramOptions options;
  int major = 0;
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0);
  if (major != 9) GTEST_SKIP() << "fragment_decode.cuh is compiled for sm_90a";
  absl::StatusOr<FragmentDecodeProgram> program = FragmentDecodeProgram::Compile(
      *BlockGtqPlan(/*layers=*/2, /*head_dim=*/128, /*k_group_align=*/8, {}), options);
  ASSERT_TRUE(program.ok()) << program.status();
  ASSERT_TRUE(program->Load().ok());
  for (int l = 0; l < 2; ++l) {
    EXPECT_NE(program->attention(l), nullptr);
    EXPECT_NE(program->merge(l), nullptr);
  }
}

}  // namespace
}  // namespace kvplan::kernels
