// Fused decode attention over fragment-native pages (core/fragment_page.h),
// device code for kernels compiled per plan (kvplan/kernels/jit.h): every K
// half-slice's width and run offset is a template constant (KLayoutOf), so a
// code pair costs one shift, one LOP3 and one shared-memory lookup, and a
// lane loads its tile's codes straight into registers (NOTES run 19: 55-59%
// of copy bandwidth at batch 16 where the version-1 kernel reaches 33-39%).
//
// Scope: head_dim 64 or 128, any K layout of 8-dim half-slices and any V
// width (runs of up to 8 words are what the generator admits: registers), up
// to 8 query heads per KV head. This header is the step's middle: q̂ comes
// rotated and scaled by scale·log2(e) (fragment_params.h), and each CTA
// writes its split's un-normalized (O, m, l) with V still rotated, into
// LaunchPackedDecode's scratch layout. The fixed-function rest of the step
// (fragment_prologue.cuh: q̂, the fp16 sink + recent part; MergeKernel: the
// merge and V's inverse rotation) is compiled ahead of time; kvplan/kernels/
// fragment_decode_program.h runs all three.
//
// A kernel of this header: a __global__ wrapper that declares
//   extern __shared__ uint8_t dyn[];  __shared__ CtaShared<WARPS, HEAD_DIM> sh;
// and calls AttentionCta<KLayoutOf<W>, KLayoutOf<UniformWidths<V_BITS, HD/8>>,
// WARPS>(params, sh, dyn) for its head's K layout W, with kDynamicSmem bytes of
// dynamic shared memory (grid (num_splits, kv_heads, batch)), or, with
// balanced splits (fragment_params.h), also declares __shared__
// ChunkCursor<WARPS> cursor and calls AttentionCtaBalanced<...>(params, sh,
// cursor, dyn) (grid (CTAs per KV head, kv_heads)). Launched as a programmatic
// dependent of the prologue (it loads its tables before it waits for q̂), it
// lets the merge start early.
#ifndef KVPLAN_KERNELS_FRAGMENT_DECODE_CUH_
#define KVPLAN_KERNELS_FRAGMENT_DECODE_CUH_

#include <cuda_fp16.h>

#include <cstdint>
#include <utility>

#include "kvplan/kernels/device_utils.cuh"
#include "kvplan/kernels/fragment_params.h"
#include "kvplan/kernels/fragment_tables.h"

#ifndef KVPLAN_FRAGMENT_DECODE_SKELETON
#define KVPLAN_FRAGMENT_DECODE_SKELETON 0
#endif

