// Fused decode attention over packed pages (core/packed_page.h), device code.
//
// One step runs three kernels:
//   RotateQueryKernel   q̂ = [R_g·q_g] per K group, scaled by scale·log2(e)/√d_g,
//                       fp16, each group padded to whole 16-dim MMA slices
//                       (padding zero), once per (sequence, query head).
//   PackedAttentionKernel  grid (num_splits + 1, kv_heads, batch): CTA `split`
//                       < num_splits reads its share of the sequence's pages
//                       (cp.async, STAGES deep) and, per 16-token tile and
//                       warp, decodes K codes in registers into fp16 MMA
//                       fragments (S = (n'·K̂)·q̂ᵀ on tensor cores: each token's
//                       group norm is folded into its decoded fp16 codes, and
//                       the head's groups come from a per-slice table built
//                       once per CTA in shared memory), runs an
//                       online softmax in log2 units, and multiplies decoded
//                       V (still rotated) by P on tensor cores. All query heads
//                       of the GQA group share each decoded tile (the MMA's N).
//                       CTA `num_splits` attends to the fp16 sink + recent
//                       tokens. Each CTA writes un-normalized (O, m, l).
//   MergeKernel         exact log-sum-exp merge of the splits per (sequence,
//                       KV head), then V's rotation undone once on the merged
//                       rotated part (x = Rᵀ·y / √d), plus the fp16 part.
//
// MMA operand mapping. S: A = K tile [16 tokens x 16 dims], B = q̂ᵀ [16 dims x
// 8 heads]. O: A = V̂ᵀ [16 dims x 16 tokens], B = Pᵀ [16 tokens x 8 heads]. In
// both, the k index pairs a thread owns (2t, 2t+1, 2t+8, 2t+9) are mapped to
// the four consecutive dims (or tokens) 4t..4t+3, so each thread reads one
// contiguous run of 4 codes ("quad") per row, with the same map on the B side.
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
inline constexpr int kAttentionStages = 4;
inline constexpr float kLog2e = 1.4426950408889634f;
// Offsets of each width's table inside CodeTables::pair_tables / single_tables.
__host__ __device__ constexpr int PairTableOffset(int bits) {
  return bits == 1 ? 0 : bits == 2 ? 4 : bits == 3 ? 20 : 84;
}
__host__ __device__ constexpr int SingleTableOffset(int bits) {
  return bits == 5 ? 0 : bits == 6 ? 32 : bits == 7 ? 96 : 224;
}
// Page code streams are dense at every width (core/packed_page.h).
__host__ __device__ constexpr int StrideBits(int bits) { return bits; }

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
  static constexpr int kPBytes = kAttentionWarps * kMaxGroupSize * 16 * 2;
  // Two int4 per 16-dim slice of the padded q̂ (KSliceScores).
  static constexpr int kMaxSlices = kQRotStride / 16;
  static constexpr int kSliceBytes = kMaxSlices * 32;
  static constexpr int kFixedBytes = kQBytes + kPairBytes + kSingleBytes + kPBytes + kSliceBytes;
  // Cross-warp combine: (m, l) and O per warp and head.
  static constexpr int kCombineBytes =
      kAttentionWarps * kMaxGroupSize * (2 + HEAD_DIM) * static_cast<int>(sizeof(float));
  // fp16 part: q rows and scores.
  static constexpr int kFp16Bytes =
      (kMaxGroupSize * HEAD_DIM + kMaxGroupSize * kMaxFp16Tokens) * static_cast<int>(sizeof(float));
};

