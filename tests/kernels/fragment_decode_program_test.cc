// A plan's fragment decode kernels (kvplan/kernels/fragment_decode_program.h):
// compiled without a GPU, cached, refused where the fragment path cannot serve
// the plan yet; loaded and run as whole decode steps on a GPU.
#include "kvplan/kernels/fragment_decode_program.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "core/grouped_quantizer.h"
#include "core/half.h"
#include "core/packed_attention.h"
#include "core/packed_kv_cache.h"
#include "core/packed_page.h"
#include "kvplan/kernels/fragment_tables.h"
#include "kvplan/kernels/jit.h"
#include "kvplan/kernels/launch.h"
#include "kvplan/kernels/packed_plan.h"
#include "kvplan/kernels/plan_codecs.h"
#include "tests/kernels/codec_fixtures.h"
#include "tests/kernels/gpu_test_util.h"
#include "tests/kernels/plan_fixtures.h"
#include "tests/kernels/reference_fixtures.h"
#include "tests/kernels/sequence_fixtures.h"

namespace kvplan::kernels {
namespace {

// The JIT compiles fragment_decode.cuh for sm_90a (JitOptions' default).
#define KVPLAN_SKIP_WITHOUT_SM90()                                                \
  do {                                                                            \
    KVPLAN_SKIP_WITHOUT_GPU();                                                    \
    int major = 0;                                                                \
    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0);         \
    if (major != 9) GTEST_SKIP() << "fragment_decode.cuh is compiled for sm_90a"; \
  } while (0)

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

// version1_fallback: the layers the fragment path cannot serve are named and
// left out (no cubin, no page layout) instead of refusing the plan.
TEST(FragmentDecodeProgramTest, LeavesTheLayersItCannotServeToVersion1Pages) {
  FragmentProgramOptions options;
  options.version1_fallback = true;
  // Layer 1 exempt: one 8-bit K group and V8, runs the kernel cannot hold.
  absl::StatusOr<FragmentDecodeProgram> program = FragmentDecodeProgram::Compile(
      *BlockGtqPlan(/*layers=*/3, /*head_dim=*/128, /*k_group_align=*/16, {1}), options);
  ASSERT_TRUE(program.ok()) << program.status();
  EXPECT_TRUE(program->serves(0));
  EXPECT_FALSE(program->serves(1));
  EXPECT_TRUE(program->serves(2));
  EXPECT_EQ(program->version1_layers(), std::vector<int>{1});
  EXPECT_EQ(program->page_stride(1), 0);
  EXPECT_GT(program->page_stride(0), 0);
  EXPECT_LE(program->num_sources(), 2);
  // Greedy K groups: no layer has fragment pages.
  absl::StatusOr<FragmentDecodeProgram> greedy = FragmentDecodeProgram::Compile(
      *BlockGtqPlan(/*layers=*/2, /*head_dim=*/128, /*k_group_align=*/0, {}), options);
  ASSERT_TRUE(greedy.ok()) << greedy.status();
  EXPECT_EQ(greedy->version1_layers(), (std::vector<int>{0, 1}));
  EXPECT_EQ(greedy->num_sources(), 0);
}

TEST(FragmentDecodeProgramTest, LoadsEveryLayersKernels) {
  KVPLAN_SKIP_WITHOUT_SM90();
  absl::StatusOr<FragmentDecodeProgram> program = FragmentDecodeProgram::Compile(
      *BlockGtqPlan(/*layers=*/2, /*head_dim=*/128, /*k_group_align=*/8, {}), {});
  ASSERT_TRUE(program.ok()) << program.status();
  ASSERT_TRUE(program->Load().ok());
  for (int l = 0; l < 2; ++l) EXPECT_NE(program->attention(l), nullptr);
}

// A plan's layers decoded by a full fragment step (prologue, generated
// attention, merge) from fragment pages written by core, with fp16 sink and
// recent tokens, against the fp64 reference over the same pages and tokens
// (ragged batch of two sequences, three splits), per (head_dim, K bits, V
// bits, k_group_align); the fitted shape once more with q written late by a
// kernel that lets the step start early.
// (head_dim, K bits, V bits, k_group_align, balanced splits).
using Config = std::tuple<int, int, int, int, bool>;
class FragmentDecodeConfigTest : public ::testing::TestWithParam<Config> {};

std::string ConfigName(const ::testing::TestParamInfo<Config>& info) {
  return "hd" + std::to_string(std::get<0>(info.param)) + "_k" +
         std::to_string(std::get<1>(info.param)) + "v" + std::to_string(std::get<2>(info.param)) +
         "_align" + std::to_string(std::get<3>(info.param)) +
         (std::get<4>(info.param) ? "_balanced" : "");
}

// A kernel that lets its programmatic dependents start at once, then copies
// n floats after ~100 µs (1 CTA).
constexpr char kLateCopySource[] = R"(
extern "C" __global__ void LateCopy(const float* from, float* to, int n) {
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
  for (const long long start = clock64(); clock64() - start < 200000;) {
  }
  for (int i = threadIdx.x; i < n; i += blockDim.x) to[i] = from[i];
}
)";