namespace kvplan::kernels::fragment_decode {
using internal::MmaF16x16x8;
using internal::MmaF16x8x8;
using internal::PackHalves;

constexpr int kPageTokens = 64;
constexpr int kTileTokens = 16;
constexpr int kTilesPerPage = kPageTokens / kTileTokens;
constexpr float kInit = -1e30f;
// Query rows per KV head (the MMA's N).
constexpr int kQueryRows = kFragmentQueryRows;

// The code tables' shared-memory image (kvplan/kernels/fragment_tables.h).
constexpr int kTableBytes = kFragmentTableBytes;
__host__ __device__ constexpr int TableStart(int bits) { return FragmentTableStart(bits); }
// The area is 8 KB aligned inside the dynamic allocation.
constexpr int kDynamicSmem = kFragmentDynamicSmem;
static_assert(kFragmentDynamicSmem == kTableBytes + 8192, "tables plus 8 KB alignment slack");

// A head's K (or V) layout at compile time from W, a type with
// `static constexpr int kHalves` (head_dim / 8) and
// `__host__ __device__ static constexpr int Width(int h)`: the width of
// half-slice h (8 coordinates; ascending, one group per run of equal widths).
// Run offsets (a lane holds 4 codes of each half: rows g and g + 8, two
// columns each), run words, groups and the halves that close a group, as
// core/fragment_page.h lays them out.
template <class W>
struct KLayoutOf {
  static constexpr int kHalves = W::kHalves;
  static constexpr int kHeadDim = 8 * kHalves;
  static constexpr int kSlices = kHalves / 2;
  static_assert(kHeadDim == 64 || kHeadDim == 128, "head_dim 64 or 128");
  __host__ __device__ static constexpr int Width(int h) { return W::Width(h); }
  __host__ __device__ static constexpr int Offset(int h) {
    return h == 0 ? 0 : Offset(h - 1) + 4 * Width(h - 1);
  }
  __host__ __device__ static constexpr int Group(int h) {
    return h == 0 ? 0 : Group(h - 1) + (Width(h) != Width(h - 1) ? 1 : 0);
  }
  __host__ __device__ static constexpr bool Last(int h) {
    return h + 1 == kHalves || Width(h + 1) != Width(h);
  }
  __host__ __device__ static constexpr bool OnlyWidth3(int h = 0) {
    return h == kHalves || (Width(h) == 3 && OnlyWidth3(h + 1));
  }
  static constexpr int kGroups = Group(kHalves - 1) + 1;
  // An aligned allocation may leave a few bits of the budget unspent: the run's
  // trailing bits are unused (core/fragment_page.h).
  static constexpr int kRunBits = Offset(kHalves - 1) + 4 * Width(kHalves - 1);
  static constexpr int kRunWords = (kRunBits + 31) / 32;
  static constexpr int kRunBytes = 32 * 4 * kRunWords;
};

// V (and uniform K): every half-slice at BITS.
template <int BITS, int HALVES>
struct UniformWidths {
  static constexpr int kHalves = HALVES;
  __host__ __device__ static constexpr int Width(int) { return BITS; }
};

// The run's field at bits [BIT, BIT + FIELD) moved to bit TARGET (bits
// outside the field are garbage: the caller masks). All compile-time.
template <int BIT, int FIELD, int TARGET, int N>
__device__ __forceinline__ uint32_t FieldAt(const uint32_t (&w)[N]) {
  constexpr int kWord = BIT / 32, kPos = BIT % 32;
  if constexpr (kPos + FIELD > 32) {
    static_assert(kPos >= TARGET, "a straddling field starts above its target");
    return __funnelshift_r(w[kWord], w[kWord + 1], kPos - TARGET);
  } else if constexpr (kPos >= TARGET) {
    return w[kWord] >> (kPos - TARGET);
  } else {
    return w[kWord] << (TARGET - kPos);
  }
}

// Skeleton levels (timing probes only, wrong results): 1, no lookup; 2 and 3,
// the pair lookup replaced by the byte permutes a register-table grammar
// would spend (2: a table permute and an interleave per pair, as when four
// codes share one selector; 3: low and high byte tables and an interleave);
// 4, no decode at all (StaticPair: the MMAs take the run's words). The
// single-code lookups of widths 5-8 (LoadShared16) are skipped at every level.
__device__ __forceinline__ uint32_t LoadShared32(uint32_t address) {
#if KVPLAN_FRAGMENT_DECODE_SKELETON == 1
  return address;
#elif KVPLAN_FRAGMENT_DECODE_SKELETON == 2
  return __byte_perm(__byte_perm(0x3a343028u, 0x3e3c3b3au, address), address, 0x5140);
#elif KVPLAN_FRAGMENT_DECODE_SKELETON == 3
  return __byte_perm(__byte_perm(0x3a343028u, 0x3e3c3b3au, address),
                     __byte_perm(0x2c281810u, 0xbcb8b4b0u, address), 0x5140);
#else
  uint32_t v;
  asm("ld.shared.b32 %0, [%1];" : "=r"(v) : "r"(address));
  return v;
#endif
}
__device__ __forceinline__ uint16_t LoadShared16(uint32_t address) {
#if KVPLAN_FRAGMENT_DECODE_SKELETON
  return static_cast<uint16_t>(address);
#else
  uint16_t v;
  asm("ld.shared.u16 %0, [%1];" : "=h"(v) : "r"(address));
  return v;
#endif
}

// A fragment word (pair P) of slice S of layout L: widths 1..4 from the pair
// tables (one LOP3 + one LDS), 5..8 from the single tables (two of each).
template <class L, int S, int P>
__device__ __forceinline__ uint32_t StaticPair(const uint32_t (&w)[L::kRunWords], uint32_t area,
                                               uint32_t replica32, uint32_t replica8) {
  constexpr int kHalf = 2 * S + P / 2;
  constexpr int kBits = L::Width(kHalf), kBit = L::Offset(kHalf) + 2 * kBits * (P % 2);
  if constexpr (KVPLAN_FRAGMENT_DECODE_SKELETON == 4) {
    return w[kBit / 32];  // skeleton level 4: the run's word itself, no decode at all
  } else if constexpr (kBits <= 4) {
    constexpr int kTarget = kBits == 4 ? 5 : 7;
    constexpr uint32_t kMask = ((1u << (2 * kBits)) - 1) << kTarget;
    const uint32_t base = area + TableStart(kBits) + (kBits == 4 ? replica8 : replica32);
    return LoadShared32((FieldAt<kBit, 2 * kBits, kTarget>(w) & kMask) | base);
  } else {
    constexpr uint32_t kMask = ((1u << kBits) - 1) << 1;
    const uint32_t base = area + TableStart(kBits);
    return PackHalves(LoadShared16((FieldAt<kBit, kBits, 1>(w) & kMask) | base),
                      LoadShared16((FieldAt<kBit + kBits, kBits, 1>(w) & kMask) | base));
  }
}

template <class L, int S>
__device__ __forceinline__ void StaticFragment(const uint32_t (&w)[L::kRunWords], uint32_t area,
                                               uint32_t replica32, uint32_t replica8,
                                               uint32_t (&a)[4]) {
  a[0] = StaticPair<L, S, 0>(w, area, replica32, replica8);
  a[1] = StaticPair<L, S, 1>(w, area, replica32, replica8);
  a[2] = StaticPair<L, S, 2>(w, area, replica32, replica8);
  a[3] = StaticPair<L, S, 3>(w, area, replica32, replica8);
}

// Norm slot j of a tile: fp16 norms of tokens g and g + 8.
__device__ __forceinline__ float2 Halves(uint32_t x) {
  return __half22float2(*reinterpret_cast<const __half2*>(&x));
}

// S's MMA chains for layout L: each group accumulates in its own chain,
// folded into S with one FFMA per score after its last slice (groups are
// short, so their chains are independent of each other); a single group
// alternates two chains (even and odd slices), added at the fold.
template <class L>
struct ScoreChains {
  static constexpr int kCount = L::kGroups == 1 ? 2 : L::kGroups;
  // The chain of slice s's half h (0: k columns 0-7, 1: 8-15).
  __host__ __device__ static constexpr int Of(int s, int h) {
    return L::kGroups == 1 ? s & 1 : L::Group(2 * s + h);
  }
};

// S (acc) gains group G's chain times its norms (rows g, g + 8).
template <class L, int G>
__device__ __forceinline__ void FoldGroup(const float (&chains)[ScoreChains<L>::kCount][4],
                                          uint32_t norms, float (&acc)[4]) {
  const float2 n = Halves(norms);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float scale = i < 2 ? n.x : n.y;
    if constexpr (L::kGroups == 1) {
      acc[i] = (chains[0][i] + chains[1][i]) * scale;
    } else if constexpr (G == 0) {
      acc[i] = chains[0][i] * scale;
    } else {
      acc[i] = fmaf(chains[G][i], scale, acc[i]);
    }
  }
}

