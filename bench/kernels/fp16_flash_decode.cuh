// The fp16 baseline: flash decoding over a contiguous fp16 KV cache, under
// the packed kernel's launch scheme (split-K CTAs of 4 warps, 16-token tiles
// per warp on m16n8k16 tensor cores with all GQA heads of a KV head as N,
// cp.async pipeline, log-sum-exp merge), so that the comparison isolates what
// the packed format changes.
//
// Example:
//   Fp16DecodeParams p{...};
//   LaunchFp16Decode(p, stream);
#ifndef KVPLAN_BENCH_KERNELS_FP16_FLASH_DECODE_CUH_
#define KVPLAN_BENCH_KERNELS_FP16_FLASH_DECODE_CUH_

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#include "bench/kernels/bench_device.h"
#include "kvplan/kernels/device_utils.cuh"

namespace kvplan::bench {

namespace fp16_internal {

using kvplan::kernels::internal::CpAsync16;
using kvplan::kernels::internal::CpAsyncCommit;
using kvplan::kernels::internal::CpAsyncWait;
using kvplan::kernels::internal::MmaF16x16x8;
using kvplan::kernels::internal::WarpMax;
using kvplan::kernels::internal::WarpSum;

constexpr int kTile = 64;
constexpr int kStages = 2;  // 2 x 35 KB per CTA keeps two CTAs per SM

template <int HEAD_DIM>
constexpr int RowHalves() {
  return HEAD_DIM + 8;
}  // padding: rows 16 bytes apart in banks

template <int HEAD_DIM>
constexpr int SmemBytes() {
  return kStages * 2 * kTile * RowHalves<HEAD_DIM>() * 2 + 4 * 8 * 16 * 2;
}

template <int HEAD_DIM, int GROUP>
__global__ void __launch_bounds__(128, 2)
    Fp16DecodeKernel(const __grid_constant__ Fp16DecodeParams p) {
  constexpr int kRow = RowHalves<HEAD_DIM>();
  constexpr int kM = HEAD_DIM / 16;
  extern __shared__ __align__(16) uint8_t smem[];
  __half* tiles = reinterpret_cast<__half*>(smem);
  uint16_t* p_s = reinterpret_cast<uint16_t*>(smem + kStages * 2 * kTile * kRow * 2);
  __shared__ __align__(16) uint16_t q_s[8][HEAD_DIM];
  __shared__ float comb[4 * 8 * (HEAD_DIM + 2)];
  const int split = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
  const int len = p.len[b];
  const int tiles_total = (len + kTile - 1) / kTile;
  const int per = (tiles_total + p.num_splits - 1) / p.num_splits;
  const int begin = split * per, end = min(tiles_total, begin + per), n = max(0, end - begin);
  const int64_t kv_base = (static_cast<int64_t>(b) * p.kv_heads + h) * p.max_len * HEAD_DIM;
  auto load = [&](int i) {
    __half* dk = tiles + (i % kStages) * 2 * kTile * kRow;
    __half* dv = dk + kTile * kRow;
    const int64_t tok0 = static_cast<int64_t>(begin + i) * kTile;
    for (int c = tid; c < kTile * HEAD_DIM / 8; c += 128) {
      const int r = c / (HEAD_DIM / 8), col = (c % (HEAD_DIM / 8)) * 8;
      const int64_t src = kv_base + (tok0 + r) * HEAD_DIM + col;
      if (tok0 + r < p.max_len) {
        CpAsync16(dk + r * kRow + col, p.k + src);  // uint16_t*: fp16 bits
        CpAsync16(dv + r * kRow + col, p.v + src);
      }
    }
  };
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < n) load(s);
    CpAsyncCommit();
  }
  const int q_heads = p.kv_heads * GROUP;
  for (int i = tid; i < 8 * HEAD_DIM; i += 128) {
    const int hh = i / HEAD_DIM;
    const float x = hh < GROUP
                        ? __half2float(reinterpret_cast<const __half*>(
                              p.q)[(static_cast<int64_t>(b) * q_heads + h * GROUP + hh) * HEAD_DIM +
                                   i % HEAD_DIM]) *
                              p.scale * 1.4426950408889634f
                        : 0.0f;
    q_s[hh][i % HEAD_DIM] = __half_as_ushort(__float2half_rn(x));
  }
  float o[kM][4] = {};
  float mx[2] = {-INFINITY, -INFINITY}, sm[2] = {0.0f, 0.0f};
  uint16_t* pw = p_s + warp * 8 * 16;
  for (int i = 0; i < n; ++i) {
    CpAsyncWait<kStages - 2>();
    __syncthreads();
    if (i + kStages - 1 < n) load(i + kStages - 1);
    CpAsyncCommit();
    const int valid = min(kTile, len - (begin + i) * kTile) - warp * 16;
    if (valid <= 0) continue;
    const __half* kt = tiles + (i % kStages) * 2 * kTile * kRow + warp * 16 * kRow;
    const __half* vt = kt + kTile * kRow;
    float s[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
    for (int sl = 0; sl < HEAD_DIM / 16; ++sl) {
      const uint2 k0 = *reinterpret_cast<const uint2*>(kt + g * kRow + 16 * sl + 4 * t);
      const uint2 k1 = *reinterpret_cast<const uint2*>(kt + (g + 8) * kRow + 16 * sl + 4 * t);
      const uint2 qb = *reinterpret_cast<const uint2*>(&q_s[g][16 * sl + 4 * t]);
      const uint32_t a[4] = {k0.x, k1.x, k0.y, k1.y};
      const uint32_t bb[2] = {qb.x, qb.y};
      MmaF16x16x8(s, a, bb);
    }
    const bool v0 = g < valid, v1 = g + 8 < valid;
    s[0] = v0 ? s[0] : -INFINITY;
    s[1] = v0 ? s[1] : -INFINITY;
    s[2] = v1 ? s[2] : -INFINITY;
    s[3] = v1 ? s[3] : -INFINITY;
    float pv[4];
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      float m = fmaxf(s[j], s[j + 2]);
      m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 4));
      m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 8));
      m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 16));
      const float mn = fmaxf(mx[j], m);
      const float base = mn == -INFINITY ? 0.0f : mn;
      const float r = exp2f(mx[j] - base);
      mx[j] = mn;
      pv[j] = exp2f(s[j] - base);
      pv[j + 2] = exp2f(s[j + 2] - base);
      sm[j] = sm[j] * r + pv[j] + pv[j + 2];
