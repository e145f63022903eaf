// Encode + pack: post-RoPE K and V of a layer's new tokens into their page
// slots (core/packed_page.h), device code. One launch covers every token and
// KV head, K and V: grid (ceil(slabs / slabs_per_cta), num_kv_heads, 2), z = 0
// encodes K with the head's group layout, z = 1 V (one group of head_dim at
// v_bits, identity permutation). A slab is 64 consecutive tokens of the batch
// (one page's worth); a CTA of 8 warps encodes two slabs at a time, warps 0-3
// the first and 4-7 the second, each warp 16 tokens (the rows of one MMA tile)
// for every group (a slab's 4 warps synchronise among themselves, on a named
// barrier; the whole CTA only around staging rotations), and a CTA encodes
// slabs_per_cta slabs, so that splitting its rotations into shared memory (R
// up to 128x128 as fp16 hi and lo, 64 KB) is paid once per CTA. The kernel is
// latency-bound (short dependent chains: MMAs, table searches, fp64 sums), so
// what matters is resident warps: the token rows are not staged in shared
// memory but loaded straight into registers (the A fragments), which leaves
// ~90 KB per CTA at head_dim 128, and the launch bounds hold a thread to 128
// registers, so two CTAs (16 warps) fit an SM. The next slab's rows are
// prefetched into L2 while the current ones multiply (rows read from L1
// instead would save ~6%: NOTES.md run 22). A K layout whose padded rotations
// exceed 64 KB is encoded in rounds of groups that fit.
//
// Arithmetic (core/grouped_quantizer.h's, except the rotation):
//   n   = ‖x_g‖ exactly as the CPU: fp64, four interleaved partial sums in the
//         CPU's order (each quad of lanes keeps the four chains of its 2 rows);
//   s   = fp32(√d / n) (0 for a zero or non-finite norm), as the CPU;
//   z   = R·(x·s) on tensor cores (mma m16n8k16, fp16 in, fp32 accumulate) with
//         both operands split into fp16 hi + lo parts: x·s·2^10 = x_hi + x_lo,
//         R·2^10 = R_hi + R_lo (the power of two keeps the lo parts clear of
//         fp16 subnormals), z = (x_hi·R_hi + (x_hi·R_lo + x_lo·R_hi))·2^-20,
//         each group zero-padded to whole 16x16 tiles. The splits and the
//         dropped x_lo·R_lo are within 2^-22 relative per term, so z is
//         typically within ~1e-6 of the exact value, like the CPU's sequential
//         fp32 sum, but not bit-equal to it;
//   code = the number of boundaries strictly below z (as the CPU), so a code
//         can differ from the CPU's by one where z lies within that error of
//         a boundary (rare: tests/kernels/encode_pack_test.cc bounds it);
//   n'  = n·√d / ‖c[codes]‖ (fp64, four-lane sums), fp16 with saturation: equal
//         to the CPU's bit for bit whenever the group's codes are.
//
// Stores. A slab whose 64 tokens fill one page in order (slot_mapping[t0 + i]
// = slot_mapping[t0] + i, slot_mapping[t0] a multiple of 64, t0 the slab's
// first token; a prefill whose sequence starts on a slab) is a whole page:
//   version-1 pages: assembled in shared memory in page-stream order and
//     written without atomics, each code stream as chunks of 64 codes that a
//     thread packs in registers (8-byte stores), the norms as 16-byte units;
//   fragment-native pages (p.fragment): each thread owns one (tile, lane) run
//     and writes it word by word without atomics (RunWriter), merging the
//     words a group shares with its neighbours' groups.
// Any other slab (decode tokens, shuffled or partial pages, negative slots =
// skipped tokens) stores each code with an atomicAnd (clear its bits) and an
// atomicOr (set them), since codes of neighbouring slots share 32-bit words:
// concurrent writers of other slots are safe, two writers of one slot are not.
#ifndef KVPLAN_KERNELS_ENCODE_PACK_CUH_
#define KVPLAN_KERNELS_ENCODE_PACK_CUH_

#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "core/fragment_geometry.h"
#include "kvplan/kernels/device_utils.cuh"
#include "kvplan/kernels/params.h"