// S = Σ_groups n'·(K̂_g·q̂_gᵀ) over the slices of layout L, everything
// compile-time (ScoreChains).
template <class L, int... S>
__device__ __forceinline__ void StaticScores(const uint32_t (&w)[L::kRunWords],
                                             const uint32_t (&norms)[L::kGroups + 1],
                                             const uint32_t (&qb)[L::kSlices][2], uint32_t area,
                                             uint32_t replica32, uint32_t replica8, float (&acc)[4],
                                             std::integer_sequence<int, S...>) {
  using Chains = ScoreChains<L>;
  float chains[Chains::kCount][4] = {};
  (
      [&] {
        uint32_t a[4];
        StaticFragment<L, S>(w, area, replica32, replica8, a);
        constexpr int kGroup0 = L::Group(2 * S), kGroup1 = L::Group(2 * S + 1);
        if constexpr (kGroup0 == kGroup1) {
          MmaF16x16x8(chains[Chains::Of(S, 0)], a, qb[S]);
        } else {
          // A group ends mid-slice: each half is an m16n8k8 into its group.
          MmaF16x8x8(chains[Chains::Of(S, 0)], a[0], a[1], qb[S][0]);
          FoldGroup<L, kGroup0>(chains, norms[kGroup0], acc);
          MmaF16x8x8(chains[Chains::Of(S, 1)], a[2], a[3], qb[S][1]);
        }
        if constexpr (L::Last(2 * S + 1)) FoldGroup<L, kGroup1>(chains, norms[kGroup1], acc);
      }(),
      ...);
}

// Oᵀ += V̂ᵀ·Pᵀ over the m-tiles of V's run (layout VL).
template <class VL, int... S>
__device__ __forceinline__ void StaticValues(float (&o)[VL::kSlices][4],
                                             const uint32_t (&w)[VL::kRunWords], uint32_t area,
                                             uint32_t replica32, uint32_t replica8,
                                             const uint32_t (&pb)[2],
                                             std::integer_sequence<int, S...>) {
  (
      [&] {
        uint32_t a[4];
        StaticFragment<VL, S>(w, area, replica32, replica8, a);
        MmaF16x16x8(o[S], a, pb);
      }(),
      ...);
}

// One tile's registers: the lane's K and V runs and its norm slots (the K
// groups', then V's: fp16 norms of rows g and g + 8 each).
template <class KL, class VL>
struct TileRegs {
  static constexpr int kSlots = KL::kGroups + 1;
  uint32_t k[KL::kRunWords];
  uint32_t v[VL::kRunWords];
  uint32_t norms[kSlots];
};

// A lane's run of N words from a run block (core/fragment_page.h's storage:
// 16-byte chunks, then 8 bytes, then 4, each lane-interleaved).
template <int N>
__device__ __forceinline__ void LoadRun(const uint8_t* block, int lane, uint32_t (&w)[N]) {
#pragma unroll
  for (int c = 0; c < N / 4; ++c) {
    const uint4 a = __ldg(reinterpret_cast<const uint4*>(block + 512 * c) + lane);
    w[4 * c] = a.x, w[4 * c + 1] = a.y, w[4 * c + 2] = a.z, w[4 * c + 3] = a.w;
  }
  const uint8_t* rest = block + 512 * (N / 4);
  if constexpr (N % 4 >= 2) {
    const uint2 b = __ldg(reinterpret_cast<const uint2*>(rest) + lane);
    w[N / 4 * 4] = b.x, w[N / 4 * 4 + 1] = b.y;
    rest += 256;
  }
  if constexpr (N % 2 == 1) w[N - 1] = __ldg(reinterpret_cast<const uint32_t*>(rest) + lane);
}

