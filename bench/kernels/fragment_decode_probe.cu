// Design probe for the next decode kernel: how fast can fused packed decode
// attention run when the page stores each lane's MMA fragments contiguously?
//
// The committed kernel (kernels/) reads the page grammar of core/packed_page.h:
// token-major K bit streams per group, dim-major V streams, staged per page in
// shared memory. Its profile (NOTES run 18) is bound by issue slots (60%) and
// the shared-memory data pipe (75%): per 16-token tile ~640 warp instructions,
// most of them bit-stream reads, per-slice setup and per-group folds. This
// probe measures a different page grammar before anything is built around it:
//   - a 64-token page is four 16-token tiles; a tile holds, per lane, the codes
//     of every A fragment the lane feeds to the K and V MMAs as one run (code
//     pairs in fragment-register order), and the norms the lane needs;
//   - a lane loads its runs straight from global memory into registers, one
//     tile ahead; nothing of the page is staged in shared memory;
//   - a code pair is one funnel shift + one LOP3 + one LDS from a per-lane
//     replicated pair table (conflict-free by construction);
//   - q̂'s B fragments stay in registers for the whole CTA.
// K decoders (KVPLAN_PROBE_LAYOUT):
//   0  uniform K3: one K group of 128 dims at 3 bits (TQ-MSE, or an aligned plan
//      whose slices all have width 3); every field position is a compile-time
//      constant. The ceiling of the grammar.
//   2  slice-aligned K layouts (plan option k_group_align = 16): each 16-dim
//      slice has its own width 1..8 and group, each head layout compiled in
//      (StaticLayout; one specialisation per head layout, the CTA's head picks
//      one): what a kernel generated per plan (JIT) runs.
//   3  compiled in, groups aligned to 8 dims (k_group_align 8): a group may end
//      mid-slice, where the slice's two halves become two m16n8k8 MMAs into
//      their groups' chains.
// (Mode 1, the same layouts read through run-time tables, was measured and
// removed: NOTES run 19 calls 9-14, Llama b16 128K 1144 us against 741 us for
// the layouts compiled in.)
// Scope (a measurement, not a codec): head_dim 128, K budget 3 bits, V3; q̂
// given already rotated and scaled, V left rotated. Random bits are valid
// codes, so timing pages are random bits with finite norms; correctness is
// checked on a small ragged case against a CPU computation of the same grammar.
//
// The grammar the probe led to is core/fragment_page.h (format version 2): the
// same runs and norm slots, with each lane's k columns in natural order (2t,
// 2t+1 | 8+2t, 8+2t+1) where the probe pairs columns 4t..4t+3.
//
// The kernel itself is kvplan/kernels/fragment_decode.cuh; this file holds the
// probe's layouts, host side and check.
//
// Usage: fragment_decode_probe [--iters N] [--batch N] [--ctx N] [--settle-ms MS] [--no-check]
//                              [--jit]
// (--settle-ms: each case timed after MS ms of untimed steps, in the clocks the
// card's power cap leaves: bench/kernels/event_median.h, NOTES run 42.)
// (--jit: the kernel generated for the probe's head layouts by
// kvplan/kernels/fragment_decode_source.h and compiled at run time by NVRTC,
// instead of the one built into the binary; prints the compile time.)
// Build-time switches: KVPLAN_PROBE_LAYOUT (0, 2, 3), KVPLAN_PROBE_WARPS (4, 8),
// KVPLAN_FRAGMENT_DECODE_SKELETON (1: the loop without its table lookups; 2, 3: each lookup
// replaced by two or three byte permutes from register tables; 4: no decode at all, the
// MMAs take the run's words; wrong results).
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "bench/kernels/bench_options.h"
#include "bench/kernels/event_median.h"
#include "bench/kernels/flag_parser.h"
#include "bench/kernels/fragment_probe_pages.h"
#include "kvplan/kernels/fragment_decode.cuh"
#include "kvplan/kernels/fragment_tables.h"
#include "kvplan/kernels/jit.h"

#ifndef KVPLAN_PROBE_LAYOUT
#define KVPLAN_PROBE_LAYOUT 0
#endif
#ifndef KVPLAN_PROBE_WARPS
#define KVPLAN_PROBE_WARPS 4
#endif

