// A plan's fragment decode kernels (kvplan/kernels/fragment_decode_program.h):
// compiled without a GPU, cached, refused where the fragment path cannot serve
// the plan yet; loaded on a GPU.
#include "kvplan/kernels/fragment_decode_program.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iterator>
#include <string>
#include <tuple>
#include <vector>

#include "core/grouped_quantizer.h"
#include "core/half.h"
#include "core/packed_attention.h"
#include "core/packed_kv_cache.h"
#include "core/packed_page.h"
#include "kvplan/kernels/fragment_tables.h"
#include "tests/kernels/codec_fixtures.h"
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

// q̂ for one query head (fragment_params.h): per K group, R_g·q_g in the
// layout's permuted order, times scale·log2(e)/√d_g, as fp16.
std::vector<uint16_t> RotatedQuery(const GroupLayout& k, const std::vector<Rotation>& rotations,
                                   const float* q, double scale) {
  std::vector<uint16_t> q_hat(k.head_dim);
  for (size_t g = 0; g < k.groups.size(); ++g) {
    const QuantGroup& group = k.groups[g];
    const double factor = scale * 1.4426950408889634 / std::sqrt(static_cast<double>(group.size));
    for (int i = 0; i < group.size; ++i) {
      double y = 0;
      for (int j = 0; j < group.size; ++j) {
        y += static_cast<double>(rotations[g].matrix[static_cast<size_t>(i) * group.size + j]) *
             q[k.permutation[group.offset + j]];
      }
      q_hat[group.offset + i] = FloatToHalf(static_cast<float>(y * factor));
    }
  }
  return q_hat;
}

// A plan's layers decoded by the generated kernels from fragment pages written
// by core, against the fp64 reference over the same pages (ragged batch of two
// sequences, three splits), per (head_dim, K bits, V bits, k_group_align). The
// kernels return V still rotated; the test undoes it (x = R_vᵀ·y / √head_dim)
// as the merge will.
class FragmentDecodeConfigTest : public ::testing::TestWithParam<std::tuple<int, int, int, int>> {};

std::string ConfigName(const ::testing::TestParamInfo<std::tuple<int, int, int, int>>& info) {
  return "hd" + std::to_string(std::get<0>(info.param)) + "_k" +
         std::to_string(std::get<1>(info.param)) + "v" + std::to_string(std::get<2>(info.param)) +
         "_align" + std::to_string(std::get<3>(info.param));
}