template <class KL, class VL>
__device__ __forceinline__ void LoadTile(const uint8_t* tile, int lane, int g,
                                         TileRegs<KL, VL>& r) {
  constexpr int kSlots = TileRegs<KL, VL>::kSlots;
  LoadRun(tile, lane, r.k);
  LoadRun(tile + KL::kRunBytes, lane, r.v);
  const uint32_t* norms =
      reinterpret_cast<const uint32_t*>(tile + KL::kRunBytes + VL::kRunBytes) + kSlots * g;
  if constexpr (kSlots % 2 == 0) {
#pragma unroll
    for (int i = 0; i < kSlots; i += 2) {
      const uint2 n = __ldg(reinterpret_cast<const uint2*>(norms) + i / 2);
      r.norms[i] = n.x, r.norms[i + 1] = n.y;
    }
  } else {
#pragma unroll
    for (int i = 0; i < kSlots; ++i) r.norms[i] = __ldg(norms + i);
  }
}

using Params = FragmentDecodeParams;

// Static shared memory of a CTA of WARPS warps at HEAD_DIM.
template <int WARPS, int HEAD_DIM>
struct CtaShared {
  float comb_o[WARPS][kQueryRows][HEAD_DIM];
  float comb_ml[WARPS][kQueryRows][2];
};

__device__ __forceinline__ int TilesOf(int len) { return (len + kTileTokens - 1) / kTileTokens; }

// The batch's tiles per KV head: their total (x) and the longest sequence's
// (y), computed by every warp alike from all lengths (no barrier).
__device__ __forceinline__ int2 BatchTiles(const Params& p) {
  const int lane = threadIdx.x % 32;
  int total = 0, longest = 0;
  for (int b0 = 0; b0 < p.batch; b0 += 32) {
    const int tiles = b0 + lane < p.batch ? TilesOf(__ldg(p.len + b0 + lane)) : 0;
    total += static_cast<int>(__reduce_add_sync(0xffffffffu, static_cast<unsigned>(tiles)));
    longest = max(longest, static_cast<int>(__reduce_max_sync(0xffffffffu, tiles)));
  }
  return make_int2(total, longest);
}

// The empty partial (O = 0, m = kInit, l = 0) in slots [from, to) of
// sequence b, KV head h: slots no tile reaches, which the merge still reads.
__device__ __forceinline__ void ClearSlots(const Params& p, int b, int h, int from, int to,
                                           int head_dim) {
  const size_t unit = (static_cast<size_t>(b) * p.kv_heads + h) * (p.num_splits + 1) + from;
  const int rows = (to - from) * p.group_size;
  float* o = p.partial_o + unit * p.group_size * head_dim;
  float* ml = p.partial_ml + unit * p.group_size * 2;
  for (int i = threadIdx.x; i < rows * head_dim; i += blockDim.x) o[i] = 0.0f;
  for (int i = threadIdx.x; i < rows; i += blockDim.x) ml[2 * i] = kInit, ml[2 * i + 1] = 0.0f;
}

// q̂'s B fragments for sequence b, KV head h: slice s, k pairs (2t, 2t+1) and
// (8+2t, 8+2t+1), in natural column order as core/fragment_page.h stores the
// K codes.
template <class KL>
__device__ __forceinline__ void LoadQueryFragments(const Params& p, int b, int h,
                                                   uint32_t (&qb)[KL::kSlices][2]) {
  const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const uint16_t* qrow =
      p.q_rot + ((static_cast<size_t>(b) * p.kv_heads + h) * kQueryRows + g) * KL::kHeadDim;
#pragma unroll
  for (int s = 0; s < KL::kSlices; ++s) {
    qb[s][0] = *reinterpret_cast<const uint32_t*>(qrow + 16 * s + 2 * t);
    qb[s][1] = *reinterpret_cast<const uint32_t*>(qrow + 16 * s + 8 + 2 * t);
  }
}

