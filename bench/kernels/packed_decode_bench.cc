// Decode-step benchmark on one GPU: packed K/V decode attention (kernels/)
// against an fp16 flash-decoding kernel of the same launch scheme and against
// LibTorch's scaled_dot_product_attention (enable_gqa), plus encode + pack,
// with device-to-device cudaMemcpy bandwidth as the roofline. Prints a table;
// numbers and the commands that produce them go to BENCHMARKS.md.
//
// Usage: packed_decode_bench [--quick] [--iters N] [--model NAME] [--kbits B]
//                             [--batch N] [--ctx N] [--no-encode] [--k-align D]
//                             [--encode-slabs N] [--splits N] [--fragment] [--graph]
//                             [--ragged] [--balanced] [--fragment-ctas N] [--parts]
//                             [--fit-splits] [--fragment-splits N] [--table-ctx N]
//                             [--append] [--no-wgmma] [--wgmma-min N] [--scatter]
//                             [--few-token-max N] [--fragment-encode-only]
//                             [--merge-heads one|group] [--shuffle-pages]
//                             [--fragment-step-only] [--settle-ms MS] [--prefill]
//   (--model/--kbits/--batch/--ctx keep only the matching rows; for ncu.)
//   Parsed by bench_options.h: an unknown flag, a missing or malformed value,
//   or a combination that would time something else stops the run with an
//   error naming the flag (exit 1), before any device work.
//   Shapes: Llama-3.1-8B (32 q / 8 kv, hd 128), Qwen2.5-3B (16 / 2, hd 128);
//   contexts 4K..512K; batch 1 and 16; K3V3 and K2V2 plans allocated by
//   GreedyAllocate from lognormal block energies decaying with block index
//   (--k-align D: GroupAlignedAllocate, width groups of whole D-dim units).
//   --encode-slabs N: 64-token slabs per encode CTA (0: the launcher's choice).
//   --no-wgmma: plans without PackedDecodeConfig::wgmma (K and V encoded by the
//   slab kernel) on an sm_90 device, where it is set otherwise.
//   --wgmma-min N: the encode columns' EncodePackParams::wgmma_min_token_heads
//   (tokens x KV heads from which the wgmma encode runs; to measure its value).
//   --splits N: key splits per (sequence, KV head) of the version-1 decode step (0:
//   SplitsFor, or with --fit-splits PackedDecodePlan::SplitsForLengths of the
//   batch's lengths; at most the plan's max_splits); the fragment step takes
//   FragmentDecodeProgram::SplitsFor unless --fit-splits (SplitsForLengths of
//   the batch's lengths and page table: its split count and, balanced, CTAs)
//   or --fragment-splits N (that many; balanced: partial slots).
//   --table-ctx N: page tables of N tokens' pages per sequence (a table sized
//   for a longer context than the sequences hold; N >= ctx), for both steps.
//   --scatter: the encode columns' tokens go to their slots in a shuffled order
//   (as a decode step of many sequences: no slab a whole page, every code
//   stored by the per-code atomics path).
//   --shuffle-pages: the decode steps' page tables list each replica's pages in
//   a shuffled order (as a serving allocator hands out pages), not in order;
//   the same bytes are read.
//   --fragment-step-only (with --fragment): no version-1 step and no fp16 or
//   SDPA baseline ("-" in their columns, and in x SDPA): for A/Bs of the
//   fragment step that need no ratios (a 512K process spends most of its time
//   on the baselines) and for power_trace.sh, whose samples then see the step
//   alone.
//   --settle-ms MS: every timing (the copy bandwidth, steps, baselines,
//   encodes) after MS ms of its own untimed runs, so that the card's clocks are
//   that kernel's sustained state under the power cap, not what the previous
//   measurement left (default 0: timed after 2-3 warm-up samples only).
//   --prefill: above each row with an encode column, the prefill layer of the
//   encode's tokens as one sequence through LibTorch (causal SDPA and the four
//   projection GEMMs, prefill_baseline.h) and each encode's share of it: what
//   the encode costs where a serving node runs it (needs LibTorch >= 2.5; each
//   model's layer timed once per token count).
//   --few-token-max N: the encode columns' launches of at most N tokens x KV
//   heads take the few-token kernel (EncodePackParams::few_token_max_token_heads;
//   default 512).
//   --fragment-encode-only (with --fragment): no version-1 encode column, so
//   that the process's first encode launch is the fragment pages' (what
//   run_on_h200.sh's NCU_CASE profiles: the first matching launch).
//   --merge-heads one|group: both steps' merges with one query head, or a
//   whole GQA group, per CTA (PackedDecodeParams::merge_heads_per_cta; default:
//   MergeHeadsPerCta's choice), for the A/B behind that choice.
//   --ragged: sequence b of a batch has ctx·(b + 1) / batch tokens (a decode
//   batch of mixed lengths) for the packed and fp16 kernels; GB/s count the
//   pages actually read; no SDPA column (dense K/V only).
//   --balanced (with --fragment): the fragment program with balanced splits
//   (FragmentProgramOptions::balanced_splits); --fragment-ctas N its attention
//   CTAs per KV head (PackedDecodeParams::fragment_ctas_per_kv_head; 0:
//   CtasPerKvHead).
//   --fragment (needs --k-align 8 or 16): also the fragment-page step
//   (kvplan/kernels/fragment_decode_program.h: the plan's kernels compiled with
//   NVRTC at start, cubins cached in /tmp/kvplan_bench_cubins) on fragment pages
//   of the same plan, in more columns: µs, GB/s, % of copy bandwidth, x SDPA, and
//   encode into fragment pages (µs, % of copy bandwidth). --parts (with
//   --fragment): under each row, the step's prologue and merge timed alone.
//   --append: above each row, a decode step's encode (one new token per
//   sequence into the next slot of its last page: the per-code atomics path),
//   into version-1 pages and, with --fragment, fragment pages; with
//   --fragment also the fragment step timed after its append (the pair a
//   serving loop launches per layer), with Step encoding its append itself
//   (fused into its first launch where FragmentPrologueFusesAppend), and the
//   step alone.
//   Times: median of N single launches timed with CUDA events (host launch
//   overhead included where the GPU outruns the host), or with --graph of N
//   replays of a CUDA graph of kGraphSteps steps, per step (the GPU time a
//   serving loop replaying graphs sees; SDPA through at::cuda::CUDAGraph). Inputs
//   rotate over enough replicas to exceed the L2 several times (SDPA's too).
#include <cuda_runtime.h>  // the typed cudaMalloc overloads

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/kernels/bench_device.h"
#include "bench/kernels/bench_options.h"
#include "bench/kernels/event_median.h"
#include "bench/kernels/prefill_baseline.h"
#include "bench/kernels/sdpa_baseline.h"
#include "core/allocator.h"
#include "core/fragment_page.h"
#include "core/group_layout.h"
#include "core/random.h"
#include "core/rotation.h"
#include "kvplan/kernels/fragment_decode_program.h"
#include "kvplan/kernels/fragment_tables.h"
#include "kvplan/kernels/launch.h"
#include "kvplan/kernels/packed_plan.h"