namespace kvplan::kernels {

namespace internal {

// Warps per slab (16 tokens each) and slabs a CTA encodes at a time: one
// staged set of rotations serves 8 warps.
inline constexpr int kSlabWarps = 4;
inline constexpr int kCtaSlabs = 2;
inline constexpr int kEncodeWarps = kSlabWarps * kCtaSlabs;
inline constexpr int kEncodeThreads = 32 * kEncodeWarps;
inline constexpr int kSlabThreads = 32 * kSlabWarps;
inline constexpr int kSlabTokens = 16 * kSlabWarps;
static_assert(kSlabTokens == kKernelPageTokens, "a slab is one page's worth of tokens");
// Slabs a launch may give one CTA (the launcher's own choice: encode_slabs.h).
inline constexpr int kMaxSlabsPerCta = 32;
// Power-of-two scales of the split operands: |x·s| <= √d <= 11.4 and |R| <=
// 1, so hi parts stay far below fp16's 65504 and lo parts (2^-11 of them)
// above its subnormals for all but negligible values. The MMA sums are z·2^20
// exactly; they are compared with boundaries staged times 2^20 (also exact).
inline constexpr float kSplitScale = 1024.0f;
inline constexpr float kSumScale = kSplitScale * kSplitScale;
// Compact code tables in shared memory: widths 1..8 back to back.
inline constexpr int kBoundaryEntries = 502;  // Σ (2^b - 1)
inline constexpr int kCentroidEntries = 510;  // Σ 2^b
__host__ __device__ constexpr int BoundaryTableOffset(int bits) { return (1 << bits) - bits - 1; }
__host__ __device__ constexpr int CentroidTableOffset(int bits) { return (1 << bits) - 2; }
__host__ __device__ constexpr int Pad16(int n) { return (n + 15) & ~15; }

// Shared memory of one CTA, in bytes: the rotation planes, and per slab of
// the two in flight its code buffer, norms and slots; no token rows. At
// head_dim 128 it is ~89 KB, so two CTAs (16 warps) fit an SM.
template <int HEAD_DIM>
struct EncodeSmem {
  static constexpr int kMaxKSteps = HEAD_DIM / 16;
  // fp16 hi and lo planes of the staged rotations: one full-width group.
  static constexpr int kRotationHalves = 2 * HEAD_DIM * HEAD_DIM;
  static constexpr int kRotation = 0;
  static constexpr int kSlabCodes = kSlabTokens * HEAD_DIM;           // u8, CodeByte
  static constexpr int kCodes = kRotation + 2 * kRotationHalves;      // [kCtaSlabs][kSlabCodes]
  static constexpr int kSlabNorms = kMaxKGroups * kSlabTokens;        // fp16 [8][64]
  static constexpr int kNorms = kCodes + kCtaSlabs * kSlabCodes;      // [kCtaSlabs][kSlabNorms]
  static constexpr int kSlots = kNorms + 2 * kCtaSlabs * kSlabNorms;  // int64 [kCtaSlabs][64]
  static constexpr int kCentroidSquares = kSlots + 8 * kCtaSlabs * kSlabTokens;  // fp64 c²
  static constexpr int kBoundaries = kCentroidSquares + 8 * kCentroidEntries;
  // The head's descriptor, read by every group of every slab: a copy here
  // answers in shared-memory latency, not L1's (NOTES.md run 22).
  static constexpr int kDesc = kBoundaries + 4 * kBoundaryEntries;
  // The head's fragment-page geometry, read by every whole page's stores.
  static constexpr int kFragment = kDesc + static_cast<int>(sizeof(PackedHeadDesc));
  static constexpr int kBytes = kFragment + static_cast<int>(sizeof(FragmentHeadGeometry));
  static_assert(kCodes % 16 == 0 && kNorms % 16 == 0 && kSlots % 8 == 0 &&
                    kCentroidSquares % 8 == 0 && kDesc % alignof(PackedHeadDesc) == 0,
                "16-byte aligned codes and norms, 8-byte aligned slots, squares and descriptor");
};
// An SM has 228 KB of shared memory and reserves 1 KB per CTA.
static_assert(2 * (EncodeSmem<kMaxKernelHeadDim>::kBytes + 1024) <= 228 * 1024, "two CTAs per SM");

// The slab's codes are kept in page-stream order, each group's stream at
// byte 64·offset (K: element τ·d + i, token-major; V: i·64 + τ, dim-major), so
// that the whole-page store packs 16-byte units from consecutive words.
// CodeByte(b, dim_major) is where byte b of that order lives, swizzled so
// that a warp's code stores (8 rows by 4 coordinates t each) hit distinct
// banks. Both XOR bits 3..5 of b with a function of b / 64, so 8-byte pieces
// stay whole and a 64-byte chunk is XORed with one value (StoreChunk):
//   K (token-major): bits 3..5 ^= bits 7..9, for K groups of 16·2^k;
//   V (dim-major): bit 3 ^= bit 7 (bit 1 of the coordinate, so of t, which
//     alone collides: t and t + 2 land 32 words apart). It is the same for
//     all of a thread's V codes, so their addresses are its row's plus
//     compile-time offsets (NOTES.md run 21).
__device__ __forceinline__ int CodeByte(int b, bool dim_major) {
  return b ^ (b >> 4 & (dim_major ? 0x08 : 0x38));
}
__device__ __forceinline__ int StreamElement(int token, int coordinate, int d, bool dim_major) {
  return dim_major ? coordinate * kKernelPageTokens + token : token * d + coordinate;
}

// One group as the kernel sees it: K group g of the head, or V.
struct EncodeGroup {
  int bits;
  int size;            // d
  int offset;          // first permuted position (0 for V)
  int64_t rotation_t;  // float offset of Rᵀ in the plan's rotation region
  int block_offset;    // code stream within the page
  int norm_offset;     // n' of slot 0 within the page
};

__device__ __forceinline__ EncodeGroup GroupToEncode(const PackedHeadDesc& desc, bool is_v,
                                                     int v_bits, int head_dim, int g) {
  if (is_v) {
    return {v_bits, head_dim, 0, desc.v_rotation_t, desc.v_block_offset, desc.v_norm_offset};
  }
  return {desc.bits[g],         desc.size[g],
          desc.offset[g],       desc.k_rotation_t[g],
          desc.block_offset[g], desc.k_norm_offset + 2 * kKernelPageTokens * g};
}

// The groups from g0 whose rotations fit the staging buffer together (at least g0's).
__device__ __forceinline__ int RoundEnd(const PackedHeadDesc& desc, bool is_v, int head_dim,
                                        int num_groups, int g0, int capacity_halves) {
  int used = 0, g = g0;
  for (; g < num_groups; ++g) {
    const int pad = Pad16(is_v ? head_dim : desc.size[g]);
    if (g > g0 && used + 2 * pad * pad > capacity_halves) break;
    used += 2 * pad * pad;
  }
  return g;
}

// XOR on the 16-byte chunk index of row j of a staged matrix with m chunks per
// row (m even, 2..16). ldmatrix reads chunk c of 8 consecutive rows (the first
// a multiple of 8); rows j·m apart repeat every 8/G rows (G = gcd(m, 8)), and
// the XOR with (j / (8/G)) mod G moves each repeat to its own bank quad. It
// depends on j mod 8 only.
__host__ __device__ constexpr int ChunkSwizzle(int j, int m) {
  const int g = (m & -m) < 8 ? (m & -m) : 8;
  return (j * g / 8) & (g - 1);
}

// (hi, lo) fp16x2 of (v0, v1), lower k in the low half: hi = fp16(v), lo =
// fp16(v - hi) (v - hi is exact in fp32), so hi + lo = v within 2^-22·|v|.
__device__ __forceinline__ void SplitHalf2(float v0, float v1, uint32_t& hi, uint32_t& lo) {
  const __half2 h = __floats2half2_rn(v0, v1);
  const float2 back = __half22float2(h);
  const __half2 l = __floats2half2_rn(v0 - back.x, v1 - back.y);
  hi = *reinterpret_cast<const uint32_t*>(&h);
  lo = *reinterpret_cast<const uint32_t*>(&l);
}

// Which group coordinate each MMA position carries. The k positions of a
// k-step (A columns, B rows) and the columns of an n-tile (B and C) are
// permuted so that the coordinates a thread holds (positions 2t, 2t+1, 2t+8,
// 2t+9 of k; columns 2t, 2t+1 of n) are t, t+4, t+8, t+12 (k) and t, t+4 (n)
// plus multiples of 16 (8): all ≡ t (mod 4), in increasing order. So thread t
// of a quad keeps, by itself, the partial sum of lane t of the CPU's four
// interleaved sums (SumOf4Lanes, core/grouped_quantizer.cc) over its rows'
// coordinates (both norms are such sums).
__host__ __device__ constexpr int KCoordinate(int p) {
  return (p >> 1 & 3) + 4 * (p & 1) + 8 * (p >> 3);
}
__host__ __device__ constexpr int NCoordinate(int c) { return (c >> 1) + 4 * (c & 1); }

// (s0 + s1) + (s2 + s3) of the quad's lane sums (thread t holding s_t), in
// every thread of the quad (fp64 addition commutes exactly).
__device__ __forceinline__ double LaneSumTotal(double sum) {
  const double pair = __dadd_rn(sum, __shfl_xor_sync(0xffffffffu, sum, 1));
  return __dadd_rn(pair, __shfl_xor_sync(0xffffffffu, pair, 2));
}
__device__ __forceinline__ double Square(float v) {
  return __dmul_rn(static_cast<double>(v), static_cast<double>(v));
}
// sum + v² as the CPU's __dadd_rn(sum, Square(v)), in one DFMA: v² of an fp32
// v is exact in fp64 (48-bit significand, no overflow or underflow), so
// fusing the multiply changes no rounding.
__device__ __forceinline__ double AddSquare(double sum, float v) {
  const double w = static_cast<double>(v);
  return __fma_rn(w, w, sum);
}

// Calls f(std::integral_constant<int, V>) for V = value in [K, MAX] (MAX for
// anything past it): a group's k-step loops and a width's quantization and
// packing get compile-time trip counts and shifts, so that they unroll into
// straight code that ptxas can schedule (ldmatrix ahead of the MMAs).
template <int K, int MAX, typename F>
__device__ __forceinline__ void WithConstant(int value, F&& f) {
  if constexpr (K < MAX) {
    if (value != K) return WithConstant<K + 1, MAX>(value, f);
  }
  f(std::integral_constant<int, K>{});
}

// Which of its two rows (row, row + 8) a thread computes the fp64 norm
// arithmetic of: the four lanes of a quad hold the same two rows, so lanes
// t = 0, 2 take the first and t = 1, 3 the second, and neighbours t, t ^ 1
// swap results with one shuffle, instead of every lane running both rows'
// fp64 square roots and divisions (NOTES.md run 18: 3% of the encode time).
__device__ __forceinline__ int OwnRow(int lane) { return lane & 1; }

// What the compiler may know about a group's coordinates. Per coordinate the
// general case costs a bounds check, a permutation load and 64-bit address
// arithmetic per row, about 12 instructions (NOTES.md run 21), where the data
// work is 3; so the two common shapes get their own code:
//   kIdentity: V, the head's dims in order (d = HEAD_DIM): no permutation
//              loads, no checks;
//   kWhole:    a K group of whole 16-dim k-steps: gathered through the
//              permutation, no checks. A launch takes this path when every K
//              group of the layer is one (EncodePackParams::k_groups_whole:
//              16-aligned plans); a kernel holding both K paths spills;
//   kPadded:   any K group, zero-padded to whole k-steps.
enum class GroupShape { kIdentity, kWhole, kPadded };

// The A fragments of one warp's 16 rows for one group of KSTEPS k-steps:
// x·s·2^10 split into hi and lo (k-step kk covers permuted positions offset +
// 16kk .. +15, zero past d), the norm n of the thread's own row (OwnRow) and
// √d of the group, both fp64.
template <int KSTEPS>
struct RowFragments {
  uint32_t hi[KSTEPS][4];
  uint32_t lo[KSTEPS][4];
  double own_norm;
  double sqrt_d;
};

// Builds f from the rows in global memory (token0: the warp's first token).
// Each thread loads exactly the fp32 values its fragments hold (2 rows x
// 4·KSTEPS coordinates, gathered through the permutation), all issued before
// the first is used, so that the rows need no shared memory; a warp's 16 rows
// (8 KB) are read from DRAM once and by later groups from L1 or L2. Rows past
// num_tokens repeat the last token's: MMA rows are independent, and those
// tokens have no slot (slot_s -1), so their codes and norms are never stored.
template <int HEAD_DIM, int KSTEPS, GroupShape SHAPE>
__device__ __forceinline__ void BuildRowFragments(RowFragments<KSTEPS>& f, const float* src,
                                                  int token0, const EncodePackParams& p, int head,
                                                  const uint8_t* permutation,
                                                  const EncodeGroup& grp, int lane) {
  static_assert(SHAPE != GroupShape::kIdentity || 16 * KSTEPS == HEAD_DIM, "V spans the head");
  const int row = lane >> 2, t = lane & 3;
  const int d = SHAPE == GroupShape::kPadded ? grp.size : 16 * KSTEPS;
  const float* rows[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int token = min(token0 + row + 8 * r, p.num_tokens - 1);
    rows[r] = src + (static_cast<int64_t>(token) * p.num_kv_heads + head) * HEAD_DIM;
  }
  // v[kk][2h + r][e]: row `row + 8r`, coordinate 16kk + 8h + t + 4e (zero
  // past d): the A fragment order (a[0] row, a[1] row + 8, then k + 8). Both
  // passes visit (kk, h, e) in increasing coordinate order.
  float v[KSTEPS][4][2];
  auto each_coordinate = [&](auto&& f) {
#pragma unroll
    for (int kk = 0; kk < KSTEPS; ++kk) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
#pragma unroll
        for (int e = 0; e < 2; ++e) f(kk, h, e);
      }
    }
  };
  each_coordinate([&](int kk, int h, int e) {
    const int coordinate = 16 * kk + 8 * h + t + 4 * e;
    // The rows are in original dimension order.
    const bool inside = SHAPE != GroupShape::kPadded || coordinate < d;
    const int dim = SHAPE == GroupShape::kIdentity ? coordinate
                    : inside                       ? permutation[grp.offset + coordinate]
                                                   : 0;
#pragma unroll
    for (int r = 0; r < 2; ++r) v[kk][2 * h + r][e] = inside ? __ldg(rows[r] + dim) : 0.0f;
  });
  // The norms after all loads: each lane's sum in increasing coordinate order.
  double sum[2] = {0.0, 0.0};
  each_coordinate([&](int kk, int h, int e) {
#pragma unroll
    for (int r = 0; r < 2; ++r) sum[r] = AddSquare(sum[r], v[kk][2 * h + r][e]);
  });
  f.sqrt_d = sqrt(static_cast<double>(d));
  // Both rows' totals (every lane of the quad takes part in each sum), then
  // this lane's row only; the neighbour t ^ 1 has the other one.
  const double total0 = LaneSumTotal(sum[0]), total1 = LaneSumTotal(sum[1]);
  const int own = OwnRow(lane);
  f.own_norm = sqrt(own == 0 ? total0 : total1);
  // s as the CPU rounds it, then the exact power of two of the split.
  const float own_scale =
      (f.own_norm > 0.0 && isfinite(f.own_norm) ? static_cast<float>(f.sqrt_d / f.own_norm)
                                                : 0.0f) *
      kSplitScale;
  const float other_scale = __shfl_xor_sync(0xffffffffu, own_scale, 1);
  const float scale[2] = {own == 0 ? own_scale : other_scale, own == 1 ? own_scale : other_scale};
#pragma unroll
  for (int kk = 0; kk < KSTEPS; ++kk) {
#pragma unroll
    for (int a = 0; a < 4; ++a) {
      const float s = scale[a & 1];
      SplitHalf2(v[kk][a][0] * s, v[kk][a][1] * s, f.hi[kk][a], f.lo[kk][a]);
    }
  }
}