// Dynamic shared memory for a page of `page_bytes`.
template <int HEAD_DIM>
__host__ __device__ constexpr int StageBytes(int page_bytes) {
  return page_bytes + 16;  // ReadBits32 may read one word past a stream
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
// the replica this lane reads: entry e of replica r is word e·R + r.
__host__ __device__ constexpr int SmemPairOffset(int bits) {
  return bits == 1 ? 0 : bits == 2 ? 4 * 32 : bits == 3 ? 20 * 32 : 84 * 32;
}
__host__ __device__ constexpr int PairReplicas(int bits) { return bits <= 3 ? 32 : 8; }

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
//   geo.w  the group's first norm (group · kPageTokens)
//   dec.x  width; dec.y code mask of a lookup (pair tables: 2·bits, single: bits)
//   dec.z  log2 of the pair-table replicas (5 or 3; 0 for single tables)
//   dec.w  table start in shared memory: pair table (words, widths 1..4) or
//          single table (halves, widths 5..8)
__device__ __forceinline__ uint32_t ScaleHalf2(uint32_t pair, __half2 n) {
  const __half2 r = __hmul2(*reinterpret_cast<const __half2*>(&pair), n);
  return *reinterpret_cast<const uint32_t*>(&r);
}

// acc (MMA C layout: tokens g, g+8 x heads 2t, 2t+1) += (n'·K̂)·q̂ᵀ over one
// slice: the group norm n' of each token is folded into its decoded fp16
// codes (one HMUL2 per two codes), so every slice of every group accumulates
// into the same fp32 registers. Widths are runtime but warp-uniform.
__device__ __forceinline__ void KSliceScores(float (&acc)[4], const int4* slice,
                                             const uint32_t* page_words, const uint16_t* k_norms,
                                             const uint16_t* q_row, int token, int t, int lane,
                                             const uint32_t* pair_s, const uint16_t* single_s) {
  const int4 geo = slice[0], dec = slice[1];
  const uint32_t bit0 = static_cast<uint32_t>(geo.x + token * geo.y + t * geo.z);
  const uint32_t bit1 = bit0 + static_cast<uint32_t>(8 * geo.y);
  const uint32_t quad0 = ReadBits32(page_words, bit0);
  const uint32_t quad1 = ReadBits32(page_words, bit1);
  const __half2 n0 = __half2half2(__ushort_as_half(k_norms[geo.w + token]));
  const __half2 n1 = __half2half2(__ushort_as_half(k_norms[geo.w + token + 8]));
  const uint2 qb = *reinterpret_cast<const uint2*>(q_row);
  const int bits = dec.x;
  const uint32_t mask = static_cast<uint32_t>(dec.y);
  uint32_t a[4];
  if (dec.z != 0) {
    // Replicated pair tables (SmemPairOffset): 32 replicas for widths 1..3, 8 for 4.
    const int rs = dec.z;
    const uint32_t* pt = pair_s + dec.w + (lane & ((1 << rs) - 1));
    a[0] = pt[(quad0 & mask) << rs];
    a[2] = pt[((quad0 >> (2 * bits)) & mask) << rs];
    a[1] = pt[(quad1 & mask) << rs];
    a[3] = pt[((quad1 >> (2 * bits)) & mask) << rs];
  } else {
    const uint16_t* st = single_s + dec.w;
    a[0] = PackHalves(st[quad0 & mask], st[(quad0 >> bits) & mask]);
    a[2] = PackHalves(st[(quad0 >> (2 * bits)) & mask], st[(quad0 >> (3 * bits)) & mask]);
    a[1] = PackHalves(st[quad1 & mask], st[(quad1 >> bits) & mask]);
    a[3] = PackHalves(st[(quad1 >> (2 * bits)) & mask], st[(quad1 >> (3 * bits)) & mask]);
  }
  a[0] = ScaleHalf2(a[0], n0);
  a[2] = ScaleHalf2(a[2], n0);
  a[1] = ScaleHalf2(a[1], n1);
  a[3] = ScaleHalf2(a[3], n1);
  const uint32_t b[2] = {qb.x, qb.y};
  MmaF16x16x8(acc, a, b);
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
  for (int f = warp; f < n; f += kAttentionWarps) {
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
  for (int h = warp; h < GROUP_SIZE; h += kAttentionWarps) {
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

}  // namespace internal

// q_rot[b][qh][:] = padded, scaled q̂ (see the top comment). Grid (q_heads,
// batch), any block size.
template <int HEAD_DIM, int GROUP_SIZE>
__global__ void RotateQueryKernel(const __grid_constant__ PackedDecodeParams p) {
  using namespace internal;
  __shared__ float q_s[HEAD_DIM];
  const int qh = blockIdx.x, b = blockIdx.y;
  const PackedHeadDesc& desc = p.heads[qh / GROUP_SIZE];
  const int q_heads = p.num_kv_heads * GROUP_SIZE;
  const float* q = p.q + (static_cast<int64_t>(b) * q_heads + qh) * HEAD_DIM;
  for (int i = threadIdx.x; i < HEAD_DIM; i += blockDim.x) q_s[i] = q[desc.permutation[i]];
  __syncthreads();
  constexpr int kStride = QRotStride(HEAD_DIM);
  uint16_t* out = p.q_rot + (static_cast<int64_t>(b) * q_heads + qh) * kStride;
  for (int pos = threadIdx.x; pos < kStride; pos += blockDim.x) {
    float value = 0.0f;
    for (int g = 0; g < desc.num_groups; ++g) {
      const int i = pos - desc.padded_offset[g];
      const int d = desc.size[g];
      if (i < 0 || i >= d) continue;
      const float* rt = p.rotations + desc.k_rotation_t[g];
      const float* x = q_s + desc.offset[g];
      float acc = 0.0f;
      for (int j = 0; j < d; ++j) acc += rt[static_cast<int64_t>(j) * d + i] * x[j];
      value = acc * (p.scale * kLog2e) * rsqrtf(static_cast<float>(d));
    }
    out[pos] = __half_as_ushort(__float2half_rn(value));
  }
}

template <int HEAD_DIM, int GROUP_SIZE, int V_BITS>
__global__ void __launch_bounds__(internal::kAttentionThreads, 4)
    PackedAttentionKernel(const __grid_constant__ PackedDecodeParams p) {
  using namespace internal;
  using Smem = AttentionSmem<HEAD_DIM>;
  constexpr int kQStride = Smem::kQRotStride;
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
  uint8_t* body = smem + Smem::kFixedBytes;

  const int split = blockIdx.x, kv_head = blockIdx.y, b = blockIdx.z;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int slots = p.num_splits + 1;
  const int64_t part =
      ((static_cast<int64_t>(b) * p.num_kv_heads + kv_head) * slots + split) * GROUP_SIZE;
  float* o_out = p.partial_o + part * HEAD_DIM;
  float* ml_out = p.partial_ml + part * 2;

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
  const int stage_bytes = StageBytes<HEAD_DIM>(page_bytes);
  const int* table = p.page_table + static_cast<int64_t>(b) * p.max_pages_per_seq;

  auto load_page = [&](int i) {
    const int page_id = table[page_begin + i];
    const uint8_t* src =
        p.pages + (static_cast<int64_t>(page_id) * p.num_kv_heads + kv_head) * p.page_stride;
    uint8_t* dst = body + (i % kAttentionStages) * stage_bytes;
    for (int off = tid * 16; off < page_bytes; off += kAttentionThreads * 16) {
      CpAsync16(dst + off, src + off);
    }
  };
  // Start the first pages' copies before anything else.
#pragma unroll
  for (int s = 0; s < kAttentionStages - 1; ++s) {
    if (s < my_pages) load_page(s);
    CpAsyncCommit();
  }

  // q̂ rows (zero beyond the group) and the code tables.
  const int q_heads = p.num_kv_heads * GROUP_SIZE;
  const uint16_t* q_rot =
      p.q_rot + (static_cast<int64_t>(b) * q_heads + kv_head * GROUP_SIZE) * kQStride;
  for (int i = tid; i < kMaxGroupSize * kQStride; i += kAttentionThreads) {
    q_s[(i / kQStride) * kQSmem + i % kQStride] =
        i < GROUP_SIZE * kQStride ? q_rot[i] : uint16_t{0};
  }
  for (int bits = 1; bits <= 4; ++bits) {
    const int entries = 1 << (2 * bits), replicas = PairReplicas(bits);
    for (int i = tid; i < entries * replicas; i += kAttentionThreads) {
      pair_s[SmemPairOffset(bits) + i] =
          p.tables->pair_tables[PairTableOffset(bits) + i / replicas];
    }
  }
  for (int i = tid; i < kSingleTableHalves; i += kAttentionThreads) {
    single_s[i] = p.tables->single_tables[i];
  }
  if (tid < desc.num_groups) {
    const int bits = desc.bits[tid], d_g = desc.size[tid];
    const int first = desc.padded_offset[tid] / 16, count = (d_g + 15) / 16;
    const bool pair = bits <= 4;
    const int4 dec = make_int4(bits, (1 << (pair ? 2 * bits : bits)) - 1,
                               pair ? (bits <= 3 ? 5 : 3) : 0,
                               pair ? SmemPairOffset(bits) : SingleTableOffset(bits));
    for (int j = 0; j < count; ++j) {
      slice_s[2 * (first + j)] = make_int4(desc.block_offset[tid] * 8 + 16 * j * bits, d_g * bits,
                                           4 * bits, tid * kKernelPageTokens);
      slice_s[2 * (first + j) + 1] = dec;
    }
  }

  float o[kMTiles][4];
#pragma unroll
  for (int m = 0; m < kMTiles; ++m) o[m][0] = o[m][1] = o[m][2] = o[m][3] = 0.0f;
  float row_max[2] = {-INFINITY, -INFINITY};  // heads 2t, 2t+1
  float row_sum[2] = {0.0f, 0.0f};            // this thread's tokens only
  uint16_t* p_warp = p_s + warp * kMaxGroupSize * 16;
  const int tile = warp * 16;

  for (int i = 0; i < my_pages; ++i) {
    CpAsyncWait<kAttentionStages - 2>();
    __syncthreads();
    if (i + kAttentionStages - 1 < my_pages) load_page(i + kAttentionStages - 1);
    CpAsyncCommit();

    const int valid = min(kKernelPageTokens, len - (page_begin + i) * kKernelPageTokens) - tile;
    if (valid <= 0) continue;  // the whole tile is past the sequence end
    const uint8_t* page = body + (i % kAttentionStages) * stage_bytes;
    const uint16_t* k_norms = reinterpret_cast<const uint16_t*>(page + k_norm_offset);
    const uint32_t* page_words = reinterpret_cast<const uint32_t*>(page);

    // S = (n'·K̂)·q̂ᵀ over all slices of all groups, two independent MMA chains.
    float s[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    {
      float s1[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      const int token = tile + g;
      const uint16_t* q_row = q_s + g * kQSmem + 4 * t;
      for (int sl = 0; sl < num_slices; sl += 2) {
        KSliceScores(s, slice_s + 2 * sl, page_words, k_norms, q_row + 16 * sl, token, t, lane, pair_s,
                     single_s);
        if (sl + 1 < num_slices) {
          KSliceScores(s1, slice_s + 2 * (sl + 1), page_words, k_norms, q_row + 16 * (sl + 1), token, t,
                       lane, pair_s, single_s);
        }
      }
#pragma unroll
      for (int r = 0; r < 4; ++r) s[r] += s1[r];
    }
    // Slots past the end hold arbitrary bytes: select, never multiply.
    const bool valid0 = g < valid, valid1 = g + 8 < valid;
    s[0] = valid0 ? s[0] : -INFINITY;
    s[1] = valid0 ? s[1] : -INFINITY;
    s[2] = valid1 ? s[2] : -INFINITY;
    s[3] = valid1 ? s[3] : -INFINITY;

    // Online softmax per head column; lanes with equal t share heads.
    float p_val[4], rescale[2];
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      float m = fmaxf(s[j], s[j + 2]);
      m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 4));
      m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 8));
      m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 16));
      const float m_new = fmaxf(row_max[j], m);
      const float base = m_new == -INFINITY ? 0.0f : m_new;
      rescale[j] = exp2f(row_max[j] - base);
      row_max[j] = m_new;
      p_val[j] = exp2f(s[j] - base);
      p_val[j + 2] = exp2f(s[j + 2] - base);
      row_sum[j] = row_sum[j] * rescale[j] + p_val[j] + p_val[j + 2];
    }
    // Once the running maxima settle, most tiles leave O alone.
    if (__any_sync(0xffffffffu, rescale[0] != 1.0f || rescale[1] != 1.0f)) {
#pragma unroll
      for (int m_tile = 0; m_tile < kMTiles; ++m_tile) {
        o[m_tile][0] *= rescale[0];
        o[m_tile][1] *= rescale[1];
        o[m_tile][2] *= rescale[0];
        o[m_tile][3] *= rescale[1];
      }
    }
    // Pᵀ with V's norms folded in, as fp16 [head][token] for the B fragment.
    const uint16_t* v_norms = reinterpret_cast<const uint16_t*>(page + v_norm_offset);
    const float nv0 = valid0 ? HalfBitsToFloat(v_norms[tile + g]) : 0.0f;
    const float nv1 = valid1 ? HalfBitsToFloat(v_norms[tile + g + 8]) : 0.0f;
    p_warp[(2 * t) * 16 + g] = __half_as_ushort(__float2half_rn(valid0 ? p_val[0] * nv0 : 0.0f));
    p_warp[(2 * t + 1) * 16 + g] =
        __half_as_ushort(__float2half_rn(valid0 ? p_val[1] * nv0 : 0.0f));
    p_warp[(2 * t) * 16 + g + 8] =
        __half_as_ushort(__float2half_rn(valid1 ? p_val[2] * nv1 : 0.0f));
    p_warp[(2 * t + 1) * 16 + g + 8] =
        __half_as_ushort(__float2half_rn(valid1 ? p_val[3] * nv1 : 0.0f));
    __syncwarp();
    const uint2 pb = *reinterpret_cast<const uint2*>(p_warp + g * 16 + 4 * t);
    __syncwarp();
    const uint32_t bfrag[2] = {pb.x, pb.y};

    // O += V̂ᵀ·Pᵀ, 16 dims at a time.
    constexpr int kVStride = StrideBits(V_BITS);
    const uint32_t* v_block = reinterpret_cast<const uint32_t*>(page + v_block_offset);
    const uint32_t* v_pairs = pair_s + SmemPairOffset(V_BITS < 5 ? V_BITS : 1) +
                              (lane & (PairReplicas(V_BITS < 5 ? V_BITS : 1) - 1));
    const uint16_t* v_singles = single_s + SingleTableOffset(V_BITS > 4 ? V_BITS : 5);