namespace kvplan::bench {
namespace {

using kernels::HeadCodec;
using kernels::PackedDecodeConfig;
using kernels::PackedDecodePlan;

#define BENCH_CHECK(expr)                                                                         \
  do {                                                                                            \
    const cudaError_t e_ = (expr);                                                                \
    if (e_ != cudaSuccess) {                                                                      \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #expr, cudaGetErrorString(e_)); \
      std::exit(1);                                                                               \
    }                                                                                             \
  } while (0)

// Steps per captured graph with --graph: at least the replicas (<= 16).
constexpr int kGraphSteps = 16;

struct Model {
  const char* name;
  int q_heads, kv_heads, head_dim;
  int hidden, intermediate;  // the layer's widths, for --prefill's GEMMs
};

// Times launches on its own stream. By default a sample is one call f(i,
// stream) between two events (after 3 warm-ups): what a step costs when the
// host launches it, host launch overhead included wherever the GPU is faster
// than the host. With graph_steps > 0 (--graph), f(0 .. graph_steps - 1) are
// captured into one CUDA graph and a sample is one replay divided by
// graph_steps: a step's GPU time as a serving loop that replays graphs sees it.
// settle_ms (--settle-ms): untimed samples first, for that long
// (event_median.h's SettleClocks).
struct Timer {
  cudaStream_t stream;
  int graph_steps = 0;
  double settle_ms = 0.0;
  Timer() { cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking); }
  ~Timer() { cudaStreamDestroy(stream); }
  // Median µs per call of f(i, stream) over `iters` samples.
  template <typename F>
  double Median(int iters, F&& f) {
    // The inputs were filled on the legacy stream, which this non-blocking
    // stream does not wait for (a pageable cudaMemcpy may return before its
    // DMA lands): everything before this point completes first.
    BENCH_CHECK(cudaDeviceSynchronize());
    if (graph_steps <= 0) {
      for (int i = 0; i < 3; ++i) f(i, stream);
      BENCH_CHECK(cudaStreamSynchronize(stream));
      return MedianEventMicros(
          stream, iters, 1, [&](int i) { f(i, stream); }, settle_ms);
    }
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    BENCH_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    for (int i = 0; i < graph_steps; ++i) f(i, stream);
    BENCH_CHECK(cudaStreamEndCapture(stream, &graph));
    BENCH_CHECK(cudaGraphInstantiate(&exec, graph, 0));
    for (int i = 0; i < 2; ++i) BENCH_CHECK(cudaGraphLaunch(exec, stream));
    BENCH_CHECK(cudaStreamSynchronize(stream));
    const double us = MedianEventMicros(
        stream, iters, graph_steps, [&](int) { BENCH_CHECK(cudaGraphLaunch(exec, stream)); },
        settle_ms);
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    return us;
  }
};

// K widths for one head from lognormal energies decaying with block index.
// k_align > 0: the best allocation whose width groups are multiples of k_align
// dims (GroupAlignedAllocate), so the kernel decodes no padded K slices.
HeadCodec RealisticCodec(int head_dim, double k_bits, uint64_t seed, int k_align) {
  const int blocks = head_dim / 2;
  DeterministicRng rng(seed);
  std::vector<double> scores(blocks);
  for (int i = 0; i < blocks; ++i) {
    scores[i] = std::exp(1.2 * rng.NextGaussian()) * std::exp(-4.0 * i / blocks);
  }
  AllocationOptions options;
  options.avg_bits = k_bits;
  const std::vector<int> widths = k_align > 0 ? *GroupAlignedAllocate(scores, options, k_align / 2)
                                              : *GreedyAllocate(scores, options);
  std::vector<std::array<int, 2>> dims(blocks);
  for (int i = 0; i < blocks; ++i) dims[i] = {i, i + blocks};
  HeadCodec codec;
  codec.k_layout = *BuildGroupLayout(widths, dims);
  for (size_t g = 0; g < codec.k_layout.groups.size(); ++g) {
    codec.k_rotations.push_back(HaarRotation(codec.k_layout.groups[g].size, seed * 37 + g));
  }
  codec.v_rotation = HaarRotation(head_dim, seed * 37 + 31);
  return codec;
}

// Fisher-Yates with a fixed seed: the same order in every run.
template <typename T>
void Shuffle(std::vector<T>& values, uint64_t seed) {
  DeterministicRng rng(seed);
  for (size_t i = values.size(); i > 1; --i) {
    std::swap(values[i - 1], values[rng.NextU64() % static_cast<uint64_t>(i)]);
  }
}

double MemcpyBandwidth(Timer& timer) {
  const size_t bytes = size_t{4} << 30;
  void *a, *b;
  BENCH_CHECK(cudaMalloc(&a, bytes));
  BENCH_CHECK(cudaMalloc(&b, bytes));
  BENCH_CHECK(FillRandomBits(a, bytes, 1, nullptr));
  const double us = timer.Median(10, [&](int, cudaStream_t s) {
    BENCH_CHECK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, s));
  });
  cudaFree(a);
  cudaFree(b);
  return 2.0 * bytes / (us * 1e-6) / 1e9;  // read + write, GB/s
}

