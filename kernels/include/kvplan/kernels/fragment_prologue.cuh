// The fixed-function part of a fragment-page decode step (device code): what
// runs before the plan's generated attention kernel (fragment_decode.cuh,
// compiled per plan) and is the same for every plan, so it is compiled ahead
// of time with the version-1 kernels whose pieces it reuses.
//
// FragmentPrologueKernel, grid (kv_heads, batch, 2), kFragmentPrologueThreads threads:
//   z = 0  q̂ of the sequence's query heads of the KV head: rotated per K group,
//          scaled by scale·log2(e)/√d_g, fp16, in the layout's permuted order
//          (RotateQuery, unpadded), into q_rot [batch, kv_heads,
//          kFragmentQueryRows, head_dim]; rows past GROUP_SIZE zero.
//   z = 1  the fp16 sink + recent part (Fp16Part) into partial slot num_splits,
//          which the merge (MergeKernel) adds to the packed splits.
// The attention kernel then writes slots 0 .. num_splits - 1, and
// MergeKernel merges all of them and undoes V's rotation, as in
// LaunchPackedDecode.
// With APPEND, the same launch also encodes the step's new tokens (`append`,
// a few-token encode: encode_append.cuh) into their slots, which the
// attention then reads: grid (kv_heads, max(batch, append tokens), 4), z = 2
// and 3 K and V of token y for KV head x, by the CTA's first HEAD_DIM threads,
// with kAppendSmemBytes of dynamic shared memory. One launch instead of two
// per layer: a separate encode adds its launch and fill to a decode step
// (Llama-3.1-8B batch 1, 32K: 20.9 µs alone, 26.5 after its encode, 23.9
// fused; NOTES run 30), where these CTAs run beside the q̂ ones.
#ifndef KVPLAN_KERNELS_FRAGMENT_PROLOGUE_CUH_
#define KVPLAN_KERNELS_FRAGMENT_PROLOGUE_CUH_

#include <cstdint>

#include "kvplan/kernels/decode_attention.cuh"
#include "kvplan/kernels/encode_append.cuh"
#include "kvplan/kernels/fragment_params.h"

namespace kvplan::kernels {

static_assert(kFragmentQueryRows == kMaxGroupSize, "q̂ rows of both kernels");

// 512 threads: the rotation's dependent L2 loads split 8 ways per position
// pair at head_dim 128 (16 rounds a thread, not 64). Measured on the H200 at
// Llama b1 32K, CUDA graphs: the prologue alone 3.4 µs against 4.3 µs at 128
// threads, the whole step 22.5 against 24.3 µs (NOTES run 20).
inline constexpr int kFragmentPrologueThreads = 512;

template <int HEAD_DIM, int GROUP_SIZE, bool APPEND>
__global__ void __launch_bounds__(kFragmentPrologueThreads)
    FragmentPrologueKernel(const __grid_constant__ PackedDecodeParams p, uint16_t* q_rot,
                           const __grid_constant__ EncodePackParams append) {
  using namespace internal;
  static_assert(HEAD_DIM % 32 == 0 && HEAD_DIM <= kFragmentPrologueThreads,
                "the new tokens' CTAs leave whole warps out");
  if constexpr (APPEND) {
    if (blockIdx.z >= 2) {
      if (static_cast<int>(blockIdx.y) >= append.num_tokens || threadIdx.x >= HEAD_DIM) return;
      extern __shared__ float4 rotation_s4[];  // kAppendSmemBytes
      EncodeAppendToken<HEAD_DIM, /*DEPENDENT=*/true>(append, blockIdx.y, blockIdx.x,
                                                      blockIdx.z == 3,
                                                      static_cast<int>(threadIdx.x), rotation_s4);
      return;
    }
    if (static_cast<int>(blockIdx.y) >= p.batch) return;
  }
  // Fp16Part's q rows and scores; RotateQuery's permuted q (the smaller).
  __shared__ float scratch[kMaxGroupSize * HEAD_DIM + kMaxGroupSize * kMaxFp16Tokens];
  const int kv_head = blockIdx.x, b = blockIdx.y;
  // Launched as a programmatic dependent of the stream's previous kernel (the
  // one that wrote q, or the previous step's merge, which still reads the
  // partial slots written below): nothing is read or written before it has
  // completed.
  WaitForPrerequisiteGrids();
  // Only now may the attention kernel start loading its code tables (it waits
  // for this grid before it reads q̂): its splits past a sequence's end write
  // their partial slots without waiting, so it must not start before the
  // previous merge has finished.
  AllowDependentLaunch();
  if (blockIdx.z == 1) {
    const int64_t part =
        ((static_cast<int64_t>(b) * p.num_kv_heads + kv_head) * (p.num_splits + 1) + p.num_splits) *
        GROUP_SIZE;
    Fp16Part<HEAD_DIM, GROUP_SIZE>(p, kv_head, b, scratch, p.partial_o + part * HEAD_DIM,
                                   p.partial_ml + part * 2);
    return;
  }
  uint16_t* q_hat =
      q_rot + (static_cast<int64_t>(b) * p.num_kv_heads + kv_head) * kFragmentQueryRows * HEAD_DIM;
  RotateQuery<HEAD_DIM, GROUP_SIZE, HEAD_DIM, false, kFragmentPrologueThreads>(
      p, p.heads[kv_head], kv_head, b, static_cast<int>(threadIdx.x), q_hat, scratch);
}

}  // namespace kvplan::kernels

#endif  // KVPLAN_KERNELS_FRAGMENT_PROLOGUE_CUH_