// 4·code of each z, code being the number of the 2^BITS - 1 ascending
// boundaries strictly below it (both in the same scale). A binary search on
// byte offsets (4·code) into the shared table, four values at once for
// latency, unrolled for the compile-time width: per value and step one load
// (offset + constant address), one compare and one predicated add, about
// half the instructions of a loop over a runtime width (and fewer than
// counting against boundaries held in registers, which costs a compare and a
// select per boundary).
template <int BITS>
__device__ __forceinline__ void CountBelow4(const float (&z)[4], const float* boundaries,
                                            int (&offset)[4]) {
  const char* table = reinterpret_cast<const char*>(boundaries);
#pragma unroll
  for (int e = 0; e < 4; ++e) offset[e] = 0;
#pragma unroll
  for (int step = 4 << (BITS - 1); step >= 4; step >>= 1) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      // Boundary code + step / 4 - 1.
      if (*reinterpret_cast<const float*>(table + offset[e] + (step - 4)) < z[e]) offset[e] += step;
    }
  }
}

// n' = n·√d / ‖c[codes]‖ as fp16, saturating.
__device__ __forceinline__ uint16_t CorrectedNorm(double norm, double sqrt_d, double code_norm2) {
  return FloatToHalfSaturate(
      static_cast<float>(__ddiv_rn(__dmul_rn(norm, sqrt_d), sqrt(code_norm2))));
}

// Prefetches the warp's 16 token rows (from token0) into L2, so that the
// loads of BuildRowFragments, issued only when the rows are needed, find them
// there rather than in DRAM. One prefetch per 128-byte line.
template <int HEAD_DIM>
__device__ __forceinline__ void PrefetchTokenRows(const float* src, int token0,
                                                  const EncodePackParams& p, int head, int lane) {
#if defined(__CUDA_ARCH__)
  constexpr int kLines = HEAD_DIM * 4 / 128;
#pragma unroll
  for (int q = lane; q < 16 * kLines; q += 32) {
    const int token = token0 + q / kLines;
    if (token < p.num_tokens) {
      const float* line = src + (static_cast<int64_t>(token) * p.num_kv_heads + head) * HEAD_DIM +
                          32 * (q % kLines);
      asm volatile("prefetch.global.L2 [%0];\n" ::"l"(line));
    }
  }
#else
  (void)src, (void)token0, (void)p, (void)head, (void)lane;
#endif
}