TEST_P(FragmentDecodeConfigTest, DecodesEveryLayerLikeTheCpuReference) {
  const int kHd = std::get<0>(GetParam()), k_bits = std::get<1>(GetParam());
  const int v_bits = std::get<2>(GetParam()), align = std::get<3>(GetParam());
  const bool balanced = std::get<4>(GetParam());
  constexpr int kLayers = 2, kGroup = 4, kMaxPages = 4, kMaxSink = 4, kMaxRecent = 8;
  // The middle sequence has only fp16 tokens: its packed partials are all empty.
  const std::vector<int> lens = {200, 0, 81}, sink_lens = {4, 2, 0}, recent_lens = {8, 1, 3};
  const int batch = static_cast<int>(lens.size());
  const KvPlan plan = *BlockGtqPlan(kLayers, kHd, align, {}, k_bits, v_bits);
  const int kv_heads = plan.num_kv_heads;
  // Compiling needs no GPU: every configuration is generated and compiled here.
  FragmentProgramOptions options;
  options.balanced_splits = balanced;
  absl::StatusOr<FragmentDecodeProgram> program = FragmentDecodeProgram::Compile(plan, options);
  ASSERT_TRUE(program.ok()) << program.status();
  KVPLAN_SKIP_WITHOUT_SM90();
  absl::StatusOr<PackedKvCache> cache = PackedKvCache::Create(plan, kv_heads * kGroup, {});
  ASSERT_TRUE(cache.ok()) << cache.status();
  absl::StatusOr<PackedDecodePlan> decode_plan =
      CreateDecodePlanForPlan(plan, {.group_size = kGroup,
                                     .max_batch = batch,
                                     .max_sink = kMaxSink,
                                     .max_recent = kMaxRecent,
                                     .fragment_pages = true});
  ASSERT_TRUE(decode_plan.ok()) << decode_plan.status();
  ASSERT_TRUE(program->Load().ok());
  const absl::StatusOr<std::string> late_cubin = CompileCubin(kLateCopySource, "late_copy.cu", {});
  ASSERT_TRUE(late_cubin.ok()) << late_cubin.status();
  absl::StatusOr<JitLibrary> late_library = JitLibrary::Load(*late_cubin);
  ASSERT_TRUE(late_library.ok()) << late_library.status();
  const absl::StatusOr<cudaKernel_t> late_copy = late_library->Kernel("LateCopy");
  ASSERT_TRUE(late_copy.ok()) << late_copy.status();
  const testing::DeviceBuffer<uint8_t> ws(decode_plan->workspace_bytes());
  KVPLAN_CUDA_OK(decode_plan->Upload(ws.get(), nullptr));
  const std::vector<uint32_t> image = FragmentTableImage();
  const testing::DeviceBuffer<uint32_t> d_tables(image);
  testing::DeviceBuffer<uint16_t> q_rot(FragmentQRotBytes(batch, kv_heads, kHd) / 2);
  // Sequence b's page i is page b·kMaxPages + i, written in reverse order of ids.
  std::vector<int> page_table(batch * kMaxPages);
  for (int i = 0; i < batch * kMaxPages; ++i) page_table[i] = batch * kMaxPages - 1 - i;
  const testing::DeviceBuffer<int> d_table(page_table), d_len(lens), d_sink_len(sink_lens),
      d_recent_len(recent_lens);
  const double scale = 1.0 / std::sqrt(static_cast<double>(kHd));

  for (int l = 0; l < kLayers; ++l) {
    SCOPED_TRACE("layer " + std::to_string(l));
    const int64_t stride = program->page_stride(l);
    ASSERT_EQ(decode_plan->page_stride(l), stride);
    // 0xff: every slot never written holds NaN norms and codes, which the
    // kernels must not read into the result.
    std::vector<uint8_t> pool(static_cast<size_t>(batch) * kMaxPages * kv_heads * stride, 0xff);
    const GroupedQuantizer vq =
        *GroupedQuantizer::Create(*UniformLayout(kHd, plan.VBits(l)), {cache->VRotation()});
    const std::vector<float> q =
        testing::RandomVector(static_cast<size_t>(batch) * kv_heads * kGroup * kHd, 500 + l);
    auto fp16_tokens = [&](size_t rows, uint64_t seed) {
      const std::vector<float> x = testing::RandomVector(rows * kHd, seed);
      std::vector<uint16_t> h(x.size());
      std::transform(x.begin(), x.end(), h.begin(), FloatToHalf);
      return h;
    };
    const size_t units = static_cast<size_t>(batch) * kv_heads;
    const std::vector<uint16_t> sink_k = fp16_tokens(units * kMaxSink, 800 + l);
    const std::vector<uint16_t> sink_v = fp16_tokens(units * kMaxSink, 810 + l);
    const std::vector<uint16_t> recent_k = fp16_tokens(units * kMaxRecent, 820 + l);
    const std::vector<uint16_t> recent_v = fp16_tokens(units * kMaxRecent, 830 + l);
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
        const size_t unit = static_cast<size_t>(b) * kv_heads + h;
        PackedAttentionInputs in;
        in.q =
            absl::MakeConstSpan(q.data() + unit * kGroup * kHd, static_cast<size_t>(kGroup) * kHd);
        in.group_size = kGroup;
        in.pages = pages;
        in.num_packed_tokens = lens[b];
        in.sink = {absl::MakeConstSpan(sink_k.data() + unit * kMaxSink * kHd,
                                       static_cast<size_t>(sink_lens[b]) * kHd),
                   absl::MakeConstSpan(sink_v.data() + unit * kMaxSink * kHd,
                                       static_cast<size_t>(sink_lens[b]) * kHd),
                   sink_lens[b]};
        in.recent = {absl::MakeConstSpan(recent_k.data() + unit * kMaxRecent * kHd,
                                         static_cast<size_t>(recent_lens[b]) * kHd),
                     absl::MakeConstSpan(recent_v.data() + unit * kMaxRecent * kHd,
                                         static_cast<size_t>(recent_lens[b]) * kHd),
                     recent_lens[b]};
        in.scale = scale;
        const absl::Status s = PackedDecodeAttentionReference(
            layout, k_rot, cache->VRotation(), in,
            absl::MakeSpan(want.data() + unit * kGroup * kHd, static_cast<size_t>(kGroup) * kHd));
        ASSERT_TRUE(s.ok()) << s;
      }
    }
    const testing::DeviceBuffer<uint8_t> d_pool(pool);
    const testing::DeviceBuffer<float> d_q(q);
    const testing::DeviceBuffer<uint16_t> d_sink_k(sink_k), d_sink_v(sink_v), d_recent_k(recent_k),
        d_recent_v(recent_v);
    testing::DeviceBuffer<float> out(q.size());
    const absl::StatusOr<int> fill = program->SplitsFor(l, batch, kMaxPages * kPageTokens);
    ASSERT_TRUE(fill.ok()) << fill.status();
    EXPECT_GE(*fill, 1);
    // (CTAs per KV head, splits). Per-pair splits: three (more than SplitsFor
    // gives so few tokens), so that the merge combines several, some of them
    // empty for the shorter sequences (splits of 6 tiles of the table's 16:
    // sequence 2's third is empty), and twenty, more than the table has tiles
    // (one each; past 13 tiles, sequence 0's are empty too). Balanced splits
    // (fragment_params.h), over the 13 + 0 + 6 tiles of a KV head: what
    // CtasPerKvHead and SplitsFor give (one CTA); 3 CTAs of 7 tiles, so that
    // sequence 0 spreads over two and CTA 1 reaches into sequence 2; more CTAs
    // than tiles (idle ones); one slot (one CTA takes every sequence). Each
    // step starts from NaN in the partial slots, which the kernels must all
    // write.
    std::vector<std::pair<int, int>> shapes = {{0, 3}, {0, 20}};
    if (balanced) shapes = {{0, *fill}, {3, 3}, {40, 3}, {2, 1}};
    // And the shape SplitsForLengths fits to these lengths.
    const absl::StatusOr<FragmentSplits> fitted =
        program->SplitsForLengths(l, lens, kMaxPages, decode_plan->max_splits());
    ASSERT_TRUE(fitted.ok()) << fitted.status();
    EXPECT_EQ(fitted->ctas_per_kv_head > 0, balanced);
    shapes.emplace_back(fitted->ctas_per_kv_head, fitted->num_splits);
    // One step of that shape, q read from `q_dev`; `before` runs on the
    // step's stream first.
    const auto step_and_check = [&](int ctas, int splits, const float* q_dev, auto before) {
      SCOPED_TRACE("ctas " + std::to_string(ctas) + ", splits " + std::to_string(splits));
      ASSERT_GE(decode_plan->max_splits(), splits);
      PackedDecodeParams p = decode_plan->DecodeParams(l, ws.get(), batch, splits);
      p.fragment_ctas_per_kv_head = ctas;
      p.q = q_dev;
      p.pages = d_pool.get();
      p.page_table = d_table.get();
      p.max_pages_per_seq = kMaxPages;
      p.packed_len = d_len.get();
      p.sink_k = d_sink_k.get();
      p.sink_v = d_sink_v.get();
      p.sink_len = d_sink_len.get();
      p.recent_k = d_recent_k.get();
      p.recent_v = d_recent_v.get();
      p.recent_len = d_recent_len.get();
      p.scale = static_cast<float>(scale);
      p.out = out.get();
      const size_t partials = static_cast<size_t>(batch) * kv_heads * (splits + 1) * kGroup;
      KVPLAN_CUDA_OK(cudaMemset(out.get(), 0xff, out.size() * sizeof(float)));  // NaN poison
      KVPLAN_CUDA_OK(cudaMemset(p.partial_o, 0xff, partials * kHd * sizeof(float)));
      KVPLAN_CUDA_OK(cudaMemset(p.partial_ml, 0xff, partials * 2 * sizeof(float)));
      before();
      const absl::Status stepped = program->Step(l, p, {d_tables.get(), q_rot.get()}, nullptr);
      ASSERT_TRUE(stepped.ok()) << stepped;
      KVPLAN_CUDA_OK(cudaDeviceSynchronize());
      double max_want = 0;
      for (double x : want) max_want = std::max(max_want, std::abs(x));
      EXPECT_TRUE(testing::AllClose("fragment_decode_layer" + std::to_string(l), out.ToHost(), want,
                                    4e-3 * max_want, 1e-2));
    };
    for (const auto& [ctas, splits] : shapes) step_and_check(ctas, splits, d_q.get(), [] {});
    // The step's kernels overlap the launch of their predecessor's tail, so the
    // step must still wait for the kernel that writes q when that kernel lets
    // its dependents start at once (as a fused RoPE kernel might): here q is
    // NaN until such a kernel copies it in, ~100 µs after it starts.
    SCOPED_TRACE("q written late by a kernel that lets the step start early");
    testing::DeviceBuffer<float> d_q_late(q.size());
    KVPLAN_CUDA_OK(cudaMemset(d_q_late.get(), 0xff, q.size() * sizeof(float)));
    step_and_check(fitted->ctas_per_kv_head, fitted->num_splits, d_q_late.get(), [&] {
      const float* from = d_q.get();
      float* to = d_q_late.get();
      int n = static_cast<int>(q.size());
      void* args[] = {&from, &to, &n};
      KVPLAN_CUDA_OK(cudaLaunchKernel(reinterpret_cast<const void*>(*late_copy), dim3(1), dim3(256),
                                      args, 0, nullptr));
    });
  }
}

