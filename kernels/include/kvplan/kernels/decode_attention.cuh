// Fused decode attention over packed pages (core/packed_page.h), device code.
//
// One step runs two kernels:
//   PackedAttentionKernel  grid (num_splits + 1, kv_heads, batch): CTA `split`
//                       < num_splits reads its share of the sequence's pages
//                       (bulk copies: one thread moves each whole page into
//                       one of two shared-memory stages, completing on the
//                       stage's mbarrier) and, per warp,
//                       decodes the K codes of kTilesPerPage 16-token tiles
//                       (32 tokens: two warps per page) in registers into fp16
//                       MMA fragments (S = Σ_g n'_g·(K̂_g·q̂_gᵀ) on tensor
//                       cores, each group's norm applied in fp32 after its
//                       last slice; the head's groups come from a per-slice
//                       table built once per CTA in shared memory, and each
//                       slice's setup is shared by the warp's tiles), runs an
//                       online softmax in log2 units, and multiplies decoded
//                       V (still rotated) by P on tensor cores. All query heads
//                       of the GQA group share each decoded tile (the MMA's N).
//                       CTA `num_splits` attends to the fp16 sink + recent
//                       tokens. Each CTA writes un-normalized (O, m, l).
//                       Every packed CTA first rotates its query heads
//                       itself: q̂ = [R_g·q_g] per K group, scaled by
//                       scale·log2(e)/√d_g, fp16, each group padded to whole
//                       16-dim MMA slices (padding zero).
//   MergeKernel         exact log-sum-exp merge of the splits per (sequence,
//                       KV head), then V's rotation undone once on the merged
//                       rotated part (x = Rᵀ·y / √d), plus the fp16 part.
//                       Launched to overlap the attention kernel's tail
//                       (programmatic dependent launch): it loads V's
//                       rotation before it waits for the partial results.
//
// MMA operand mapping. S: A = K tile [16 tokens x 16 dims], B = q̂ᵀ [16 dims x
// 8 heads]. O: A = V̂ᵀ [16 dims x 16 tokens], B = Pᵀ [16 tokens x 8 heads]. In
// both, the k index pairs a thread owns (2t, 2t+1, 2t+8, 2t+9) are mapped to
// the four consecutive dims (or tokens) 4t..4t+3, so each thread reads one
// contiguous run of 4 codes ("quad") per row, with the same map on the B side.
// For O, k-step kk of a warp's T tiles maps thread t's k pairs to its tokens
// 4Tt + 4kk .. +3, so a thread reads one contiguous run of 4T codes per V row
// and of P per step.
#ifndef KVPLAN_KERNELS_DECODE_ATTENTION_CUH_
#define KVPLAN_KERNELS_DECODE_ATTENTION_CUH_

#include <cuda_fp16.h>

#include <cstdint>

#include "kvplan/kernels/device_utils.cuh"
#include "kvplan/kernels/params.h"