// Not an anonymous namespace: nvcc warns about every unused member of a layout
// template there, and one binary holds this file alone.
namespace kvplan::probe {
using namespace kernels::fragment_decode;

// 0: uniform K3; 2: slice-aligned groups, each head's layout compiled in (what
// a per-plan JIT gives); 3: 8-aligned groups (a group may end mid-slice).
// (1, a run-time slice-table decoder, was measured and removed: NOTES run 19.)
constexpr int kLayoutMode = KVPLAN_PROBE_LAYOUT;
static_assert(kLayoutMode == 0 || kLayoutMode == 2 || kLayoutMode == 3, "layout 0, 2 or 3");
constexpr int kWarps = KVPLAN_PROBE_WARPS;
constexpr int kThreads = 32 * kWarps;
constexpr int kCtasPerSm = 16 / kWarps;

// K layouts as the widths of the 16 half-slices of a head (8 coordinates each:
// k columns 0-7 and 8-15 of each 16-dim MMA slice, i.e. the pairs a0/a1 and
// a2/a3 of the A fragment), ascending, 8 x Σ widths = 384 bits (K3).
// Rows 0-7: slice-aligned (both halves of a slice share the width; what
// k_group_align 16 gives), head h using row h % 8; row 8: uniform; rows 9-16:
// 8-aligned (k_group_align 8: a group may end mid-slice).
constexpr int kHalves = 16;  // head_dim 128
constexpr int kLayoutWidths[17][kHalves] = {{1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5},
                                            {1, 1, 1, 1, 2, 2, 3, 3, 3, 3, 4, 4, 5, 5, 5, 5},
                                            {2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 4, 4, 5, 5},
                                            {1, 1, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 4, 4, 5, 5},
                                            {2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4},
                                            {1, 1, 2, 2, 2, 2, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4},
                                            {1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5},
                                            {2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 4, 4, 4, 4, 5, 5},
                                            {3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3},
                                            {1, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4, 5},
                                            {1, 1, 2, 2, 2, 3, 3, 3, 3, 3, 4, 4, 4, 4, 4, 5},
                                            {1, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 4, 4, 5, 5},
                                            {2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4, 4},
                                            {1, 1, 2, 2, 3, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4, 5},
                                            {1, 2, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 4, 5},
                                            {2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 4, 4, 5, 5},
                                            {1, 1, 1, 2, 3, 3, 3, 3, 3, 3, 3, 4, 4, 4, 5, 5}};
constexpr int kUniformLayout = 8;
constexpr int kAlign8Layouts = 9;

// Row ROW of kLayoutWidths as a layout for KLayoutOf.
template <int ROW>
struct ProbeRow {
  static constexpr int kHalves = 16;
  __host__ __device__ static constexpr int Width(int h) { return kLayoutWidths[ROW][h]; }
};
using ProbeV = KLayoutOf<UniformWidths<3, 16>>;
constexpr int kHeadDim = 128;
// A lane's K (or V) run per tile: 6 words (K3, V3 at head_dim 128).
constexpr int kRunWords = 6;
constexpr int kRunBytes = 32 * 4 * kRunWords;

// grid (splits, kv_heads, batch); one 16-token tile per warp step. The body of
// ProbeAttention: the head's layout row picks its specialisation.
__device__ __forceinline__ void ProbeAttentionBody(const Params& p) {
  extern __shared__ __align__(16) uint8_t dyn_smem[];
  __shared__ CtaShared<kWarps, kHeadDim> sh;
  if constexpr (kLayoutMode == 0) {
    AttentionCta<KLayoutOf<ProbeRow<kUniformLayout>>, ProbeV, kWarps>(p, sh, dyn_smem);
  } else {
    // One specialisation per head layout; the CTA's head picks one.
    constexpr int kRow = kLayoutMode == 3 ? kAlign8Layouts : 0;
    switch (blockIdx.y % 8) {
      case 0:
        AttentionCta<KLayoutOf<ProbeRow<kRow + 0>>, ProbeV, kWarps>(p, sh, dyn_smem);
        break;
      case 1:
        AttentionCta<KLayoutOf<ProbeRow<kRow + 1>>, ProbeV, kWarps>(p, sh, dyn_smem);
        break;
      case 2:
        AttentionCta<KLayoutOf<ProbeRow<kRow + 2>>, ProbeV, kWarps>(p, sh, dyn_smem);
        break;
      case 3:
        AttentionCta<KLayoutOf<ProbeRow<kRow + 3>>, ProbeV, kWarps>(p, sh, dyn_smem);
        break;
      case 4:
        AttentionCta<KLayoutOf<ProbeRow<kRow + 4>>, ProbeV, kWarps>(p, sh, dyn_smem);
        break;
      case 5:
        AttentionCta<KLayoutOf<ProbeRow<kRow + 5>>, ProbeV, kWarps>(p, sh, dyn_smem);
        break;
      case 6:
        AttentionCta<KLayoutOf<ProbeRow<kRow + 6>>, ProbeV, kWarps>(p, sh, dyn_smem);
        break;
      default:
        AttentionCta<KLayoutOf<ProbeRow<kRow + 7>>, ProbeV, kWarps>(p, sh, dyn_smem);
        break;
    }
  }
}

__global__ void __launch_bounds__(kThreads, kCtasPerSm) ProbeAttention(const Params p) {
  ProbeAttentionBody(p);
}

// Random bits everywhere, then finite norms in [0.5, 1.5) in each tile's norm
// block. units: (page, kv_head) pairs; tile_bytes: [kv_heads], per head.
__global__ void FillPages(uint8_t* pages, size_t units, int kv_heads, int64_t page_stride,
                          const int* tile_bytes, uint64_t seed) {
  for (size_t u = blockIdx.x; u < units; u += gridDim.x) {
    uint32_t* w = reinterpret_cast<uint32_t*>(pages + u * page_stride);
    const int tile = tile_bytes[u % kv_heads];
    for (int i = threadIdx.x; i < page_stride / 4; i += blockDim.x) {
      uint64_t x = (u * page_stride / 4 + i) ^ (seed << 40);
      x = (x ^ (x >> 31)) * 0x7fb5d329728ea185ull;
      x = (x ^ (x >> 27)) * 0x81dadef4bc2dd44dull;
      w[i] = static_cast<uint32_t>(x ^ (x >> 33));
      if ((i * 4) % tile >= 2 * kRunBytes) {
        const uint32_t r = w[i];
        w[i] = __half_as_ushort(__float2half_rn(0.5f + (r & 0xffff) / 65536.0f)) |
               (uint32_t{__half_as_ushort(__float2half_rn(0.5f + (r >> 16) / 65536.0f))} << 16);
      }
    }
  }
}

}  // namespace kvplan::probe