#pragma unroll
      for (int mt = 0; mt < kM; ++mt) {
        o[mt][j] *= r;
        o[mt][j + 2] *= r;
      }
    }
    pw[(2 * t) * 16 + g] = __half_as_ushort(__float2half_rn(pv[0]));
    pw[(2 * t + 1) * 16 + g] = __half_as_ushort(__float2half_rn(pv[1]));
    pw[(2 * t) * 16 + g + 8] = __half_as_ushort(__float2half_rn(pv[2]));
    pw[(2 * t + 1) * 16 + g + 8] = __half_as_ushort(__float2half_rn(pv[3]));
    __syncwarp();
    const uint2 pb = *reinterpret_cast<const uint2*>(pw + g * 16 + 4 * t);
    __syncwarp();
    const uint32_t bf[2] = {pb.x, pb.y};
    const uint16_t* vu = reinterpret_cast<const uint16_t*>(vt);
#pragma unroll
    for (int mt = 0; mt < kM; ++mt) {
      const int d0 = mt * 16 + g, d1 = d0 + 8;
      const int r0 = 4 * t;
      // Invalid rows may hold stale data: P is zero there, but 0·NaN is not.
      auto at = [&](int r, int d) -> uint32_t { return r < valid ? vu[r * kRow + d] : 0u; };
      const uint32_t a[4] = {
          at(r0, d0) | (at(r0 + 1, d0) << 16), at(r0, d1) | (at(r0 + 1, d1) << 16),
          at(r0 + 2, d0) | (at(r0 + 3, d0) << 16), at(r0 + 2, d1) | (at(r0 + 3, d1) << 16)};
      MmaF16x16x8(o[mt], a, bf);
    }
  }
  CpAsyncWait<0>();
  __syncthreads();
