// The per-layer decode source (kvplan/kernels/fragment_decode_source.h): what it
// emits for a layer's heads, that NVRTC compiles it (no GPU needed), and the
// heads it refuses. Running the generated kernel against a CPU computation of
// the same pages is fragment_decode_probe --jit's check (NOTES run 19).
#include "kvplan/kernels/fragment_decode_source.h"

#include <gtest/gtest.h>

#include <array>
#include <string>
#include <vector>

#include "core/fragment_page.h"
#include "core/group_layout.h"
#include "kvplan/kernels/jit.h"

namespace kvplan::kernels {
namespace {

// A head of head_dim 2·Σ blocks whose width-w group holds `blocks` RoPE blocks.
FragmentPageLayout Head(const std::vector<std::array<int, 2>>& width_blocks, int v_bits = 3) {
  std::vector<int> widths;
  for (const auto& [width, blocks] : width_blocks) widths.insert(widths.end(), blocks, width);
  const int blocks = static_cast<int>(widths.size());
  std::vector<std::array<int, 2>> dims(blocks);
  for (int i = 0; i < blocks; ++i) dims[i] = {i, i + blocks};
  return *FragmentPageLayout::Create(*BuildGroupLayout(widths, dims), v_bits);
}

// Two K3 layouts of head_dim 128 (Σ widths over 64 blocks = 192): 8-aligned
// groups (the first ends mid-slice) and the uniform one.
FragmentPageLayout Aligned8() { return Head({{1, 4}, {2, 16}, {3, 24}, {4, 16}, {5, 4}}); }
FragmentPageLayout Uniform() { return Head({{3, 64}}); }

TEST(FragmentDecodeSourceTest, OneSpecialisationPerDistinctLayoutThatNvrtcCompiles) {
  const std::vector<FragmentPageLayout> heads = {Aligned8(), Uniform(), Aligned8()};
  absl::StatusOr<std::string> source = FragmentDecodeSource(heads, {});
  ASSERT_TRUE(source.ok()) << source.status();
  EXPECT_NE(source->find("struct Layout0"), std::string::npos);
  EXPECT_NE(source->find("struct Layout1"), std::string::npos);
  EXPECT_EQ(source->find("struct Layout2"), std::string::npos) << "heads 0 and 2 share a layout";
  EXPECT_NE(source->find("case 0:\n    case 2:"), std::string::npos) << *source;
  EXPECT_NE(source->find("kWidths[] = {1, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4, 5}"),
            std::string::npos)
      << *source;
  absl::StatusOr<std::string> cubin = CompileCubin(*source, "layer.cu", JitOptions{});
  ASSERT_TRUE(cubin.ok()) << cubin.status();
  EXPECT_EQ(cubin->substr(0, 4), std::string("\x7f"
                                             "ELF",
                                             4));
}

TEST(FragmentDecodeSourceTest, FourWarpsAndANameCompileToo) {
  FragmentDecodeSourceOptions options;
  options.warps = 4;
  options.kernel_name = "Layer7Decode";
  absl::StatusOr<std::string> source = FragmentDecodeSource({Uniform()}, options);
  ASSERT_TRUE(source.ok()) << source.status();
  EXPECT_NE(source->find("__launch_bounds__(128, 4) Layer7Decode("), std::string::npos) << *source;
  EXPECT_NE(source->find("void Layer7DecodeMerge("), std::string::npos) << *source;
  absl::StatusOr<std::string> cubin = CompileCubin(*source, "layer7.cu", JitOptions{});
  EXPECT_TRUE(cubin.ok()) << cubin.status();
}

// An aligned allocation may leave bits unspent: 180 of the 192 (6 words still).
TEST(FragmentDecodeSourceTest, CompilesARunWithUnspentBits) {
  const FragmentPageLayout short_run = Head({{2, 16}, {3, 44}, {4, 4}});
  ASSERT_EQ(short_run.k_run_words(), 6);
  absl::StatusOr<std::string> source = FragmentDecodeSource({short_run}, {});
  ASSERT_TRUE(source.ok()) << source.status();
  absl::StatusOr<std::string> cubin = CompileCubin(*source, "short.cu", JitOptions{});
  EXPECT_TRUE(cubin.ok()) << cubin.status();
}

TEST(FragmentDecodeSourceTest, RefusesWhatTheKernelDoesNotCoverYet) {
  const std::vector<FragmentPageLayout> v4 = {Uniform(), Head({{3, 64}}, 4)};
  absl::StatusOr<std::string> source = FragmentDecodeSource(v4, {});
  ASSERT_EQ(source.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(source.status().message().find("head 1"), std::string::npos) << source.status();
  EXPECT_NE(source.status().message().find("V4"), std::string::npos) << source.status();

  const std::vector<FragmentPageLayout> hd64 = {Head({{3, 32}})};
  source = FragmentDecodeSource(hd64, {});
  ASSERT_EQ(source.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(source.status().message().find("head_dim 64"), std::string::npos) << source.status();

  const std::vector<FragmentPageLayout> k2 = {Head({{2, 64}})};
  EXPECT_EQ(FragmentDecodeSource(k2, {}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(FragmentDecodeSource({}, {}).status().code(), absl::StatusCode::kInvalidArgument);
  FragmentDecodeSourceOptions six;
  six.warps = 6;
  EXPECT_EQ(FragmentDecodeSource({Uniform()}, six).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kvplan::kernels