// Balanced splits' arithmetic (fragment_params.h), which the kernel and
// SplitsFor share: the chunks cut each KV head's range once, and no sequence
// spans more chunks than its slots, for ragged batches of every shape.
TEST(FragmentChunkTilesTest, ChunksCoverTheRangeAndKeepEachSequenceWithinItsSlots) {
  std::mt19937 rng(3);
  for (int trial = 0; trial < 2000; ++trial) {
    const int batch = 1 + static_cast<int>(rng() % 40);
    const int ctas = 1 + static_cast<int>(rng() % 300);
    const int slots = 1 + static_cast<int>(rng() % 8);
    std::vector<int> tiles(batch);
    for (int& t : tiles) t = rng() % 4 == 0 ? 0 : static_cast<int>(rng() % 3000);
    int total = 0, longest = 0;
    for (int t : tiles) total += t, longest = std::max(longest, t);
    const int chunk = FragmentChunkTiles(total, longest, ctas, slots);
    ASSERT_GE(chunk, 1);
    // Every tile in exactly one CTA's chunk: the chunks reach the end.
    ASSERT_GE(static_cast<int64_t>(chunk) * ctas, total) << "trial " << trial;
    if (slots == 1) {
      EXPECT_GE(chunk, total);
    }
    for (int b = 0, start = 0; b < batch; start += tiles[b++]) {
      ASSERT_LE(FragmentSlotsSpanned(start, tiles[b], chunk), slots)
          << "trial " << trial << " sequence " << b;
    }
  }
  // An even share where the slots allow it: Llama-3.1-8B at batch 16, 32K
  // tokens (2048 tiles each), 33 CTAs per KV head, SplitsFor's 4 slots.
  EXPECT_EQ(FragmentChunkTiles(16 * 2048, 2048, 33, 4), (16 * 2048 + 32) / 33);
  EXPECT_EQ(FragmentChunkTiles(0, 0, 33, 4), 1);
}