namespace kvplan::kernels {

namespace internal {

inline constexpr int kAttentionWarps = 4;
inline constexpr int kAttentionThreads = 32 * kAttentionWarps;
// Every warp decodes kTilesPerWarp 16-token MMA tiles of one page per step
// (the per-slice setup, the softmax reductions and the O rescale are paid once
// per step, not once per tile); a stage holds the pages of one step.
inline constexpr int kTilesPerPage = KVPLAN_TILES_PER_WARP;  // tiles per warp and step
inline constexpr int kWarpTokens = 16 * kTilesPerPage;
inline constexpr int kWarpsPerPage = kKernelPageTokens / kWarpTokens;
inline constexpr int kAttentionStages = 2;
inline constexpr int kPagesPerStage = kAttentionWarps / kWarpsPerPage;
static_assert(kTilesPerPage == 2 || kTilesPerPage == 4, "2 or 4 tiles per warp");
// Row stride (halves) of the per-warp Pᵀ buffer [head][kWarpTokens]: +8
// spreads the eight heads' rows over distinct banks.
inline constexpr int kPStride = kWarpTokens + 8;
inline constexpr float kLog2e = 1.4426950408889634f;
// Threads of MergeKernel: kSumParts threads per output dimension, each summing
// an interleaved quarter of the terms, so that a thread has at most
// head_dim / kSumParts dependent loads instead of head_dim: at batch 1 the
// merge is a few dozen CTAs whose time is latency, not arithmetic.
inline constexpr int kSumParts = 4;
template <int HEAD_DIM>
__host__ __device__ constexpr int MergeThreads() {
  return kSumParts * HEAD_DIM;
}
// Resident MergeKernel CTAs per SM with one head per CTA (its launch bound).
inline constexpr int kOneHeadMergeCtasPerSm = 2;
// Offsets of each width's table inside CodeTables::pair_tables / single_tables.
__host__ __device__ constexpr int PairTableOffset(int bits) {
  return bits == 1 ? 0 : bits == 2 ? 4 : bits == 3 ? 20 : 84;
}
__host__ __device__ constexpr int SingleTableOffset(int bits) {
  return bits == 5 ? 0 : bits == 6 ? 32 : bits == 7 ? 96 : 224;
}

// Shared memory of the attention kernel, in bytes, before the page stages.
template <int HEAD_DIM>
struct AttentionSmem {
  static constexpr int kQRotStride = QRotStride(HEAD_DIM);
  // Shared rows are 32 bytes longer than the global ones: rows 512 bytes apart
  // put the 8 heads' B-fragment loads in the same banks (8-way conflicts).
  static constexpr int kQSmemStride = kQRotStride + 16;
  static constexpr int kQBytes = kMaxGroupSize * kQSmemStride * 2;
  // Pair tables replicated per bank so that random lookups never conflict:
  // widths 1..3 (84 entries) once per lane, width 4 (256 entries) 8 times.
  static constexpr int kPairBytes = (84 * 32 + 256 * 8) * 4;
  static constexpr int kSingleBytes = kSingleTableHalves * 2;
  static constexpr int kPBytes = kAttentionWarps * kMaxGroupSize * kPStride * 2;
  // Two int4 per 16-dim slice of the padded q̂ (KSliceScores).
  static constexpr int kMaxSlices = kQRotStride / 16;
  static constexpr int kSliceBytes = kMaxSlices * 32;
  // One mbarrier per page stage (bulk copies), padded to 16 bytes.
  static constexpr int kBarrierBytes = 16;
  static constexpr int kFixedBytes =
      kQBytes + kPairBytes + kSingleBytes + kPBytes + kSliceBytes + kBarrierBytes;
  // Cross-warp combine: (m, l) and O per warp and head.
  static constexpr int kCombineBytes =
      kAttentionWarps * kMaxGroupSize * (2 + HEAD_DIM) * static_cast<int>(sizeof(float));
  // fp16 part: q rows and scores.
  static constexpr int kFp16Bytes =
      (kMaxGroupSize * HEAD_DIM + kMaxGroupSize * kMaxFp16Tokens) * static_cast<int>(sizeof(float));
};

// Dynamic shared memory for a page of `page_bytes`: a page slot, and a stage
// of one slot per warp.
template <int HEAD_DIM>
__host__ __device__ constexpr int SlotBytes(int page_bytes) {
  return page_bytes + 16;  // ReadBits32 may read one word past a stream
}
template <int HEAD_DIM>
__host__ __device__ constexpr int StageBytes(int page_bytes) {
  return kPagesPerStage * SlotBytes<HEAD_DIM>(page_bytes);
}
template <int HEAD_DIM>
__host__ __device__ constexpr int AttentionSmemBytes(int page_bytes) {
  const int stages = kAttentionStages * StageBytes<HEAD_DIM>(page_bytes);
  int body = stages > AttentionSmem<HEAD_DIM>::kCombineBytes
                 ? stages
                 : AttentionSmem<HEAD_DIM>::kCombineBytes;
  body = body > AttentionSmem<HEAD_DIM>::kFp16Bytes ? body : AttentionSmem<HEAD_DIM>::kFp16Bytes;
  return AttentionSmem<HEAD_DIM>::kFixedBytes + body;
}

// Two fp16x2 A-fragment words from a quad of codes (4 codes at width BITS in
// the low bits of `quad`): (code0, code1) and (code2, code3), each as its unit
// centroid.
// Start of width BITS's replicated pair table in shared memory (words) and
// the replica this lane reads: entry e of replica r is word e·R + r. Each
// table starts at a multiple of its own size within the pair area (width 3:
// 8 KB at 0, width 4: 8 KB at 8 KB, width 2: 2 KB at 16 KB, width 1: 512 B at
// 18 KB), so a lookup's byte offset within the area is one LOP3:
// (scaled code pair & mask) | (table start + 4·replica), the bit fields never
// overlapping, and the area's start is a warp-uniform base.
__host__ __device__ constexpr int SmemPairOffset(int bits) {
  return bits == 3 ? 0 : bits == 4 ? 2048 : bits == 2 ? 4096 : 4608;
}
__host__ __device__ constexpr int PairReplicas(int bits) { return bits <= 3 ? 32 : 8; }
// Same for the single tables (halves; width 8: 512 B at 0, 7: 256 B at 512,
// 6: 128 B at 768, 5: 64 B at 896).
__host__ __device__ constexpr int SmemSingleOffset(int bits) {
  return bits == 8 ? 0 : bits == 7 ? 256 : bits == 6 ? 384 : 448;
}

template <int BITS>
__device__ __forceinline__ void DecodeQuad(uint32_t quad, const uint32_t* pair_table,
                                           const uint16_t* single_table, uint32_t& lo,
                                           uint32_t& hi) {
  if constexpr (BITS <= 4) {
    // pair_table points at this lane's replica already.
    constexpr uint32_t kMask = (1u << (2 * BITS)) - 1u;
    constexpr int kShift = PairReplicas(BITS) == 32 ? 5 : 3;
    lo = pair_table[(quad & kMask) << kShift];
    hi = pair_table[((quad >> (2 * BITS)) & kMask) << kShift];
  } else {
    constexpr uint32_t kMask = (1u << BITS) - 1u;
    lo = PackHalves(single_table[quad & kMask], single_table[(quad >> BITS) & kMask]);
    hi = PackHalves(single_table[(quad >> (2 * BITS)) & kMask],
                    single_table[(quad >> (3 * BITS)) & kMask]);
  }
}

// One 16-dim slice of the K side, built once per CTA from the head's
// descriptor, so that the tile loop reads no descriptor, has no switch and
// derives nothing per slice that does not depend on the thread:
//   geo.x  stream bit of (slot 0, the slice's first coordinate): block_offset·8 + 16·j·bits
//          (j = the slice's index within its group)
//   geo.y  bits per slot of the group's stream (d_g · bits)
//   geo.z  bits of one quad (4 · bits)
//   geo.w  on the group's last slice: the group's first norm (group · kPageTokens);
//          -1 on every other slice
//   dec.x  width; dec.y code mask of a lookup (pair tables: 2·bits, single: bits)
//   dec.z  log2 of the pair-table replicas (5 or 3; 0 for single tables)
//   dec.w  table start in shared memory: pair table (words from the pair area,
//          widths 1..4, SmemPairOffset) or single table (halves from the single
//          area, widths 5..8, SmemSingleOffset)
//
// acc[tt] (MMA C layout: tokens 16·tt + g, 16·tt + g + 8 x heads 2t, 2t+1)
// += K̂·q̂ᵀ over one slice, for the four 16-token tiles of a page. The slice's
// setup (fields, table pointer, q̂ fragment) is shared by the four tiles, and
// the four MMA chains are independent. The group norm n' is applied in fp32
// when the group's last slice is done (GroupFold). Widths are runtime but
// warp-uniform.
__device__ __forceinline__ void KSliceScores(float (&acc)[kTilesPerPage][4], const int4 geo,
                                             const int4 dec, const uint32_t* page_words,
                                             const uint16_t* q_row, int g, int t, int lane,
                                             const uint32_t* pair_s, const uint16_t* single_s) {
  const int base = geo.x + g * geo.y + t * geo.z;
  const int row8 = 8 * geo.y;
  const int row16 = 16 * geo.y;
  const uint2 qb = *reinterpret_cast<const uint2*>(q_row);
  const uint32_t b[2] = {qb.x, qb.y};
  const int bits = dec.x;
  const uint32_t mask = static_cast<uint32_t>(dec.y);
  if (dec.z != 0) {
    // Replicated pair tables (SmemPairOffset): 32 replicas for widths 1..3, 8
    // for 4. The quads are read `pre` bits early, so each code pair arrives
    // already scaled to its byte offset in the replicated table (code·R·4):
    // one LOP3 (+ one SHF for the second pair) and one add per lookup. The
    // `pre` stream bits below the quad (possibly the word before the slot)
    // land under the mask.
    const int rs = dec.z;
    const int pre = rs + 2;
    const uint32_t m = mask << pre;
    const uint32_t sh = static_cast<uint32_t>(2 * bits);
    // Byte offset of this lane's replica within the pair area; disjoint from m.
    const uint32_t c = static_cast<uint32_t>(4 * (dec.w + (lane & ((1 << rs) - 1))));
    const char* pt = reinterpret_cast<const char*>(pair_s);
#pragma unroll
    for (int tt = 0; tt < kTilesPerPage; ++tt) {
      const int bit0 = base - pre + tt * row16;
      const uint32_t x0 = ReadBits32Signed(page_words, bit0);
      const uint32_t x1 = ReadBits32Signed(page_words, bit0 + row8);
      uint32_t a[4];
      a[0] = *reinterpret_cast<const uint32_t*>(pt + ((x0 & m) | c));
      a[2] = *reinterpret_cast<const uint32_t*>(pt + (((x0 >> sh) & m) | c));
      a[1] = *reinterpret_cast<const uint32_t*>(pt + ((x1 & m) | c));
      a[3] = *reinterpret_cast<const uint32_t*>(pt + (((x1 >> sh) & m) | c));
      MmaF16x16x8(acc[tt], a, b);
    }
  } else {
    // Single tables (widths 5..8): byte offsets 2·code | table start, one SHF + LOP3 each.
    const char* st = reinterpret_cast<const char*>(single_s);
    const uint32_t m = mask << 1;
    const uint32_t c = static_cast<uint32_t>(2 * dec.w);
    const uint32_t s1 = static_cast<uint32_t>(bits - 1), s2 = static_cast<uint32_t>(2 * bits - 1),
                   s3 = static_cast<uint32_t>(3 * bits - 1);
    auto at = [&](uint32_t off) -> uint16_t {
      return *reinterpret_cast<const uint16_t*>(st + off);
    };
#pragma unroll
    for (int tt = 0; tt < kTilesPerPage; ++tt) {
      const int bit0 = base + tt * row16;
      const uint32_t x0 = ReadBits32Signed(page_words, bit0);
      const uint32_t x1 = ReadBits32Signed(page_words, bit0 + row8);
      uint32_t a[4];
      a[0] = PackHalves(at(((x0 << 1) & m) | c), at(((x0 >> s1) & m) | c));
      a[2] = PackHalves(at(((x0 >> s2) & m) | c), at(((x0 >> s3) & m) | c));
      a[1] = PackHalves(at(((x1 << 1) & m) | c), at(((x1 >> s1) & m) | c));
      a[3] = PackHalves(at(((x1 >> s2) & m) | c), at(((x1 >> s3) & m) | c));
      MmaF16x16x8(acc[tt], a, b);
    }
  }
}

// s += n'·acc for one K group (norm row `norm_row` of the page), acc = 0.
__device__ __forceinline__ void GroupFold(float (&s)[kTilesPerPage][4],
                                          float (&acc)[kTilesPerPage][4], const uint16_t* k_norms,
                                          int norm_row, int g) {
#pragma unroll
  for (int tt = 0; tt < kTilesPerPage; ++tt) {
    const float n0 = HalfBitsToFloat(k_norms[norm_row + 16 * tt + g]);
    const float n1 = HalfBitsToFloat(k_norms[norm_row + 16 * tt + g + 8]);
    s[tt][0] = fmaf(n0, acc[tt][0], s[tt][0]);
    s[tt][1] = fmaf(n0, acc[tt][1], s[tt][1]);
    s[tt][2] = fmaf(n1, acc[tt][2], s[tt][2]);
    s[tt][3] = fmaf(n1, acc[tt][3], s[tt][3]);
    acc[tt][0] = acc[tt][1] = acc[tt][2] = acc[tt][3] = 0.0f;
  }
}

// 4·kTilesPerPage consecutive V codes of one dim-major row (starting at
// stream bit `bit`), as the quads of the step's k-steps.
template <int V_BITS>
__device__ __forceinline__ void ReadVRun(const uint32_t* v_words, uint32_t bit,
                                         uint32_t (&quad)[kTilesPerPage]) {
  if constexpr (kTilesPerPage == 2) {
    if constexpr (V_BITS == 8) {
      const uint2 w = *reinterpret_cast<const uint2*>(v_words + (bit >> 5));
      quad[0] = w.x;
      quad[1] = w.y;
    } else if constexpr (V_BITS == 4) {
      const uint32_t w = v_words[bit >> 5];
      quad[0] = w;
      quad[1] = w >> 16;
    } else {
      const uint32_t w = ReadBits32(v_words, bit);
      quad[0] = w;
      quad[1] = w >> (4 * V_BITS);
    }
  } else if constexpr (V_BITS == 2) {
    const uint32_t w = v_words[bit >> 5];
    quad[0] = w;
    quad[1] = w >> 8;
    quad[2] = w >> 16;
    quad[3] = w >> 24;
  } else if constexpr (V_BITS == 4) {
    const uint2 w = *reinterpret_cast<const uint2*>(v_words + (bit >> 5));
    quad[0] = w.x;
    quad[1] = w.x >> 16;
    quad[2] = w.y;
    quad[3] = w.y >> 16;
  } else if constexpr (V_BITS == 8) {
    const uint4 w = *reinterpret_cast<const uint4*>(v_words + (bit >> 5));
    quad[0] = w.x;
    quad[1] = w.y;
    quad[2] = w.z;
    quad[3] = w.w;
  } else {
    static_assert(V_BITS == 3, "v_bits outside the dispatch set");
    // 48 bits starting at bit 0 or 16 of a word.
    const uint32_t* w = v_words + (bit >> 5);
    const uint32_t sh = bit & 31u;
    const uint32_t w0 = w[0], w1 = w[1], w2 = w[2];
    const uint32_t lo = __funnelshift_r(w0, w1, sh);
    const uint32_t hi = __funnelshift_r(w1, w2, sh);
    quad[0] = lo;
    quad[1] = lo >> 12;
    quad[2] = __funnelshift_r(lo, hi, 24);
    quad[3] = hi >> 4;
  }
}

// The dim that row `row` (0..15) of V's m-tile `m_tile` carries in O = V̂ᵀ·Pᵀ.
// A thread reads rows g and g + 8 of every m-tile in two loads, the eight g of
// one load together. At V3 a dim's row of 64 codes is 6 words, so consecutive
// dims start 6 banks apart and the eight lanes' 3-word runs overlap in two
// places (two wavefronts per load: ~8% of the step's shared-memory
// wavefronts, NOTES.md run 18); dims 2 apart start 12 banks apart, so at V3
// row g holds dim 2g and row g + 8 dim 2g + 1, conflict-free. Other widths
// keep the identity (V2 rows are 4 words: consecutive dims do not overlap).
template <int V_BITS>
__host__ __device__ constexpr int VRowDim(int m_tile, int row) {
  return 16 * m_tile + (V_BITS == 3 ? 2 * (row & 7) + (row >> 3) : row);
}
// Each m-tile's 16 rows carry its 16 dims once each (the combine relies on it).
template <int V_BITS>
constexpr bool VRowDimIsAPermutation() {
  unsigned seen = 0;
  for (int row = 0; row < 16; ++row) seen |= 1u << (VRowDim<V_BITS>(1, row) - 16);
  return seen == 0xffffu;
}
static_assert(VRowDimIsAPermutation<2>() && VRowDimIsAPermutation<3>() &&
                  VRowDimIsAPermutation<4>() && VRowDimIsAPermutation<8>(),
              "V rows to dims");

// O += V̂ᵀ·Pᵀ over the warp's tokens for pair-table widths (V_BITS <= 4).
// Each thread reads one run of 4·kTilesPerPage codes per V row (rows g and
// g + 8 of every 16-dim m-tile). All runs of a step share one word offset
// modulo the m-tile (rows 8 apart are 16·V_BITS words apart) and one bit
// shift, so a run is 1-3 LDS with immediate offsets and 1-2 SHF. Unaligned
// runs are read kPre = rs + 2 bits early, aligned ones shifted left, so that
// every code pair lands at its byte offset in the replicated table (pair ·
// 4R): a lookup is (SHF +) one LOP3 that also ORs in this lane's replica,
// off the warp-uniform pair-area base. The bits read early (possibly from the
// word before the V block: the K norms of the same page) land under the mask.
template <int V_BITS, int M_TILES>
__device__ __forceinline__ void VPairTiles(float (&o)[M_TILES][4],
                                           const uint32_t (&bfrag)[kTilesPerPage][2],
                                           const uint32_t* v_block, int tok_base, int g, int t,
                                           int lane, const uint32_t* pair_s) {
  constexpr int kRs = PairReplicas(V_BITS) == 32 ? 5 : 3;
  constexpr int kP = kRs + 2;  // bit position of a code pair's byte offset
  constexpr int kRunBits = 4 * kTilesPerPage * V_BITS;
  // Runs of a whole number of words start word-aligned (4·T·V·t, 64·V·g and
  // tok_base·V are multiples of 32 then).
  constexpr bool kAligned = kRunBits % 32 == 0;
  constexpr int kPre = kAligned ? 0 : kP;
  constexpr bool kWide = kPre + kRunBits > 32;
  constexpr uint32_t kM = ((1u << (2 * V_BITS)) - 1u) << kP;
  constexpr int kDimWords = kKernelPageTokens * V_BITS / 32;  // one dim's row
  // Rows g + 8 and the next m-tile, relative to row g (the same for every g).
  constexpr int kHalfDims = VRowDim<V_BITS>(0, 8) - VRowDim<V_BITS>(0, 0);
  const uint32_t c =
      static_cast<uint32_t>(4 * (SmemPairOffset(V_BITS) + (lane & (PairReplicas(V_BITS) - 1))));
  const char* pt = reinterpret_cast<const char*>(pair_s);
  const int run0 =
      (VRowDim<V_BITS>(0, g) * kKernelPageTokens + tok_base + 4 * kTilesPerPage * t) * V_BITS -
      kPre;
  const uint32_t* vw = v_block + (run0 >> 5);
  auto field = [&](uint32_t lo, uint32_t hi, int k) -> uint32_t {
    const int d = kPre + 2 * V_BITS * k - kP;  // compile-time after unrolling
    if (d < 0) return lo << (-d);
    if (d == 0) return lo;
    if (d < 32) return kWide ? __funnelshift_r(lo, hi, d) : lo >> d;
    return hi >> (d - 32);
  };
  auto lookup = [&](uint32_t y) -> uint32_t {
    return *reinterpret_cast<const uint32_t*>(pt + ((y & kM) | c));
  };
#pragma unroll
  for (int m_tile = 0; m_tile < M_TILES; ++m_tile) {
    uint32_t lo[2], hi[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const uint32_t* w = vw + (VRowDim<V_BITS>(m_tile, 0) + kHalfDims * h) * kDimWords;
      if constexpr (kAligned) {
        if constexpr (kWide) {
          const uint2 ww = *reinterpret_cast<const uint2*>(w);
          lo[h] = ww.x;
          hi[h] = ww.y;
        } else {
          lo[h] = w[0];
          hi[h] = 0;
        }
      } else {
        uint32_t r;
        asm("shf.r.wrap.b32 %0, %1, %2, %3;" : "=r"(r) : "r"(w[0]), "r"(w[1]), "r"(run0));
        lo[h] = r;
        if constexpr (kWide) {
          asm("shf.r.wrap.b32 %0, %1, %2, %3;" : "=r"(r) : "r"(w[1]), "r"(w[2]), "r"(run0));
          hi[h] = r;
        } else {
          hi[h] = 0;
        }
      }
    }
#pragma unroll
    for (int kk = 0; kk < kTilesPerPage; ++kk) {
      uint32_t a[4];
      a[0] = lookup(field(lo[0], hi[0], 2 * kk));
      a[2] = lookup(field(lo[0], hi[0], 2 * kk + 1));
      a[1] = lookup(field(lo[1], hi[1], 2 * kk));
      a[3] = lookup(field(lo[1], hi[1], 2 * kk + 1));
      MmaF16x16x8(o[m_tile], a, bfrag[kk]);
    }
  }
}

// fp16 sink + recent part of one (sequence, KV head): plain q·k in fp32.
template <int HEAD_DIM, int GROUP_SIZE>
__device__ void Fp16Part(const PackedDecodeParams& p, int kv_head, int batch, float* smem,
                         float* o_out, float* ml_out) {
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int num_sink = p.sink_k != nullptr ? p.sink_len[batch] : 0;
  const int num_recent = p.recent_k != nullptr ? p.recent_len[batch] : 0;
  const int n = num_sink + num_recent;
  float* q_s = smem;                               // [GROUP_SIZE][HEAD_DIM]
  float* score = smem + kMaxGroupSize * HEAD_DIM;  // [GROUP_SIZE][kMaxFp16Tokens]
  const int q_heads = p.num_kv_heads * GROUP_SIZE;
  for (int i = tid; i < GROUP_SIZE * HEAD_DIM; i += blockDim.x) {
    q_s[i] = p.q[(static_cast<int64_t>(batch) * q_heads + kv_head * GROUP_SIZE) * HEAD_DIM + i];
  }
  __syncthreads();
  auto row = [&](bool is_k, int f) -> const uint16_t* {
    const bool sink = f < num_sink;
    const uint16_t* base = sink ? (is_k ? p.sink_k : p.sink_v) : (is_k ? p.recent_k : p.recent_v);
    const int cap = sink ? p.max_sink : p.max_recent;
    const int r = sink ? f : f - num_sink;
    return base + ((static_cast<int64_t>(batch) * p.num_kv_heads + kv_head) * cap + r) * HEAD_DIM;
  };
  const float score_scale = p.scale * kLog2e;
  const int warps = static_cast<int>(blockDim.x) / 32;
  for (int f = warp; f < n; f += warps) {
    const uint16_t* k = row(true, f);
    float dot[GROUP_SIZE] = {};
    for (int d = lane; d < HEAD_DIM; d += 32) {
      const float kv = HalfBitsToFloat(k[d]);
#pragma unroll
      for (int h = 0; h < GROUP_SIZE; ++h) dot[h] += q_s[h * HEAD_DIM + d] * kv;
    }
#pragma unroll
    for (int h = 0; h < GROUP_SIZE; ++h) {
      const float s = WarpSum(dot[h]);
      if (lane == 0) score[h * kMaxFp16Tokens + f] = s * score_scale;
    }
  }
  __syncthreads();
  // Softmax statistics per head, one warp per head.
  __shared__ float m_s[kMaxGroupSize], l_s[kMaxGroupSize];
  for (int h = warp; h < GROUP_SIZE; h += warps) {
    float m = -INFINITY;
    for (int f = lane; f < n; f += 32) m = fmaxf(m, score[h * kMaxFp16Tokens + f]);
    m = WarpMax(m);
    float l = 0.0f;
    for (int f = lane; f < n; f += 32) {
      const float e = exp2f(score[h * kMaxFp16Tokens + f] - m);
      score[h * kMaxFp16Tokens + f] = e;
      l += e;
    }
    l = WarpSum(l);
    if (lane == 0) {
      m_s[h] = m;
      l_s[h] = l;
    }
  }
  __syncthreads();
  for (int i = tid; i < GROUP_SIZE * HEAD_DIM; i += blockDim.x) {
    const int h = i / HEAD_DIM, d = i % HEAD_DIM;
    float acc = 0.0f;
    for (int f = 0; f < n; ++f)
      acc += score[h * kMaxFp16Tokens + f] * HalfBitsToFloat(row(false, f)[d]);
    o_out[i] = acc;
  }
  if (tid < GROUP_SIZE) {
    ml_out[2 * tid] = n > 0 ? m_s[tid] : -INFINITY;
    ml_out[2 * tid + 1] = n > 0 ? l_s[tid] : 0.0f;
  }
}

// q̂ rows of the query heads of (sequence b, kv_head) into q_hat (rows of
// ROW_STRIDE halves, kMaxGroupSize of them, shared or global memory): row h,
// position o_g + i = fp16((R_g·q_g)_i · scale·log2(e)/√d_g), zero elsewhere,
// where o_g is padded_offset[g] (PADDED: groups padded to whole 16-dim slices,
// this kernel's q̂) or offset[g] (the permuted order itself, the fragment
// kernels' q̂: fragment_params.h). In this kernel every CTA of a KV head
// repeats this small product (at most GROUP_SIZE·Σ d_g² multiply-adds on
// L2-resident rotations): cheaper than a kernel of its own, whose launch and
// dependent HBM round trips cost about as much as a whole batch-1 decode step.
// q_perm: GROUP_SIZE·HEAD_DIM floats of shared scratch. THREADS threads;
// ends with a barrier. The decode loop calls it through RotateQueryCall, not
// inlined: its registers then do not count against the loop's.
template <int HEAD_DIM, int GROUP_SIZE, int ROW_STRIDE, bool PADDED,
          int THREADS = kAttentionThreads>
__device__ __forceinline__ void RotateQuery(const PackedDecodeParams& p, const PackedHeadDesc& desc,
                                            int kv_head, int b, int tid, uint16_t* q_hat,
                                            float* q_perm) {
  static_assert(ROW_STRIDE % 8 == 0, "rows of whole 16-byte chunks");
  const int q_heads = p.num_kv_heads * GROUP_SIZE;
  const float* q = p.q + (static_cast<int64_t>(b) * q_heads + kv_head * GROUP_SIZE) * HEAD_DIM;
  for (int e = tid; e < GROUP_SIZE * HEAD_DIM; e += THREADS) {
    q_perm[e] = q[(e / HEAD_DIM) * HEAD_DIM + desc.permutation[e % HEAD_DIM]];
  }
  for (int c = tid; c < kMaxGroupSize * ROW_STRIDE / 8; c += THREADS) {
    reinterpret_cast<uint4*>(q_hat)[c] = make_uint4(0, 0, 0, 0);
  }
  __syncthreads();
  // Thread (pair, part): positions 2·pair and 2·pair + 1 (one group: sizes and
  // offsets are even), terms j ≡ part (mod kParts), float2 loads of Rᵀ; the
  // parts are adjacent lanes, added by shuffles. So a thread waits for about
  // d / (2·kParts·unroll) rounds of L2 latency, not d / unroll.
  constexpr int kParts = THREADS / (HEAD_DIM / 2);
  static_assert(kParts >= 2 && kParts <= 16 && (kParts & (kParts - 1)) == 0,
                "THREADS / (HEAD_DIM / 2) parts per position pair: 2, 4, 8 or 16");
  const int pair = tid / kParts, part = tid % kParts, pos = 2 * pair;
  const int num_groups = desc.num_groups;
  int grp = 0;
#pragma unroll
  for (int h = 1; h < kMaxKGroups; ++h) grp = h < num_groups && desc.offset[h] <= pos ? h : grp;
  const int d = desc.size[grp], first = desc.offset[grp], i = pos - first;
  const float* rt = p.rotations + desc.k_rotation_t[grp];
  float acc[2][GROUP_SIZE] = {};
#pragma unroll 16
  for (int j = part; j < d; j += kParts) {
    const float2 r = *reinterpret_cast<const float2*>(rt + static_cast<int64_t>(j) * d + i);
#pragma unroll
    for (int h = 0; h < GROUP_SIZE; ++h) {
      const float x = q_perm[h * HEAD_DIM + first + j];
      acc[0][h] += r.x * x;
      acc[1][h] += r.y * x;
    }
  }
  const float scale = p.scale * kLog2e * rsqrtf(static_cast<float>(d));
  const int out = (PADDED ? desc.padded_offset[grp] : desc.offset[grp]) + i;
#pragma unroll
  for (int h = 0; h < GROUP_SIZE; ++h) {
    float v0 = acc[0][h], v1 = acc[1][h];
#pragma unroll
    for (int o = 1; o < kParts; o <<= 1) {
      v0 += __shfl_xor_sync(0xffffffffu, v0, o);
      v1 += __shfl_xor_sync(0xffffffffu, v1, o);
    }
    if (part == 0) {
      *reinterpret_cast<uint32_t*>(q_hat + h * ROW_STRIDE + out) =
          PackHalf2(v0 * scale, v1 * scale);
    }
  }
  __syncthreads();
}
template <int HEAD_DIM, int GROUP_SIZE, int ROW_STRIDE, bool PADDED>
__device__ __noinline__ void RotateQueryCall(const PackedDecodeParams& p,
                                             const PackedHeadDesc& desc, int kv_head, int b,
                                             int tid, uint16_t* q_hat, float* q_perm) {
  RotateQuery<HEAD_DIM, GROUP_SIZE, ROW_STRIDE, PADDED>(p, desc, kv_head, b, tid, q_hat, q_perm);
}

}  // namespace internal

template <int HEAD_DIM, int GROUP_SIZE, int V_BITS>
__global__ void __launch_bounds__(internal::kAttentionThreads, 8 / internal::kTilesPerPage)
    PackedAttentionKernel(const __grid_constant__ PackedDecodeParams p) {
  using namespace internal;
  using Smem = AttentionSmem<HEAD_DIM>;
  constexpr int kQSmem = Smem::kQSmemStride;
  constexpr int kMTiles = HEAD_DIM / 16;
  extern __shared__ __align__(16) uint8_t smem[];
  uint16_t* q_s = reinterpret_cast<uint16_t*>(smem);
  uint32_t* pair_s = reinterpret_cast<uint32_t*>(smem + Smem::kQBytes);
  uint16_t* single_s = reinterpret_cast<uint16_t*>(smem + Smem::kQBytes + Smem::kPairBytes);
  uint16_t* p_s =
      reinterpret_cast<uint16_t*>(smem + Smem::kQBytes + Smem::kPairBytes + Smem::kSingleBytes);
  int4* slice_s = reinterpret_cast<int4*>(smem + Smem::kQBytes + Smem::kPairBytes +
                                          Smem::kSingleBytes + Smem::kPBytes);
  uint64_t* stage_bar = reinterpret_cast<uint64_t*>(smem + Smem::kFixedBytes - Smem::kBarrierBytes);
  uint8_t* body = smem + Smem::kFixedBytes;

  const int split = blockIdx.x, kv_head = blockIdx.y, b = blockIdx.z;
  const int tid = OpaqueThreadIndex(), lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int slots = p.num_splits + 1;
  const int64_t part =
      ((static_cast<int64_t>(b) * p.num_kv_heads + kv_head) * slots + split) * GROUP_SIZE;
  float* o_out = p.partial_o + part * HEAD_DIM;
  float* ml_out = p.partial_ml + part * 2;

  AllowDependentLaunch();  // the merge kernel may start prefetching its rotation
  if (split == p.num_splits) {
    Fp16Part<HEAD_DIM, GROUP_SIZE>(p, kv_head, b, reinterpret_cast<float*>(body), o_out, ml_out);
    return;
  }

  // The descriptor is read once, here: scalars into registers, the K groups
  // into the per-slice table below.
  const PackedHeadDesc& desc = p.heads[kv_head];
  const int num_slices = desc.padded_dims / 16;
  const int k_norm_offset = desc.k_norm_offset;
  const int v_block_offset = desc.v_block_offset;
  const int v_norm_offset = desc.v_norm_offset;
  const int len = p.packed_len[b];
  const int num_pages = (len + kKernelPageTokens - 1) / kKernelPageTokens;
  const int per_split = (num_pages + p.num_splits - 1) / p.num_splits;
  const int page_begin = split * per_split;
  const int page_end = min(num_pages, page_begin + per_split);
  const int my_pages = max(0, page_end - page_begin);
  const int page_bytes = desc.page_bytes;

  const int slot_bytes = SlotBytes<HEAD_DIM>(page_bytes);
  const int stage_bytes = StageBytes<HEAD_DIM>(page_bytes);
  const int num_steps = (my_pages + kPagesPerStage - 1) / kPagesPerStage;
  const int* table = p.page_table + static_cast<int64_t>(b) * p.max_pages_per_seq;

  // Stage `step` holds pages step·kPagesPerStage .. of this split, moved by
  // thread 0 as one bulk copy per page that completes on the stage's mbarrier
  // (phase parity: the stage's use count mod 2). The page ids are read one
  // stage ahead (read_ids(step + 1) right after stage `step` was issued), so
  // the global load's latency never sits in front of the copies.
  int ids[kPagesPerStage];
  auto read_ids = [&](int step) {
#pragma unroll
    for (int w = 0; w < kPagesPerStage; ++w) {
      const int i = step * kPagesPerStage + w;
      ids[w] = i < my_pages ? table[page_begin + i] : -1;
    }
  };
  auto load_stage = [&](int step) {  // thread 0 only
    uint8_t* dst = body + (step % kAttentionStages) * stage_bytes;
    uint64_t* bar = stage_bar + step % kAttentionStages;
    const int pages = min(kPagesPerStage, my_pages - step * kPagesPerStage);
    FenceProxyAsyncShared();  // the warps' reads of this stage's last use come first
    MbarrierArriveExpectTx(bar, static_cast<uint32_t>(pages * page_bytes));
#pragma unroll
    for (int w = 0; w < kPagesPerStage; ++w) {
      if (w >= pages) break;
      const uint8_t* src =
          p.pages + (static_cast<int64_t>(ids[w]) * p.num_kv_heads + kv_head) * p.page_stride;
      BulkCopyToShared(dst + w * slot_bytes, src, static_cast<uint32_t>(page_bytes), bar);
    }
  };
  // Start the first stage's copies before anything else.
  if (tid == 0) {
    MbarrierInit(stage_bar, 1);
    MbarrierInit(stage_bar + 1, 1);
    FenceMbarrierInit();
    read_ids(0);
    if (num_steps > 0) load_stage(0);
    read_ids(1);
  }

  // The code tables (16-byte chunks: a few dozen loads and stores per thread,
  // not a few hundred; at batch 1 a CTA runs only a handful of steps), the
  // slice table, and q̂ rows (zero beyond the groups).
  for (int bits = 1; bits <= 4; ++bits) {
    // Replicas of an entry are consecutive words, a multiple of 4 of them.
    const int entries = 1 << (2 * bits), chunks_per_entry = PairReplicas(bits) / 4;
    uint4* dst = reinterpret_cast<uint4*>(pair_s + SmemPairOffset(bits));
    for (int c = tid; c < entries * chunks_per_entry; c += kAttentionThreads) {
      const uint32_t w = p.tables->pair_tables[PairTableOffset(bits) + c / chunks_per_entry];
      dst[c] = make_uint4(w, w, w, w);
    }
  }
  for (int bits = 5; bits <= 8; ++bits) {
    for (int i = tid; i < (1 << bits); i += kAttentionThreads) {
      single_s[SmemSingleOffset(bits) + i] = p.tables->single_tables[SingleTableOffset(bits) + i];
    }
  }
  if (tid < desc.num_groups) {
    const int bits = desc.bits[tid], d_g = desc.size[tid];
    const int first = desc.padded_offset[tid] / 16, count = (d_g + 15) / 16;
    const bool pair = bits <= 4;
    const int4 dec =
        make_int4(bits, (1 << (pair ? 2 * bits : bits)) - 1, pair ? (bits <= 3 ? 5 : 3) : 0,
                  pair ? SmemPairOffset(bits) : SmemSingleOffset(bits));
    for (int j = 0; j < count; ++j) {
      slice_s[2 * (first + j)] = make_int4(desc.block_offset[tid] * 8 + 16 * j * bits, d_g * bits,
                                           4 * bits, j == count - 1 ? tid * kKernelPageTokens : -1);
      slice_s[2 * (first + j) + 1] = dec;
    }
  }
  // Stage 1 is not written before step 0 and holds at least two pages
  // (>= 48·HEAD_DIM bytes at 1-bit K and 2-bit V): room for the fp32 q rows.
  static_assert(kPagesPerStage * 24 * HEAD_DIM >= kMaxGroupSize * HEAD_DIM * 4, "q scratch");
  RotateQueryCall<HEAD_DIM, GROUP_SIZE, kQSmem, true>(p, desc, kv_head, b, tid, q_s,
                                                      reinterpret_cast<float*>(body + stage_bytes));

  float o[kMTiles][4];
#pragma unroll
  for (int m = 0; m < kMTiles; ++m) o[m][0] = o[m][1] = o[m][2] = o[m][3] = 0.0f;
  float row_max[2] = {-INFINITY, -INFINITY};  // heads 2t, 2t+1
  float row_sum[2] = {0.0f, 0.0f};            // this thread's tokens only
  uint16_t* p_warp = p_s + warp * kMaxGroupSize * kPStride;

  for (int step = 0; step < num_steps; ++step) {
    // Every warp is done with the other stage (and, at step 0, the tables, q̂
    // and the stage barriers are ready): refill it before waiting for this one,
    // so that two stages of copies can be in flight.
    __syncthreads();
    if (tid == 0 && step + 1 < num_steps) {
      load_stage(step + 1);
      read_ids(step + 2);
    }
    MbarrierWait(stage_bar + step % kAttentionStages, (step / kAttentionStages) & 1);

    const int slot = warp / kWarpsPerPage;
    const int i = step * kPagesPerStage + slot;
    if (i >= my_pages) continue;  // warp-uniform: this split's last stage is short
    // This warp's tokens: [tok_base, tok_base + kWarpTokens) of the page.
    const int tok_base = (warp % kWarpsPerPage) * kWarpTokens;
    const int valid = min(kKernelPageTokens, len - (page_begin + i) * kKernelPageTokens) - tok_base;
    if (valid <= 0) continue;  // warp-uniform
    const uint8_t* page = body + (step % kAttentionStages) * stage_bytes + slot * slot_bytes;
    const uint16_t* k_norms = reinterpret_cast<const uint16_t*>(page + k_norm_offset);
    const uint32_t* page_words = reinterpret_cast<const uint32_t*>(page);

    // S = Σ_groups n'·(K̂_g·q̂_gᵀ) for the page's four tiles.
    float s[kTilesPerPage][4], acc[kTilesPerPage][4];
#pragma unroll
    for (int tt = 0; tt < kTilesPerPage; ++tt) {
#pragma unroll
      for (int r = 0; r < 4; ++r) s[tt][r] = acc[tt][r] = 0.0f;
    }
    {
      const uint16_t* q_row = q_s + g * kQSmem + 4 * t;
#pragma unroll 1
      for (int sl = 0; sl < num_slices; ++sl) {
        const int4 geo = slice_s[2 * sl], dec = slice_s[2 * sl + 1];
        KSliceScores(acc, geo, dec, page_words, q_row + 16 * sl, tok_base + g, t, lane, pair_s,
                     single_s);
        if (geo.w >= 0) GroupFold(s, acc, k_norms, geo.w + tok_base, g);
      }
    }
    // Slots past the end hold arbitrary bytes: select, never multiply.
#pragma unroll
    for (int tt = 0; tt < kTilesPerPage; ++tt) {
      const bool valid0 = 16 * tt + g < valid, valid1 = 16 * tt + g + 8 < valid;
      s[tt][0] = valid0 ? s[tt][0] : -INFINITY;
      s[tt][1] = valid0 ? s[tt][1] : -INFINITY;
      s[tt][2] = valid1 ? s[tt][2] : -INFINITY;
      s[tt][3] = valid1 ? s[tt][3] : -INFINITY;
    }

    // Online softmax per head column over the page; lanes with equal t share heads.
    float rescale[2], base_max[2];
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      float m = fmaxf(s[0][j], s[0][j + 2]);
#pragma unroll
      for (int tt = 1; tt < kTilesPerPage; ++tt) m = fmaxf(m, fmaxf(s[tt][j], s[tt][j + 2]));
      m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 4));
      m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 8));
      m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 16));
      const float m_new = fmaxf(row_max[j], m);
      base_max[j] = m_new == -INFINITY ? 0.0f : m_new;
      rescale[j] = Exp2Ftz(row_max[j] - base_max[j]);
      row_max[j] = m_new;
      row_sum[j] *= rescale[j];
    }
    // Once the running maxima settle, most pages leave O alone.
    if (__any_sync(0xffffffffu, rescale[0] != 1.0f || rescale[1] != 1.0f)) {
#pragma unroll
      for (int m_tile = 0; m_tile < kMTiles; ++m_tile) {
        o[m_tile][0] *= rescale[0];
        o[m_tile][1] *= rescale[1];
        o[m_tile][2] *= rescale[0];
        o[m_tile][3] *= rescale[1];
      }
    }
    // Pᵀ with V's norms folded in, as fp16 [head][token] for the B fragments.
    const uint16_t* v_norms = reinterpret_cast<const uint16_t*>(page + v_norm_offset) + tok_base;