#pragma unroll
  for (int j = 0; j < 2; ++j) {
    sm[j] += __shfl_xor_sync(0xffffffffu, sm[j], 4);
    sm[j] += __shfl_xor_sync(0xffffffffu, sm[j], 8);
    sm[j] += __shfl_xor_sync(0xffffffffu, sm[j], 16);
  }
  float* cml = comb;
  float* co = comb + 4 * 8 * 2;
  if (g == 0) {
    for (int j = 0; j < 2; ++j) {
      cml[(warp * 8 + 2 * t + j) * 2] = mx[j];
      cml[(warp * 8 + 2 * t + j) * 2 + 1] = sm[j];
    }
  }
#pragma unroll
  for (int mt = 0; mt < kM; ++mt) {
#pragma unroll
    for (int r = 0; r < 4; ++r)
      co[(warp * 8 + 2 * t + (r & 1)) * HEAD_DIM + mt * 16 + g + (r >> 1) * 8] = o[mt][r];
  }
  __syncthreads();
  const int64_t part = ((static_cast<int64_t>(b) * p.kv_heads + h) * p.num_splits + split) * GROUP;
  for (int i = tid; i < GROUP * HEAD_DIM; i += 128) {
    const int hh = i / HEAD_DIM, d = i % HEAD_DIM;
    float m = -INFINITY;
    for (int w = 0; w < 4; ++w) m = fmaxf(m, cml[(w * 8 + hh) * 2]);
    const float base = m == -INFINITY ? 0.0f : m;
    float acc = 0.0f, l = 0.0f;
    for (int w = 0; w < 4; ++w) {
      const float wt = exp2f(cml[(w * 8 + hh) * 2] - base);
      acc += wt * co[(w * 8 + hh) * HEAD_DIM + d];
      l += wt * cml[(w * 8 + hh) * 2 + 1];
    }
    p.partial_o[(part + hh) * HEAD_DIM + d] = acc;
    if (d == 0) {
      p.partial_ml[(part + hh) * 2] = m;
      p.partial_ml[(part + hh) * 2 + 1] = l;
    }
  }
}

template <int HEAD_DIM, int GROUP>
__global__ void Fp16MergeKernel(const __grid_constant__ Fp16DecodeParams p) {
  const int h = blockIdx.x, b = blockIdx.y, d = threadIdx.x;
  const int64_t base = (static_cast<int64_t>(b) * p.kv_heads + h) * p.num_splits * GROUP;
  for (int hh = 0; hh < GROUP; ++hh) {
    float m = -INFINITY;
    for (int s = 0; s < p.num_splits; ++s) m = fmaxf(m, p.partial_ml[(base + s * GROUP + hh) * 2]);
    const float mb = m == -INFINITY ? 0.0f : m;
    float acc = 0.0f, l = 0.0f;
    for (int s = 0; s < p.num_splits; ++s) {
      const float w = exp2f(p.partial_ml[(base + s * GROUP + hh) * 2] - mb);
      acc += w * p.partial_o[(base + s * GROUP + hh) * HEAD_DIM + d];
      l += w * p.partial_ml[(base + s * GROUP + hh) * 2 + 1];
    }
    p.out[(static_cast<int64_t>(b) * p.kv_heads * GROUP + h * GROUP + hh) * HEAD_DIM + d] =
        l > 0.0f ? acc / l : 0.0f;
  }
}

}  // namespace fp16_internal

template <int HEAD_DIM, int GROUP>
cudaError_t LaunchFp16Decode(const Fp16DecodeParams& p, cudaStream_t stream) {
  using namespace fp16_internal;
  auto* kernel = Fp16DecodeKernel<HEAD_DIM, GROUP>;
  constexpr int smem = SmemBytes<HEAD_DIM>();
  if (cudaError_t e =
          cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
      e != cudaSuccess)
    return e;
  kernel<<<dim3(p.num_splits, p.kv_heads, p.batch), 128, smem, stream>>>(p);
  if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
  Fp16MergeKernel<HEAD_DIM, GROUP><<<dim3(p.kv_heads, p.batch), HEAD_DIM, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace kvplan::bench

#endif  // KVPLAN_BENCH_KERNELS_FP16_FLASH_DECODE_CUH_
