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

// Two K3 layouts of head_dim 128 (Σ widths over 64 blocks = 192), V3:
// 8-aligned groups (the first ends mid-slice) and the uniform one.
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
  EXPECT_EQ(source->find("Merge"), std::string::npos) << "the merge is compiled ahead of time";
  absl::StatusOr<std::string> cubin = CompileCubin(*source, "layer7.cu", JitOptions{});
  EXPECT_TRUE(cubin.ok()) << cubin.status();
}

// Balanced splits: the kernel of the (CTAs per KV head, kv_heads) grid, with
// its cursor in shared memory, for every layout of the layer.
TEST(FragmentDecodeSourceTest, BalancedSplitsTakeTheChunkKernelThatNvrtcCompiles) {
  FragmentDecodeSourceOptions options;
  options.balanced_splits = true;
  absl::StatusOr<std::string> source = FragmentDecodeSource({Aligned8(), Uniform()}, options);
  ASSERT_TRUE(source.ok()) << source.status();
  EXPECT_NE(source->find("__shared__ fd::ChunkCursor<8> cursor;"), std::string::npos) << *source;
  EXPECT_NE(source->find("fd::AttentionCtaBalanced<fd::KLayoutOf<Layout0>, V, 8>(p, sh, cursor, "
                         "dyn_smem);"),
            std::string::npos)
      << *source;
  EXPECT_NE(source->find("fd::AttentionCtaBalanced<fd::KLayoutOf<Layout1>"), std::string::npos);
  EXPECT_EQ(source->find("fd::AttentionCta<"), std::string::npos) << *source;
  absl::StatusOr<std::string> cubin = CompileCubin(*source, "balanced.cu", JitOptions{});
  EXPECT_TRUE(cubin.ok()) << cubin.status();
  // The default stays the per-pair kernel.
  absl::StatusOr<std::string> per_pair = FragmentDecodeSource({Uniform()}, {});
  ASSERT_TRUE(per_pair.ok()) << per_pair.status();
  EXPECT_EQ(per_pair->find("ChunkCursor"), std::string::npos);
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

// Other head dims, budgets and V widths: compiled (checked on a GPU by
// fragment_decode_program_test's DecodesEveryLayerLikeTheCpuReference).
TEST(FragmentDecodeSourceTest, CompilesOtherHeadDimsBudgetsAndVWidths) {
  const std::vector<std::vector<FragmentPageLayout>> layers = {
      {Head({{1, 8}, {2, 16}, {3, 8}}, 2)},               // head_dim 64, K2, V2
      {Head({{4, 64}}, 4), Head({{3, 32}, {5, 32}}, 4)},  // head_dim 128, K4, V4 (runs of 8 words)
      {Head({{1, 4}, {2, 16}, {3, 24}, {4, 16}, {5, 4}}, 2), Head({{3, 64}}, 2)}};  // K3, V2
  for (size_t i = 0; i < layers.size(); ++i) {
    absl::StatusOr<std::string> source = FragmentDecodeSource(layers[i], {});
    ASSERT_TRUE(source.ok()) << "layer " << i << ": " << source.status();
    absl::StatusOr<std::string> cubin = CompileCubin(*source, "other.cu", JitOptions{});
    EXPECT_TRUE(cubin.ok()) << "layer " << i << ": " << cubin.status();
  }
}

TEST(FragmentDecodeSourceTest, RefusesWhatTheKernelDoesNotCoverYet) {
  // An exempt layer's 8-bit K and V: runs of 16 words.
  const std::vector<FragmentPageLayout> exempt = {Head({{8, 64}}, 8)};
  absl::StatusOr<std::string> source = FragmentDecodeSource(exempt, {});
  ASSERT_EQ(source.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(source.status().message().find("head 0"), std::string::npos) << source.status();
  EXPECT_NE(source.status().message().find("at most 8 words"), std::string::npos)
      << source.status();

  const std::vector<FragmentPageLayout> hd256 = {Head({{1, 128}}, 1)};
  source = FragmentDecodeSource(hd256, {});
  ASSERT_EQ(source.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(source.status().message().find("head_dim 256"), std::string::npos) << source.status();

  const std::vector<FragmentPageLayout> mixed_v = {Uniform(), Head({{3, 64}}, 4)};
  source = FragmentDecodeSource(mixed_v, {});
  ASSERT_EQ(source.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(source.status().message().find("head 1"), std::string::npos) << source.status();
  EXPECT_NE(source.status().message().find("V4"), std::string::npos) << source.status();

  EXPECT_EQ(FragmentDecodeSource({}, {}).status().code(), absl::StatusCode::kInvalidArgument);
  FragmentDecodeSourceOptions six;
  six.warps = 6;
  EXPECT_EQ(FragmentDecodeSource({Uniform()}, six).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kvplan::kernels