// The balanced kernel's walk (AttentionCtaBalanced) on the CPU, with the
// predicates it calls: for ragged batches of every shape, each CTA takes the
// consecutive sequences its chunk holds tiles of or owns, every tile of every
// sequence lands in exactly one segment, and every partial slot of every
// sequence is written exactly once (by a segment, or cleared by its owner).
TEST(FragmentChunkTilesTest, TheChunkWalkCoversEveryTileAndSlotOnce) {
  std::mt19937 rng(5);
  for (int trial = 0; trial < 1000; ++trial) {
    const int batch = 1 + static_cast<int>(rng() % 20);
    const int ctas = 1 + static_cast<int>(rng() % 70);
    const int slots = 1 + static_cast<int>(rng() % 6);
    std::vector<int> tiles(batch), start(batch);
    int total = 0, longest = 0;
    for (int b = 0; b < batch; ++b) {
      tiles[b] = rng() % 4 == 0 ? 0 : static_cast<int>(rng() % 300);
      start[b] = total;
      total += tiles[b];
      longest = std::max(longest, tiles[b]);
    }
    const int chunk = FragmentChunkTiles(total, longest, ctas, slots);
    std::vector<std::vector<int>> tile_hits(batch), slot_writes(batch, std::vector<int>(slots));
    for (int c = 0; c < ctas; ++c) {
      const int begin = FragmentChunkBegin(c, chunk, total);
      const int end = FragmentChunkEnd(begin, chunk, total);
      int reached = 0, last_reached = -1;
      for (int b = 0; b < batch; ++b) {
        const bool owner = FragmentChunkOwner(start[b], chunk, ctas) == c;
        if (!FragmentChunkHolds(begin, end, start[b], tiles[b]) && !owner) continue;
        ASSERT_TRUE(last_reached < 0 || last_reached == b - 1)
            << "trial " << trial << ": CTA " << c << " skips sequence " << b - 1;
        last_reached = b;
        ++reached;
        if (owner) {
          for (int s = FragmentSlotsSpanned(start[b], tiles[b], chunk); s < slots; ++s) {
            ++slot_writes[b][s];
          }
        }
        const int lo = std::max(start[b], begin), hi = std::min(start[b] + tiles[b], end);
        if (tiles[b] > 0 && lo < hi) {
          const int slot = c - start[b] / chunk;
          ASSERT_TRUE(slot >= 0 && slot < slots) << "trial " << trial << " slot " << slot;
          ++slot_writes[b][slot];
          tile_hits[b].resize(tiles[b]);
          for (int t = lo; t < hi; ++t) ++tile_hits[b][t - start[b]];
        }
      }
    }
    for (int b = 0; b < batch; ++b) {
      for (int t = 0; t < tiles[b]; ++t) {
        ASSERT_EQ(tile_hits[b].size() > static_cast<size_t>(t) ? tile_hits[b][t] : 0, 1)
            << "trial " << trial << " sequence " << b << " tile " << t;
      }
      for (int s = 0; s < slots; ++s) {
        ASSERT_EQ(slot_writes[b][s], 1) << "trial " << trial << " sequence " << b << " slot " << s;
      }
    }
  }
}

