// Parameter structs of the kvplan CUDA kernels: plain data, passed by value to
// the launchers of launch.h (FlashInfer style). Every pointer is a device
// pointer; its shape and layout are documented beside it. The plan-derived
// fields (heads, rotations, code tables, scratch) come from PackedDecodePlan
// (packed_plan.h); the rest is the caller's per-step data.
//
// Example:
//   PackedDecodeParams p = plan.DecodeParams(layer, workspace);
//   p.q = q; p.pages = pages; p.page_table = table; p.packed_len = lens; ...
//   cudaError_t e = LaunchPackedDecode(p, stream);
#ifndef KVPLAN_KERNELS_PARAMS_H_
#define KVPLAN_KERNELS_PARAMS_H_

#include <cstdint>

#include "kvplan/kernels/code_grid.h"

namespace kvplan::kernels {

// Widths 1..8 give at most eight K groups (one per width).
inline constexpr int kMaxKGroups = 8;
// Largest head_dim the kernels support (the dispatch set is {64, 128}).
inline constexpr int kMaxKernelHeadDim = 128;
// Token slots per packed page (core/packed_page.h: kPageTokens).
inline constexpr int kKernelPageTokens = 64;
// Query heads per KV head that one attention CTA covers (the MMA's N).
inline constexpr int kMaxGroupSize = 8;
// 16-token MMA tiles that one attention warp decodes per step (2: two warps
// share a page, 4 CTAs of 4 warps per SM at K3V3 hd 128; 4: a warp per page,
// 2 CTAs per SM). A build-time switch for measurements; 2 is the default.
#ifndef KVPLAN_TILES_PER_WARP
#define KVPLAN_TILES_PER_WARP 2
#endif
// Attention CTAs per SM that PackedDecodePlan::SplitsFor fills in one wave.
inline constexpr int kAttentionCtasPerSm = 8 / KVPLAN_TILES_PER_WARP;
// Most fp16 tokens (sink + recent) per sequence the attention kernel takes.
inline constexpr int kMaxFp16Tokens = 512;

// Halves per query head of the rotated, padded q̂ (in the attention kernel's
// shared memory): groups padded to 16 dimensions each add at most 14 (sizes
// are even), eight groups at most.
constexpr int QRotStride(int head_dim) { return head_dim + 16 * kMaxKGroups; }

// One (layer, KV head): its K groups and where everything of its page lives.
// Built by the plan; lives in the workspace. Byte offsets are within a page.
struct PackedHeadDesc {
  int num_groups = 0;
  int bits[kMaxKGroups] = {};           // K group widths, ascending
  int size[kMaxKGroups] = {};           // d_g
  int offset[kMaxKGroups] = {};         // first permuted position of group g
  int padded_offset[kMaxKGroups] = {};  // group g's start in the padded q̂ (multiple of 16)
  int block_offset[kMaxKGroups] = {};   // k_block_g
  int k_norm_offset = 0;
  int v_block_offset = 0;
  int v_norm_offset = 0;
  int page_bytes = 0;   // multiple of 16
  int padded_dims = 0;  // Σ_g roundup(d_g, 16)
  // Float offsets into the rotation region: K group g's Rᵀ ([j][i] = R[i][j]),
  // V's Rᵀ and V's R (row-major), in that order and back to back (the
  // few-token encode copies K's blocks, and V's Rᵀ, as one run each).
  int64_t k_rotation_t[kMaxKGroups] = {};
  int64_t v_rotation_t = 0;
  int64_t v_rotation = 0;
  // permutation[p] = original dimension at permuted position p.
  uint8_t permutation[kMaxKernelHeadDim] = {};
};

// One (layer, KV head)'s fragment-native page (core/fragment_page.h), for
// plans built with PackedDecodeConfig::fragment_pages: what the encode kernel
// needs to place codes and norms (core/fragment_geometry.h). Byte offsets are
// within a tile; a page is kFragmentTilesPerPage tiles of tile_bytes.
inline constexpr int kFragmentTilesPerPage = 4;
struct FragmentHeadGeometry {
  int k_run_words = 0;
  int v_run_words = 0;
  int v_runs_offset = 0;
  int norms_offset = 0;
  int tile_bytes = 0;
  int num_k_groups = 0;
  int half_bits[kMaxKernelHeadDim / 8] = {};    // width of K half-slice h (8 dims)
  int half_offset[kMaxKernelHeadDim / 8] = {};  // run bit of half-slice h's first code
};

// Code tables of the unit Lloyd–Max codebooks, uploaded by the plan.
//   centroids [8][256] fp32: width b at row b-1 (2^b used)
//   boundaries [8][256] fp32: width b at row b-1 (2^b - 1 used)
//   pair_tables: fp16x2 words, width b in 1..4 at kPairTableOffset[b]; entry e
//     = (c[e & (2^b-1)], c[e >> b]) (low half first)
//   single_tables: fp16, width b in 5..8 at kSingleTableOffset[b]
//   grid: every width's code grid (code_grid.h), for the wgmma encode's search
inline constexpr int kPairTableWords = 4 + 16 + 64 + 256;
inline constexpr int kSingleTableHalves = 32 + 64 + 128 + 256;
struct CodeTables {
  float centroids[8][256];
  float boundaries[8][256];
  uint32_t pair_tables[kPairTableWords];
  uint16_t single_tables[kSingleTableHalves];
  CodeGrid grid;
};

// Block statistics: per (kv_head, block) Σ over tokens of Σ_{query heads of the
// group} ‖q⁽ⁱ⁾‖² and Σ ‖k⁽ⁱ⁾‖², added (fp64) into q_sums / k_sums.
struct BlockStatsParams {
  const float* q = nullptr;         // [num_tokens, num_kv_heads * group_size, head_dim]
  const float* k = nullptr;         // [num_tokens, num_kv_heads, head_dim]
  const int* block_dims = nullptr;  // [num_blocks, 2]: the two dims of each block
  double* q_sums = nullptr;         // [num_kv_heads, num_blocks], accumulated into
  double* k_sums = nullptr;         // [num_kv_heads, num_blocks], accumulated into
  int num_tokens = 0;
  int num_kv_heads = 0;
  int group_size = 1;
  int head_dim = 0;
  int num_blocks = 0;
};

// Encode launches of at least this many tokens x KV heads take the wgmma
// encode (K and V in one launch) where the device runs sm_90a code: every
// launch past the few-token kernel's. Layers of whole 16-dim K groups (H200,
// NOTES.md run 34, against the slab kernel: Llama-3.1-8B K3V3a16 256 x 8
// 1.45x, 1K x 8 1.37x, 2K x 8 1.07x, 32K x 8 1.40x, K2V2a16 1K x 8 1.42x,
// Qwen2.5-3B 2K x 2 1.44x, 8K x 2 1.06x; fragment pages 1K x 8 1.19x, 3K x 8
// 1.42x, but 2K x 8 0.96x; scattered slots, as a decode step of many
// sequences: 128 x 8 1.16x); other layouts (greedy plans; run 35, against K
// on the slab kernel and V alone on wgmma from 64K, a route since removed:
// Llama K3V3 512 x 8 1.20x, 8K x 8 1.13x, 32K x 8 1.12x, K2V2 8K x 8 1.19x,
// Qwen 2K x 2 1.23x, 32K x 2 1.16x, but 2K x 8 0.96x and Qwen 8K x 2 0.95x).
inline constexpr int64_t kWgmmaEncodeMinTokenHeads = 0;

// Launches of at most this many tokens x KV heads that leave the shape to the
// launcher take the few-token kernel. It runs a CTA per (token, head, kind),
// each reading its rotation, so its cost grows with tokens x heads (~22 ns
// each on the H200), while the slab kernels cost a slab's whatever its tokens
// and twice that on scattered slots. H200, NOTES.md run 35, against the wgmma
// encode: Qwen2.5-3B (2 KV heads) 128 tokens 2.2x on scattered slots (a decode
// step of 128 sequences), 1.16x (K3V3a16) and 1.76x (greedy) in slot order;
// 256 tokens 1.65x and 2.1x scattered, 0.90x and 1.18x in order; past the
// bound, 512 tokens scattered 1.2-1.3x but in order 0.52-0.74x, Llama-3.1-8B
// 128 x 8 in order 0.47x.
inline constexpr int64_t kFewTokenEncodeMaxTokenHeads = 512;

// Encode + pack of one layer's new K and V tokens into their page slots.
struct EncodePackParams {
  const PackedHeadDesc* heads = nullptr;  // [num_kv_heads] of this layer
  const float* rotations = nullptr;       // plan rotation region
  const CodeTables* tables = nullptr;
  const float* k = nullptr;  // [num_tokens, num_kv_heads, head_dim], post-RoPE
  const float* v = nullptr;  // [num_tokens, num_kv_heads, head_dim]
  // [num_tokens]: page_id * 64 + slot of each token; negative: skip the token.
  const int64_t* slot_mapping = nullptr;
  uint8_t* pages = nullptr;  // [num_pages, num_kv_heads, page_stride]
  int64_t page_stride = 0;   // bytes per (page, kv_head)
  // [num_kv_heads] of this layer: the pages are fragment-native pages
  // (core/fragment_page.h) of these geometries; nullptr: version-1 pages
  // (core/packed_page.h).
  const FragmentHeadGeometry* fragment = nullptr;
  int num_tokens = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int v_bits = 0;
  // Multiprocessors the launch spreads its CTAs over (the plan's num_sms), so
  // that a launch asks the driver nothing.
  int num_sms = 132;
  // Every K group of this layer's heads is a multiple of 16 dims (set by the
  // plan; true for plans built with k_group_align 16). The kernel then skips
  // the per-coordinate bounds checks of padded groups; false is always safe.
  bool k_groups_whole = false;
  // The device runs sm_90a code (compute capability 9.0: H100, H200; set by
  // the plan, PackedDecodeConfig::wgmma): launches at head_dim 128 past the
  // few-token kernel's then encode K and V with wgmma (encode_wgmma.cuh;
  // TakesWgmmaEncode: launch.h). false keeps them on the mma.sync slab
  // kernel, which any sm_90+ device runs.
  bool wgmma = false;
  // From how many tokens x KV heads the wgmma encode runs
  // (kWgmmaEncodeMinTokenHeads: 0, every size past the few-token kernel's;
  // packed_decode_bench --wgmma-min sets it to measure it).
  int64_t wgmma_min_token_heads = kWgmmaEncodeMinTokenHeads;
  // Launches of at most this many tokens x KV heads take the few-token kernel
  // (TakesFewTokenEncode: launch.h); packed_decode_bench --few-token-max
  // raises it to time that kernel on larger launches.
  int64_t few_token_max_token_heads = kFewTokenEncodeMaxTokenHeads;
};

// What every encode launch requires of p (else cudaErrorInvalidValue): V's
// width, KV heads, a page stride of whole 16-byte units (whole pages are
// written in 16-byte units) and SMs to spread over.
inline bool EncodeParamsValid(const EncodePackParams& p) {
  return p.v_bits >= 1 && p.v_bits <= 8 && p.num_kv_heads > 0 && p.page_stride > 0 &&
         p.page_stride % 16 == 0 && p.num_sms >= 1;
}

// One decode step of one layer: every sequence of the batch, every query head.
struct PackedDecodeParams {
  // Plan-derived.
  const PackedHeadDesc* heads = nullptr;  // [num_kv_heads] of this layer
  const float* rotations = nullptr;
  const CodeTables* tables = nullptr;
  int num_kv_heads = 0;
  int group_size = 0;
  int head_dim = 0;
  int v_bits = 0;
  // Key-axis splits per (sequence, kv_head); at most the plan's max_splits.
  // A balanced fragment step (FragmentProgramOptions::balanced_splits):
  // partial slots per (sequence, kv_head), the most CTAs one sequence's tiles
  // may spread over (FragmentDecodeProgram::SplitsFor).
  int num_splits = 1;
  // A balanced fragment step only: attention CTAs per kv_head, which share the
  // batch's tiles evenly; 0: FragmentDecodeProgram::CtasPerKvHead.
  int fragment_ctas_per_kv_head = 0;
  // Multiprocessors the step's CTAs spread over (the plan's num_sms), so that a
  // launch asks the driver nothing: MergeHeadsPerCta's waves.
  int num_sms = 132;
  // Query heads per merge CTA: 1 or group_size (both give the same bits); 0:
  // MergeHeadsPerCta's choice (launch.h).
  int merge_heads_per_cta = 0;
  int64_t page_stride = 0;
  // Set by a plan built with fragment_pages: its pages are fragment-native,
  // which FragmentDecodeProgram::Step decodes and LaunchPackedDecode refuses.
  const FragmentHeadGeometry* fragment = nullptr;
  // Scratch in the workspace (sized by the plan for max_batch, max_splits).
  float* partial_o = nullptr;   // [batch, num_kv_heads, num_splits + 1, group_size, head_dim]
  float* partial_ml = nullptr;  // [batch, num_kv_heads, num_splits + 1, group_size, 2]