#pragma unroll
    for (int tt = 0; tt < kTilesPerPage; ++tt) {
      const int tok0 = 16 * tt + g, tok1 = tok0 + 8;
      const bool valid0 = tok0 < valid, valid1 = tok1 < valid;
      const float p0 = Exp2Ftz(s[tt][0] - base_max[0]), p1 = Exp2Ftz(s[tt][1] - base_max[1]);
      const float p2 = Exp2Ftz(s[tt][2] - base_max[0]), p3 = Exp2Ftz(s[tt][3] - base_max[1]);
      row_sum[0] += p0 + p2;
      row_sum[1] += p1 + p3;
      const float nv0 = valid0 ? HalfBitsToFloat(v_norms[tok0]) : 0.0f;
      const float nv1 = valid1 ? HalfBitsToFloat(v_norms[tok1]) : 0.0f;
      p_warp[(2 * t) * kPStride + tok0] =
          __half_as_ushort(__float2half_rn(valid0 ? p0 * nv0 : 0.0f));
      p_warp[(2 * t + 1) * kPStride + tok0] =
          __half_as_ushort(__float2half_rn(valid0 ? p1 * nv0 : 0.0f));
      p_warp[(2 * t) * kPStride + tok1] =
          __half_as_ushort(__float2half_rn(valid1 ? p2 * nv1 : 0.0f));
      p_warp[(2 * t + 1) * kPStride + tok1] =
          __half_as_ushort(__float2half_rn(valid1 ? p3 * nv1 : 0.0f));
    }
    __syncwarp();
    // k-step kk covers the warp's tokens 4Tt + 4kk .. 4Tt + 4kk + 3 of thread
    // t (T = kTilesPerPage): each thread reads one contiguous run of 4T tokens
    // of P and of each V row.
    uint32_t bfrag[kTilesPerPage][2];