// What a step refuses, before it launches anything.
TEST(FragmentDecodeProgramTest, StepNamesTheFieldItCannotRun) {
  const KvPlan plan = *BlockGtqPlan(/*layers=*/1, /*head_dim=*/128, /*k_group_align=*/16, {});
  absl::StatusOr<FragmentDecodeProgram> program = FragmentDecodeProgram::Compile(plan, {});
  ASSERT_TRUE(program.ok()) << program.status();
  PackedDecodeParams p;
  EXPECT_EQ(program->Step(0, p, {}, nullptr).code(), absl::StatusCode::kFailedPrecondition);
  KVPLAN_SKIP_WITHOUT_SM90();
  ASSERT_TRUE(program->Load().ok());
  absl::StatusOr<PackedDecodePlan> decode_plan =
      CreateDecodePlanForPlan(plan, {.group_size = 4, .max_batch = 1, .fragment_pages = true});
  ASSERT_TRUE(decode_plan.ok()) << decode_plan.status();
  const testing::DeviceBuffer<uint8_t> ws(decode_plan->workspace_bytes());
  testing::DeviceBuffer<uint32_t> tables(kFragmentTableBytes / 4);
  testing::DeviceBuffer<uint16_t> q_rot(FragmentQRotBytes(1, plan.num_kv_heads, 128) / 2);
  testing::DeviceBuffer<float> out(static_cast<size_t>(plan.num_kv_heads) * 4 * 128);
  const FragmentStepBuffers buffers{tables.get(), q_rot.get()};
  p = decode_plan->DecodeParams(0, ws.get(), 1, 1);
  p.out = out.get();
  auto refused = [&](const PackedDecodeParams& bad, int layer, const std::string& names) {
    const absl::Status s = program->Step(layer, bad, buffers, nullptr);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_NE(s.message().find(names), std::string::npos) << s;
  };
  refused(p, 1, "layers 0 .. 0");
  PackedDecodeParams bad = p;
  bad.page_stride = program->page_stride(0) - 16;
  refused(bad, 0, "page_stride");
  bad.page_stride = ((int64_t{1} << 32) / plan.num_kv_heads / 16 + 1) * 16;
  refused(bad, 0, "over 4 GiB per page");
  bad = p;
  bad.group_size = 3;
  refused(bad, 0, "group_size 3");
  bad = p;
  bad.num_kv_heads = 1;
  refused(bad, 0, "KV heads");
  bad = p;
  bad.fragment_ctas_per_kv_head = -1;
  refused(bad, 0, "fragment_ctas_per_kv_head -1");
  const absl::Status no_buffers = program->Step(0, p, {}, nullptr);
  EXPECT_EQ(no_buffers.code(), absl::StatusCode::kInvalidArgument) << no_buffers;
  // A version-1 plan's params, and the version-1 launcher given fragment ones.
  absl::StatusOr<PackedDecodePlan> version1 =
      CreateDecodePlanForPlan(plan, {.group_size = 4, .max_batch = 1});
  ASSERT_TRUE(version1.ok()) << version1.status();
  PackedDecodeParams v1 = version1->DecodeParams(0, ws.get(), 1, 1);
  v1.page_stride = program->page_stride(0);
  v1.out = out.get();
  refused(v1, 0, "fragment_pages");
  EXPECT_EQ(LaunchPackedDecode(p, nullptr), cudaErrorInvalidValue);
  // A balanced program counts a KV head's tiles over the batch in 32 bits.
  FragmentProgramOptions balanced_options;
  balanced_options.balanced_splits = true;
  absl::StatusOr<FragmentDecodeProgram> balanced =
      FragmentDecodeProgram::Compile(plan, balanced_options);
  ASSERT_TRUE(balanced.ok()) << balanced.status();
  ASSERT_TRUE(balanced->Load().ok());
  bad = p;
  bad.batch = 2;
  bad.max_pages_per_seq = kMaxFragmentRangeTiles / 8 + 1;
  const absl::Status too_many = balanced->Step(0, bad, buffers, nullptr);
  EXPECT_EQ(too_many.code(), absl::StatusCode::kInvalidArgument) << too_many;
  EXPECT_NE(too_many.message().find("split the batch"), std::string::npos) << too_many;
  // Every kernel counts a sequence's tiles in 32 bits.
  bad = p;
  bad.max_pages_per_seq = kMaxFragmentRangeTiles / 4 + 1;
  refused(bad, 0, "no sequence can be that long");
  // Lengths a page table cannot hold, and a plan without partial slots.
  const std::vector<int> lens = {64, 65};
  const absl::StatusOr<FragmentSplits> too_long = program->SplitsForLengths(0, lens, 1, 4);
  EXPECT_EQ(too_long.status().code(), absl::StatusCode::kInvalidArgument) << too_long.status();
  EXPECT_NE(too_long.status().message().find("sequence 1 has 65 tokens"), std::string::npos)
      << too_long.status();
  const std::vector<int> negative = {-1};
  EXPECT_EQ(program->SplitsForLengths(0, negative, 1, 4).status().code(),
            absl::StatusCode::kInvalidArgument);
  const absl::StatusOr<FragmentSplits> no_slots = program->SplitsForLengths(0, lens, 2, 0);
  EXPECT_EQ(no_slots.status().code(), absl::StatusCode::kInvalidArgument) << no_slots.status();
  EXPECT_TRUE(program->SplitsForLengths(0, lens, 2, 4).ok());
}