// Splits the fp32 Rᵀ of groups [g0, g1) into fp16 hi and lo planes (both
// scaled by kSplitScale), each group padded with zeros to Pad16(d) rows and
// columns: the B operand, plane row p = k position holding Rᵀ[j][·] = column
// j of R (j = KCoordinate), column n holding coordinate i (NCoordinate), in
// 16-byte chunks (n-tiles) placed by ChunkSwizzle. Whole CTA.
template <int HEAD_DIM>
__device__ void StageRotations(__half* rotation_s, const EncodePackParams& p,
                               const PackedHeadDesc& desc, bool is_v, int g0, int g1, int tid) {
  int base = 0;
  for (int g = g0; g < g1; ++g) {
    const EncodeGroup grp = GroupToEncode(desc, is_v, p.v_bits, HEAD_DIM, g);
    const int d = grp.size, pad = Pad16(d), m = pad / 8;
    const float* rt = p.rotations + grp.rotation_t;
    __half* hi = rotation_s + base;
    __half* lo = hi + pad * pad;
    for (int q = tid; q < pad * m; q += kEncodeThreads) {
      // Row p (k position), chunk c (n-tile): coordinates j and 8c + NCoordinate(·).
      const int p_row = q / m, c = q - p_row * m;
      const int j = (p_row & ~15) + KCoordinate(p_row & 15);
      float v[8];
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int i = 8 * c + 2 * e;  // d is even: a pair is wholly inside or outside
        float2 pair = make_float2(0.0f, 0.0f);
        if (j < d && i < d) pair = __ldg(reinterpret_cast<const float2*>(rt + j * d + i));
        v[2 * e] = pair.x;
        v[2 * e + 1] = pair.y;
      }
      uint32_t h[4], l[4];
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        SplitHalf2(v[NCoordinate(2 * e)] * kSplitScale, v[NCoordinate(2 * e + 1)] * kSplitScale,
                   h[e], l[e]);
      }
      const int chunk = p_row * m + (c ^ ChunkSwizzle(p_row, m));
      *reinterpret_cast<uint4*>(hi + 8 * chunk) = make_uint4(h[0], h[1], h[2], h[3]);
      *reinterpret_cast<uint4*>(lo + 8 * chunk) = make_uint4(l[0], l[1], l[2], l[3]);
    }
    base += 2 * pad * pad;
  }
}

// z = R·(x·s) for the warp's 16 rows (slab tokens token0 ..) and one group,
// quantized: codes into the slab's code buffer, n' into norm_row[0..15].
// rotation_hi: the group's staged hi plane (lo follows).
template <int KSTEPS, GroupShape SHAPE>
__device__ __forceinline__ void RotateQuantizeRows(const RowFragments<KSTEPS>& f,
                                                   const __half* rotation_hi, uint8_t* code_s,
                                                   int token0, uint16_t* norm_row,
                                                   const EncodeGroup& grp, const float* boundaries,
                                                   const double* centroid_squares, int lane) {
  constexpr int kPad = 16 * KSTEPS, m = kPad / 8;
  // V streams are dim-major, K streams token-major (core/packed_page.h).
  constexpr bool kDimMajor = SHAPE == GroupShape::kIdentity;
  const int row = lane >> 2, t = lane & 3;
  const int d = SHAPE == GroupShape::kPadded ? grp.size : kPad;
  const int code_base = kKernelPageTokens * grp.offset;
  // ldmatrix.x4.trans: lane supplies row r of matrix q; matrices (hi, k 0-7),
  // (hi, k 8-15), (lo, k 0-7), (lo, k 8-15) give b_hi[0..1], b_lo[0..1].
  const int matrix = lane >> 3, matrix_row = lane & 7, swizzle = ChunkSwizzle(matrix_row, m);
  const uint32_t lane_base = SharedAddress(rotation_hi) + 2 * (matrix >> 1) * kPad * kPad +
                             16 * ((8 * (matrix & 1) + matrix_row) * m);
  // The stream byte of (row `row + 8r`, coordinate t + c) is code_row[r] +
  // c·64 (V, dim-major) or + c (K, token-major), before CodeByte.
  int code_row[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    code_row[r] = code_base + StreamElement(token0 + row + 8 * r, t, d, kDimMajor);
  }
  double code_sum[2] = {0.0, 0.0};
  // One n-tile (8 output coordinates) at a time: 12 accumulators live
  // rather than 24, which with the group's fragments (64 registers at 8
  // k-steps) keeps the thread within 128 registers. The n-tiles and the sums
  // of c² run in increasing coordinate order, as the CPU's.
#pragma unroll 1
  for (int nt = 0; nt < 2 * KSTEPS; ++nt) {  // output coordinates 8·nt .. +7
    float acc[3][4] = {};                    // [hi·hi, hi·lo, lo·hi][fragment]
#pragma unroll
    for (int kk = 0; kk < KSTEPS; ++kk) {
      uint32_t b[4];
      LdMatrixX4Trans(b, lane_base + 256 * m * kk + 16 * (nt ^ swizzle));
      const uint32_t b_hi[2] = {b[0], b[1]}, b_lo[2] = {b[2], b[3]};
      MmaF16x16x8(acc[0], f.hi[kk], b_hi);
      MmaF16x16x8(acc[1], f.hi[kk], b_lo);
      MmaF16x16x8(acc[2], f.lo[kk], b_hi);
    }
    float scaled_z[4];  // z·kSumScale, as the staged boundaries
#pragma unroll
    for (int e = 0; e < 4; ++e) scaled_z[e] = acc[0][e] + (acc[1][e] + acc[2][e]);
    int offset[4];  // 4·code
    WithConstant<1, 8>(grp.bits,
                       [&](auto bits) { CountBelow4<bits>(scaled_z, boundaries, offset); });
#pragma unroll
    for (int e = 0; e < 4; ++e) {  // fragment e: row `row + 8 (e / 2)`, column 2t + e % 2
      const int step = 8 * nt + 4 * (e & 1), r = e >> 1;
      const bool valid = SHAPE != GroupShape::kPadded || step + t < d;  // coordinate step + t
      if (valid) {
        // V: the swizzle is the row's (CodeByte), so the address is a constant offset.
        const int byte = kDimMajor ? CodeByte(code_row[r], true) + step * kKernelPageTokens
                                   : CodeByte(code_row[r] + step, false);
        code_s[byte] = static_cast<uint8_t>(offset[e] >> 2);
      }
      // c² is 8 bytes: at byte 2·offset.
      const double c2 = *reinterpret_cast<const double*>(
          reinterpret_cast<const char*>(centroid_squares) + 2 * offset[e]);
      code_sum[r] = __dadd_rn(code_sum[r], valid ? c2 : 0.0);
    }
  }
  // Lane t < 2 of the quad stores row `row + 8t`, its own row.
  const double code_total0 = LaneSumTotal(code_sum[0]), code_total1 = LaneSumTotal(code_sum[1]);
  const int own = OwnRow(lane);
  const uint16_t corrected =
      CorrectedNorm(f.own_norm, f.sqrt_d, own == 0 ? code_total0 : code_total1);
  if (t < 2) norm_row[row + 8 * own] = corrected;
}

// Four byte-sized codes (LSB first, each < 2^BITS) packed at BITS each: byte
// pairs into 2·BITS-bit halves, then the halves (three ops per step).
template <int BITS>
__device__ __forceinline__ uint32_t PackFourCodes(uint32_t q) {
  constexpr uint32_t kPair = ((1u << BITS) - 1u) * 0x10001u;  // codes 0 and 2
  const uint32_t t = (q & kPair) | (q >> (8 - BITS) & kPair << BITS);
  constexpr uint32_t kHalf = (1u << 2 * BITS) - 1u;
  return (t & kHalf) | (t >> (16 - 2 * BITS) & kHalf << 2 * BITS);
}