namespace kvplan::probe {

#define CHECK_CUDA(x)                                                                          \
  do {                                                                                         \
    const cudaError_t e_ = (x);                                                                \
    if (e_ != cudaSuccess) {                                                                   \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      std::exit(1);                                                                            \
    }                                                                                          \
  } while (0)

uint16_t ToHalf(float x) { return __half_as_ushort(__float2half_rn(x)); }
float FromHalf(uint16_t x) { return __half2float(__ushort_as_half(x)); }

// Head `head`'s K layout: its row of kLayoutWidths.
const int (&HalfWidthsFor(int head))[kHalves] {
  return kLayoutWidths[kLayoutMode == 0   ? kUniformLayout
                       : kLayoutMode == 3 ? kAlign8Layouts + head % 8
                                          : head % 8];
}

// Bytes of one (page, head) / tile of head `head` (core/fragment_page.h);
// exits when core refuses the layout (the message is on stderr).
int64_t PageBytesFor(int head) {
  const int64_t bytes = FragmentProbePageBytes(HalfWidthsFor(head));
  if (bytes < 0) std::exit(1);
  return bytes;
}
int TileBytesFor(int head) { return static_cast<int>(PageBytesFor(head) / kTilesPerPage); }

// The largest page of `kv_heads` heads: the page stride.
int64_t PageStride(int kv_heads) {
  int64_t stride = 0;
  for (int h = 0; h < kv_heads; ++h) stride = std::max(stride, PageBytesFor(h));
  return stride;
}

double CopyBandwidth() {
  const size_t bytes = size_t{1} << 30;
  void *a, *b;
  CHECK_CUDA(cudaMalloc(&a, bytes));
  CHECK_CUDA(cudaMalloc(&b, bytes));
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  std::vector<float> ms;
  for (int r = 0; r < 7; ++r) {
    cudaEventRecord(e0);
    cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice);
    cudaEventRecord(e1);
    cudaEventSynchronize(e1);
    float x;
    cudaEventElapsedTime(&x, e0, e1);
    ms.push_back(x);
  }
  std::sort(ms.begin(), ms.end());
  cudaFree(a);
  cudaFree(b);
  return 2.0 * bytes / (ms[ms.size() / 2] * 1e-3) / 1e9;
}

