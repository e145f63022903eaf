// Host launchers of the kvplan kernels: a params struct by value (params.h)
// and a stream in, a cudaError_t out. They allocate nothing, never
// synchronize, and may be captured in a CUDA graph; sizes outside the dispatch
// set (dispatch.h) return cudaErrorInvalidValue without launching. Thread-safe.
//
// Example:
//   PackedDecodeParams p = plan.DecodeParams(layer, workspace);
//   ... fill the per-step fields ...
//   if (cudaError_t e = LaunchPackedDecode(p, stream); e != cudaSuccess) { ... }
#ifndef KVPLAN_KERNELS_LAUNCH_H_
#define KVPLAN_KERNELS_LAUNCH_H_

#include <cuda_runtime_api.h>

#include "kvplan/kernels/params.h"

namespace kvplan::kernels {

// Adds per-(kv_head, block) energy sums of a batch of tokens into p.q_sums and
// p.k_sums (which the caller zeroes once per accumulation).
cudaError_t LaunchBlockStats(const BlockStatsParams& p, cudaStream_t stream);

// Launches of at most this many tokens that leave the shape to the launcher
// take the few-token kernel (one slab's worth: the slab kernel's fixed cost is
// a slab's whatever its tokens).
inline constexpr int kFewTokenEncodeMaxTokens = 64;

// Encodes p.num_tokens tokens of K and V for every KV head into their slots.
// slabs_per_cta: 64-token slabs each CTA encodes (at most 32); 0 picks it from
// the launch's size and p.num_sms (EncodeSlabsPerCta, encode_slabs.h), and
// launches of at most kFewTokenEncodeMaxTokens (a decode step's) then take the
// few-token kernel (encode_append.cuh: a CTA per token and head, codes equal
// to the CPU's bit for bit). Tests force values above 0 to cover the slab
// kernel.
cudaError_t LaunchEncodePack(const EncodePackParams& p, cudaStream_t stream, int slabs_per_cta = 0);

// One decode step: rotate q, split-K attention over the packed pages (+ fp16
// sink/recent), merge; writes p.out. Version-1 pages only: params of a plan
// with fragment_pages (p.fragment set) are cudaErrorInvalidValue.
cudaError_t LaunchPackedDecode(const PackedDecodeParams& p, cudaStream_t stream);

// The two halves of a step whose attention runs elsewhere: the fragment-page
// kernels compiled per plan (fragment_decode_program.h runs all three).
// LaunchFragmentPrologue: q̂ of every (sequence, KV head) into q_rot ([batch,
// num_kv_heads, kFragmentQueryRows, head_dim] fp16, fragment_params.h) and
// the fp16 sink + recent part into partial slot num_splits; a programmatic
// dependent of the stream's previous kernel (overlapping_launch.h), which it
// waits for before it reads or writes anything.
// LaunchPackedMerge: the exact merge of all num_splits + 1 slots, V's rotation
// undone; writes p.out. p.page_stride is not read by either.
cudaError_t LaunchFragmentPrologue(const PackedDecodeParams& p, uint16_t* q_rot,
                                   cudaStream_t stream);
cudaError_t LaunchPackedMerge(const PackedDecodeParams& p, cudaStream_t stream);

}  // namespace kvplan::kernels

#endif  // KVPLAN_KERNELS_LAUNCH_H_