#pragma unroll
    for (int m_tile = 0; m_tile < kMTiles; ++m_tile) {
      const uint32_t e0 =
          static_cast<uint32_t>((m_tile * 16 + g) * kKernelPageTokens + tile + 4 * t);
      const uint32_t e1 = e0 + 8 * kKernelPageTokens;
      uint32_t quad0, quad1;
      if constexpr (32 % (4 * kVStride) == 0) {
        // Quads start on multiples of 4 codes: never across a word.
        quad0 = v_block[(e0 * kVStride) >> 5] >> ((e0 * kVStride) & 31);
        quad1 = v_block[(e1 * kVStride) >> 5] >> ((e1 * kVStride) & 31);
      } else {
        quad0 = ReadBits32(v_block, e0 * kVStride);
        quad1 = ReadBits32(v_block, e1 * kVStride);
      }
      uint32_t a[4];
      DecodeQuad<V_BITS>(quad0, v_pairs, v_singles, a[0], a[2]);
      DecodeQuad<V_BITS>(quad1, v_pairs, v_singles, a[1], a[3]);
      MmaF16x16x8(o[m_tile], a, bfrag);
    }
  }
  CpAsyncWait<0>();
  __syncthreads();  // every warp is done with the stages: reuse them

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
      const int dim = m_tile * 16 + g + (r >> 1) * 8;
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