// Device buffers of one run; owns them.
struct DeviceCase {
  Params p;
  const void* attention = nullptr;  // ProbeAttention, or the generated kernel's handle
  int batch = 0, group = 0;
  float* out = nullptr;
  std::vector<void*> owned;

  template <typename T>
  T* Alloc(size_t count) {
    void* ptr = nullptr;
    CHECK_CUDA(cudaMalloc(&ptr, count * sizeof(T)));
    owned.push_back(ptr);
    return static_cast<T*>(ptr);
  }
  ~DeviceCase() {
    for (void* ptr : owned) cudaFree(ptr);
  }
};

int SplitsFor(const void* attention, int batch, int kv_heads, int ctx) {
  int per_sm = 0, sms = 0;
  CHECK_CUDA(cudaFuncSetAttribute(attention, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  kDynamicSmem));  // before the occupancy query
  CHECK_CUDA(
      cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, attention, kThreads, kDynamicSmem));
  CHECK_CUDA(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  const int splits = std::max(1, sms * per_sm / (batch * kv_heads));
  return std::min(splits, std::max(1, ctx / (kTileTokens * 8 * kWarps)));
}

// Allocates and fills everything but the pages; the caller fills those.
void Prepare(DeviceCase& c, const void* attention, int batch, int kv_heads, int group,
             int max_pages, const std::vector<int>& lens, const std::vector<int>& table,
             const std::vector<uint16_t>& q, int splits) {
  c.attention = attention;
  c.batch = batch;
  c.group = group;
  Params& p = c.p;
  p.page_stride = PageStride(kv_heads);
  p.pages = c.Alloc<uint8_t>(size_t(table.size()) * kv_heads * p.page_stride);
  int* d_table = c.Alloc<int>(table.size());
  int* d_len = c.Alloc<int>(batch);
  uint16_t* d_q = c.Alloc<uint16_t>(q.size());
  CHECK_CUDA(cudaMemcpy(d_table, table.data(), table.size() * 4, cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemcpy(d_len, lens.data(), batch * 4, cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemcpy(d_q, q.data(), q.size() * 2, cudaMemcpyHostToDevice));
  p.page_table = d_table, p.len = d_len, p.q_rot = d_q;
  p.max_pages = max_pages, p.kv_heads = kv_heads, p.num_splits = splits, p.group_size = group;
  p.batch = batch;
  const std::vector<uint32_t> image = kernels::FragmentTableImage();
  uint32_t* tables = c.Alloc<uint32_t>(image.size());
  CHECK_CUDA(cudaMemcpy(tables, image.data(), image.size() * 4, cudaMemcpyHostToDevice));
  p.tables = tables;
  CHECK_CUDA(
      cudaFuncSetAttribute(attention, cudaFuncAttributeMaxDynamicSharedMemorySize, kDynamicSmem));
  // Slot `splits` (the serving step's fp16 part) stays unused here.
  p.partial_o = c.Alloc<float>(size_t(batch) * kv_heads * (splits + 1) * group * kHeadDim);
  p.partial_ml = c.Alloc<float>(size_t(batch) * kv_heads * (splits + 1) * group * 2);
  c.out = c.Alloc<float>(size_t(batch) * kv_heads * group * kHeadDim);
}

void Run(const DeviceCase& c) {
  Params p = c.p;
  void* args[] = {&p};
  CHECK_CUDA(cudaLaunchKernel(c.attention, dim3(p.num_splits, p.kv_heads, c.batch), dim3(kThreads),
                              args, kDynamicSmem, nullptr));
  RotatedMerge<kHeadDim><<<dim3(p.kv_heads * c.group, c.batch), kHeadDim>>>(p, c.out);
  CHECK_CUDA(cudaGetLastError());
}

// Small ragged case against a CPU computation of the same grammar.
bool CheckAgainstCpu(const void* attention) {
  const int kv_heads = 8, group = 4, batch = 3, max_pages = 16;
  const std::vector<int> lens = {1000, 64, 17};
  const int64_t stride = PageStride(kv_heads);
  std::mt19937 rng(7);
  std::vector<uint8_t> pages(size_t(batch) * max_pages * kv_heads * stride, 0);
  std::vector<int> table(batch * max_pages);
  std::iota(table.begin(), table.end(), 0);
  std::shuffle(table.begin(), table.end(), rng);
  std::uniform_real_distribution<float> norm(0.5f, 1.5f);
  std::normal_distribution<float> gauss(0.0f, 0.15f);
  std::vector<uint16_t> q(size_t(batch) * kv_heads * 8 * kHeadDim, 0);
  for (uint16_t& x : q) x = ToHalf(gauss(rng));  // rows of padding heads are unused
  std::vector<float> want(size_t(batch) * kv_heads * group * kHeadDim, 0.0f);
  for (int b = 0; b < batch; ++b) {
    for (int h = 0; h < kv_heads; ++h) {
      const int(&widths)[kHalves] = HalfWidthsFor(h);
      // Decoded K̂ (permuted coordinates) and V̂ (rotated), norms applied, of
      // the sequence's tokens; the pages are written by core's grammar.
      std::vector<std::vector<float>> k_hat(lens[b]), v_hat(lens[b]);
      for (int tok = 0; tok < max_pages * kPageTokens; ++tok) {
        uint8_t k_codes[kHeadDim], v_codes[kHeadDim];
        uint16_t k_norms[kHalves], v_norm = ToHalf(norm(rng));
        std::vector<float> kr(kHeadDim), vr(kHeadDim);
        int group = -1;
        for (int half = 0; half < kHalves; ++half) {
          const int bits = widths[half];
          if (half == 0 || bits != widths[half - 1]) k_norms[++group] = ToHalf(norm(rng));
          for (int c = 0; c < 8; ++c) {
            const int d = 8 * half + c;
            k_codes[d] =
                static_cast<uint8_t>(std::uniform_int_distribution<int>(0, (1 << bits) - 1)(rng));
            kr[d] = FromHalf(ToHalf(kernels::FragmentUnitCentroid(bits, k_codes[d]))) *
                    FromHalf(k_norms[group]);
          }
        }
        for (int d = 0; d < kHeadDim; ++d) {
          v_codes[d] = static_cast<uint8_t>(std::uniform_int_distribution<int>(0, 7)(rng));
          vr[d] = FromHalf(ToHalf(kernels::FragmentUnitCentroid(3, v_codes[d]))) * FromHalf(v_norm);
        }
        uint8_t* page = pages.data() +
                        (size_t(table[b * max_pages + tok / kPageTokens]) * kv_heads + h) * stride;
        if (!WriteFragmentProbeToken(widths, k_codes, k_norms, v_codes, v_norm, tok % kPageTokens,
                                     page)) {
          return false;
        }
        if (tok < lens[b]) k_hat[tok] = kr, v_hat[tok] = vr;
      }
      // Scores in log2 units (q̂ is pre-scaled), exact softmax, rotated V.
      for (int qh = 0; qh < group; ++qh) {
        const uint16_t* qr = &q[((size_t(b) * kv_heads + h) * 8 + qh) * kHeadDim];
        std::vector<double> score(lens[b]);
        double mx = -1e300, den = 0;
        for (int tok = 0; tok < lens[b]; ++tok) {
          double dot = 0;
          for (int d = 0; d < kHeadDim; ++d) dot += FromHalf(qr[d]) * k_hat[tok][d];
          mx = std::max(mx, score[tok] = dot);
        }
        std::vector<double> o(kHeadDim, 0.0);
        for (int tok = 0; tok < lens[b]; ++tok) {
          const double pr = std::exp2(score[tok] - mx);
          den += pr;
          for (int d = 0; d < kHeadDim; ++d) o[d] += pr * v_hat[tok][d];
        }
        for (int d = 0; d < kHeadDim; ++d)
          want[((size_t(b) * kv_heads + h) * group + qh) * kHeadDim + d] = o[d] / den;
      }
    }
  }
  DeviceCase c;
  Prepare(c, attention, batch, kv_heads, group, max_pages, lens, table, q, /*splits=*/3);
  CHECK_CUDA(cudaMemcpy(const_cast<uint8_t*>(c.p.pages), pages.data(), pages.size(),
                        cudaMemcpyHostToDevice));
  Run(c);
  CHECK_CUDA(cudaDeviceSynchronize());
  std::vector<float> got(want.size());
  CHECK_CUDA(cudaMemcpy(got.data(), c.out, got.size() * 4, cudaMemcpyDeviceToHost));
  double worst = 0, scale = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    worst = std::max(worst, double(std::fabs(got[i] - want[i])));
    scale = std::max(scale, double(std::fabs(want[i])));
  }
  const bool ok = worst <= 2e-2 * scale && std::isfinite(worst);
  std::printf("check (layout %d): max |gpu - cpu| = %.3g (max |cpu| %.3g): %s\n",
              KVPLAN_PROBE_LAYOUT, worst, scale, ok ? "ok" : "FAILED");
  return ok;
}

bool HasCudaDevice() {
  int devices = 0;
  return cudaGetDeviceCount(&devices) == cudaSuccess && devices > 0;
}

struct Case {
  const char* model;
  int kv_heads, group, batch, ctx;
};

}  // namespace kvplan::probe