// A step that encodes its new tokens itself (Step's append, in the
// prologue's launch) against LaunchEncodePack of those tokens and then the
// step: the same pages and the same output, bit for bit. Two sequences and
// five new tokens (more than the batch: the launch's y axis covers both), one
// of them skipped (slot -1). On one SM (num_sms 1) the grid does not fit at
// once, so Step launches the encode on its own first: the same again. A step
// of no sequences still writes the new tokens.
TEST(FragmentDecodeProgramTest, StepWithItsAppendEqualsTheEncodeThenTheStep) {
  KVPLAN_SKIP_WITHOUT_SM90();
  constexpr int kHeadDim = 128, kGroup = 4, kBatch = 2, kMaxPages = 3;
  const KvPlan plan = *BlockGtqPlan(/*layers=*/1, kHeadDim, /*k_group_align=*/16, {});
  const int kv_heads = plan.num_kv_heads, q_heads = kv_heads * kGroup;
  absl::StatusOr<FragmentDecodeProgram> program = FragmentDecodeProgram::Compile(plan, {});
  ASSERT_TRUE(program.ok()) << program.status();
  ASSERT_TRUE(program->Load().ok());
  absl::StatusOr<PackedDecodePlan> decode_plan = CreateDecodePlanForPlan(
      plan, {.group_size = kGroup, .max_batch = kBatch, .fragment_pages = true});
  ASSERT_TRUE(decode_plan.ok()) << decode_plan.status();
  const testing::DeviceBuffer<uint8_t> ws(decode_plan->workspace_bytes());
  KVPLAN_CUDA_OK(decode_plan->Upload(ws.get(), nullptr));
  const testing::DeviceBuffer<uint32_t> tables(FragmentTableImage());
  testing::DeviceBuffer<uint16_t> q_rot(FragmentQRotBytes(kBatch, kv_heads, kHeadDim) / 2);

  // Sequence 0: 130 tokens in pages 0-2; sequence 1: 70 in pages 3-4. The
  // last two of each are the step's new tokens.
  const std::vector<int> lens = {130, 70};
  const std::vector<int> table = {0, 1, 2, 3, 4, 0};
  std::vector<int64_t> old_slots, new_slots = {128, 129, -1, 3 * 64 + 68, 3 * 64 + 69};
  for (int t = 0; t < 128; ++t) old_slots.push_back(t);
  for (int t = 0; t < 68; ++t) old_slots.push_back(3 * 64 + t);
  auto rows = [&](size_t tokens, uint64_t seed) {
    return testing::RandomVector(tokens * kv_heads * kHeadDim, seed);
  };
  const testing::DeviceBuffer<float> old_k(rows(old_slots.size(), 1)),
      old_v(rows(old_slots.size(), 2)), new_k(rows(new_slots.size(), 3)),
      new_v(rows(new_slots.size(), 4));
  const testing::DeviceBuffer<float> q(
      testing::RandomVector(static_cast<size_t>(kBatch) * q_heads * kHeadDim, 5));
  const testing::DeviceBuffer<int64_t> d_old_slots(old_slots), d_new_slots(new_slots);
  const testing::DeviceBuffer<int> d_table(table), d_lens(lens);
  const size_t pool_bytes = static_cast<size_t>(5) * kv_heads * decode_plan->page_stride(0);

  // Both paths from the same start: the old tokens encoded into a pool
  // poisoned with NaN bytes.
  struct Run {
    testing::DeviceBuffer<uint8_t> pool;
    testing::DeviceBuffer<float> out;
  };
  enum class Path { kSeparate, kFused, kFusedOnOneSm, kNoStep };
  auto run = [&](Path path, Run& r) {
    KVPLAN_CUDA_OK(cudaMemset(r.pool.get(), 0xff, pool_bytes));
    KVPLAN_CUDA_OK(cudaMemset(r.out.get(), 0xff, r.out.size() * sizeof(float)));
    EncodePackParams old_tokens = decode_plan->EncodeParams(0, ws.get());
    old_tokens.k = old_k.get();
    old_tokens.v = old_v.get();
    old_tokens.slot_mapping = d_old_slots.get();
    old_tokens.pages = r.pool.get();
    old_tokens.num_tokens = static_cast<int>(old_slots.size());
    KVPLAN_CUDA_OK(LaunchEncodePack(old_tokens, nullptr));
    EncodePackParams append = old_tokens;
    append.k = new_k.get();
    append.v = new_v.get();
    append.slot_mapping = d_new_slots.get();
    append.num_tokens = static_cast<int>(new_slots.size());
    if (path == Path::kFusedOnOneSm) append.num_sms = 1;
    PackedDecodeParams p = decode_plan->DecodeParams(0, ws.get(), kBatch, 2);
    p.q = q.get();
    p.pages = r.pool.get();
    p.page_table = d_table.get();
    p.max_pages_per_seq = kMaxPages;
    p.packed_len = d_lens.get();
    p.scale = 1.0f / std::sqrt(static_cast<float>(kHeadDim));
    p.out = r.out.get();
    if (path == Path::kNoStep) p.batch = 0;
    const bool fused = path != Path::kSeparate;
    if (path == Path::kFused || path == Path::kFusedOnOneSm) {
      EXPECT_EQ(FragmentPrologueFusesAppend(p, append), path == Path::kFused);
    } else if (!fused) {
      KVPLAN_CUDA_OK(LaunchEncodePack(append, nullptr));
    }
    const absl::Status stepped =
        program->Step(0, p, {tables.get(), q_rot.get()}, nullptr, fused ? &append : nullptr);
    ASSERT_TRUE(stepped.ok()) << stepped;
    KVPLAN_CUDA_OK(cudaDeviceSynchronize());
  };
  const size_t out_count = static_cast<size_t>(kBatch) * q_heads * kHeadDim;
  Run separate{testing::DeviceBuffer<uint8_t>(pool_bytes), testing::DeviceBuffer<float>(out_count)};
  run(Path::kSeparate, separate);
  const std::vector<uint8_t> want_pool = separate.pool.ToHost();
  const std::vector<float> want = separate.out.ToHost();
  ASSERT_TRUE(std::all_of(want.begin(), want.end(), [](float x) { return std::isfinite(x); }));
  Run fused{testing::DeviceBuffer<uint8_t>(pool_bytes), testing::DeviceBuffer<float>(out_count)};
  for (Path path : {Path::kFused, Path::kFusedOnOneSm}) {
    SCOPED_TRACE(path == Path::kFused ? "fused" : "fused, one SM");
    run(path, fused);
    EXPECT_EQ(want_pool, fused.pool.ToHost());
    const std::vector<float> got = fused.out.ToHost();
    EXPECT_EQ(0, std::memcmp(want.data(), got.data(), want.size() * sizeof(float)));
  }
  run(Path::kNoStep, fused);
  EXPECT_EQ(want_pool, fused.pool.ToHost()) << "a step of no sequences";

  // Another layer's or pool's encode params are refused, naming the fix.
  PackedDecodeParams p = decode_plan->DecodeParams(0, ws.get(), kBatch, 2);
  p.pages = fused.pool.get();
  p.out = fused.out.get();
  EncodePackParams elsewhere = decode_plan->EncodeParams(0, ws.get());
  elsewhere.pages = separate.pool.get();
  elsewhere.num_tokens = 1;
  const absl::Status refused =
      program->Step(0, p, {tables.get(), q_rot.get()}, nullptr, &elsewhere);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument) << refused;
  EXPECT_NE(refused.message().find("pages = p.pages"), std::string::npos) << refused;
}