// Merges the splits of one (sequence, query head) and undoes V's rotation.
// Grid (num_kv_heads * GROUP_SIZE, batch); block HEAD_DIM threads; dynamic
// shared memory (num_splits + 1 + HEAD_DIM) floats.
template <int HEAD_DIM, int GROUP_SIZE>
__global__ void MergeKernel(const __grid_constant__ PackedDecodeParams p) {
  using namespace internal;
  extern __shared__ float merge_smem[];  // weights [slots], then rot [HEAD_DIM]
  const int qh = blockIdx.x, b = blockIdx.y;
  const int kv_head = qh / GROUP_SIZE, h = qh % GROUP_SIZE;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int slots = p.num_splits + 1;
  float* weight = merge_smem;
  float* rot = merge_smem + slots;
  __shared__ float total;
  const int64_t base_part = (static_cast<int64_t>(b) * p.num_kv_heads + kv_head) * slots;
  const float* ml = p.partial_ml + base_part * GROUP_SIZE * 2;
  const float* po = p.partial_o + base_part * GROUP_SIZE * HEAD_DIM;
  if (warp == 0) {
    float m = -INFINITY;
    for (int s = lane; s < slots; s += 32) m = fmaxf(m, ml[(s * GROUP_SIZE + h) * 2]);
    m = WarpMax(m);
    const float base = m == -INFINITY ? 0.0f : m;
    float l = 0.0f;
    for (int s = lane; s < slots; s += 32) {
      const float w = exp2f(ml[(s * GROUP_SIZE + h) * 2] - base);
      weight[s] = w;
      l += w * ml[(s * GROUP_SIZE + h) * 2 + 1];
    }
    l = WarpSum(l);
    if (lane == 0) total = l;
  }
  __syncthreads();
  // Independent loads, four accumulators: the splits are read in parallel.
  float acc4[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  int s = 0;
  for (; s + 4 <= p.num_splits; s += 4) {
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      acc4[u] +=
          weight[s + u] * po[(static_cast<int64_t>(s + u) * GROUP_SIZE + h) * HEAD_DIM + tid];
    }
  }
  for (; s < p.num_splits; ++s) {
    acc4[0] += weight[s] * po[(static_cast<int64_t>(s) * GROUP_SIZE + h) * HEAD_DIM + tid];
  }
  rot[tid] = (acc4[0] + acc4[1]) + (acc4[2] + acc4[3]);
  const float plain = weight[p.num_splits] *
                      po[(static_cast<int64_t>(p.num_splits) * GROUP_SIZE + h) * HEAD_DIM + tid];
  __syncthreads();
  // x_i = Σ_j R[j][i]·y_j / √d: column tid of R, read row by row (coalesced).
  const float* r = p.rotations + p.heads[kv_head].v_rotation;
  float acc = 0.0f;
#pragma unroll 8
  for (int j = 0; j < HEAD_DIM; ++j) acc += r[j * HEAD_DIM + tid] * rot[j];
  const float l = total;
  const float value = l > 0.0f ? (acc * rsqrtf(static_cast<float>(HEAD_DIM)) + plain) / l : 0.0f;
  p.out[(static_cast<int64_t>(b) * p.num_kv_heads * GROUP_SIZE + qh) * HEAD_DIM + tid] = value;
}

}  // namespace kvplan::kernels

#endif  // KVPLAN_KERNELS_DECODE_ATTENTION_CUH_