TEST_P(FragmentDecodeConfigTest, DecodesEveryLayerLikeTheCpuReference) {
  const int kHd = std::get<0>(GetParam()), k_bits = std::get<1>(GetParam());
  const int v_bits = std::get<2>(GetParam()), align = std::get<3>(GetParam());
  constexpr int kLayers = 2, kGroup = 4, kMaxPages = 4;
  const std::vector<int> lens = {200, 81};
  const int batch = static_cast<int>(lens.size());
  const KvPlan plan = *BlockGtqPlan(kLayers, kHd, align, {}, k_bits, v_bits);
  const int kv_heads = plan.num_kv_heads;
  // Compiling needs no GPU: every configuration is generated and compiled here.
  absl::StatusOr<FragmentDecodeProgram> program = FragmentDecodeProgram::Compile(plan, {});
  ASSERT_TRUE(program.ok()) << program.status();
  KVPLAN_SKIP_WITHOUT_GPU();
  int major = 0;
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0);
  if (major != 9) GTEST_SKIP() << "fragment_decode.cuh is compiled for sm_90a";
  absl::StatusOr<PackedKvCache> cache = PackedKvCache::Create(plan, kv_heads * kGroup, {});
  ASSERT_TRUE(cache.ok()) << cache.status();
  ASSERT_TRUE(program->Load().ok());
  const std::vector<uint32_t> image = FragmentTableImage();
  const testing::DeviceBuffer<uint32_t> d_tables(image);
  // Sequence b's page i is page b·kMaxPages + i, written in reverse order of ids.
  std::vector<int> page_table(batch * kMaxPages);
  for (int i = 0; i < batch * kMaxPages; ++i) page_table[i] = batch * kMaxPages - 1 - i;
  const testing::DeviceBuffer<int> d_table(page_table), d_len(lens);
  const double scale = 1.0 / std::sqrt(static_cast<double>(kHd));

  for (int l = 0; l < kLayers; ++l) {
    SCOPED_TRACE("layer " + std::to_string(l));
    const int64_t stride = program->page_stride(l);
    std::vector<uint8_t> pool(static_cast<size_t>(batch) * kMaxPages * kv_heads * stride, 0);
    const GroupedQuantizer vq =
        *GroupedQuantizer::Create(*UniformLayout(kHd, plan.VBits(l)), {cache->VRotation()});
    const std::vector<float> q =
        testing::RandomVector(static_cast<size_t>(batch) * kv_heads * kGroup * kHd, 500 + l);
    std::vector<uint16_t> q_hat(static_cast<size_t>(batch) * kv_heads * kFragmentQueryRows * kHd,
                                0);
    std::vector<double> want(q.size());
    for (int h = 0; h < kv_heads; ++h) {
      const FragmentPageLayout& layout = program->page_layout(l, h);
      const std::vector<Rotation> k_rot = cache->KRotations(l, h);
      const GroupedQuantizer kq = *GroupedQuantizer::Create(layout.k_layout(), k_rot);
      for (int b = 0; b < batch; ++b) {
        const std::vector<float> k =
            testing::RandomVector(static_cast<size_t>(lens[b]) * kHd, 600 + 10 * l + 2 * h + b);
        const std::vector<float> v =
            testing::RandomVector(static_cast<size_t>(lens[b]) * kHd, 700 + 10 * l + 2 * h + b);
        std::vector<absl::Span<const uint8_t>> pages;
        for (int i = 0; i < kMaxPages; ++i) {
          pages.push_back(absl::MakeConstSpan(
              pool.data() +
                  (static_cast<size_t>(page_table[b * kMaxPages + i]) * kv_heads + h) * stride,
              stride));
        }
        for (int t = 0; t < lens[b]; ++t) {
          std::vector<uint8_t> kr(kq.PackedBytes()), vr(vq.PackedBytes());
          kq.Encode(absl::MakeConstSpan(k.data() + static_cast<size_t>(t) * kHd, kHd),
                    absl::MakeSpan(kr));
          vq.Encode(absl::MakeConstSpan(v.data() + static_cast<size_t>(t) * kHd, kHd),
                    absl::MakeSpan(vr));
          uint8_t* page = const_cast<uint8_t*>(pages[t / kPageTokens].data());
          WriteRecordsToFragmentPage(layout, kr, vr, t % kPageTokens, absl::MakeSpan(page, stride));
        }
        const float* qh = q.data() + (static_cast<size_t>(b) * kv_heads + h) * kGroup * kHd;
        for (int r = 0; r < kGroup; ++r) {
          const std::vector<uint16_t> row =
              RotatedQuery(layout.k_layout(), k_rot, qh + r * kHd, scale);
          std::copy(row.begin(), row.end(),
                    q_hat.begin() +
                        ((static_cast<size_t>(b) * kv_heads + h) * kFragmentQueryRows + r) * kHd);
        }
        PackedAttentionInputs in;
        in.q = absl::MakeConstSpan(qh, static_cast<size_t>(kGroup) * kHd);
        in.group_size = kGroup;
        in.pages = pages;
        in.num_packed_tokens = lens[b];
        in.scale = scale;
        const absl::Status s = PackedDecodeAttentionReference(
            layout, k_rot, cache->VRotation(), in,
            absl::MakeSpan(want.data() + (static_cast<size_t>(b) * kv_heads + h) * kGroup * kHd,
                           static_cast<size_t>(kGroup) * kHd));
        ASSERT_TRUE(s.ok()) << s;
      }
    }
    const testing::DeviceBuffer<uint8_t> d_pool(pool);
    const testing::DeviceBuffer<uint16_t> d_q(q_hat);
    // Three splits (more than SplitsFor gives so few tokens) so that the merge
    // combines several, some of them empty for the shorter sequence.
    const absl::StatusOr<int> fill = program->SplitsFor(l, batch, kMaxPages * kPageTokens);
    ASSERT_TRUE(fill.ok()) << fill.status();
    EXPECT_GE(*fill, 1);
    constexpr int kSplits = 3;
    testing::DeviceBuffer<float> partial_o(static_cast<size_t>(batch) * kv_heads * kSplits *
                                           kFragmentQueryRows * kHd);
    testing::DeviceBuffer<float> partial_ml(static_cast<size_t>(batch) * kv_heads * kSplits *
                                            kFragmentQueryRows * 2);
    testing::DeviceBuffer<float> out(q.size());
    FragmentDecodeParams p;
    p.q_rot = d_q.get();
    p.pages = d_pool.get();
    p.page_table = d_table.get();
    p.len = d_len.get();
    p.tables = d_tables.get();
    p.page_stride = stride;
    p.max_pages = kMaxPages;
    p.kv_heads = kv_heads;
    p.num_splits = kSplits;
    p.tiles_per_split = (kMaxPages * kPageTokens / 16 + kSplits - 1) / kSplits;
    p.partial_o = partial_o.get();
    p.partial_ml = partial_ml.get();
    KVPLAN_CUDA_OK(cudaMemset(out.get(), 0xff, out.size() * sizeof(float)));  // NaN poison
    const absl::Status launched = program->Launch(l, p, batch, kGroup, out.get(), nullptr);
    ASSERT_TRUE(launched.ok()) << launched;
    KVPLAN_CUDA_OK(cudaDeviceSynchronize());
    // Undo V's rotation: x = R_vᵀ·y / √hd.
    const std::vector<float> rotated = out.ToHost();
    const Rotation& rv = cache->VRotation();
    std::vector<float> got(rotated.size());
    for (size_t row = 0; row < rotated.size() / kHd; ++row) {
      for (int i = 0; i < kHd; ++i) {
        double x = 0;
        for (int j = 0; j < kHd; ++j)
          x += rv.matrix[static_cast<size_t>(j) * kHd + i] * rotated[row * kHd + j];
        got[row * kHd + i] = static_cast<float>(x / std::sqrt(static_cast<double>(kHd)));
      }
    }
    double max_want = 0;
    for (double x : want) max_want = std::max(max_want, std::abs(x));
    EXPECT_TRUE(testing::AllClose("fragment_decode_layer" + std::to_string(l), got, want,
                                  4e-3 * max_want, 1e-2));
  }
}

INSTANTIATE_TEST_SUITE_P(
    Configs, FragmentDecodeConfigTest,
    ::testing::Values(std::make_tuple(128, 3, 3, 16), std::make_tuple(128, 3, 3, 8),
                      std::make_tuple(128, 4, 4, 16), std::make_tuple(128, 2, 4, 8),
                      std::make_tuple(64, 3, 3, 16), std::make_tuple(64, 2, 2, 8)),
    ConfigName);

}  // namespace
}  // namespace kvplan::kernels
