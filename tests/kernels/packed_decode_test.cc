// Fused packed decode attention on the GPU against the fp64 CPU reference
// (core/packed_attention.h), for every dispatched (head_dim, group_size,
// v_bits), ragged batches with lengths at 0, 1, odd, page boundary ±1 and
// many splits, with and without fp16 sink/recent tokens; plus CUDA-graph
// capture and the dispatch error messages.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "core/group_layout.h"
#include "core/grouped_quantizer.h"
#include "core/half.h"
#include "core/packed_attention.h"
#include "core/packed_page.h"
#include "core/random.h"
#include "kvplan/kernels/dispatch.h"
#include "kvplan/kernels/launch.h"
#include "kvplan/kernels/packed_plan.h"
#include "tests/kernels/codec_fixtures.h"
#include "tests/kernels/gpu_test_util.h"

namespace kvplan::kernels::testing {
namespace {

struct DecodeCase {
  int head_dim;
  int group_size;
  int v_bits;
  std::vector<int> lengths;
  int max_sink = 0;
  int max_recent = 0;
  int num_splits = 0;  // 0: plan.SplitsFor
};

std::string Name(const DecodeCase& c) {
  std::ostringstream s;
  s << "decode_hd" << c.head_dim << "_g" << c.group_size << "_v" << c.v_bits << "_len";
  for (int l : c.lengths) s << '_' << l;
  if (c.max_sink + c.max_recent > 0) s << "_sink" << c.max_sink << "_recent" << c.max_recent;
  if (c.num_splits > 0) s << "_splits" << c.num_splits;
  return s.str();
}
// The suites' test names.
std::string ParamName(const ::testing::TestParamInfo<DecodeCase>& info) { return Name(info.param); }

// Everything a case needs on the host, and the reference output.
struct DecodeFixture {
  DecodeCase c;
  int kv_heads = 2;
  std::vector<HeadCodec> codecs;
  std::vector<PackedPageLayout> layouts;
  int64_t stride = 0;
  int max_pages = 0;
  std::vector<int> page_table;
  std::vector<uint8_t> pool;
  std::vector<float> q;
  std::vector<uint16_t> sink_k, sink_v, recent_k, recent_v;
  std::vector<int> sink_len, recent_len;
  std::vector<double> want;
};

DecodeFixture BuildFixture(const DecodeCase& c) {
  DecodeFixture f;
  f.c = c;
  const int hd = c.head_dim, heads = f.kv_heads, batch = static_cast<int>(c.lengths.size());
  for (int h = 0; h < heads; ++h) {
    f.codecs.push_back(RandomCodec(hd, 3.0, 1000 + 17 * h + hd));
    f.layouts.push_back(*PackedPageLayout::Create(f.codecs[h].k_layout, c.v_bits));
    f.stride = std::max<int64_t>(f.stride, f.layouts.back().page_bytes());
  }
  for (int len : c.lengths)
    f.max_pages = std::max(f.max_pages, (len + kPageTokens - 1) / kPageTokens);
  f.max_pages = std::max(f.max_pages, 1);
  // Distinct, shuffled page ids.
  const int num_pages = batch * f.max_pages;
  std::vector<int> ids(num_pages);
  std::iota(ids.begin(), ids.end(), 0);
  DeterministicRng rng(77 + hd + c.group_size);
  for (int i = num_pages - 1; i > 0; --i) std::swap(ids[i], ids[rng.NextU64() % (i + 1)]);
  f.page_table = ids;
  f.pool.assign(static_cast<size_t>(num_pages) * heads * f.stride, 0);
  for (uint8_t& byte : f.pool) byte = static_cast<uint8_t>(rng.NextU64());  // unwritten slots: junk

  for (int h = 0; h < heads; ++h) {
    const GroupedQuantizer kq =
        *GroupedQuantizer::Create(f.codecs[h].k_layout, f.codecs[h].k_rotations);
    const GroupedQuantizer vq =
        *GroupedQuantizer::Create(*UniformLayout(hd, c.v_bits), {f.codecs[h].v_rotation});
    for (int b = 0; b < batch; ++b) {
      const int len = c.lengths[b];
      const std::vector<float> k = RandomVector(static_cast<size_t>(len) * hd, 5000 + 31 * b + h);
      const std::vector<float> v = RandomVector(static_cast<size_t>(len) * hd, 6000 + 31 * b + h);
      std::vector<uint8_t> kr(static_cast<size_t>(len) * kq.PackedBytes());
      std::vector<uint8_t> vr(static_cast<size_t>(len) * vq.PackedBytes());
      kq.EncodeBatch(k, absl::MakeSpan(kr));
      vq.EncodeBatch(v, absl::MakeSpan(vr));
      for (int t = 0; t < len; ++t) {
        const int page = f.page_table[b * f.max_pages + t / kPageTokens];
        uint8_t* dst = f.pool.data() + (static_cast<size_t>(page) * heads + h) * f.stride;
        WriteRecordsToPage(f.layouts[h],
                           absl::MakeConstSpan(kr.data() + t * kq.PackedBytes(), kq.PackedBytes()),
                           absl::MakeConstSpan(vr.data() + t * vq.PackedBytes(), vq.PackedBytes()),
                           t % kPageTokens, absl::MakeSpan(dst, f.stride));
      }
    }
  }
  const int q_heads = heads * c.group_size;
  f.q = RandomVector(static_cast<size_t>(batch) * q_heads * hd, 7000 + hd, 2.0);
  auto fp16_data = [&](int cap, uint64_t seed) {
    const std::vector<float> x = RandomVector(static_cast<size_t>(batch) * heads * cap * hd, seed);
    std::vector<uint16_t> bits(x.size());
    for (size_t i = 0; i < x.size(); ++i) bits[i] = FloatToHalf(x[i]);
    return bits;
  };
  f.sink_k = fp16_data(c.max_sink, 81);
  f.sink_v = fp16_data(c.max_sink, 82);
  f.recent_k = fp16_data(c.max_recent, 83);
  f.recent_v = fp16_data(c.max_recent, 84);
  for (int b = 0; b < batch; ++b) {
    f.sink_len.push_back(c.max_sink == 0 ? 0 : (b % 2 == 0 ? c.max_sink : 1));
    f.recent_len.push_back(c.max_recent == 0 ? 0 : (b * 7) % (c.max_recent + 1));
  }

  f.want.assign(static_cast<size_t>(batch) * q_heads * hd, 0.0);
  for (int b = 0; b < batch; ++b) {
    for (int h = 0; h < heads; ++h) {
      std::vector<absl::Span<const uint8_t>> pages;
      for (int i = 0; i < f.max_pages; ++i) {
        const int page = f.page_table[b * f.max_pages + i];
        pages.push_back(absl::MakeConstSpan(
            f.pool.data() + (static_cast<size_t>(page) * heads + h) * f.stride, f.stride));
      }
      PackedAttentionInputs in;
      in.q = absl::MakeConstSpan(
          f.q.data() + (static_cast<size_t>(b) * q_heads + h * c.group_size) * hd,
          static_cast<size_t>(c.group_size) * hd);
      in.group_size = c.group_size;
      in.pages = pages;
      in.num_packed_tokens = c.lengths[b];
      in.scale = 1.0 / std::sqrt(static_cast<double>(hd));
      auto span = [&](const std::vector<uint16_t>& data, int cap, int n) {
        return absl::MakeConstSpan(data.data() + (static_cast<size_t>(b) * heads + h) * cap * hd,
                                   static_cast<size_t>(n) * hd);
      };
      in.sink = {span(f.sink_k, c.max_sink, f.sink_len[b]),
                 span(f.sink_v, c.max_sink, f.sink_len[b]), f.sink_len[b]};
      in.recent = {span(f.recent_k, c.max_recent, f.recent_len[b]),
                   span(f.recent_v, c.max_recent, f.recent_len[b]), f.recent_len[b]};
      const absl::Status s = PackedDecodeAttentionReference(
          f.layouts[h], f.codecs[h].k_rotations, f.codecs[h].v_rotation, in,
          absl::MakeSpan(f.want.data() + (static_cast<size_t>(b) * q_heads + h * c.group_size) * hd,
                         static_cast<size_t>(c.group_size) * hd));
      EXPECT_TRUE(s.ok()) << s;
    }
  }
  return f;
}

// Device copies of a fixture and the params that point at them.
struct DeviceDecode {
  explicit DeviceDecode(const DecodeFixture& f)
      : pool(f.pool),
        table(f.page_table),
        lens(f.c.lengths),
        q(f.q),
        sink_k(f.sink_k),
        sink_v(f.sink_v),
        recent_k(f.recent_k),
        recent_v(f.recent_v),
        sink_len(f.sink_len),
        recent_len(f.recent_len),
        out(f.q.size()) {}
  DeviceBuffer<uint8_t> pool;
  DeviceBuffer<int> table, lens;
  DeviceBuffer<float> q;
  DeviceBuffer<uint16_t> sink_k, sink_v, recent_k, recent_v;
  DeviceBuffer<int> sink_len, recent_len;
  DeviceBuffer<float> out;
};

void FillStep(const DecodeFixture& f, const DeviceDecode& d, PackedDecodeParams& p) {
  p.q = d.q.get();
  p.pages = d.pool.get();
  p.page_table = d.table.get();
  p.max_pages_per_seq = f.max_pages;
  p.packed_len = d.lens.get();
  if (f.c.max_sink > 0) {
    p.sink_k = d.sink_k.get();
    p.sink_v = d.sink_v.get();
    p.sink_len = d.sink_len.get();
  }
  if (f.c.max_recent > 0) {
    p.recent_k = d.recent_k.get();
    p.recent_v = d.recent_v.get();
    p.recent_len = d.recent_len.get();
  }
  p.scale = 1.0f / std::sqrt(static_cast<float>(f.c.head_dim));
  p.out = d.out.get();
}

absl::StatusOr<PackedDecodePlan> MakePlan(const DecodeFixture& f) {
  PackedDecodeConfig config;
  config.num_layers = 1;
  config.num_kv_heads = f.kv_heads;
  config.group_size = f.c.group_size;
  config.head_dim = f.c.head_dim;
  config.v_bits = f.c.v_bits;
  config.max_batch = static_cast<int>(f.c.lengths.size());
  config.max_sink = f.c.max_sink;
  config.max_recent = f.c.max_recent;
  return PackedDecodePlan::Create(config, f.codecs);
}

// One step of f's batch on the device into *got; merge_heads:
// PackedDecodeParams::merge_heads_per_cta.
void RunStep(const DecodeFixture& f, int merge_heads, std::vector<float>* got) {
  absl::StatusOr<PackedDecodePlan> plan = MakePlan(f);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->page_stride(), f.stride);
  DeviceBuffer<uint8_t> ws(plan->workspace_bytes());
  KVPLAN_CUDA_OK(plan->Upload(ws.get(), nullptr));
  DeviceDecode d(f);
  const DecodeCase& c = f.c;
  const int batch = static_cast<int>(c.lengths.size());
  const int max_len = *std::max_element(c.lengths.begin(), c.lengths.end());
  const int splits = c.num_splits > 0 ? c.num_splits : plan->SplitsFor(batch, max_len);
  PackedDecodeParams p = plan->DecodeParams(0, ws.get(), batch, splits);
  FillStep(f, d, p);
  p.merge_heads_per_cta = merge_heads;
  KVPLAN_CUDA_OK(cudaMemset(d.out.get(), 0xff, d.out.size() * sizeof(float)));  // NaN poison
  KVPLAN_CUDA_OK(LaunchPackedDecode(p, nullptr));
  KVPLAN_CUDA_OK(cudaDeviceSynchronize());
  *got = d.out.ToHost();
}

// fp16 operands (q̂, centroids, P) with fp32 accumulation: errors ~2^-11
// relative per operand, a few of them per output.
::testing::AssertionResult MatchesReference(const DecodeFixture& f, const std::vector<float>& got) {
  double scale = 0.0;
  for (double w : f.want) scale = std::max(scale, std::abs(w));
  return AllClose(Name(f.c), got, f.want, 4e-3 * scale, 1e-2);
}

void RunDecodeCase(const DecodeCase& c) {
  KVPLAN_SKIP_WITHOUT_GPU();
  const DecodeFixture f = BuildFixture(c);
  std::vector<float> got;
  ASSERT_NO_FATAL_FAILURE(RunStep(f, 0, &got));
  EXPECT_TRUE(MatchesReference(f, got));
}

class PackedDecodeTest : public ::testing::TestWithParam<DecodeCase> {};

TEST_P(PackedDecodeTest, MatchesCpuReference) { RunDecodeCase(GetParam()); }

std::vector<DecodeCase> AllDispatchedConfigs() {
  std::vector<DecodeCase> cases;
  int i = 0;
  for (int hd : {64, 128}) {
    for (int gs : {1, 2, 4, 8}) {
      for (int vb : {2, 3, 4, 8}) {
        DecodeCase c{hd, gs, vb, {1, 63, 64, 65, 333}};
        if (i % 3 == 1) {
          c.max_sink = 4;
          c.max_recent = 32;
        }
        cases.push_back(c);
        ++i;
      }
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(EveryConfig, PackedDecodeTest, ::testing::ValuesIn(AllDispatchedConfigs()),
                         ParamName);

INSTANTIATE_TEST_SUITE_P(Shapes, PackedDecodeTest,
                         ::testing::Values(DecodeCase{128, 4, 3, {5000}},
                                           DecodeCase{128, 8, 2, {129, 4097}},
                                           DecodeCase{128, 4, 3, {0, 64, 1000}, 4, 64},
                                           DecodeCase{128, 4, 3, {0, 64, 1000}},
                                           DecodeCase{64, 4, 4, {2000, 700}, 0, 0, 7},
                                           DecodeCase{128, 4, 3, {3000}, 0, 0, 1}),
                         ParamName);

// The merge of whole GQA groups per CTA and of one head per CTA give the same
// bits (MergeKernel adds in the same order either way), each within the
// reference's tolerance: many splits (beyond those prefetched), ragged
// lengths, sinks and recent windows, group sizes 2, 4 and 8.
class PackedMergeHeadsTest : public ::testing::TestWithParam<DecodeCase> {};

TEST_P(PackedMergeHeadsTest, WholeGroupsEqualOneHeadPerCta) {
  KVPLAN_SKIP_WITHOUT_GPU();
  const DecodeFixture f = BuildFixture(GetParam());
  std::vector<float> one_head, whole_group;
  ASSERT_NO_FATAL_FAILURE(RunStep(f, 1, &one_head));
  ASSERT_NO_FATAL_FAILURE(RunStep(f, f.c.group_size, &whole_group));
  EXPECT_TRUE(MatchesReference(f, one_head));
  EXPECT_EQ(whole_group, one_head);
}

INSTANTIATE_TEST_SUITE_P(Shapes, PackedMergeHeadsTest,
                         ::testing::Values(DecodeCase{128, 4, 3, {3000, 700, 5000}, 4, 64},
                                           DecodeCase{64, 8, 4, {2000, 700}, 0, 0, 7},
                                           DecodeCase{128, 2, 2, {129, 4097}},
                                           DecodeCase{128, 8, 3, {5000}, 0, 0, 40}),
                         ParamName);

// Host arithmetic only (no device needed): the plan's SM count decides.
TEST(MergeHeadsPerCtaTest, WholeGroupsOnceOneHeadPerCtaTakesTwoWaves) {
  PackedDecodeParams p;
  p.num_kv_heads = 8;
  p.group_size = 4;
  p.head_dim = 128;
  p.num_splits = 2;
  p.page_stride = 16;
  for (int sms : {132, 100}) {
    SCOPED_TRACE(sms);
    p.num_sms = sms;
    const int one_wave = 2 * sms;  // one-head merge CTAs per SM: its launch bound
    p.batch = one_wave / 32;       // 32 query heads: one wave
    EXPECT_EQ(MergeHeadsPerCta(p), 1);
    p.batch = one_wave / 32 + 1;
    EXPECT_EQ(MergeHeadsPerCta(p), 4);
  }
  p.group_size = 1;
  EXPECT_EQ(MergeHeadsPerCta(p), 1);
  // A whole group's weights would not fit the default 48 KB.
  p.group_size = 4;
  p.num_splits = 4000;
  EXPECT_EQ(MergeHeadsPerCta(p), 1);
  // Forced: as asked, and refused where it is not 1 or the group size or
  // would not fit, before anything is launched.
  p.merge_heads_per_cta = 4;
  EXPECT_EQ(MergeHeadsPerCta(p), 4);
  EXPECT_EQ(LaunchPackedMerge(p, nullptr), cudaErrorInvalidValue);
  p.num_splits = 2;
  p.merge_heads_per_cta = 2;
  EXPECT_EQ(LaunchPackedMerge(p, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(LaunchPackedDecode(p, nullptr), cudaErrorInvalidValue);
  // No multiprocessors: refused too.
  p.merge_heads_per_cta = 0;
  p.num_sms = 0;
  EXPECT_EQ(LaunchPackedMerge(p, nullptr), cudaErrorInvalidValue);
}

TEST(MergeHeadsPerCtaTest, DecodeParamsCarryThePlansSmCount) {
  PackedDecodeConfig config;
  config.num_layers = 1;
  config.num_kv_heads = 1;
  config.group_size = 4;
  config.head_dim = 64;
  config.v_bits = 2;
  config.num_sms = 100;
  absl::StatusOr<PackedDecodePlan> plan =
      PackedDecodePlan::Create(config, {RandomCodec(64, 3.0, 1064)});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->DecodeParams(0, nullptr, 1, 1).num_sms, 100);
}

TEST(PackedDecodeGraphTest, CapturedStepEqualsDirectLaunch) {
  KVPLAN_SKIP_WITHOUT_GPU();
  const DecodeFixture f = BuildFixture(DecodeCase{128, 4, 3, {700, 65}, 4, 16});
  absl::StatusOr<PackedDecodePlan> plan = MakePlan(f);
  ASSERT_TRUE(plan.ok()) << plan.status();
  DeviceBuffer<uint8_t> ws(plan->workspace_bytes());
  cudaStream_t stream;
  KVPLAN_CUDA_OK(cudaStreamCreate(&stream));
  KVPLAN_CUDA_OK(plan->Upload(ws.get(), stream));
  DeviceDecode d(f);
  PackedDecodeParams p = plan->DecodeParams(0, ws.get(), 2, plan->SplitsFor(2, 700));
  FillStep(f, d, p);
  KVPLAN_CUDA_OK(LaunchPackedDecode(p, stream));
  KVPLAN_CUDA_OK(cudaStreamSynchronize(stream));
  const std::vector<float> direct = d.out.ToHost();
  KVPLAN_CUDA_OK(cudaMemsetAsync(d.out.get(), 0, d.out.size() * sizeof(float), stream));
  cudaGraph_t graph;
  KVPLAN_CUDA_OK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
  ASSERT_EQ(LaunchPackedDecode(p, stream), cudaSuccess);
  KVPLAN_CUDA_OK(cudaStreamEndCapture(stream, &graph));
  cudaGraphExec_t exec;
  KVPLAN_CUDA_OK(cudaGraphInstantiate(&exec, graph, 0));
  KVPLAN_CUDA_OK(cudaGraphLaunch(exec, stream));
  KVPLAN_CUDA_OK(cudaStreamSynchronize(stream));
  EXPECT_EQ(d.out.ToHost(), direct);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
}

TEST(DispatchTest, NamesUnsupportedValuesAndSets) {
  EXPECT_EQ(UnsupportedDecodeConfig(128, 4, 3), "");
  EXPECT_EQ(UnsupportedDecodeConfig(96, 4, 3),
            "head_dim 96 is not supported; supported: {64, 128}");
  EXPECT_EQ(UnsupportedDecodeConfig(128, 3, 3),
            "group_size 3 is not supported; supported: {1, 2, 4, 8}");
  EXPECT_EQ(UnsupportedDecodeConfig(64, 8, 5),
            "v_bits 5 is not supported; supported: {2, 3, 4, 8}");
  PackedDecodeConfig config;
  config.num_layers = 1;
  config.num_kv_heads = 1;
  config.head_dim = 96;
  absl::StatusOr<PackedDecodePlan> plan = PackedDecodePlan::Create(config, {});
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("head_dim 96"), std::string::npos);
}

TEST(DispatchTest, CallsWithTheMatchingCompileTimeConstant) {
  int seen = 0;
  EXPECT_EQ(DispatchGroupSize(4,
                              [&](auto g) {
                                seen = decltype(g)::value;
                                return cudaSuccess;
                              }),
            cudaSuccess);
  EXPECT_EQ(seen, 4);
  EXPECT_EQ(DispatchGroupSize(3, [](auto) { return cudaSuccess; }), cudaErrorInvalidValue);
  EXPECT_EQ(DispatchVBits(5, [](auto) { return cudaSuccess; }), cudaErrorInvalidValue);
  EXPECT_EQ(DispatchDecodeConfig(64, 8, 2,
                                 [&](auto hd, auto gs, auto vb) {
                                   seen = decltype(hd)::value * 100 + decltype(gs)::value * 10 +
                                          decltype(vb)::value;
                                   return cudaErrorNotReady;  // Passed through unchanged.
                                 }),
            cudaErrorNotReady);
  EXPECT_EQ(seen, 6482);
}

TEST(PackedPlanTest, K3V3At128FitsTheByteBudget) {
  // The bench's K3V3 plans spread widths over 1..6: at most 6 groups.
  const HeadCodec codec = CodecFromWidths(
      [] {
        // 192 bits in six widths: 4 blocks each at 6, 5, 4 and 1, 16 at 2, 32 at 3.
        std::vector<int> w(64, 3);
        for (int i = 0; i < 4; ++i) {
          w[i] = 6;
          w[4 + i] = 5;
          w[8 + i] = 4;
          w[60 + i] = 1;
        }
        for (int i = 44; i < 60; ++i) w[i] = 2;
        return w;
      }(),
      3);
  const PackedPageLayout layout = *PackedPageLayout::Create(codec.k_layout, 3);
  // Pages pack every width densely: 48 K code bytes whatever the widths.
  EXPECT_EQ(layout.bytes_per_token(), 48 + 6 * 2 + 48 + 2);
  EXPECT_LE(layout.bytes_per_token(), 115.0);
}

}  // namespace
}  // namespace kvplan::kernels::testing