// Chunk c of a group's page code stream of BITS-bit codes: stream elements
// 64c .. 64c + 63, 2·BITS words, from the code buffer (the group's codes from
// byte code_base, a multiple of 64, in stream order) to `stream`. CodeByte
// keeps 8-byte pieces whole and, within a 64-byte chunk, XORs them all with
// one value, so the chunk is 8 plain 8-byte loads; with BITS known the word
// shifts are constants and the loop straight code.
template <int BITS>
__device__ __forceinline__ void StoreChunk(uint8_t* stream, const uint8_t* code_s, int code_base,
                                           int c, bool dim_major) {
  const int b0 = code_base + kKernelPageTokens * c;
  const uint8_t* chunk = code_s + (b0 & ~0x3f);
  const int x = CodeByte(b0, dim_major) ^ b0;  // the chunk's XOR
  uint32_t out[2 * BITS] = {};
#pragma unroll
  for (int q = 0; q < 8; ++q) {
    const uint2 piece = *reinterpret_cast<const uint2*>(chunk + ((8 * q) ^ x));
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const uint32_t packed = PackFourCodes<BITS>(h ? piece.y : piece.x);
      constexpr int kPacked = 4 * BITS;
      const int bit = (2 * q + h) * kPacked;  // constant after unrolling
      out[bit / 32] |= packed << (bit % 32);
      if (bit % 32 + kPacked > 32) out[bit / 32 + 1] |= packed >> (32 - bit % 32);
    }
  }
  uint2* dst = reinterpret_cast<uint2*>(stream + 8 * BITS * c);
#pragma unroll
  for (int k = 0; k < BITS; ++k) dst[k] = make_uint2(out[2 * k], out[2 * k + 1]);
}

// Sets bits [shift, shift + width) of the field lo:hi (hi only when the code
// crosses into it) to `code` with atomics: neighbouring slots share words.
__device__ __forceinline__ void StoreBits(uint32_t* lo, uint32_t* hi, int shift, int width,
                                          uint32_t code) {
  const uint32_t mask = (1u << width) - 1u;
  atomicAnd(lo, ~(mask << shift));
  atomicOr(lo, code << shift);
  if (shift + width > 32) {
    const int spill = 32 - shift;
    atomicAnd(hi, ~(mask >> spill));
    atomicOr(hi, code >> spill);
  }
}

// A code at stream bit `bit` of a version-1 page's code stream.
__device__ __forceinline__ void StoreCode(uint32_t* words, int bit, int stride, uint32_t code) {
  StoreBits(words + (bit >> 5), words + (bit >> 5) + 1, bit & 31, stride, code);
}

// A code at run bit `bit` of lane `lane`'s run in a fragment page's run block
// of `words` words per lane: a lane's consecutive run words are not adjacent
// in memory (core/fragment_geometry.h).
__device__ __forceinline__ void StoreRunCode(uint8_t* block, int words, int lane, int bit,
                                             int width, uint32_t code) {
  const int w = bit >> 5;
  StoreBits(reinterpret_cast<uint32_t*>(block + FragmentRunWordOffset(words, lane, w)),
            reinterpret_cast<uint32_t*>(block + FragmentRunWordOffset(words, lane, w + 1)),
            bit & 31, width, code);
}

// Writes codes into one lane's run of a fragment page from run bit `bit` on,
// a word at a time: whole words are plain stores, the first and last words
// keep the bits around the codes (other groups', or unused). For a thread that
// owns the run: no other thread writes its words meanwhile.
class RunWriter {
 public:
  __device__ RunWriter(uint8_t* block, int words, int lane, int bit)
      : block_(block), words_(words), lane_(lane), word_(bit >> 5), pos_(bit & 31), low_(pos_) {}
  __device__ void Append(uint32_t code, int width) {
    acc_ |= code << pos_;
    const int end = pos_ + width;
    if (end >= 32) {
      Store(~0u << low_);
      ++word_;
      low_ = 0;
      acc_ = end > 32 ? code >> (32 - pos_) : 0u;
    }
    pos_ = end & 31;
  }
  // The last, partial word.
  __device__ void Finish() {
    if (pos_ > low_) Store((~0u << low_) & ((1u << pos_) - 1u));
  }

 private:
  __device__ void Store(uint32_t mask) {
    uint32_t* w = reinterpret_cast<uint32_t*>(block_ + FragmentRunWordOffset(words_, lane_, word_));
    *w = mask == ~0u ? acc_ : (*w & ~mask) | (acc_ & mask);
  }
  uint8_t* block_;
  int words_, lane_, word_, pos_, low_;
  uint32_t acc_ = 0;
};

// The two codes of tokens row, row + 1 (row even) at one coordinate, as the
// low and high byte: adjacent in the code buffer (CodeByte keeps 8-byte
// pieces whole, and a stream's consecutive tokens are consecutive bytes for V
// and, at coordinates c, c + 1 of one token, for K).
__device__ __forceinline__ uint32_t CodePair(const uint8_t* code_s, int byte) {
  return *reinterpret_cast<const uint16_t*>(code_s + byte);
}

// Writes kWords run words of one lane into a fragment run block of kWords
// words per lane, in the block's 16-, 8- and 4-byte units (FragmentRunWordOffset).
template <int kWords>
__device__ __forceinline__ void StoreRunWords(uint8_t* block, int lane,
                                              const uint32_t (&w)[kWords]) {
  constexpr int kChunks = kWords / 4, kRest = kWords % 4;
#pragma unroll
  for (int c = 0; c < kChunks; ++c) {
    *reinterpret_cast<uint4*>(block + FragmentRunWordOffset(kWords, lane, 4 * c)) =
        make_uint4(w[4 * c], w[4 * c + 1], w[4 * c + 2], w[4 * c + 3]);
  }
  if constexpr (kRest >= 2) {
    *reinterpret_cast<uint2*>(block + FragmentRunWordOffset(kWords, lane, 4 * kChunks)) =
        make_uint2(w[4 * kChunks], w[4 * kChunks + 1]);
  }
  if constexpr (kRest % 2 == 1) {
    *reinterpret_cast<uint32_t*>(block + FragmentRunWordOffset(kWords, lane, kWords - 1)) =
        w[kWords - 1];
  }
}

// A whole page's V runs: thread tid packs the run of lane tid % 32 in tile
// tid / 32 in registers and stores it whole. Run code 8m + 4j + 2kh + kr is
// (dim 16m + gr + 8kh, row 8j + 2t + kr) (core/fragment_geometry.h); its
// two kr are one 16-bit load, and with BITS and HEAD_DIM known every shift
// and address offset is a constant.
template <int HEAD_DIM, int BITS>
__device__ __forceinline__ void StoreFragmentVRuns(uint8_t* v_block, const uint8_t* code_s,
                                                   int tile, int lane) {
  constexpr int kCodes = HEAD_DIM / 2, kWords = kCodes * BITS / 32;
  const int gr = lane / 4, t = lane % 4;
  // V's CodeByte XORs bit 3 with bit 1 of the dim, which is gr's for all of
  // the lane's codes. base has bit 3 clear before the swizzle, so row + 8
  // (j = 1) is an XOR with 8 and a dim step of 16 or 8 adds 1024 or 512.
  const int base =
      CodeByte(gr * kKernelPageTokens + kFragmentTileTokens * tile + 2 * t, /*dim_major=*/true);
  uint32_t w[kWords] = {};
#pragma unroll
  for (int q = 0; q < kCodes / 2; ++q) {  // pair q: codes 2q (kr 0), 2q + 1 (kr 1)
    const int m = q / 4, j = q / 2 % 2, kh = q % 2;
    const uint32_t pair = CodePair(code_s, (base ^ 8 * j) + (16 * m + 8 * kh) * kKernelPageTokens);
    const uint32_t bits = (pair & 0xffu) | (pair >> 8) << BITS;
    constexpr int kPairBits = 2 * BITS;
    const int bit = q * kPairBits;  // constant after unrolling
    w[bit / 32] |= bits << (bit % 32);
    if (bit % 32 + kPairBits > 32) w[bit / 32 + 1] |= bits >> (32 - bit % 32);
  }
  StoreRunWords<kWords>(v_block, lane, w);
}