// Stages the code tables in the CTA's dynamic shared memory (8 KB aligned)
// and returns their shared address, kept in a register (Opaque,
// device_utils.cuh): ptxas otherwise recomputes it in every tile (Llama b16
// 32K: 160.6 -> 156.0 µs with the tile and page-table pointers, NOTES.md run
// 25). Visible after the caller's next barrier.
template <class KL, class VL, int WARPS>
__device__ __forceinline__ uint32_t StageTables(const Params& p, uint8_t* dyn_smem) {
  const uint32_t dyn_addr = static_cast<uint32_t>(__cvta_generic_to_shared(dyn_smem));
  const uint32_t pad = (8192u - (dyn_addr & 8191u)) & 8191u;
  uint8_t* area = dyn_smem + pad;
  const uint32_t area_addr = internal::Opaque(dyn_addr + pad);
  // K and V of width 3 only need only the width-3 pair table (the first 8 KB).
  constexpr int kCopyBytes = KL::OnlyWidth3() && VL::OnlyWidth3() ? 8192 : kTableBytes;
  for (int i = threadIdx.x; i < kCopyBytes / 16; i += 32 * WARPS) {
    reinterpret_cast<uint4*>(area)[i] = __ldg(reinterpret_cast<const uint4*>(p.tables) + i);
  }
  return area_addr;
}