namespace kvplan::probe {

struct Options {
  int iters = 50, only_batch = 0, only_ctx = 0;
  double settle_ms = 0.0;
  bool check = true, jit = false;
};
constexpr bench::FlagSpec<Options> kFlags[] = {
    {"--iters", &Options::iters},           {"--batch", &Options::only_batch},
    {"--ctx", &Options::only_ctx},          {"--settle-ms", &Options::settle_ms},
    {"--no-check", &Options::check, false}, {"--jit", &Options::jit},
};

absl::Status ParseOptions(int argc, const char* const* argv, Options& o) {
  const absl::Status parsed = bench::ParseFlags<Options>(
      argc, argv, kFlags, "see the usage at the top of bench/kernels/fragment_decode_probe.cu", o);
  if (!parsed.ok()) return parsed;
  if (o.iters < 1) return absl::InvalidArgumentError("--iters takes a count >= 1");
  return bench::CheckSettleMs(o.settle_ms);
}

}  // namespace kvplan::probe

int main(int argc, char** argv) {
  using namespace kvplan::probe;
  Options o;
  if (const absl::Status parsed = ParseOptions(argc, argv, o); !parsed.ok()) {
    std::fprintf(stderr, "%s\n", std::string(parsed.message()).c_str());
    return 1;
  }
  const int iters = o.iters, only_batch = o.only_batch, only_ctx = o.only_ctx;
  const bool check = o.check, jit = o.jit;
  const double settle_ms = o.settle_ms;
  // --jit: the decode kernel generated for these heads' layouts
  // (kvplan/kernels/fragment_decode_source.h) and compiled now by NVRTC, in
  // place of the kernel built into the binary.
  const void* attention = reinterpret_cast<const void*>(&ProbeAttention);
  std::optional<kvplan::kernels::JitLibrary> library;
  if (jit) {
    const int* rows[8];
    for (int h = 0; h < 8; ++h) rows[h] = HalfWidthsFor(h);
    const std::string source = FragmentProbeDecodeSource(8, rows, kWarps, "FragmentDecode");
    if (source.empty()) return 1;
    const auto start = std::chrono::steady_clock::now();
    absl::StatusOr<std::string> cubin =
        kvplan::kernels::CompileCubin(source, "fragment_decode_layer.cu", {});
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!cubin.ok()) {
      std::fprintf(stderr, "%s\n", std::string(cubin.status().message()).c_str());
      return 1;
    }
    std::printf(
        "jit: NVRTC compiled the generated decode source (%zu characters, key %.12s) to "
        "%zu bytes of cubin in %.1f s\n",
        source.size(), kvplan::kernels::CubinCacheKey(source, {}).c_str(), cubin->size(), seconds);
    if (!HasCudaDevice()) {
      std::printf("no CUDA device: compiled only\n");
      return 0;
    }
    absl::StatusOr<kvplan::kernels::JitLibrary> loaded = kvplan::kernels::JitLibrary::Load(*cubin);
    absl::StatusOr<cudaKernel_t> kernel = loaded.ok()
                                              ? loaded->Kernel("FragmentDecode")
                                              : absl::StatusOr<cudaKernel_t>(loaded.status());
    if (!kernel.ok()) {
      std::fprintf(stderr, "%s\n", std::string(kernel.status().message()).c_str());
      return 1;
    }
    library.emplace(*std::move(loaded));
    attention = reinterpret_cast<const void*>(*kernel);
  }
  if (!HasCudaDevice()) {
    std::printf("no CUDA device\n");
    return 0;
  }
  if (check && !CheckAgainstCpu(attention) && !KVPLAN_FRAGMENT_DECODE_SKELETON) return 1;
  cudaDeviceProp prop;
  CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  const double copy_gbs = CopyBandwidth();
  std::printf("device %s, %d SMs; cudaMemcpy D2D %.0f GB/s (read + write)\n", prop.name,
              prop.multiProcessorCount, copy_gbs);
  std::printf("fragment-native pages (core/fragment_page.h), K layout %s, %d warps\n",
              kLayoutMode == 0   ? "uniform K3 (compile time)"
              : kLayoutMode == 2 ? "16-aligned (compiled per head)"
                                 : "8-aligned (compiled per head)",
              kWarps);
  std::printf("%-12s %5s %7s | %6s %9s %7s %5s\n", "model", "batch", "ctx", "splits", "probe_us",
              "GB/s", "%cpy");
  const Case cases[] = {
      {"llama3.1-8b", 8, 4, 1, 32768},  {"llama3.1-8b", 8, 4, 1, 131072},
      {"llama3.1-8b", 8, 4, 16, 32768}, {"llama3.1-8b", 8, 4, 16, 131072},
      {"qwen2.5-3b", 2, 8, 16, 32768},  {"qwen2.5-3b", 2, 8, 16, 131072},
  };
  for (const Case& cs : cases) {
    if ((only_batch && cs.batch != only_batch) || (only_ctx && cs.ctx != only_ctx)) continue;
    const int max_pages = cs.ctx / kPageTokens;
    const int splits = SplitsFor(attention, cs.batch, cs.kv_heads, cs.ctx);
    std::vector<int> table(size_t(cs.batch) * max_pages);
    std::iota(table.begin(), table.end(), 0);
    std::shuffle(table.begin(), table.end(), std::mt19937(11));
    std::vector<uint16_t> q(size_t(cs.batch) * cs.kv_heads * 8 * kHeadDim, 0);
    std::mt19937 rng(5);
    std::normal_distribution<float> gauss(0.0f, 0.15f);
    for (uint16_t& x : q) x = ToHalf(gauss(rng));
    DeviceCase c;
    Prepare(c, attention, cs.batch, cs.kv_heads, cs.group, max_pages,
            std::vector<int>(cs.batch, cs.ctx), table, q, splits);
    const size_t units = table.size() * cs.kv_heads;
    std::vector<int> tile_bytes;
    for (int h = 0; h < cs.kv_heads; ++h) tile_bytes.push_back(TileBytesFor(h));
    int* d_tile_bytes = c.Alloc<int>(tile_bytes.size());
    CHECK_CUDA(
        cudaMemcpy(d_tile_bytes, tile_bytes.data(), tile_bytes.size() * 4, cudaMemcpyHostToDevice));
    FillPages<<<1024, 256>>>(const_cast<uint8_t*>(c.p.pages), units, cs.kv_heads, c.p.page_stride,
                             d_tile_bytes, 3);
    for (int w = 0; w < 3; ++w) Run(c);
    CHECK_CUDA(cudaDeviceSynchronize());
    // Five samples of `iters` steps each (the legacy stream), after settle_ms
    // of untimed steps (event_median.h: the step's sustained clocks).
    const double t_us = kvplan::bench::MedianEventMicros(
        /*stream=*/0, /*iters=*/5, iters,
        [&](int) {
          for (int i = 0; i < iters; ++i) Run(c);
        },
        settle_ms);
    // Bytes read: each head's own pages (the stride's padding is not read).
    double bytes = 0;
    for (int h = 0; h < cs.kv_heads; ++h) bytes += double(table.size()) * PageBytesFor(h);
    const double gbs = bytes / (t_us * 1e-6) / 1e9;
    std::printf("%-12s %5d %7d | %6d %9.1f %7.0f %4.0f%%\n", cs.model, cs.batch, cs.ctx, splits,
                t_us, gbs, 100.0 * gbs / copy_gbs);
  }
  return 0;
}