// A whole page's K runs over the groups [g0, g1) of a staging round, in one
// pass: each thread owns lane tid % 32's run in tile tid / 32, whose
// half-slices follow one another (core/fragment_page.cc), so only the first
// and last words of the stretch are merged with bits around it. Half-slice h
// holds codes (row gr (+8), coordinate 8h + 2t (+1)), k = 0..3 as
// 2·(row / 8) + (coordinate odd): one append of 4·bits bits.
__device__ __forceinline__ void StoreFragmentKRuns(const FragmentHeadGeometry& f, uint8_t* k_block,
                                                   const PackedHeadDesc& desc, int g0, int g1,
                                                   const uint8_t* code_s, int tile, int lane) {
  const int gr = lane / 4, t = lane % 4;
  RunWriter run(k_block, f.k_run_words, lane,
                f.half_offset[desc.offset[g0] / kFragmentHalfSliceDims]);
  for (int g = g0; g < g1; ++g) {
    const int d = desc.size[g], bits = desc.bits[g], code_base = kKernelPageTokens * desc.offset[g];
    const int row0 = kFragmentTileTokens * tile + gr;
    for (int c = 2 * t; c < d; c += kFragmentHalfSliceDims) {  // the group's coordinates c, c + 1
      const uint32_t lo = CodePair(code_s, CodeByte(code_base + row0 * d + c, false));
      const uint32_t hi = CodePair(code_s, CodeByte(code_base + (row0 + 8) * d + c, false));
      run.Append(
          (lo & 0xffu) | (lo >> 8) << bits | (hi & 0xffu) << 2 * bits | (hi >> 8) << 3 * bits,
          4 * bits);
    }
  }
  run.Finish();
}

// Copies a head's table (a multiple of 4 bytes: its descriptor, its fragment
// geometry) into shared memory, a word per thread: read by every slab, it then
// answers in shared-memory latency, not L1's or L2's (NOTES.md runs 22, 36).
template <typename T>
__device__ __forceinline__ void CopyToShared(T* dst, const T* src, int tid, int threads) {
  static_assert(sizeof(T) % 4 == 0, "copied as words");
  for (int i = tid; i < static_cast<int>(sizeof(T) / 4); i += threads) {
    reinterpret_cast<int*>(dst)[i] = reinterpret_cast<const int*>(src)[i];
  }
}

// A whole fragment-native page's norms n' of the groups [g0, g1) (K) or V's
// (g0 = 0): each tile keeps a 4-byte unit per (row r < 8, norm slot) holding
// rows r and r + 8 (FragmentNormByte), one store each; consecutive threads
// take a row's K slots, which are adjacent. (A 2-byte store per token from a
// call per group cost ~18 µs of a Llama-3.1-8B 32K x 8 fragment encode:
// NOTES.md run 36.)
__device__ __forceinline__ void StoreFragmentPageNorms(const FragmentHeadGeometry& f, uint8_t* page,
                                                       bool is_v, int g0, int g1,
                                                       const uint16_t* norm_s, int tid) {
  const int groups = g1 - g0, units = kFragmentTilesPerPage * 8 * groups;
  for (int i = tid; i < units; i += kSlabThreads) {
    const int tile = i / (8 * groups), rest = i - tile * 8 * groups;
    const int r = rest / groups, g = g0 + rest - r * groups;
    const uint16_t* n = norm_s + g * kSlabTokens + kFragmentTileTokens * tile + r;
    *reinterpret_cast<uint32_t*>(page + tile * f.tile_bytes + f.norms_offset +
                                 FragmentNormByte(r, f.num_k_groups, is_v ? f.num_k_groups : g)) =
        n[0] | static_cast<uint32_t>(n[8]) << 16;
  }
}

// The page of the slab whose first slot is slot0, for KV head `head`.
__device__ __forceinline__ uint8_t* SlabPage(const EncodePackParams& p, int head, int64_t slot0) {
  return p.pages + ((slot0 / kKernelPageTokens) * p.num_kv_heads + head) * p.page_stride;
}

// A whole fragment-native page's K, every group of the round [g0, g1): thread
// tid (of the slab's) writes the run of lane tid % 32 in tile tid / 32, then
// the norms (norm_s: [group][row]). f: the head's geometry, a copy in shared
// memory (CopyToShared).
__device__ __forceinline__ void StoreFragmentKPage(const EncodePackParams& p, int head,
                                                   const PackedHeadDesc& desc,
                                                   const FragmentHeadGeometry& f, int g0, int g1,
                                                   const uint8_t* code_s, const uint16_t* norm_s,
                                                   int64_t slot0, int tid) {
  static_assert(kSlabThreads == kFragmentTilesPerPage * 32, "a thread per (tile, lane)");
  const int tile = tid / 32, lane = tid % 32;
  uint8_t* page = SlabPage(p, head, slot0);
  StoreFragmentKRuns(f, page + tile * f.tile_bytes, desc, g0, g1, code_s, tile, lane);
  StoreFragmentPageNorms(f, page, /*is_v=*/false, g0, g1, norm_s, tid);
}

// The same for V at BITS.
template <int HEAD_DIM, int BITS>
__device__ __forceinline__ void StoreFragmentVPage(const EncodePackParams& p, int head,
                                                   const FragmentHeadGeometry& f,
                                                   const uint8_t* code_s, const uint16_t* norm_s,
                                                   int64_t slot0, int tid) {
  const int tile = tid / 32, lane = tid % 32;
  uint8_t* page = SlabPage(p, head, slot0);
  StoreFragmentVRuns<HEAD_DIM, BITS>(page + tile * f.tile_bytes + f.v_runs_offset, code_s, tile,
                                     lane);
  StoreFragmentPageNorms(f, page, /*is_v=*/true, 0, 1, norm_s, tid);
}

// Either, for the slab kernel (is_v and V's width known only at run time;
// V: g0 = 0, g1 = 1). Not inlined: its registers stay out of that kernel's
// encode loop. (The wgmma encode inlines the page kind it writes.)
template <int HEAD_DIM>
__device__ __noinline__ void StoreFragmentPage(const EncodePackParams& p, int head, bool is_v,
                                               const PackedHeadDesc& desc,
                                               const FragmentHeadGeometry& f, int g0, int g1,
                                               const uint8_t* code_s, const uint16_t* norm_s,
                                               int64_t slot0, int tid) {
  if (is_v) {
    WithConstant<1, 8>(p.v_bits, [&](auto bits) {
      StoreFragmentVPage<HEAD_DIM, bits>(p, head, f, code_s, norm_s, slot0, tid);
    });
  } else {
    StoreFragmentKPage(p, head, desc, f, g0, g1, code_s, norm_s, slot0, tid);
  }
}