// The fragment-page path of one plan (--fragment): a PackedDecodePlan of the
// same codecs with fragment_pages and its workspace, the compiled kernels, the
// code-table image and q̂ scratch, and each head's norm spans for FixPageNorms.
struct FragmentPath {
  std::optional<PackedDecodePlan> plan;
  std::optional<kernels::FragmentDecodeProgram> program;
  void* workspace = nullptr;
  uint32_t* tables = nullptr;
  uint16_t* q_rot = nullptr;
  int* norm_spans = nullptr;  // [heads][kFragmentTilesPerPage][2]
  double page_bytes_sum = 0;  // over the heads
  bool balanced = false;      // --balanced: FragmentProgramOptions::balanced_splits
  int ctas_per_kv_head = 0;   // --fragment-ctas (balanced; 0: the program's CtasPerKvHead)
  bool fit_splits = false;    // --fit-splits: SplitsForLengths
  int splits = 0;             // --fragment-splits (0: SplitsFor)
  int merge_heads = 0;        // --merge-heads (0: MergeHeadsPerCta)
  FragmentPath() = default;
  FragmentPath(const FragmentPath&) = delete;
  FragmentPath& operator=(const FragmentPath&) = delete;
  ~FragmentPath() {
    cudaFree(workspace);
    cudaFree(tables);
    cudaFree(q_rot);
    cudaFree(norm_spans);
  }
};

void MakeFragmentPath(PackedDecodeConfig config, const std::vector<HeadCodec>& codecs,
                      FragmentPath& path) {
  config.fragment_pages = true;
  absl::StatusOr<PackedDecodePlan> plan = PackedDecodePlan::Create(config, codecs);
  if (!plan.ok()) {
    std::fprintf(stderr, "fragment plan: %s\n", std::string(plan.status().message()).c_str());
    std::exit(1);
  }
  std::vector<FragmentPageLayout> pages;
  std::vector<int> spans;
  for (int h = 0; h < config.num_kv_heads; ++h) {
    const FragmentPageLayout& page = plan->fragment_layout(0, h);
    for (int t = 0; t < kernels::kFragmentTilesPerPage; ++t) {
      spans.push_back(static_cast<int>(t * page.tile_bytes() + page.norms_offset()));
      spans.push_back(kFragmentTileTokens * (page.num_k_groups() + 1));
    }
    path.page_bytes_sum += static_cast<double>(page.page_bytes());
    pages.push_back(page);
  }
  kernels::FragmentProgramOptions options;
  options.jit.cache_dir = "/tmp/kvplan_bench_cubins";
  options.balanced_splits = path.balanced;
  absl::StatusOr<kernels::FragmentDecodeProgram> program =
      kernels::FragmentDecodeProgram::Compile(config.num_kv_heads, std::move(pages), options);
  absl::Status loaded = program.ok() ? program->Load() : program.status();
  if (!loaded.ok()) {
    std::fprintf(stderr, "fragment program: %s\n", std::string(loaded.message()).c_str());
    std::exit(1);
  }
  BENCH_CHECK(cudaMalloc(&path.workspace, plan->workspace_bytes()));
  BENCH_CHECK(plan->Upload(path.workspace, nullptr));
  path.plan = *std::move(plan);
  path.program = *std::move(program);
  const std::vector<uint32_t> image = kernels::FragmentTableImage();
  BENCH_CHECK(cudaMalloc(&path.tables, image.size() * sizeof(uint32_t)));
  BENCH_CHECK(cudaMemcpy(path.tables, image.data(), image.size() * sizeof(uint32_t),
                         cudaMemcpyHostToDevice));
  BENCH_CHECK(cudaMalloc(&path.q_rot, kernels::FragmentQRotBytes(
                                          config.max_batch, config.num_kv_heads, config.head_dim)));
  BENCH_CHECK(cudaMalloc(&path.norm_spans, spans.size() * sizeof(int)));
  BENCH_CHECK(cudaMemcpy(path.norm_spans, spans.data(), spans.size() * sizeof(int),
                         cudaMemcpyHostToDevice));
}

// Random fp32 K and V rows of tokens headed for `slots` (page · 64 + slot
// each), on the device, for timing encode launches of them.
class EncodeInputs {
 public:
  EncodeInputs(const std::vector<int64_t>& slots, int heads, int hd, uint64_t seed)
      : tokens_(static_cast<int>(slots.size())), values_(slots.size() * heads * hd) {
    BENCH_CHECK(cudaMalloc(&k_, values_ * sizeof(float)));
    BENCH_CHECK(cudaMalloc(&v_, values_ * sizeof(float)));
    BENCH_CHECK(cudaMalloc(&slots_, slots.size() * sizeof(int64_t)));
    BENCH_CHECK(FillRandomFloat(k_, values_, seed, 1.0f, nullptr));
    BENCH_CHECK(FillRandomFloat(v_, values_, seed + 1, 1.0f, nullptr));
    BENCH_CHECK(
        cudaMemcpy(slots_, slots.data(), slots.size() * sizeof(int64_t), cudaMemcpyHostToDevice));
  }
  EncodeInputs(const EncodeInputs&) = delete;
  EncodeInputs& operator=(const EncodeInputs&) = delete;
  ~EncodeInputs() {
    cudaFree(k_);
    cudaFree(v_);
    cudaFree(slots_);
  }
  // Bytes of K and V read.
  double input_bytes() const { return 2.0 * static_cast<double>(values_) * sizeof(float); }
  // `ep` (a plan's EncodeParams) aimed at these tokens and a page pool.
  kernels::EncodePackParams Bind(kernels::EncodePackParams ep, uint8_t* pool) const {
    ep.k = k_;
    ep.v = v_;
    ep.slot_mapping = slots_;
    ep.pages = pool;
    ep.num_tokens = tokens_;
    return ep;
  }
  // Median µs of encoding the tokens with `ep` (a plan's EncodeParams) into a
  // pool of `pages` pages (zeroed first), `slabs` slabs per CTA.
  double Micros(Timer& timer, kernels::EncodePackParams ep, int64_t pages, int iters,
                int slabs) const {
    const size_t pool_bytes = static_cast<size_t>(pages) * ep.num_kv_heads * ep.page_stride;
    uint8_t* pool;
    BENCH_CHECK(cudaMalloc(&pool, pool_bytes));
    BENCH_CHECK(cudaMemset(pool, 0, pool_bytes));
    ep = Bind(ep, pool);
    const double us = timer.Median(iters, [&](int, cudaStream_t stream) {
      BENCH_CHECK(kernels::LaunchEncodePack(ep, stream, slabs));
    });
    cudaFree(pool);
    return us;
  }