// A stored plan served end to end on fragment pages: every layer encoded on
// the GPU (LaunchEncodePack with a fragment_pages plan) and attended by a step,
// against the fp64 reference over the GPU's pages, and against PackedKvCache
// (the CPU serving cache) fed the same tokens.
// (head_dim, k_group_align, exempt layer 1: decoded by LaunchPackedDecode from
// version-1 pages, the program's version1_layers).
class FragmentPlanTest : public ::testing::TestWithParam<std::tuple<int, int, bool>> {};

TEST_P(FragmentPlanTest, GpuEncodedLayersMatchTheCpuCache) {
  KVPLAN_SKIP_WITHOUT_SM90();
  const int hd = std::get<0>(GetParam()), align = std::get<1>(GetParam());
  const bool exempt = std::get<2>(GetParam());
  constexpr int kLayers = 3, kGroup = 4, kTokens = 200;  // three full pages and a partial one
  const KvPlan plan =
      *BlockGtqPlan(kLayers, hd, align, exempt ? std::vector<int>{1} : std::vector<int>{});
  const int kv_heads = plan.num_kv_heads, q_heads = kv_heads * kGroup;
  FragmentProgramOptions options;
  options.version1_fallback = true;
  absl::StatusOr<FragmentDecodeProgram> program = FragmentDecodeProgram::Compile(plan, options);
  ASSERT_TRUE(program.ok()) << program.status();
  ASSERT_EQ(program->version1_layers(), exempt ? std::vector<int>{1} : std::vector<int>{});
  ASSERT_TRUE(program->Load().ok());
  absl::StatusOr<PackedKvCache> cache =
      PackedKvCache::Create(plan, q_heads, {.sink_tokens = 0, .recent_tokens = 0});
  ASSERT_TRUE(cache.ok()) << cache.status();
  absl::StatusOr<PackedDecodePlan> decode_plan =
      CreateDecodePlanForPlan(plan, {.group_size = kGroup,
                                     .fragment_pages = true,
                                     .version1_layers = program->version1_layers()});
  ASSERT_TRUE(decode_plan.ok()) << decode_plan.status();
  const testing::DeviceBuffer<uint8_t> ws(decode_plan->workspace_bytes());
  KVPLAN_CUDA_OK(decode_plan->Upload(ws.get(), nullptr));
  const testing::DeviceBuffer<uint32_t> tables(FragmentTableImage());
  testing::DeviceBuffer<uint16_t> q_rot(FragmentQRotBytes(1, kv_heads, hd) / 2);

  const testing::InOrderSequence seq(kTokens);
  for (int l = 0; l < kLayers; ++l) {
    SCOPED_TRACE("layer " + std::to_string(l));
    const size_t n = static_cast<size_t>(kTokens) * kv_heads * hd;
    const std::vector<float> k = testing::RandomVector(n, 100 + l);
    const std::vector<float> v = testing::RandomVector(n, 200 + l);
    const std::vector<float> q = testing::RandomVector(static_cast<size_t>(q_heads) * hd, 300 + l);
    ASSERT_TRUE(cache->Append(l, k, v).ok());
    const testing::DeviceBuffer<float> d_k(k), d_v(v), d_q(q);
    const int64_t stride = decode_plan->page_stride(l);
    testing::DeviceBuffer<uint8_t> pool(static_cast<size_t>(seq.pages) * kv_heads * stride);
    // NaN in every slot the encode does not write (the last page's tail).
    KVPLAN_CUDA_OK(cudaMemset(pool.get(), 0xff, pool.size()));
    testing::DeviceBuffer<float> out(q.size());
    KVPLAN_CUDA_OK(seq.Encode(*decode_plan, l, ws.get(), d_k.get(), d_v.get(), pool.get()));
    const PackedDecodeParams p =
        seq.DecodeParams(*decode_plan, l, ws.get(), 2, d_q.get(), pool.get(), out.get());
    KVPLAN_CUDA_OK(cudaMemset(out.get(), 0xff, out.size() * sizeof(float)));  // NaN poison
    ASSERT_EQ(decode_plan->fragment_layer(l), program->serves(l));
    if (program->serves(l)) {
      const absl::Status stepped = program->Step(l, p, {tables.get(), q_rot.get()}, nullptr);
      ASSERT_TRUE(stepped.ok()) << stepped;
    } else {  // the per-layer dispatch a server does
      EXPECT_EQ(program->Step(l, p, {tables.get(), q_rot.get()}, nullptr).code(),
                absl::StatusCode::kFailedPrecondition);
      KVPLAN_CUDA_OK(LaunchPackedDecode(p, nullptr));
    }
    KVPLAN_CUDA_OK(cudaDeviceSynchronize());
    const std::vector<float> got = out.ToHost();

    // The step alone: the fp64 reference over the pages the GPU wrote.
    const absl::StatusOr<std::vector<double>> reference = testing::ReferenceOverPool(
        pool.ToHost(),
        {.kv_heads = kv_heads,
         .group_size = kGroup,
         .head_dim = hd,
         .stride = stride,
         .num_tokens = kTokens,
         .scale = 1.0 / std::sqrt(static_cast<double>(hd))},
        q, [&](int h, const PackedAttentionInputs& in, absl::Span<double> head_out) {
          return decode_plan->fragment_layer(l)
                     ? PackedDecodeAttentionReference(decode_plan->fragment_layout(l, h),
                                                      cache->KRotations(l, h), cache->VRotation(),
                                                      in, head_out)
                     : PackedDecodeAttentionReference(decode_plan->page_layout(l, h),
                                                      cache->KRotations(l, h), cache->VRotation(),
                                                      in, head_out);
        });
    ASSERT_TRUE(reference.ok()) << reference.status();
    const std::vector<double>& want = *reference;
    double max_want = 0;
    for (double x : want) max_want = std::max(max_want, std::abs(x));
    EXPECT_TRUE(testing::AllClose("fragment_plan_gpu_pages", got, want, 4e-3 * max_want, 1e-2));

    // Encode too: the CPU serving cache fed the same tokens, at
    // plan_decode_test's tolerance (a rare encode flip moves an output by up to
    // 0.23·max|want|; a wrong bit position by about max|want| on many).
    std::vector<float> cpu(q.size());
    ASSERT_TRUE(cache->Attend(l, q, kTokens, absl::MakeSpan(cpu)).ok());
    const std::vector<double> cpu_want(cpu.begin(), cpu.end());
    double max_cpu = 0;
    for (double x : cpu_want) max_cpu = std::max(max_cpu, std::abs(x));
    EXPECT_TRUE(testing::AllClose("fragment_plan_cpu_cache", got, cpu_want, 0.25 * max_cpu, 1e-2));
  }
}

std::string PlanName(const ::testing::TestParamInfo<std::tuple<int, int, bool>>& case_info) {
  return "hd" + std::to_string(std::get<0>(case_info.param)) + "_align" +
         std::to_string(std::get<1>(case_info.param)) +
         (std::get<2>(case_info.param) ? "_exempt" : "");
}

INSTANTIATE_TEST_SUITE_P(HeadDims, FragmentPlanTest,
                         ::testing::Values(std::make_tuple(128, 16, false),
                                           std::make_tuple(128, 8, false),
                                           std::make_tuple(64, 16, false),
                                           std::make_tuple(128, 16, true)),
                         PlanName);

INSTANTIATE_TEST_SUITE_P(Configs, FragmentDecodeConfigTest,
                         ::testing::Values(Config(128, 3, 3, 16, false),
                                           Config(128, 3, 3, 8, false),
                                           Config(128, 4, 4, 16, false),
                                           Config(128, 2, 4, 8, false), Config(64, 3, 3, 16, false),
                                           Config(64, 2, 2, 8, false), Config(128, 3, 3, 16, true),
                                           Config(64, 2, 2, 8, true)),
                         ConfigName);

}  // namespace
}  // namespace kvplan::kernels