// One code of the token in `slot` (>= 0) with atomics, which neighbouring
// slots' writers need: coordinate c of a group of d dims at `bits`, its
// version-1 code stream at byte block_offset of the page, or (fragment-native
// pages) its first permuted position at `offset` (K).
__device__ __forceinline__ void StoreVersion1SlotCode(const EncodePackParams& p, int head,
                                                      bool is_v, int d, int bits, int block_offset,
                                                      int64_t slot, int c, uint32_t code) {
  uint8_t* page = p.pages + ((slot / kKernelPageTokens) * p.num_kv_heads + head) * p.page_stride;
  const int s = static_cast<int>(slot % kKernelPageTokens);
  StoreCode(reinterpret_cast<uint32_t*>(page + block_offset), StreamElement(s, c, d, is_v) * bits,
            bits, code);
}
__device__ __forceinline__ uint8_t* FragmentSlotTile(const EncodePackParams& p, int head,
                                                     int64_t slot) {
  const int s = static_cast<int>(slot % kKernelPageTokens);
  return p.pages + ((slot / kKernelPageTokens) * p.num_kv_heads + head) * p.page_stride +
         (s / kFragmentTileTokens) * p.fragment[head].tile_bytes;
}
__device__ __forceinline__ void StoreFragmentSlotCode(const EncodePackParams& p, int head,
                                                      bool is_v, int bits, int offset, int64_t slot,
                                                      int c, uint32_t code) {
  const FragmentHeadGeometry& f = p.fragment[head];
  uint8_t* tile = FragmentSlotTile(p, head, slot);
  const int row = static_cast<int>(slot % kFragmentTileTokens);
  if (is_v) {
    StoreRunCode(tile + f.v_runs_offset, f.v_run_words, FragmentVLane(row, c),
                 FragmentVRunBit(bits, row, c), bits, code);
  } else {
    const int pos = offset + c, half = pos / kFragmentHalfSliceDims;
    StoreRunCode(tile, f.k_run_words, FragmentKLane(row, pos),
                 FragmentKRunBit(f.half_offset[half], bits, row, pos), bits, code);
  }
}
// Norm n' of K group g (or V) of the token in `slot`; version-1 pages keep a
// group's norms from byte norm_offset of the page.
__device__ __forceinline__ void StoreVersion1SlotNorm(const EncodePackParams& p, int head,
                                                      int norm_offset, int64_t slot,
                                                      uint16_t norm) {
  uint8_t* page = p.pages + ((slot / kKernelPageTokens) * p.num_kv_heads + head) * p.page_stride;
  reinterpret_cast<uint16_t*>(page + norm_offset)[slot % kKernelPageTokens] = norm;
}
__device__ __forceinline__ void StoreFragmentSlotNorm(const EncodePackParams& p, int head,
                                                      bool is_v, int g, int64_t slot,
                                                      uint16_t norm) {
  const FragmentHeadGeometry& f = p.fragment[head];
  const int row = static_cast<int>(slot % kFragmentTileTokens);
  const int norm_slot = is_v ? f.num_k_groups : g;
  *reinterpret_cast<uint16_t*>(FragmentSlotTile(p, head, slot) + f.norms_offset +
                               FragmentNormByte(row, f.num_k_groups, norm_slot)) = norm;
}

// StoreGroup for fragment-native pages (p.fragment) and a slab that is not a
// whole page (those are StoreFragmentPage's): code by code into each token's
// slot (negative slots skipped), then the norms. Not inlined: its address
// arithmetic would push the encode loop past 128 registers. The group is
// passed as its fields, in registers (a struct by reference would go through
// the stack).
inline __device__ __noinline__ void StoreFragmentGroup(const EncodePackParams& p, int head,
                                                       bool is_v, int g, int d, int bits,
                                                       int offset, const uint8_t* code_s,
                                                       const uint16_t* norms, const int64_t* slot_s,
                                                       int tid) {
  const int code_base = kKernelPageTokens * offset;
  for (int i = tid; i < kSlabTokens * d; i += kSlabThreads) {
    const int token = i / d, c = i - token * d;
    const int64_t slot = slot_s[token];
    if (slot < 0) continue;
    StoreFragmentSlotCode(p, head, is_v, bits, offset, slot, c,
                          code_s[CodeByte(code_base + StreamElement(token, c, d, is_v), is_v)]);
  }
  if (tid < kSlabTokens && slot_s[tid] >= 0) {
    StoreFragmentSlotNorm(p, head, is_v, g, slot_s[tid], norms[tid]);
  }
}

// Writes one group's codes and norms of the slab. whole_page: the slab is page
// slot_s[0] / 64 in slot order, written as whole chunks and units; otherwise code
// by code into each token's slot (negative slots skipped). A whole
// fragment-native page is StoreFragmentPage's instead. The slab's
// kSlabThreads threads (tid: the index among them), the other slab's threads
// storing theirs alongside.
__device__ __forceinline__ void StoreGroup(const EncodePackParams& p, int head, bool is_v, int g,
                                           const EncodeGroup& grp, const uint8_t* code_s,
                                           const uint16_t* norm_s, const int64_t* slot_s,
                                           bool whole_page, int tid) {
  const int d = grp.size, bits = grp.bits, code_base = kKernelPageTokens * grp.offset;
  const uint16_t* norms = norm_s + g * kSlabTokens;
  if (p.fragment != nullptr) {
    StoreFragmentGroup(p, head, is_v, g, d, bits, grp.offset, code_s, norms, slot_s, tid);
    return;
  }
  if (whole_page) {
    uint8_t* page =
        p.pages + ((slot_s[0] / kKernelPageTokens) * p.num_kv_heads + head) * p.page_stride;
    // 64·d codes: d chunks of 64 (8·bits bytes each).
    WithConstant<1, 8>(bits, [&](auto b) {
      for (int c = tid; c < d; c += kSlabThreads) {
        StoreChunk<b>(page + grp.block_offset, code_s, code_base, c, is_v);
      }
    });
    if (tid < 2 * kSlabTokens / 16) {
      reinterpret_cast<uint4*>(page + grp.norm_offset)[tid] =
          reinterpret_cast<const uint4*>(norms)[tid];
    }
    return;
  }
  for (int i = tid; i < kSlabTokens * d; i += kSlabThreads) {
    const int token = i / d, c = i - token * d;
    const int64_t slot = slot_s[token];
    if (slot < 0) continue;
    StoreVersion1SlotCode(p, head, is_v, d, bits, grp.block_offset, slot, c,
                          code_s[CodeByte(code_base + StreamElement(token, c, d, is_v), is_v)]);
  }
  if (tid < kSlabTokens && slot_s[tid] >= 0) {
    StoreVersion1SlotNorm(p, head, grp.norm_offset, slot_s[tid], norms[tid]);
  }
}

}  // namespace internal