 private:
  int tokens_;
  size_t values_;
  float* k_ = nullptr;
  float* v_ = nullptr;
  int64_t* slots_ = nullptr;
};

// The fragment step's shape for a batch of `lens` in a table of
// `max_pages_per_seq` pages: SplitsFor, or as --fit-splits / --fragment-splits say.
kernels::FragmentSplits FragmentShape(const FragmentPath& path, const std::vector<int>& lens,
                                      int max_pages_per_seq) {
  const kernels::FragmentDecodeProgram& program = *path.program;
  const int batch = static_cast<int>(lens.size());
  const int longest = *std::max_element(lens.begin(), lens.end());
  kernels::FragmentSplits shape;
  absl::Status status;
  if (path.fit_splits) {
    absl::StatusOr<kernels::FragmentSplits> fitted =
        program.SplitsForLengths(0, lens, max_pages_per_seq, path.plan->max_splits());
    if (fitted.ok()) shape = *fitted;
    status = fitted.status();
  } else {
    absl::StatusOr<int> splits = program.SplitsFor(0, batch, longest);
    if (splits.ok()) shape.num_splits = *splits;
    status = splits.status();
  }
  if (!status.ok()) {
    std::fprintf(stderr, "fragment splits: %s\n", std::string(status.message()).c_str());
    std::exit(1);
  }
  if (path.splits > 0) shape.num_splits = path.splits;
  if (path.ctas_per_kv_head > 0) shape.ctas_per_kv_head = path.ctas_per_kv_head;
  if (path.fit_splits || path.splits > 0 || max_pages_per_seq * kPageTokens > longest + 63) {
    std::printf(
        "  fragment step shape (batch %d, longest %d, table %d pages): %d splits, %d CTAs "
        "per KV head (0: per-pair or CtasPerKvHead)\n",
        batch, longest, max_pages_per_seq, shape.num_splits, shape.ctas_per_kv_head);
  }
  return shape;
}

// Median µs of the fragment step on the packed step's per-step inputs `step`
// (q, lengths `lens`, scale, out, table width; the page table of replica i,
// as for the packed step: replicas table_stride ints apart) over fragment
// pages filled at random. parts: also the fixed-function kernels alone
// (prologue, merge), printed. append (non-null: --append): also the step
// after its encode of one new token per sequence (`append`'s tokens, bound
// to the step's pages), printed: the pair a serving loop launches per layer,
// where the encode follows a kernel that does not let dependents start early
// (here the previous step's merge) and the step's prologue may overlap it.
double FragmentStepMicros(Timer& timer, const FragmentPath& path,
                          const kernels::PackedDecodeParams& step, const std::vector<int>& lens,
                          int64_t seq_pages, int reps, const int* d_table, int64_t table_stride,
                          int iters, bool parts, const EncodeInputs* append, int encode_slabs) {
  const kernels::FragmentDecodeProgram& program = *path.program;
  const int ctx = *std::max_element(lens.begin(), lens.end());
  const kernels::FragmentSplits shape = FragmentShape(path, lens, step.max_pages_per_seq);
  kernels::PackedDecodeParams p =
      path.plan->DecodeParams(0, path.workspace, step.batch, shape.num_splits);
  p.fragment_ctas_per_kv_head = shape.ctas_per_kv_head;
  p.merge_heads_per_cta = path.merge_heads;
  const size_t pool_bytes = static_cast<size_t>(seq_pages) * reps * p.num_kv_heads * p.page_stride;
  uint8_t* pool;
  BENCH_CHECK(cudaMalloc(&pool, pool_bytes));
  BENCH_CHECK(FillRandomBits(pool, pool_bytes, 8, nullptr));
  BENCH_CHECK(FixPageNorms(pool, seq_pages * reps, p.num_kv_heads, p.page_stride, path.norm_spans,
                           kernels::kFragmentTilesPerPage, nullptr));
  p.q = step.q;
  p.pages = pool;
  p.max_pages_per_seq = step.max_pages_per_seq;
  p.packed_len = step.packed_len;
  p.scale = step.scale;
  p.out = step.out;
  // fused: the step encodes these new tokens itself (Step's append).
  auto launch_step = [&](int i, cudaStream_t stream,
                         const kernels::EncodePackParams* fused = nullptr) {
    kernels::PackedDecodeParams pi = p;
    pi.page_table = d_table + static_cast<size_t>(i % reps) * table_stride;
    const absl::Status s = program.Step(0, pi, {path.tables, path.q_rot}, stream, fused);
    if (!s.ok()) {
      std::fprintf(stderr, "fragment step: %s\n", std::string(s.message()).c_str());
      std::exit(1);
    }
  };
  const double us =
      timer.Median(iters, [&](int i, cudaStream_t stream) { launch_step(i, stream); });
  if (append != nullptr) {
    const kernels::EncodePackParams ep =
        append->Bind(path.plan->EncodeParams(0, path.workspace), pool);
    const double with_encode = timer.Median(iters, [&](int i, cudaStream_t stream) {
      BENCH_CHECK(kernels::LaunchEncodePack(ep, stream, encode_slabs));
      launch_step(i, stream);
    });
    const double fused =
        timer.Median(iters, [&](int i, cudaStream_t stream) { launch_step(i, stream, &ep); });
    std::printf(
        "  fragment step after its append (batch %d, ctx %d): %.1f µs, with its append (%s) "
        "%.1f, step alone %.1f\n",
        p.batch, ctx, with_encode,
        kernels::FragmentPrologueFusesAppend(p, ep) ? "fused" : "launched first", fused, us);
  }
  if (parts) {
    const double pro = timer.Median(iters, [&](int, cudaStream_t stream) {
      BENCH_CHECK(kernels::LaunchFragmentPrologue(p, path.q_rot, stream));
    });
    const double mer = timer.Median(iters, [&](int, cudaStream_t stream) {
      BENCH_CHECK(kernels::LaunchPackedMerge(p, stream));
    });
    const double both = timer.Median(iters, [&](int, cudaStream_t stream) {
      BENCH_CHECK(kernels::LaunchFragmentPrologue(p, path.q_rot, stream));
      BENCH_CHECK(kernels::LaunchPackedMerge(p, stream));
    });
    std::printf(
        "  fragment step parts (batch %d, ctx %d, %d splits%s): step %.1f µs, prologue alone "
        "%.1f, merge alone %.1f, both %.1f\n",
        p.batch, ctx, p.num_splits, path.balanced ? " (balanced slots)" : "", us, pro, mer, both);
  }
  cudaFree(pool);
  return us;
}