#pragma unroll
    for (int h = 0; h < kTilesPerPage / 2; ++h) {
      const uint4 pp =
          *reinterpret_cast<const uint4*>(p_warp + g * kPStride + 4 * kTilesPerPage * t + 8 * h);
      bfrag[2 * h][0] = pp.x;
      bfrag[2 * h][1] = pp.y;
      bfrag[2 * h + 1][0] = pp.z;
      bfrag[2 * h + 1][1] = pp.w;
    }
    __syncwarp();

    // O += V̂ᵀ·Pᵀ, 16 dims x kWarpTokens tokens at a time.
    const uint32_t* v_block = reinterpret_cast<const uint32_t*>(page + v_block_offset);
    if constexpr (V_BITS <= 4) {
      VPairTiles<V_BITS, kMTiles>(o, bfrag, v_block, tok_base, g, t, lane, pair_s);
    } else {
      const uint16_t* v_singles = single_s + SmemSingleOffset(V_BITS);
#pragma unroll
      for (int m_tile = 0; m_tile < kMTiles; ++m_tile) {
        const uint32_t e0 = static_cast<uint32_t>((m_tile * 16 + g) * kKernelPageTokens + tok_base +
                                                  4 * kTilesPerPage * t);
        uint32_t quad0[kTilesPerPage], quad1[kTilesPerPage];
        ReadVRun<V_BITS>(v_block, e0 * V_BITS, quad0);
        ReadVRun<V_BITS>(v_block, (e0 + 8 * kKernelPageTokens) * V_BITS, quad1);
#pragma unroll
        for (int kk = 0; kk < kTilesPerPage; ++kk) {
          uint32_t a[4];
          DecodeQuad<V_BITS>(quad0[kk], nullptr, v_singles, a[0], a[2]);
          DecodeQuad<V_BITS>(quad1[kk], nullptr, v_singles, a[1], a[3]);
          MmaF16x16x8(o[m_tile], a, bfrag[kk]);
        }
      }
    }
  }
  __syncthreads();  // every warp is done with the stages (all copies were waited for): reuse them

  // Combine the four warps: row sums over the lanes sharing heads first.
  float* comb = reinterpret_cast<float*>(body);
  float* comb_ml = comb;                                       // [warp][head][2]
  float* comb_o = comb + kAttentionWarps * kMaxGroupSize * 2;  // [warp][head][HEAD_DIM]
