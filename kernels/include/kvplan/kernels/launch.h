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

#include <cstdint>

#include "kvplan/kernels/params.h"

namespace kvplan::kernels {

// Adds per-(kv_head, block) energy sums of a batch of tokens into p.q_sums and
// p.k_sums (which the caller zeroes once per accumulation).
cudaError_t LaunchBlockStats(const BlockStatsParams& p, cudaStream_t stream);

// Whether LaunchEncodePack(p, stream, slabs_per_cta) takes the few-token
// kernel (encode_append.cuh): the slab count left to the launcher and at most
// p.few_token_max_token_heads tokens x KV heads (kFewTokenEncodeMaxTokenHeads).
inline bool TakesFewTokenEncode(const EncodePackParams& p, int slabs_per_cta) {
  return slabs_per_cta == 0 &&
         int64_t{p.num_tokens} * p.num_kv_heads <= p.few_token_max_token_heads;
}

// Whether LaunchEncodePack(p, stream, slabs_per_cta) takes the wgmma encode
// (encode_wgmma.cuh: K and V in one launch, K's groups of any layout): a
// device that runs sm_90a code (p.wgmma), head_dim 128, the slab count left
// to the launcher, more tokens x KV heads than the few-token kernel takes, and
// at least p.wgmma_min_token_heads (kWgmmaEncodeMinTokenHeads).
inline bool TakesWgmmaEncode(const EncodePackParams& p, int slabs_per_cta) {
  return p.wgmma && p.head_dim == 128 && slabs_per_cta == 0 &&
         !TakesFewTokenEncode(p, slabs_per_cta) &&
         int64_t{p.num_tokens} * p.num_kv_heads >= p.wgmma_min_token_heads;
}

// Encodes p.num_tokens tokens of K and V for every KV head into their slots.
// slabs_per_cta: 64-token slabs each CTA encodes (at most 32); 0 picks it from
// the launch's size and p.num_sms (EncodeSlabsPerCta, encode_slabs.h), and
// launches of at most p.few_token_max_token_heads tokens x KV heads (a decode
// step's) then take the few-token kernel (encode_append.cuh: a CTA per token
// and head, codes equal to the CPU's bit for bit), and longer ones the wgmma
// encode where TakesWgmmaEncode. Tests force values above 0 to cover the slab
// kernel (encode_pack.cuh), which also serves other devices and head_dim 64.
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
// waits for before it reads or writes anything. With `append` (the layer's
// EncodeParams for the step's new tokens, into the pages this step reads),
// those tokens are encoded first, by the few-token encode (codes equal to the
// CPU's): in the prologue's own launch where FragmentPrologueFusesAppend
// (one launch fewer than LaunchEncodePack and a step), else by
// LaunchEncodePack ahead of it; at most kMaxFusedAppendTokens tokens, the
// same KV heads and head_dim as p, else cudaErrorInvalidValue.
// LaunchPackedMerge: the exact merge of all num_splits + 1 slots, V's rotation
// undone; writes p.out. p.page_stride is not read by either.
cudaError_t LaunchFragmentPrologue(const PackedDecodeParams& p, uint16_t* q_rot,
                                   cudaStream_t stream, const EncodePackParams* append = nullptr);
cudaError_t LaunchPackedMerge(const PackedDecodeParams& p, cudaStream_t stream);

// Query heads per CTA of the merge that LaunchPackedMerge (and
// LaunchPackedDecode) runs for p: p.merge_heads_per_cta if set, else
// p.group_size when the grid of one head per CTA would take more than one wave
// of p.num_sms multiprocessors (then loading V's rotation once per (sequence,
// KV head) wins) and a whole group's shared memory fits 48 KB, else 1
// (NOTES.md run 40). Host arithmetic only: it asks the driver nothing.
int MergeHeadsPerCta(const PackedDecodeParams& p);

// The most new tokens a fragment step takes with it: the fused grid's y axis.
inline constexpr int kMaxFusedAppendTokens = 65535;

// Whether LaunchFragmentPrologue fuses `append` into its launch: only where
// the whole fused grid (kv_heads x max(batch, tokens) x 4 CTAs) is resident
// at once. Every CTA of it, q̂'s too, holds the encode's shared memory (~96
// KB at head_dim 128: two CTAs per SM), so a larger grid runs in waves, and
// there the encode's own launch (smaller CTAs) did as well (Llama-3.1-8B
// batch 16, 512 CTAs: no gain; NOTES run 30).
inline bool FragmentPrologueFusesAppend(const PackedDecodeParams& p,
                                        const EncodePackParams& append) {
  constexpr int64_t kFusedCtasPerSm = 2;
  const int64_t rows = p.batch > append.num_tokens ? p.batch : append.num_tokens;
  return p.batch > 0 && append.num_tokens > 0 &&
         int64_t{p.num_kv_heads} * rows * 4 <= kFusedCtasPerSm * append.num_sms;
}

}  // namespace kvplan::kernels

#endif  // KVPLAN_KERNELS_LAUNCH_H_