// slabs_per_cta: consecutive 64-token slabs per CTA (encode_slabs.h),
// encoded in pairs: pair i is slabs 2i (warps 0-3) and 2i + 1 (warps 4-7).
// 256 threads at 128 registers: two CTAs per SM. K_WHOLE: p.k_groups_whole.
template <int HEAD_DIM, bool K_WHOLE>
__global__ void __launch_bounds__(internal::kEncodeThreads, 2)
    EncodePackKernel(const __grid_constant__ EncodePackParams p, int slabs_per_cta) {
  using namespace internal;
  using S = EncodeSmem<HEAD_DIM>;
  extern __shared__ __align__(16) uint8_t smem[];
  __half* rotation_s = reinterpret_cast<__half*>(smem + S::kRotation);
  int64_t* slots = reinterpret_cast<int64_t*>(smem + S::kSlots);  // both slabs'
  double* square_s = reinterpret_cast<double*>(smem + S::kCentroidSquares);
  float* boundary_s = reinterpret_cast<float*>(smem + S::kBoundaries);
  PackedHeadDesc* desc_s = reinterpret_cast<PackedHeadDesc*>(smem + S::kDesc);

  const int tid = OpaqueThreadIndex();
  const int warp = tid >> 5, lane = tid & 31;
  // Which slab of each pair the thread's warp encodes and stores (half), the
  // thread's index among that slab's threads, and the warp's first row in it.
  const int half = warp / kSlabWarps, slab_tid = tid - kSlabThreads * half;
  const int row0 = 16 * (warp - kSlabWarps * half);
  uint8_t* code_s = smem + S::kCodes + half * S::kSlabCodes;
  uint16_t* norm_s = reinterpret_cast<uint16_t*>(smem + S::kNorms) + half * S::kSlabNorms;

  const int head = blockIdx.y;
  const bool is_v = blockIdx.z == 1;
  const PackedHeadDesc& desc = *desc_s;
  const float* src = is_v ? p.v : p.k;
  const int total_slabs = (p.num_tokens + kSlabTokens - 1) / kSlabTokens;
  const int slab0 = blockIdx.x * slabs_per_cta;
  const int slabs = min(slabs_per_cta, total_slabs - slab0);
  const int pairs = (slabs + kCtaSlabs - 1) / kCtaSlabs;
  // The warp's first token in pair i, and whether its slab exists (an odd
  // slab count leaves warps 4-7 idle in the last pair).
  const auto warp_token0 = [&](int i) {
    return (slab0 + kCtaSlabs * i + half) * kSlabTokens + row0;
  };
  const auto has_slab = [&](int i) { return kCtaSlabs * i + half < slabs; };

  // Prologue: the first pair's rows on their way to L2 while the tables and
  // the first round of rotations are staged.
  if (has_slab(0)) PrefetchTokenRows<HEAD_DIM>(src, warp_token0(0), p, head, lane);
  CopyToShared(desc_s, p.heads + head, tid, kEncodeThreads);
  auto* fragment_s = reinterpret_cast<FragmentHeadGeometry*>(smem + S::kFragment);
  if (p.fragment != nullptr) CopyToShared(fragment_s, p.fragment + head, tid, kEncodeThreads);
  for (int bits = 1; bits <= 8; ++bits) {
    for (int k = tid; k < (1 << bits); k += kEncodeThreads) {
      // c² exactly (24-bit significands) in fp64, as the CPU's centroid_square.
      square_s[CentroidTableOffset(bits) + k] = Square(p.tables->centroids[bits - 1][k]);
      if (k + 1 < (1 << bits)) {
        boundary_s[BoundaryTableOffset(bits) + k] = p.tables->boundaries[bits - 1][k] * kSumScale;
      }
    }
  }

  __syncthreads();  // the descriptor copied (the tables are read after the next barrier)
  const int num_groups = is_v ? 1 : desc.num_groups;
  // The two slabs of a pair share only the staged rotations: within a round
  // each synchronises its own 4 warps (named barrier 1 + half), so that one
  // slab's stragglers do not hold up the other's (CTA-wide barriers here
  // took 4% of the encode: NOTES.md run 22).
  const auto slab_barrier_and = [&](bool pred) {
    return half == 0 ? NamedBarrierAnd<1>(kSlabThreads, pred)
                     : NamedBarrierAnd<2>(kSlabThreads, pred);
  };
  const auto slab_barrier = [&] {
    if (half == 0) {
      NamedBarrier<1>(kSlabThreads);
    } else {
      NamedBarrier<2>(kSlabThreads);
    }
  };
  for (int g0 = 0, g1; g0 < num_groups; g0 = g1) {
    // Rounds: the groups whose rotations fit the buffer together (all of them
    // unless the K layout is lopsided). The previous round ended in a barrier.
    g1 = RoundEnd(desc, is_v, HEAD_DIM, num_groups, g0, S::kRotationHalves);
    StageRotations<HEAD_DIM>(rotation_s, p, desc, is_v, g0, g1, tid);
    __syncthreads();  // rotations (and in the first round the tables) visible
    for (int i = 0; i < pairs; ++i) {
      if (slab_tid < kSlabTokens) {
        const int slab = kCtaSlabs * i + half;
        const int token = (slab0 + slab) * kSlabTokens + slab_tid;
        slots[half * kSlabTokens + slab_tid] =
            slab < slabs && token < p.num_tokens ? p.slot_mapping[token] : -1;
      }
      slab_barrier();     // the slab's slots visible
      if (has_slab(i)) {  // warp-uniform
        const int token0 = warp_token0(i);
        int rotation_offset = 0;
        for (int g = g0; g < g1; ++g) {
          const EncodeGroup grp = GroupToEncode(desc, is_v, p.v_bits, HEAD_DIM, g);
          const int pad = Pad16(grp.size);
          const auto encode = [&](auto ksteps, auto shape) {
            RowFragments<ksteps> f;
            BuildRowFragments<HEAD_DIM, ksteps, shape>(f, src, token0, p, head, desc.permutation,
                                                       grp, lane);
            if (g == g1 - 1) {
              // The rows are in registers now: prefetch the next pair's (or,
              // for the next round, the first one's again) while this group
              // multiplies.
              const int next = i + 1 < pairs ? i + 1 : g1 < num_groups ? 0 : -1;
              if (next >= 0 && has_slab(next)) {
                PrefetchTokenRows<HEAD_DIM>(src, warp_token0(next), p, head, lane);
              }
            }
            RotateQuantizeRows<ksteps, shape>(f, rotation_s + rotation_offset, code_s, row0,
                                              norm_s + g * kSlabTokens + row0, grp,
                                              boundary_s + BoundaryTableOffset(grp.bits),
                                              square_s + CentroidTableOffset(grp.bits), lane);
          };
          if (is_v) {  // block-uniform
            encode(std::integral_constant<int, S::kMaxKSteps>{},
                   std::integral_constant<GroupShape, GroupShape::kIdentity>{});
          } else {
            WithConstant<1, S::kMaxKSteps>(pad / 16, [&](auto ksteps) {
              encode(ksteps, std::integral_constant < GroupShape,
                     K_WHOLE ? GroupShape::kWhole : GroupShape::kPadded > {});
            });
          }
          rotation_offset += 2 * pad * pad;
        }
      }
      // The store phase's thread index and slot buffer (slab_tid and the
      // slab's slots), recomputed from an opaque copy of tid: held through the
      // encode above, they pushed it past 128 registers (16 bytes of spill;
      // NOTES.md run 23).
      const uint32_t opaque_tid = Opaque(static_cast<uint32_t>(tid));
      const int store_tid = static_cast<int>(opaque_tid % kSlabThreads);
      const int64_t* slot_s = slots + opaque_tid / kSlabThreads * kSlabTokens;
      // The slab is a whole page in slot order: all 64 tokens present,
      // consecutive slots from a page boundary. The barrier also makes the
      // slab's codes and norms visible to the stores.
      const bool whole_page = slab_barrier_and(
          store_tid >= kSlabTokens || (slot_s[0] >= 0 && slot_s[0] % kKernelPageTokens == 0 &&
                                       slot_s[store_tid] == slot_s[0] + store_tid));
      if (has_slab(i)) {
        if (p.fragment != nullptr && whole_page) {
          StoreFragmentPage<HEAD_DIM>(p, head, is_v, desc, *fragment_s, g0, g1, code_s, norm_s,
                                      slot_s[0], store_tid);
        } else {
          for (int g = g0; g < g1; ++g) {
            StoreGroup(p, head, is_v, g, GroupToEncode(desc, is_v, p.v_bits, HEAD_DIM, g), code_s,
                       norm_s, slot_s, whole_page, store_tid);
          }
        }
      }
      slab_barrier();  // the slab's codes, norms and slots free
    }
    __syncthreads();  // the rotations free for the next round
  }
}

}  // namespace kvplan::kernels

#endif  // KVPLAN_KERNELS_ENCODE_PACK_CUH_