// The tiles [first, last) of sequence b (len tokens), (len, first, last) =
// tiles(), KV head h, with q̂'s B fragments qb, K layout KL and V layout VL,
// in a CTA of WARPS warps (the tables staged at area_addr): the warps'
// partial (O, m, l) combined in sh and written to partial unit
// partial_unit(). Both are callables, evaluated where the kernel needs them,
// so that nothing of the caller's is held through the tile loop for them
// (the per-pair CTA, whose body this was, measured 157.5 against 157.1 µs
// at Llama b16 32K: NOTES.md run 26). The CTAs of both grids call this: a
// per-pair split (AttentionCta) and a balanced chunk's segment
// (AttentionCtaBalanced).
template <class KL, class VL, int WARPS, class Tiles, class PartialUnit>
__device__ __forceinline__ void AttentionTiles(const Params& p, CtaShared<WARPS, KL::kHeadDim>& sh,
                                               uint32_t area_addr,
                                               const uint32_t (&qb)[KL::kSlices][2], int b, int h,
                                               Tiles tiles, PartialUnit partial_unit) {
  constexpr int kWarps = WARPS, kThreads = 32 * WARPS;
  constexpr int kHeadDim = KL::kHeadDim, kSlices = KL::kSlices;
  constexpr int kTileBytes = KL::kRunBytes + VL::kRunBytes + 32 * (KL::kGroups + 1);
  auto& comb_o = sh.comb_o;
  auto& comb_ml = sh.comb_ml;
  using Tile = TileRegs<KL, VL>;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  const uint32_t replica32 = 4u * lane, replica8 = 4u * (lane & 7);

  const int3 range = tiles();
  const int len = range.x, first = range.y, last = range.z;
  // Tokens past the sequence or past the tiles given are masked.
  const int end_tok = min(len, last * kTileTokens);
  float o[kSlices][4] = {};
  float m[2] = {kInit, kInit}, l[2] = {0.0f, 0.0f};
  // A warp's tiles are kWarps apart, so each sits at the same place in its
  // page: a tile's address is one wide multiply-add from its page id
  // (FragmentDecodeProgram::Step checks that kv_heads · page_stride fits 32
  // bits).
  static_assert(kWarps % kTilesPerPage == 0, "a warp's tiles share their place in the page");
  const uint8_t* warp_tiles = internal::Opaque(p.pages + static_cast<size_t>(h) * p.page_stride +
                                               ((first + warp) % kTilesPerPage) * kTileBytes);
  const uint32_t page_bytes = static_cast<uint32_t>(p.kv_heads * p.page_stride);
  const int* ptab = internal::Opaque(p.page_table + static_cast<size_t>(b) * p.max_pages);
  // The page id of the next tile to load, read one load ahead, so that a
  // tile's loads do not wait on the page table (1-2% at batch 16, NOTES.md run 23);
  // __ldg: the kept pointer is generic to ptxas.
  auto page_of = [&](int tile) {
    return static_cast<uint32_t>(__ldg(ptab + static_cast<uint32_t>(tile) / kTilesPerPage));
  };
  uint32_t next_page = first + warp < last ? page_of(first + warp) : 0u;
  // Tiles at or past `last` are never stepped: their registers stay as they were.
  auto load = [&](Tile& regs, int tile) {
    if (tile < last) {
      const uint32_t page = next_page;
      if (tile + kWarps < last) next_page = page_of(tile + kWarps);
      LoadTile(warp_tiles + static_cast<size_t>(page) * page_bytes, lane, g, regs);
    }
  };
  // S = K̂·q̂ᵀ for the tile, each K group's norm applied (C layout: tokens g, g+8
  // x queries 2t, 2t+1), one MMA chain per K group (ScoreChains).
  auto scores = [&](const Tile& cur, float(&acc)[4]) {
    StaticScores<KL>(cur.k, cur.norms, qb, area_addr, replica32, replica8, acc,
                     std::make_integer_sequence<int, kSlices>{});
  };
  auto step = [&](const Tile& cur, int tile) {
    float acc[4];
    scores(cur, acc);
    const float2 vn = Halves(cur.norms[KL::kGroups]);
    float vn0 = vn.x, vn8 = vn.y;
    // Only the last tile given can reach past end_tok (warp-uniform test).
    // Masked rows hold whatever the page held, NaN norms included: their
    // weight is 0, not 0 · n'.
    if (tile * kTileTokens + kTileTokens > end_tok) {
      const int tok = tile * kTileTokens + g;
      const float minus_inf = __int_as_float(0xff800000);
      if (tok >= end_tok) acc[0] = acc[1] = minus_inf, vn0 = 0.0f;
      if (tok + 8 >= end_tok) acc[2] = acc[3] = minus_inf, vn8 = 0.0f;
    }
    // The running max moves only when some score of the tile exceeds it: the
    // warp's max reduction (6 shuffles) and the rescale run only then, which
    // after the first tiles is rare. The result is the same as reducing every
    // tile (m only ever takes the max of the scores seen).
    if (__any_sync(0xffffffffu, fmaxf(acc[0], acc[2]) > m[0] || fmaxf(acc[1], acc[3]) > m[1])) {
      float tmax[2] = {fmaxf(acc[0], acc[2]), fmaxf(acc[1], acc[3])};
#pragma unroll
      for (int off = 4; off < 32; off *= 2) {
        tmax[0] = fmaxf(tmax[0], __shfl_xor_sync(0xffffffffu, tmax[0], off));
        tmax[1] = fmaxf(tmax[1], __shfl_xor_sync(0xffffffffu, tmax[1], off));
      }
      const float m0 = fmaxf(m[0], tmax[0]), m1 = fmaxf(m[1], tmax[1]);
      const float a0 = internal::Exp2Ftz(m[0] - m0), a1 = internal::Exp2Ftz(m[1] - m1);
      l[0] *= a0;
      l[1] *= a1;
#pragma unroll
      for (int s = 0; s < kSlices; ++s) {
        o[s][0] *= a0;
        o[s][1] *= a1;
        o[s][2] *= a0;
        o[s][3] *= a1;
      }
      m[0] = m0;
      m[1] = m1;
    }
    const float p0 = internal::Exp2Ftz(acc[0] - m[0]), p1 = internal::Exp2Ftz(acc[1] - m[1]);
    const float p2 = internal::Exp2Ftz(acc[2] - m[0]), p3 = internal::Exp2Ftz(acc[3] - m[1]);
    l[0] += p0 + p2;
    l[1] += p1 + p3;
    // Pᵀ (times V's norm) as O's B fragments (k = tokens, n = queries): P's C
    // fragment is two 8x8 blocks [token][query] (tokens g and g + 8 of the
    // thread), whose transposes are the B fragment's k = tokens 0-7 and 8-15.
    const uint32_t pb[2] = {internal::Transpose8x8(internal::PackHalf2(p0 * vn0, p1 * vn0)),
                            internal::Transpose8x8(internal::PackHalf2(p2 * vn8, p3 * vn8))};
    StaticValues<VL>(o, cur.v, area_addr, replica32, replica8, pb,
                     std::make_integer_sequence<int, kSlices>{});
  };
  // Warp w takes tiles first + w + kWarps·i; each step computes on one register
  // set while the next tile loads into the other (alternating, nothing copied).
  int tile = first + warp;
  Tile regs_a, regs_b;
  load(regs_a, tile);
  for (; tile < last; tile += 2 * kWarps) {
    load(regs_b, tile + kWarps);
    step(regs_a, tile);
    if (tile + kWarps >= last) break;
    load(regs_a, tile + 2 * kWarps);
    step(regs_b, tile + kWarps);
  }
  // l over the lanes of a query column.
#pragma unroll
  for (int off = 4; off < 32; off *= 2) {
    l[0] += __shfl_xor_sync(0xffffffffu, l[0], off);
    l[1] += __shfl_xor_sync(0xffffffffu, l[1], off);
  }
  // Oᵀ C fragment: rows dims 16s + g (+8), columns queries 2t, 2t + 1.
#pragma unroll
  for (int s = 0; s < kSlices; ++s) {
    comb_o[warp][2 * t][16 * s + g] = o[s][0];
    comb_o[warp][2 * t + 1][16 * s + g] = o[s][1];
    comb_o[warp][2 * t][16 * s + g + 8] = o[s][2];
    comb_o[warp][2 * t + 1][16 * s + g + 8] = o[s][3];
  }
  if (g == 0) {
    comb_ml[warp][2 * t][0] = m[0], comb_ml[warp][2 * t][1] = l[0];
    comb_ml[warp][2 * t + 1][0] = m[1], comb_ml[warp][2 * t + 1][1] = l[1];
  }
  __syncthreads();
  const size_t unit = partial_unit();
  for (int i = tid; i < p.group_size * kHeadDim; i += kThreads) {
    const int qh = i / kHeadDim, d = i % kHeadDim;
    float mm = kInit;
    for (int w = 0; w < kWarps; ++w) mm = fmaxf(mm, comb_ml[w][qh][0]);
    float acc = 0.0f, ll = 0.0f;
    for (int w = 0; w < kWarps; ++w) {
      const float a = exp2f(comb_ml[w][qh][0] - mm);
      acc += a * comb_o[w][qh][d];
      ll += a * comb_ml[w][qh][1];
    }
    p.partial_o[unit * p.group_size * kHeadDim + i] = acc;
    if (d == 0) {
      p.partial_ml[(unit * p.group_size + qh) * 2] = mm;
      p.partial_ml[(unit * p.group_size + qh) * 2 + 1] = ll;
    }
  }
}

