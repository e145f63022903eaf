// A stored plan served by the kernels end to end (plan_codecs.h): a Block-GTQ
// K3V3 plan with an exempt 8-bit layer, every layer encoded on the GPU into
// pages at its own V width and stride and attended in one decode step: against
// the fp64 reference over the GPU's pages, and against PackedKvCache (the CPU
// serving cache) fed the same tokens.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "core/packed_attention.h"
#include "core/packed_kv_cache.h"
#include "core/packed_page.h"
#include "core/plan.h"
#include "kvplan/kernels/launch.h"
#include "kvplan/kernels/packed_plan.h"
#include "kvplan/kernels/plan_codecs.h"
#include "tests/kernels/codec_fixtures.h"
#include "tests/kernels/gpu_test_util.h"
#include "tests/kernels/plan_fixtures.h"
#include "tests/kernels/reference_fixtures.h"
#include "tests/kernels/sequence_fixtures.h"

namespace kvplan::kernels::testing {
namespace {

constexpr int kLayers = 3;
constexpr int kGroupSize = 4;
constexpr int kTokens = 200;  // three full pages and a partial one

double MaxAbs(const std::vector<double>& x) {
  double m = 0.0;
  for (double v : x) m = std::max(m, std::abs(v));
  return m;
}

// (head_dim, k_group_align): greedy plans, and plans whose K groups are whole
// 16-dim slices (no padded slices in the kernel).
class PlanDecodeTest : public ::testing::TestWithParam<std::tuple<int, int>> {};

TEST_P(PlanDecodeTest, EveryLayerMatchesTheCpuCache) {
  KVPLAN_SKIP_WITHOUT_GPU();
  const int hd = std::get<0>(GetParam()), align = std::get<1>(GetParam());
  absl::StatusOr<KvPlan> stored = ExemptLayerPlan(kLayers, hd, align);
  ASSERT_TRUE(stored.ok()) << stored.status();
  for (int l = 1; l < kLayers && align > 0; ++l) {
    for (int h = 0; h < stored->num_kv_heads; ++h) {
      const absl::StatusOr<GroupLayout> layout = stored->KLayout(l, h);
      ASSERT_TRUE(layout.ok()) << layout.status();
      for (const auto& group : layout->groups) ASSERT_EQ(group.size % align, 0);
    }
  }
  const int kv_heads = stored->num_kv_heads, q_heads = kv_heads * kGroupSize;
  absl::StatusOr<PackedKvCache> cache =
      PackedKvCache::Create(*stored, q_heads, {.sink_tokens = 0, .recent_tokens = 0});
  ASSERT_TRUE(cache.ok()) << cache.status();
  absl::StatusOr<PackedDecodePlan> plan =
      CreateDecodePlanForPlan(*stored, {.group_size = kGroupSize});
  ASSERT_TRUE(plan.ok()) << plan.status();
  DeviceBuffer<uint8_t> ws(plan->workspace_bytes());
  KVPLAN_CUDA_OK(plan->Upload(ws.get(), nullptr));

  const InOrderSequence seq(kTokens);

  for (int l = 0; l < kLayers; ++l) {
    const std::string config = "plan_decode_hd" + std::to_string(hd) + "_align" +
                               std::to_string(align) + "_layer" + std::to_string(l) + "_v" +
                               std::to_string(plan->v_bits(l));
    SCOPED_TRACE(config);
    const size_t n = static_cast<size_t>(kTokens) * kv_heads * hd;
    const std::vector<float> k = RandomVector(n, 100 + l);
    const std::vector<float> v = RandomVector(n, 200 + l);
    const std::vector<float> q = RandomVector(static_cast<size_t>(q_heads) * hd, 300 + l);
    ASSERT_TRUE(cache->Append(l, k, v).ok());

    // Pages at this layer's stride (narrower than the exempt layer's).
    const DeviceBuffer<float> d_k(k), d_v(v), d_q(q);
    DeviceBuffer<uint8_t> pool(static_cast<size_t>(seq.pages) * kv_heads * plan->page_stride(l));
    DeviceBuffer<float> out(q.size());
    KVPLAN_CUDA_OK(seq.Encode(*plan, l, ws.get(), d_k.get(), d_v.get(), pool.get()));
    const PackedDecodeParams p = seq.DecodeParams(*plan, l, ws.get(), plan->SplitsFor(1, kTokens),
                                                  d_q.get(), pool.get(), out.get());
    KVPLAN_CUDA_OK(cudaMemset(out.get(), 0xff, out.size() * sizeof(float)));  // NaN poison
    KVPLAN_CUDA_OK(LaunchPackedDecode(p, nullptr));
    KVPLAN_CUDA_OK(cudaDeviceSynchronize());

    const std::vector<float> got = out.ToHost();

    // The decode kernel alone: the fp64 reference over the pages the GPU wrote,
    // at packed_decode_test's tolerance (fp16 operands, fp32 accumulation).
    const absl::StatusOr<std::vector<double>> reference = ReferenceOverPool(
        pool.ToHost(),
        {.kv_heads = kv_heads,
         .group_size = kGroupSize,
         .head_dim = hd,
         .stride = plan->page_stride(l),
         .num_tokens = kTokens,
         .scale = 1.0 / std::sqrt(static_cast<double>(hd))},
        q, [&](int h, const PackedAttentionInputs& in, absl::Span<double> head_out) {
          return PackedDecodeAttentionReference(plan->page_layout(l, h), cache->KRotations(l, h),
                                                cache->VRotation(), in, head_out);
        });
    ASSERT_TRUE(reference.ok()) << reference.status();
    const std::vector<double>& want = *reference;
    EXPECT_TRUE(AllClose(config + "_gpu_pages", got, want, 4e-3 * MaxAbs(want), 1e-2));

    // Encode too: the CPU serving cache fed the same tokens. The GPU encode
    // rotates on tensor cores and may flip a code by one where the CPU's z lies
    // within ~1e-4 of a boundary (encode_pack.cuh, encode_pack_test.cc); in
    // practice ~1e-6 of codes, so this test's 1.5e5 (hd 64) to 3e5 codes see
    // one every few runs. A flip moves a coordinate by a whole codebook step:
    // flipping each code of this very data in turn on the CPU (at hd 128 those
    // of every third coordinate) moved an output
    // by at most 0.23·max|want| (median 0.004, 99.9th percentile 0.08). So
    // 0.25·max|want| covers one flip anywhere plus the kernel's own error,
    // while a wrong width, stride, layout or rotation is off by about
    // max|want| on many outputs.
    std::vector<float> cpu(q.size());
    ASSERT_TRUE(cache->Attend(l, q, kTokens, absl::MakeSpan(cpu)).ok());
    const std::vector<double> cpu_want(cpu.begin(), cpu.end());
    EXPECT_TRUE(AllClose(config + "_cpu_cache", got, cpu_want, 0.25 * MaxAbs(cpu_want), 1e-2));
  }
}

std::string PlanCaseName(const ::testing::TestParamInfo<std::tuple<int, int>>& info) {
  const int align = std::get<1>(info.param);
  return "hd" + std::to_string(std::get<0>(info.param)) +
         (align > 0 ? "_align" + std::to_string(align) : "");
}

INSTANTIATE_TEST_SUITE_P(HeadDims, PlanDecodeTest,
                         ::testing::Values(std::make_tuple(64, 0), std::make_tuple(128, 0),
                                           std::make_tuple(64, 16), std::make_tuple(128, 16)),
                         PlanCaseName);

}  // namespace
}  // namespace kvplan::kernels::testing