#pragma unroll
  for (int j = 0; j < 2; ++j) {
    row_sum[j] += __shfl_xor_sync(0xffffffffu, row_sum[j], 4);
    row_sum[j] += __shfl_xor_sync(0xffffffffu, row_sum[j], 8);
    row_sum[j] += __shfl_xor_sync(0xffffffffu, row_sum[j], 16);
  }
  if (g == 0) {
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      comb_ml[(warp * kMaxGroupSize + 2 * t + j) * 2] = row_max[j];
      comb_ml[(warp * kMaxGroupSize + 2 * t + j) * 2 + 1] = row_sum[j];
    }
  }
#pragma unroll
  for (int m_tile = 0; m_tile < kMTiles; ++m_tile) {
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const int head = 2 * t + (r & 1);
      const int dim = VRowDim<V_BITS>(m_tile, g + (r >> 1) * 8);
      comb_o[(warp * kMaxGroupSize + head) * HEAD_DIM + dim] = o[m_tile][r];
    }
  }
  __syncthreads();
  for (int i = tid; i < GROUP_SIZE * HEAD_DIM; i += kAttentionThreads) {
    const int head = i / HEAD_DIM, dim = i % HEAD_DIM;
    float m = -INFINITY;
#pragma unroll
    for (int w = 0; w < kAttentionWarps; ++w) m = fmaxf(m, comb_ml[(w * kMaxGroupSize + head) * 2]);
    const float base = m == -INFINITY ? 0.0f : m;
    float acc = 0.0f, l = 0.0f;
#pragma unroll
    for (int w = 0; w < kAttentionWarps; ++w) {
      const float weight = exp2f(comb_ml[(w * kMaxGroupSize + head) * 2] - base);
      acc += weight * comb_o[(w * kMaxGroupSize + head) * HEAD_DIM + dim];
      l += weight * comb_ml[(w * kMaxGroupSize + head) * 2 + 1];
    }
    o_out[i] = acc;
    if (dim == 0) {
      ml_out[2 * head] = m;
      ml_out[2 * head + 1] = l;
    }
  }
}