// The fp16 baselines' µs for a step of `batch` sequences of d_len's lengths
// (ctx the longest) of model m: our flash-decoding kernel and SDPA (-1 where
// not measured: ragged batches have no SDPA column). reps_f replicas of K/V
// rotate through L2.
struct BaselineMicros {
  double own = -1, sdpa = -1;
};
BaselineMicros Fp16BaselineMicros(Timer& timer, const Model& m, int batch, int ctx,
                                  const int* d_len, float scale, float* out, int reps_f, int iters,
                                  bool ragged, int sms) {
  const int group = m.q_heads / m.kv_heads, hd = m.head_dim, heads = m.kv_heads;
  uint16_t *kf, *vf, *qf;
  const size_t kv_count = size_t{1} * batch * heads * ctx * hd;
  BENCH_CHECK(cudaMalloc(&kf, kv_count * 2 * reps_f));
  BENCH_CHECK(cudaMalloc(&vf, kv_count * 2 * reps_f));
  BENCH_CHECK(cudaMalloc(&qf, size_t{2} * batch * m.q_heads * hd));
  BENCH_CHECK(FillRandomHalf(kf, kv_count * reps_f, 11, 1.0f, nullptr));
  BENCH_CHECK(FillRandomHalf(vf, kv_count * reps_f, 12, 1.0f, nullptr));
  BENCH_CHECK(FillRandomHalf(qf, size_t{1} * batch * m.q_heads * hd, 13, 1.0f, nullptr));
  const int fsplits = std::max(
      1, std::min((4 * sms + batch * heads - 1) / (batch * heads), std::max(1, ctx / 128)));
  float *po, *pml;
  BENCH_CHECK(cudaMalloc(&po, sizeof(float) * batch * heads * fsplits * group * hd));
  BENCH_CHECK(cudaMalloc(&pml, sizeof(float) * batch * heads * fsplits * group * 2));
  Fp16DecodeParams fp;
  fp.q = qf;
  fp.len = d_len;
  fp.max_len = ctx;
  fp.batch = batch;
  fp.kv_heads = heads;
  fp.num_splits = fsplits;
  fp.scale = scale;
  fp.partial_o = po;
  fp.partial_ml = pml;
  fp.out = out;
  BaselineMicros us;
  us.own = timer.Median(iters, [&](int i, cudaStream_t stream) {
    Fp16DecodeParams fi = fp;
    fi.k = kf + (i % reps_f) * kv_count;
    fi.v = vf + (i % reps_f) * kv_count;
    BENCH_CHECK(LaunchFp16DecodeBaseline(fi, hd, group, stream));
  });
  if (!ragged) {  // SDPA attends to dense K/V of ctx tokens
    std::string error;
    const SdpaCase sdpa_case = {qf, kf, vf, batch, m.q_heads, heads, hd, ctx, reps_f};
    us.sdpa = SdpaMedianMicros(sdpa_case, iters, timer.graph_steps, timer.settle_ms, &error);
    if (us.sdpa < 0 && SdpaAvailable()) std::fprintf(stderr, "sdpa: %s\n", error.c_str());
  }
  cudaFree(kf);
  cudaFree(vf);
  cudaFree(qf);
  cudaFree(po);
  cudaFree(pml);
  return us;
}

// --prefill: one line with the prefill layer of the encode's `tokens` (one
// sequence; prefill_baseline.h) and the encodes' µs as shares of it, the
// yardstick for what the encode costs a serving node (negative µs: not
// measured, and nothing printed for a layer that could not be timed).
void PrintPrefillShare(int tokens, const PrefillMicros& layer, double encode_us, double fenc_us) {
  if (layer.attention < 0 || layer.gemms < 0) return;
  const double total = layer.attention + layer.gemms;
  std::printf(
      "  prefill layer of %d tokens (one sequence): attention %.1f µs (%.0f TFLOP/s) + GEMMs "
      "%.1f µs = %.1f µs; encode",
      tokens, layer.attention, layer.attention_tflops, layer.gemms, total);
  if (encode_us > 0) std::printf(" %.2f%% of it", 100.0 * encode_us / total);
  if (fenc_us > 0) std::printf(", fragment pages %.2f%%", 100.0 * fenc_us / total);
  std::printf("\n");
}