// One CTA of the per-pair grid (num_splits, kv_heads, batch): the tiles of
// split blockIdx.x of sequence blockIdx.z, KV head blockIdx.y, the page
// table's tiles cut num_splits ways (FragmentSplitTiles). A split past its
// sequence's end writes its empty partial and leaves at once: it stages no
// tables and waits for nothing (its slot is no other kernel's while this
// step runs: the prologue lets this kernel start only after it has waited
// for the previous step's merge), so the splits a ragged batch's short
// sequences do not reach, or a page table wider than the sequences, cost
// little. (The split length taken from the lengths on the device instead,
// which would make a wide table cost nothing, moved ptxas's schedule of the
// tile loop: 1% slower on uniform batches, NOTES run 27; from the constant
// bank, as here, the loop compiles as before.)
template <class KL, class VL, int WARPS>
__device__ __forceinline__ void AttentionCta(const Params& p, CtaShared<WARPS, KL::kHeadDim>& sh,
                                             uint8_t* dyn_smem) {
  static_assert(KL::kHeadDim == VL::kHeadDim, "K and V of one head_dim");
  const int split = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int per_split = FragmentSplitTiles(p.max_pages * kTilesPerPage, p.num_splits);
  const int first = split * per_split;
  if (first >= TilesOf(__ldg(p.len + b))) {
    ClearSlots(p, b, h, split, split + 1, KL::kHeadDim);
    return;
  }
  const uint32_t area_addr = StageTables<KL, VL, WARPS>(p, dyn_smem);
  // The merge may start (it prefetches V's rotation, then waits for this grid);
  // q̂ is the prologue's output.
  internal::AllowDependentLaunch();
  internal::WaitForPrerequisiteGrids();
  uint32_t qb[KL::kSlices][2];
  LoadQueryFragments<KL>(p, b, h, qb);
  __syncthreads();  // the tables staged
  const auto tiles = [&] {
    const int len = p.len[b];
    return make_int3(len, first, min(TilesOf(len), first + per_split));
  };
  AttentionTiles<KL, VL, WARPS>(p, sh, area_addr, qb, b, h, tiles, [&] {
    return (static_cast<size_t>(b) * p.kv_heads + h) * (p.num_splits + 1) + split;
  });
}

// Balanced splits (fragment_params.h): what a CTA needs across a segment,
// parked per thread in shared memory rather than held in registers through
// the tile loop (at the loop's 128-register bound, held they cost 5-11% per
// step: NOTES.md run 26). A balanced kernel declares one beside CtaShared.
template <int WARPS>
struct ChunkCursor {
  int next_seq[32 * WARPS], next_start[32 * WARPS], unit[32 * WARPS];
  int range[3];  // the CTA's chunk: begin, end (range tiles) and length
};

// A value parked in shared memory, read back as a load that ptxas must issue
// where it stands (not forwarded from the register that stored it).
__device__ __forceinline__ int Unpark(const int& parked) {
  return *static_cast<const volatile int*>(&parked);
}
__device__ __forceinline__ void Park(int& slot, int value) {
  *static_cast<volatile int*>(&slot) = value;
}