  // Per step.
  int batch = 0;
  const float* q = nullptr;         // [batch, num_kv_heads * group_size, head_dim], post-RoPE
  const uint8_t* pages = nullptr;   // [num_pages, num_kv_heads, page_stride]
  const int* page_table = nullptr;  // [batch, max_pages_per_seq]: page ids in token order
  int max_pages_per_seq = 0;
  const int* packed_len = nullptr;  // [batch]: tokens in pages
  // Optional fp16 sink prefix and recent window (nullptr: none).
  const uint16_t* sink_k = nullptr;  // [batch, num_kv_heads, max_sink, head_dim] fp16
  const uint16_t* sink_v = nullptr;  // same shape
  const int* sink_len = nullptr;     // [batch], each <= max_sink
  int max_sink = 0;
  const uint16_t* recent_k = nullptr;  // [batch, num_kv_heads, max_recent, head_dim] fp16
  const uint16_t* recent_v = nullptr;  // same shape
  const int* recent_len = nullptr;     // [batch], each <= max_recent
  int max_recent = 0;
  float scale = 1.0f;    // logit scale, usually 1/√head_dim
  float* out = nullptr;  // [batch, num_kv_heads * group_size, head_dim] fp32
};

}  // namespace kvplan::kernels

#endif  // KVPLAN_KERNELS_PARAMS_H_