int Run(int argc, char** argv) {
  const absl::StatusOr<BenchOptions> parsed = ParseBenchOptions(argc, argv);
  if (!parsed.ok()) {
    std::fprintf(stderr, "%s\n", std::string(parsed.status().message()).c_str());
    return 1;
  }
  const BenchOptions& o = *parsed;
  const std::vector<Model> models = {{"llama3.1-8b", 32, 8, 128, 4096, 14336},
                                     {"qwen2.5-3b", 16, 2, 128, 2048, 11008}};
  if (!o.only_model.empty() && std::none_of(models.begin(), models.end(), [&](const Model& m) {
        return o.only_model == m.name;
      })) {
    std::fprintf(stderr, "--model takes llama3.1-8b or qwen2.5-3b, not %s\n", o.only_model.c_str());
    return 1;
  }
  int device_count = 0;
  if (cudaGetDeviceCount(&device_count) != cudaSuccess || device_count == 0) {
    std::printf("no CUDA device\n");
    return 0;
  }
  cudaDeviceProp prop;
  BENCH_CHECK(cudaGetDeviceProperties(&prop, 0));
  Timer timer;
  timer.settle_ms = o.settle_ms;
  const double memcpy_gbs = MemcpyBandwidth(timer);
  std::printf("device %s, %d SMs, L2 %d MB; cudaMemcpy D2D %.0f GB/s (read + write)\n", prop.name,
              prop.multiProcessorCount, prop.l2CacheSize >> 20, memcpy_gbs);
  std::printf("SDPA baseline: %s\n", SdpaAvailable()
                                         ? "LibTorch at::scaled_dot_product_attention(enable_gqa)"
                                         : "not built");
  if (o.k_align > 0) std::printf("K allocation: width groups aligned to %d dims\n", o.k_align);
  // PackedDecodeConfig::wgmma: the device runs sm_90a code.
  const bool wgmma = !o.no_wgmma && prop.major == 9 && prop.minor == 0;
  std::printf("encode: %s\n", wgmma ? "K and V on wgmma (encode_wgmma.cuh) where TakesWgmmaEncode"
                                    : "K and V on the slab kernel");
  std::printf("timing: %s\n", o.graph ? "CUDA graph replays of 16 steps, per step"
                                      : "single launches (host launch overhead included)");
  if (o.settle_ms > 0) {
    std::printf("settle: each timing after %.0f ms of its own untimed runs\n", o.settle_ms);
  }
  if (o.graph) timer.graph_steps = kGraphSteps;

  // --prefill's layers by (model, tokens).
  std::map<std::pair<std::string, int>, PrefillMicros> prefill_layers;
  std::vector<int> contexts = o.quick ? std::vector<int>{4096, 32768, 131072}
                                      : std::vector<int>{4096, 16384, 32768, 131072, 524288};
  if (o.only_ctx > 0) contexts = {o.only_ctx};
  const std::vector<std::array<int, 2>> plans = {{3, 3}, {2, 2}};
  std::printf("\n%-12s %-5s %5s %7s %6s | %9s %7s %5s | %9s %6s | %9s %6s | %9s %7s%s\n", "model",
              "plan", "batch", "ctx", "B/tok", "packed_us", "GB/s", "%cpy", "fp16_us", "x",
              "sdpa_us", "x", "encode_us", "enc%cpy",
              o.fragment ? " |   frag_us    GB/s  %cpy x_sdpa |   fenc_us fenc%cpy" : "");
  for (const Model& m : models) {
    if (!o.only_model.empty() && o.only_model != m.name) continue;
    const int group = m.q_heads / m.kv_heads, hd = m.head_dim, heads = m.kv_heads;
    for (const auto& kv : plans) {
      if (o.only_kbits > 0 && o.only_kbits != kv[0]) continue;
      std::vector<HeadCodec> codecs;
      for (int h = 0; h < heads; ++h)
        codecs.push_back(RealisticCodec(hd, kv[0], 100 + h, o.k_align));
      PackedDecodeConfig config;
      config.num_layers = 1;
      config.num_kv_heads = heads;
      config.group_size = group;
      config.head_dim = hd;
      config.v_bits = kv[1];
      config.max_batch = 16;
      config.num_sms = prop.multiProcessorCount;
      config.wgmma = wgmma;
      absl::StatusOr<PackedDecodePlan> plan = PackedDecodePlan::Create(config, codecs);
      if (!plan.ok()) {
        std::fprintf(stderr, "plan: %s\n", std::string(plan.status().message()).c_str());
        return 1;
      }
      void* ws;
      BENCH_CHECK(cudaMalloc(&ws, plan->workspace_bytes()));
      BENCH_CHECK(plan->Upload(ws, nullptr));
      const int64_t stride = plan->page_stride();
      std::vector<int> spans;
      double page_bytes_sum = 0;
      for (int h = 0; h < heads; ++h) {
        const PackedPageLayout& l = plan->page_layout(0, h);
        spans.insert(spans.end(),
                     {static_cast<int>(l.k_norm_offset()), l.num_k_groups() * kPageTokens,
                      static_cast<int>(l.v_norm_offset()), kPageTokens});
        page_bytes_sum += l.page_bytes();
      }
      int* d_spans;
      BENCH_CHECK(cudaMalloc(&d_spans, spans.size() * sizeof(int)));
      BENCH_CHECK(
          cudaMemcpy(d_spans, spans.data(), spans.size() * sizeof(int), cudaMemcpyHostToDevice));
      const double bytes_per_token = page_bytes_sum / heads / kPageTokens;
      FragmentPath frag;
      frag.balanced = o.balanced;
      frag.ctas_per_kv_head = o.fragment_ctas;
      frag.fit_splits = o.fit_splits;
      frag.splits = o.fragment_splits;
      const int merge_heads_per_cta = o.merge_heads == "one"     ? 1
                                      : o.merge_heads == "group" ? group
                                                                 : 0;
      frag.merge_heads = merge_heads_per_cta;
      if (o.fragment) MakeFragmentPath(config, codecs, frag);

      for (int batch : {1, 16}) {
        if (o.only_batch > 0 && o.only_batch != batch) continue;
        for (int ctx : contexts) {
          const int pages_per_seq = (ctx + kPageTokens - 1) / kPageTokens;
          const int64_t seq_pages = int64_t{batch} * pages_per_seq;
          const size_t packed_bytes = static_cast<size_t>(seq_pages) * heads * stride;
          const size_t fp16_bytes = size_t{2} * batch * heads * ctx * hd * 2;
          // Replicas so that the data rotates through well over the 60 MB L2.
          const int reps_p =
              static_cast<int>(std::clamp<size_t>((size_t{512} << 20) / packed_bytes + 1, 1, 16));
          const int reps_f =
              static_cast<int>(std::clamp<size_t>((size_t{512} << 20) / fp16_bytes + 1, 1, 8));

          // Packed.
          uint8_t* pool;
          BENCH_CHECK(cudaMalloc(&pool, packed_bytes * reps_p));
          BENCH_CHECK(FillRandomBits(pool, packed_bytes * reps_p, 7, nullptr));
          BENCH_CHECK(FixPageNorms(pool, seq_pages * reps_p, heads, stride, d_spans, 2, nullptr));
          // Replica r's table: sequence b's pages in order (or, with
          // --shuffle-pages, the replica's pages in a shuffled order), in a row
          // of table_pages (--table-ctx; entries past the sequence unread).
          const int table_pages =
              std::max(pages_per_seq, (o.table_ctx + kPageTokens - 1) / kPageTokens);
          const int64_t table_stride = int64_t{batch} * table_pages;
          std::vector<int> table(static_cast<size_t>(reps_p) * table_stride, 0);
          std::vector<int> order(static_cast<size_t>(seq_pages));
          std::iota(order.begin(), order.end(), 0);
          if (o.shuffle_pages) Shuffle(order, 29);
          for (int64_t r = 0; r < reps_p; ++r) {
            for (int64_t b = 0; b < batch; ++b) {
              for (int j = 0; j < pages_per_seq; ++j) {
                table[r * table_stride + b * table_pages + j] =
                    static_cast<int>(r * seq_pages + order[b * pages_per_seq + j]);
              }
            }
          }
          int *d_table, *d_len;
          BENCH_CHECK(cudaMalloc(&d_table, table.size() * sizeof(int)));
          BENCH_CHECK(cudaMemcpy(d_table, table.data(), table.size() * sizeof(int),
                                 cudaMemcpyHostToDevice));
          // --ragged: lengths spread evenly up to ctx (sequence b: ctx·(b + 1) / batch).
          std::vector<int> lens(batch, ctx);
          double pages_read = static_cast<double>(seq_pages);
          if (o.ragged) {
            pages_read = 0;
            for (int b = 0; b < batch; ++b) {
              lens[b] = std::max(1, static_cast<int>(int64_t{ctx} * (b + 1) / batch));
              pages_read += (lens[b] + kPageTokens - 1) / kPageTokens;
            }
          }
          BENCH_CHECK(cudaMalloc(&d_len, batch * sizeof(int)));
          BENCH_CHECK(cudaMemcpy(d_len, lens.data(), batch * sizeof(int), cudaMemcpyHostToDevice));
          float *q, *out;
          BENCH_CHECK(cudaMalloc(&q, sizeof(float) * batch * m.q_heads * hd));
          BENCH_CHECK(cudaMalloc(&out, sizeof(float) * batch * m.q_heads * hd));
          BENCH_CHECK(FillRandomFloat(q, size_t{1} * batch * m.q_heads * hd, 3, 1.0f, nullptr));
          const int v1_splits = o.splits > 0   ? std::min(o.splits, plan->max_splits())
                                : o.fit_splits ? plan->SplitsForLengths(lens)
                                               : plan->SplitsFor(batch, ctx);
          if (o.fit_splits && o.splits == 0) {
            std::printf("  version-1 step shape (batch %d, longest %d): %d splits\n", batch, ctx,
                        v1_splits);
          }
          kernels::PackedDecodeParams p = plan->DecodeParams(0, ws, batch, v1_splits);
          p.merge_heads_per_cta = merge_heads_per_cta;
          p.q = q;
          p.pages = pool;
          p.max_pages_per_seq = table_pages;
          p.packed_len = d_len;
          p.scale = 1.0f / std::sqrt(static_cast<float>(hd));
          p.out = out;
          const double packed_us =
              o.fragment_step_only ? -1 : timer.Median(o.iters, [&](int i, cudaStream_t stream) {
                kernels::PackedDecodeParams pi = p;
                pi.page_table = d_table + static_cast<size_t>(i % reps_p) * table_stride;
                BENCH_CHECK(kernels::LaunchPackedDecode(pi, stream));
              });
          const double read_bytes = pages_read * page_bytes_sum;
          const double packed_gbs = read_bytes / (packed_us * 1e-6) / 1e9;
          cudaFree(pool);
          // A decode step's encode: one new token per sequence, at the next
          // slot of its last page (sequence b's last page is page b here).
          std::unique_ptr<EncodeInputs> append_inputs;
          if (o.append) {
            std::vector<int64_t> next_slots(batch);
            for (int b = 0; b < batch; ++b) {
              next_slots[b] = int64_t{b} * kPageTokens + (lens[b] - 1) % kPageTokens;
            }
            append_inputs = std::make_unique<EncodeInputs>(next_slots, heads, hd, 23);
          }
          const double frag_us = o.fragment
                                     ? FragmentStepMicros(timer, frag, p, lens, seq_pages, reps_p,
                                                          d_table, table_stride, o.iters, o.parts,
                                                          append_inputs.get(), o.encode_slabs)
                                     : -1;
          const double frag_gbs = pages_read * frag.page_bytes_sum / (frag_us * 1e-6) / 1e9;
          cudaFree(d_table);

          // fp16: own flash decoding and SDPA (not with --fragment-step-only).
          const BaselineMicros fp16 =
              o.fragment_step_only
                  ? BaselineMicros{}
                  : Fp16BaselineMicros(timer, m, batch, ctx, d_len, p.scale, out, reps_f, o.iters,
                                       o.ragged, prop.multiProcessorCount);
          const double fp16_us = fp16.own, sdpa_us = fp16.sdpa;

          // Encode + pack of a prefill chunk: min(batch·ctx, 32K) tokens.
          double encode_us = -1, encode_frac = 0, fenc_us = -1, fenc_frac = 0;
          if (o.encode && (ctx == contexts.front() || ctx == 32768)) {
            const int tokens = std::min(batch * ctx, 32768);
            const int64_t epages = (tokens + kPageTokens - 1) / kPageTokens;
            std::vector<int64_t> in_order(tokens);
            std::iota(in_order.begin(), in_order.end(), int64_t{0});
            if (o.scatter) Shuffle(in_order, 23);
            const EncodeInputs inputs(in_order, heads, hd, 21);
            // µs of encoding the tokens with `ep` into whole pages, and its %
            // of copy bandwidth for pages of `page_bytes` summed over the heads.
            auto time_encode = [&](kernels::EncodePackParams ep, double page_bytes, double& frac) {
              if (o.wgmma_min >= 0) ep.wgmma_min_token_heads = o.wgmma_min;
              if (o.few_token_max >= 0) ep.few_token_max_token_heads = o.few_token_max;
              const double us =
                  inputs.Micros(timer, ep, epages, std::max(3, o.iters / 4), o.encode_slabs);
              const double bytes = inputs.input_bytes() + static_cast<double>(epages) * page_bytes;
              frac = bytes / (us * 1e-6) / 1e9 / memcpy_gbs * 100.0;
              return us;
            };
            if (!o.fragment_encode_only) {
              encode_us = time_encode(plan->EncodeParams(0, ws), page_bytes_sum, encode_frac);
            }
            if (o.fragment) {  // the same tokens into fragment pages
              fenc_us = time_encode(frag.plan->EncodeParams(0, frag.workspace), frag.page_bytes_sum,
                                    fenc_frac);
            }
          }
          cudaFree(q);
          cudaFree(out);
          cudaFree(d_len);

          if (o.prefill && (encode_us > 0 || fenc_us > 0)) {
            const int tokens = std::min(batch * ctx, 32768);
            // The layer depends on the model and the tokens, not on the plan:
            // timed once per pair (a 32K-token Llama layer is ~36 ms a sample).
            auto [layer, fresh] = prefill_layers.try_emplace({m.name, tokens});
            if (fresh) {
              std::string error;
              layer->second = PrefillLayerMicros(
                  {m.q_heads, m.kv_heads, m.head_dim, m.hidden, m.intermediate, tokens},
                  std::max(3, o.iters / 4), timer.settle_ms, &error);
              if (layer->second.attention < 0) std::fprintf(stderr, "prefill: %s\n", error.c_str());
            }
            PrintPrefillShare(tokens, layer->second, encode_us, fenc_us);
          }
          if (o.append) {
            const EncodeInputs& inputs = *append_inputs;
            const double v1_us =
                inputs.Micros(timer, plan->EncodeParams(0, ws), batch, o.iters, o.encode_slabs);
            std::printf(
                "  append (batch %d, one token per sequence, %d KV heads): version-1 pages %.1f "
                "µs",
                batch, heads, v1_us);
            if (o.fragment) {
              std::printf(", fragment pages %.1f µs",
                          inputs.Micros(timer, frag.plan->EncodeParams(0, frag.workspace), batch,
                                        o.iters, o.encode_slabs));
            }
            std::printf("\n");
          }

          // A baseline's µs and its ratio to the version-1 step ("-" for
          // what was not measured: --fragment-step-only, SDPA of ragged batches).
          auto baseline_col = [&](char(&col)[64], double us) {
            if (us > 0 && packed_us > 0) {
              std::snprintf(col, sizeof(col), "%9.1f %6.2f", us, us / packed_us);
            } else if (us > 0) {
              std::snprintf(col, sizeof(col), "%9.1f %6s", us, "-");
            } else {
              std::snprintf(col, sizeof(col), "%9s %6s", "-", "-");
            }
          };
          char packed_col[64], fp16_col[64], sdpa_col[64], enc_col[64];
          if (packed_us > 0) {
            std::snprintf(packed_col, sizeof(packed_col), "%9.1f %7.0f %4.0f%%", packed_us,
                          packed_gbs, packed_gbs / memcpy_gbs * 100.0);
          } else {
            std::snprintf(packed_col, sizeof(packed_col), "%9s %7s %5s", "-", "-", "-");
          }
          baseline_col(fp16_col, fp16_us);
          baseline_col(sdpa_col, sdpa_us);
          if (encode_us > 0) {
            std::snprintf(enc_col, sizeof(enc_col), "%9.1f %6.1f%%", encode_us, encode_frac);
          } else {
            std::snprintf(enc_col, sizeof(enc_col), "%9s %7s", "-", "-");
          }
          // "K3V3", or "K3V3a16" for K groups aligned to 16 dims.
          const std::string plan_name =
              "K" + std::to_string(kv[0]) + "V" + std::to_string(kv[1]) +
              (o.k_align > 0 ? "a" + std::to_string(o.k_align) : std::string());
          char frag_col[128] = "";
          if (o.fragment) {
            char fenc_col[48];
            if (fenc_us > 0) {
              std::snprintf(fenc_col, sizeof(fenc_col), "%9.1f %6.1f%%", fenc_us, fenc_frac);
            } else {
              std::snprintf(fenc_col, sizeof(fenc_col), "%9s %7s", "-", "-");
            }
            char x_sdpa[16] = "     -";
            if (sdpa_us > 0) std::snprintf(x_sdpa, sizeof(x_sdpa), "%6.2f", sdpa_us / frag_us);
            std::snprintf(frag_col, sizeof(frag_col), " | %9.1f %7.0f %4.0f%% %s | %s", frag_us,
                          frag_gbs, frag_gbs / memcpy_gbs * 100.0, x_sdpa, fenc_col);
          }
          std::printf("%-12s %-5s %5d %7d %6.1f | %s | %s | %s | %s%s\n", m.name, plan_name.c_str(),
                      batch, ctx, bytes_per_token, packed_col, fp16_col, sdpa_col, enc_col,
                      frag_col);
          std::fflush(stdout);
        }
      }
      cudaFree(ws);
      cudaFree(d_spans);
    }
  }
  return 0;
}

}  // namespace
}  // namespace kvplan::bench

int main(int argc, char** argv) { return kvplan::bench::Run(argc, argv); }