// One CTA of the balanced grid (CTAs per KV head, kv_heads): chunk
// blockIdx.x of KV head blockIdx.y's tiles, a segment per sequence the chunk
// reaches, and the unused slots of the sequences whose first tile it holds.
template <class KL, class VL, int WARPS>
__device__ __forceinline__ void AttentionCtaBalanced(const Params& p,
                                                     CtaShared<WARPS, KL::kHeadDim>& sh,
                                                     ChunkCursor<WARPS>& cursor,
                                                     uint8_t* dyn_smem) {
  static_assert(KL::kHeadDim == VL::kHeadDim, "K and V of one head_dim");
  const uint32_t area_addr = StageTables<KL, VL, WARPS>(p, dyn_smem);
  const int c = blockIdx.x, ctas = gridDim.x, h = blockIdx.y;
  const int tid = threadIdx.x, lane = tid % 32;
  // The merge may start (it prefetches V's rotation, then waits for this
  // grid); q̂ is the prologue's output, the lengths are not.
  internal::AllowDependentLaunch();
  // The chunk, from all lengths.
  const int2 batch_tiles = BatchTiles(p);
  const int total = batch_tiles.x;
  const int chunk = FragmentChunkTiles(total, batch_tiles.y, ctas, p.num_splits);
  const int begin = FragmentChunkBegin(c, chunk, total),
            end = FragmentChunkEnd(begin, chunk, total);
  const auto reaches = [&](int start, int tiles) {
    return FragmentChunkHolds(begin, end, start, tiles) ||
           FragmentChunkOwner(start, chunk, ctas) == c;
  };
  // The first sequence the CTA has work for (the ones its chunk holds tiles of
  // and the ones it owns): a prefix sum of the tiles, 32 sequences a step.
  int first_seq = p.batch, first_start = total;
  for (int b0 = 0, base = 0; b0 < p.batch; b0 += 32) {
    const int tiles = b0 + lane < p.batch ? TilesOf(__ldg(p.len + b0 + lane)) : 0;
    int sum = tiles;  // inclusive
#pragma unroll
    for (int off = 1; off < 32; off *= 2) {
      const int other = __shfl_up_sync(0xffffffffu, sum, off);
      if (lane >= off) sum += other;
    }
    const unsigned hit =
        __ballot_sync(0xffffffffu, b0 + lane < p.batch && reaches(base + sum - tiles, tiles));
    if (hit != 0) {
      const int hit_lane = __ffs(hit) - 1;
      first_seq = b0 + hit_lane;
      first_start = base + __shfl_sync(0xffffffffu, sum - tiles, hit_lane);
      break;
    }
    base += __shfl_sync(0xffffffffu, sum, 31);
  }
  cursor.next_seq[tid] = first_seq;
  cursor.next_start[tid] = first_start;
  if (tid == 0) cursor.range[0] = begin, cursor.range[1] = end, cursor.range[2] = chunk;
  internal::WaitForPrerequisiteGrids();
  __syncthreads();  // the tables staged, the chunk parked
  for (;;) {
    // Everything from shared memory: nothing of this loop stays in registers
    // through a segment's tile loop.
    const int b = Unpark(cursor.next_seq[tid]), start = Unpark(cursor.next_start[tid]);
    if (b >= p.batch) break;
    const int seg_begin = Unpark(cursor.range[0]), seg_end = Unpark(cursor.range[1]);
    const int seg_chunk = Unpark(cursor.range[2]);
    const int len = __ldg(p.len + b), tiles = TilesOf(len);
    const bool owner = FragmentChunkOwner(start, seg_chunk, ctas) == c;
    if (!FragmentChunkHolds(seg_begin, seg_end, start, tiles) && !owner) break;
    Park(cursor.next_seq[tid], b + 1);
    Park(cursor.next_start[tid], start + tiles);
    if (owner) {
      ClearSlots(p, b, h, FragmentSlotsSpanned(start, tiles, seg_chunk), p.num_splits,
                 KL::kHeadDim);
    }
    const int lo = max(start, seg_begin), hi = min(start + tiles, seg_end);
    if (tiles > 0 && lo < hi) {
      Park(cursor.unit[tid], (b * p.kv_heads + h) * (p.num_splits + 1) + c - start / seg_chunk);
      uint32_t qb[KL::kSlices][2];
      LoadQueryFragments<KL>(p, b, h, qb);
      AttentionTiles<KL, VL, WARPS>(
          p, sh, area_addr, qb, b, h, [&] { return make_int3(len, lo - start, hi - start); },
          [&] { return static_cast<size_t>(Unpark(cursor.unit[tid])); });
      __syncthreads();  // comb_o and comb_ml read: the next segment reuses them
    }
  }
}

// The design probe's merge (bench/kernels/fragment_decode_probe.cu): the
// packed splits only, V left rotated. out [batch, kv_heads · group_size,
// HEAD_DIM]; grid (kv_heads · group_size, batch), HEAD_DIM threads. Serving
// steps merge with MergeKernel instead (the fp16 part, V's rotation undone).
template <int HEAD_DIM>
__global__ void RotatedMerge(const Params p, float* out) {
  const int qh = blockIdx.x, b = blockIdx.y, d = threadIdx.x;
  const int h = qh / p.group_size, q = qh % p.group_size;
  const size_t base = (static_cast<size_t>(b) * p.kv_heads + h) * (p.num_splits + 1);
  auto row = [&](int s) { return (base + s) * p.group_size + q; };
  float mm = kInit;
  for (int s = 0; s < p.num_splits; ++s) mm = fmaxf(mm, p.partial_ml[row(s) * 2]);
  float acc = 0.0f, ll = 0.0f;
  for (int s = 0; s < p.num_splits; ++s) {
    const float a = exp2f(p.partial_ml[row(s) * 2] - mm);
    acc += a * p.partial_o[row(s) * HEAD_DIM + d];
    ll += a * p.partial_ml[row(s) * 2 + 1];
  }
  out[(static_cast<size_t>(b) * gridDim.x + qh) * HEAD_DIM + d] = ll > 0.0f ? acc / ll : 0.0f;
}

}  // namespace kvplan::kernels::fragment_decode

#endif  // KVPLAN_KERNELS_FRAGMENT_DECODE_CUH_