// Merges the splits of HEADS query heads of one (sequence, KV head) and undoes
// V's rotation. Grid (num_kv_heads * GROUP_SIZE / HEADS, batch);
// MergeThreads<HEAD_DIM>() threads; dynamic shared memory
// MergeSmemFloats(HEAD_DIM, num_splits, HEADS) floats. Thread (part, dim) sums
// the splits s ≡ part (mod kSumParts) and then the rotation terms of its
// quarter of the rows, j / (HEAD_DIM / kSumParts) = part, of every head (the
// merged y_j are read from shared memory four at a time); the parts are added
// in a fixed order, the same for any HEADS, so every HEADS gives the same
// bits. HEADS > 1 loads V's rotation once for the CTA's heads instead of once
// per head: a batch-16 step's merge reads GROUP_SIZE times less of it
// (NOTES.md run 40).
__host__ __device__ constexpr int MergeSmemFloats(int head_dim, int num_splits, int heads) {
  return heads * (num_splits + 1 + (1 + internal::kSumParts) * head_dim);
}

template <int HEAD_DIM, int GROUP_SIZE, int HEADS>
__global__ void __launch_bounds__(internal::MergeThreads<HEAD_DIM>(),
                                  HEADS == 1 ? internal::kOneHeadMergeCtasPerSm : 1)
    MergeKernel(const __grid_constant__ PackedDecodeParams p) {
  using namespace internal;
  static_assert(GROUP_SIZE % HEADS == 0, "a CTA merges whole query heads of one KV head");
  static_assert(HEADS <= kMaxGroupSize, "at most 12 / HEADS >= 1 prefetched splits per head");
  static_assert(HEADS <= MergeThreads<HEAD_DIM>() / 32, "one warp weighs each head's slots");
  extern __shared__ __align__(16) float merge_smem[];    // rot, parts, weights
  const int first = blockIdx.x * HEADS, b = blockIdx.y;  // the CTA's first query head
  const int kv_head = first / GROUP_SIZE, h0 = first % GROUP_SIZE;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int dim = tid % HEAD_DIM, part = tid / HEAD_DIM;
  const int slots = p.num_splits + 1;
  float* rot = merge_smem;                                 // [HEADS][HEAD_DIM], 16-byte aligned
  float* partial = rot + HEADS * HEAD_DIM;                 // [HEADS][kSumParts][HEAD_DIM]
  float* weight = partial + HEADS * kSumParts * HEAD_DIM;  // [HEADS][slots]
  __shared__ float total[HEADS];
  // V's rotation is plan data: this thread's column entries are loaded while
  // the attention kernel still runs (programmatic dependent launch).
  const float* r = p.rotations + p.heads[kv_head].v_rotation;
  constexpr int kTerms = HEAD_DIM / kSumParts;
  float r_col[kTerms];
#pragma unroll
  for (int k = 0; k < kTerms; ++k) r_col[k] = r[(part * kTerms + k) * HEAD_DIM + dim];
  WaitForPrerequisiteGrids();
  const int64_t base_part = (static_cast<int64_t>(b) * p.num_kv_heads + kv_head) * slots;
  const float* ml = p.partial_ml + base_part * GROUP_SIZE * 2;
  const float* po = p.partial_o + base_part * GROUP_SIZE * HEAD_DIM;
  auto o_at = [&](int s, int h) {
    return po[(static_cast<int64_t>(s) * GROUP_SIZE + h0 + h) * HEAD_DIM + dim];
  };
  // The thread's first splits of O are loaded with the (m, l) pairs, not after
  // their weights: one L2 round trip fewer on the step's tail (NOTES.md run
  // 39, call 7). With one head per CTA, two CTAs per SM (the launch bound: 64
  // registers at head_dim 128) keep a batch-16 merge's 512 CTAs in two waves;
  // 16 prefetched splits took 83 registers, one CTA per SM, and lost 2%
  // there. So as many as fit 64 registers without spills (ptxas, sm_90a); a
  // grid of whole groups is GROUP_SIZE times smaller and has no such cap.
  constexpr int kPrefetchSplits = HEADS == 1 ? (GROUP_SIZE == 1 ? 6 : 12) : 12 / HEADS;
  float o_first[HEADS][kPrefetchSplits];
#pragma unroll
  for (int h = 0; h < HEADS; ++h) {
#pragma unroll
    for (int k = 0; k < kPrefetchSplits; ++k) {
      const int s = part + kSumParts * k;
      o_first[h][k] = s < p.num_splits ? o_at(s, h) : 0.0f;
    }
  }
  // Part `part` finishes heads part, part + kSumParts, ...: their fp16 part's
  // O (slot num_splits) is added after the rotation.
  constexpr int kOwnedHeads = (HEADS + kSumParts - 1) / kSumParts;
  float fp16_o[kOwnedHeads];
#pragma unroll
  for (int j = 0; j < kOwnedHeads; ++j) {
    const int h = part + kSumParts * j;
    fp16_o[j] = h < HEADS ? o_at(p.num_splits, h) : 0.0f;
  }
  if (warp < HEADS) {
    // Warp `head` weighs head h0 + head's slots (0 spelled out: else ptxas
    // keeps `warp` live and HEADS = 1 spills at head_dim 128).
    const int head = HEADS == 1 ? 0 : warp, h = h0 + head;
    float m = -INFINITY;
    for (int s = lane; s < slots; s += 32) m = fmaxf(m, ml[(s * GROUP_SIZE + h) * 2]);
    m = WarpMax(m);
    const float base = m == -INFINITY ? 0.0f : m;
    float l = 0.0f;
    for (int s = lane; s < slots; s += 32) {
      const float w = exp2f(ml[(s * GROUP_SIZE + h) * 2] - base);
      weight[head * slots + s] = w;
      l += w * ml[(s * GROUP_SIZE + h) * 2 + 1];
    }
    l = WarpSum(l);
    if (lane == 0) total[head] = l;
  }
  __syncthreads();
#pragma unroll
  for (int h = 0; h < HEADS; ++h) {
    const float* w = weight + h * slots;
    float acc = 0.0f;
#pragma unroll
    for (int k = 0; k < kPrefetchSplits; ++k) {
      const int s = part + kSumParts * k;
      if (s < p.num_splits) acc += w[s] * o_first[h][k];
    }
#pragma unroll 4
    for (int s = part + kSumParts * kPrefetchSplits; s < p.num_splits; s += kSumParts) {
      acc += w[s] * o_at(s, h);
    }
    partial[(h * kSumParts + part) * HEAD_DIM + dim] = acc;
  }
  __syncthreads();
  // The four parts' sums, added in a fixed order.
  auto parts_sum = [&](int h) {
    const float* q = partial + h * kSumParts * HEAD_DIM + dim;
    return (q[0] + q[HEAD_DIM]) + (q[2 * HEAD_DIM] + q[3 * HEAD_DIM]);
  };
  static_assert(kSumParts == 4, "parts_sum adds four parts");
#pragma unroll
  for (int j = 0; j < kOwnedHeads; ++j) {
    const int h = part + kSumParts * j;
    if (h < HEADS) rot[h * HEAD_DIM + dim] = parts_sum(h);
  }
  __syncthreads();
  // x_i = Σ_j R[j][i]·y_j / √d: column dim of R, the part's rows, every head.
  float acc[HEADS];
#pragma unroll
  for (int h = 0; h < HEADS; ++h) acc[h] = 0.0f;
#pragma unroll
  for (int k = 0; k < kTerms; k += 4) {
#pragma unroll
    for (int h = 0; h < HEADS; ++h) {
      const float4 y = *reinterpret_cast<const float4*>(rot + h * HEAD_DIM + part * kTerms + k);
      acc[h] += r_col[k] * y.x;
      acc[h] += r_col[k + 1] * y.y;
      acc[h] += r_col[k + 2] * y.z;
      acc[h] += r_col[k + 3] * y.w;
    }
  }
#pragma unroll
  for (int h = 0; h < HEADS; ++h) partial[(h * kSumParts + part) * HEAD_DIM + dim] = acc[h];
  __syncthreads();
#pragma unroll
  for (int j = 0; j < kOwnedHeads; ++j) {
    const int h = part + kSumParts * j;
    if (h >= HEADS) break;
    const float rotated = parts_sum(h);
    const float plain = weight[h * slots + p.num_splits] * fp16_o[j];
    const float l = total[h];
    const float value =
        l > 0.0f ? (rotated * rsqrtf(static_cast<float>(HEAD_DIM)) + plain) / l : 0.0f;
    p.out[(static_cast<int64_t>(b) * p.num_kv_heads * GROUP_SIZE + first + h) * HEAD_DIM + dim] =
        value;
  }
}

}  // namespace kvplan::kernels

#endif  // KVPLAN_KERNELS_DECODE_ATTENTION_CUH_
