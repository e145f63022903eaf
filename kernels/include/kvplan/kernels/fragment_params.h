// Parameters of the fragment-page attention kernels (fragment_decode.cuh),
// plain data shared by the generated device code and the host step
// (FragmentDecodeProgram::Step, which fills them from a PackedDecodeParams).
// Every pointer is a device pointer.
//
// Example (what Step does, after the prologue has written q̂):
//   FragmentDecodeParams p;
//   p.q_rot = q_hat; p.pages = pool; p.page_table = table; p.len = lens; ...
//   void* args[] = {&p};
//   cudaLaunchKernelExC(OverlappingLaunch(dim3(p.num_splits, p.kv_heads, batch), ...).config(),
//                       program.attention(layer), args);
//
// Balanced splits (FragmentProgramOptions::balanced_splits): the grid is
// (CTAs per KV head, kv_heads) instead. Per KV head, the 16-token tiles of all
// sequences, in batch order, form one range of `total` tiles, cut into chunks
// of FragmentChunkTiles tiles; CTA c of the head takes chunk c. So every CTA
// has the same work whatever the sequence lengths (per-pair splits are all
// one length: in a ragged batch the short sequences' CTAs finish early), a
// sequence's tiles may spread over consecutive CTAs and a CTA's over
// consecutive sequences. CTA c writes its part of sequence b into partial
// slot c - start_b / chunk (start_b: b's first tile in the range); the chunk
// is long enough that no sequence spans more than num_splits slots, and the
// CTA holding start_b fills b's unused slots with empty partials, so the merge
// reads all num_splits.
#ifndef KVPLAN_KERNELS_FRAGMENT_PARAMS_H_
#define KVPLAN_KERNELS_FRAGMENT_PARAMS_H_

#include <cstdint>

#include "kvplan/kernels/host_device.h"

namespace kvplan::kernels {

// Query rows the kernel reserves per KV head (the MMA's N): group sizes 1..8.
inline constexpr int kFragmentQueryRows = 8;
// Dynamic shared memory of an attention CTA: the code tables
// (fragment_tables.h, 20416 bytes) and the slack that aligns them to 8 KB.
inline constexpr int kFragmentDynamicSmem = 20416 + 8192;

// The most 16-token tiles of one KV head over a balanced step's batch: the
// kernel counts them in 32 bits.
inline constexpr int kMaxFragmentRangeTiles = 1 << 30;

struct FragmentDecodeParams {
  // [batch, kv_heads, kFragmentQueryRows, head_dim] fp16: q̂ per K group,
  // R_g·q_g · scale·log2(e)/√d_g in the K layout's permuted order; rows past
  // the group size are ignored.
  const uint16_t* q_rot = nullptr;
  const uint8_t* pages = nullptr;    // [num_pages, kv_heads, page_stride]
  const int* page_table = nullptr;   // [batch, max_pages]: page ids in token order
  const int* len = nullptr;          // [batch]: tokens in pages
  const uint32_t* tables = nullptr;  // FragmentTableImage(), uploaded once
  int64_t page_stride = 0;           // bytes per (page, kv_head): the layer's largest page
  int max_pages = 0;
  int kv_heads = 0;
  int group_size = 1;  // query rows written per KV head, 1..kFragmentQueryRows
  int num_splits = 1;  // key-axis splits (balanced: partial slots) per (sequence, kv_head)
  // LaunchPackedDecode's scratch layout: split s writes slot s; slot num_splits
  // is the fp16 sink + recent part's (LaunchFragmentPrologue).
  float* partial_o = nullptr;   // [batch, kv_heads, num_splits + 1, group_size, head_dim]
  float* partial_ml = nullptr;  // [batch, kv_heads, num_splits + 1, group_size, 2]: (m, l)
  int batch = 0;                // read by balanced splits only
};

// Per-pair splits: tiles per split, the page table's `table_tiles` (max_pages
// pages of 4 tiles) cut num_splits ways, so that the splits cover every
// length the table holds: a CUDA graph captured with any split count stays
// correct when the lengths change between replays. Splits past a sequence's
// end have no work (the kernel writes their empty partial and leaves).
KVPLAN_HOST_DEVICE constexpr int FragmentSplitTiles(int table_tiles, int num_splits) {
  const int splits = num_splits > 1 ? num_splits : 1;
  const int tiles = (table_tiles + splits - 1) / splits;
  return tiles > 1 ? tiles : 1;
}

// Balanced splits: tiles per chunk for `ctas` CTAs per KV head over `total`
// tiles whose longest sequence has `longest`: an even share, raised where
// needed so that a sequence spans at most `slots` chunks; with one slot, one
// chunk for all.
KVPLAN_HOST_DEVICE constexpr int FragmentChunkTiles(int total, int longest, int ctas, int slots) {
  const int even = slots < 2 ? total : (total + ctas - 1) / ctas;
  const int bounded = slots < 2 ? 1 : (longest + slots - 2) / (slots - 1);
  const int chunk = even > bounded ? even : bounded;
  return chunk > 1 ? chunk : 1;
}

// The slots (chunks) a sequence of `tiles` tiles from range tile `start` spans.
KVPLAN_HOST_DEVICE constexpr int FragmentSlotsSpanned(int start, int tiles, int chunk) {
  return tiles > 0 ? (start + tiles - 1) / chunk - start / chunk + 1 : 0;
}

// CTA c's chunk [begin, end) of a range of `total` tiles (empty past it).
KVPLAN_HOST_DEVICE constexpr int FragmentChunkBegin(int c, int chunk, int total) {
  const long long begin = static_cast<long long>(c) * chunk;
  return static_cast<int>(begin < total ? begin : total);
}
KVPLAN_HOST_DEVICE constexpr int FragmentChunkEnd(int begin, int chunk, int total) {
  return begin + chunk < total ? begin + chunk : total;
}

// The CTA that owns the sequence whose first tile is range tile `start` and
// writes its unused slots: the one whose chunk holds that tile, or the last
// CTA for a trailing empty sequence past every chunk.
KVPLAN_HOST_DEVICE constexpr int FragmentChunkOwner(int start, int chunk, int ctas) {
  return start / chunk < ctas - 1 ? start / chunk : ctas - 1;
}

// Whether a chunk [begin, end) holds tiles of the sequence of `tiles` tiles
// from range tile `start`. A CTA has work for the sequences its chunk holds
// tiles of and those it owns (FragmentChunkOwner): consecutive sequences.
KVPLAN_HOST_DEVICE constexpr bool FragmentChunkHolds(int begin, int end, int start, int tiles) {
  return tiles > 0 && start < end && start + tiles > begin;
}

}  // namespace kvplan::kernels

#endif  // KVPLAN_KERNELS_FRAGMENT_PARAMS_H_
