// How a fragment decode step (fragment_decode_program.h) divides each KV
// head's key axis among its attention CTAs: host arithmetic only, so that
// FragmentDecodeProgram (after Load, which measures the machine) and CPU
// tests share one definition.
//
// Two sizings of the per-pair splits, which the kernel cuts from the page
// table's width (FragmentSplitTiles, fragment_params.h). Uniform: every
// sequence as long as the longest, in a table as wide (SplitsFor, from a
// batch size and a token count). Fitted: from the lengths themselves, which
// a serving scheduler knows on the host, and the table's width
// (SplitsForLengths). They agree on uniform batches in tables of their
// width. They differ where uniform splits leave CTAs idle:
//   - ragged batches (continuous batching): the short sequences' splits end
//     early while the longest one's run on; more, shorter splits put those
//     SMs to work;
//   - page tables wider than the sequences (a table sized for the longest
//     context served): splits past a sequence's end are empty.
// Every split count is correct for any lengths the table holds; the sizing
// only decides how fast. So a CUDA graph captured with a fitted shape stays
// correct when the lengths change under it.
//
// Example:
//   FragmentSplitMachine m{.resident_ctas = 264, .kv_heads = 8, .warps = 8, .max_splits = 66};
//   int splits = FittedPairSplits(lengths, /*max_pages_per_seq=*/512, m);
#ifndef KVPLAN_KERNELS_FRAGMENT_SPLITS_H_
#define KVPLAN_KERNELS_FRAGMENT_SPLITS_H_

#include <cstdint>

#include "absl/types/span.h"
#include "core/fragment_geometry.h"  // kFragmentTileTokens

namespace kvplan::kernels {

// The 16-token tiles `tokens` tokens take (0 for none or fewer).
inline constexpr int64_t FragmentTilesOf(int64_t tokens) {
  return tokens > 0 ? (tokens + kFragmentTileTokens - 1) / kFragmentTileTokens : 0;
}

// What the sizing depends on besides the batch.
struct FragmentSplitMachine {
  // Attention CTAs the device holds at once (one wave).
  int resident_ctas = 1;
  int kv_heads = 1;
  // Warps per attention CTA.
  int warps = 8;
  // The decode plan's max_splits (the partial slots its scratch holds).
  int max_splits = 1;
};

// A step's shape: PackedDecodeParams::num_splits and, for balanced splits,
// fragment_ctas_per_kv_head (0 for per-pair splits).
struct FragmentSplits {
  int num_splits = 1;
  int ctas_per_kv_head = 0;
};

// Per-pair splits for `batch` sequences of `max_tokens`: the most that keep
// one wave of resident CTAs, with at least 8 tiles per warp (shorter splits
// cost more in prologue and merge than they win: NOTES run 18). Not capped by
// max_splits (the decode plan caps it).
int UniformPairSplits(int batch, int max_tokens, const FragmentSplitMachine& machine);

// Per-pair splits for sequences of `lengths` tokens in a page table of
// `max_pages_per_seq` pages (at most max_splits, each at least 8 tiles per
// warp): the most whose non-empty CTAs fit one wave; where that wave is
// unbalanced (its longest split over 1.1x its CTAs' mean work: a ragged
// batch), more and shorter splits in several waves when an estimate of the
// step says they are faster (splits of at least 64 tiles per warp; NOTES run
// 27); then the fewest giving the same work per CTA (the split length, capped
// at the longest sequence: short sequences in a wide table take one split).
// On a uniform batch in a table as wide as its sequences, the split length
// is UniformPairSplits'. Costs O(max_splits · lengths) on the host: once per
// step, not per layer.
int FittedPairSplits(absl::Span<const int> lengths, int max_pages_per_seq,
                     const FragmentSplitMachine& machine);

// Balanced splits over `total_tiles` tiles of one KV head: one wave of
// resident CTAs, at most one per 8 tiles per warp.
int BalancedCtasPerKvHead(int64_t total_tiles, const FragmentSplitMachine& machine);

// Balanced splits: the partial slots for which FragmentChunkTiles
// (fragment_params.h) is the even share of `total_tiles` over `ctas`, where
// the longest sequence has `longest_tiles`.
int BalancedSlots(int64_t total_tiles, int64_t longest_tiles, int ctas);

// Balanced splits fitted to `lengths`: CTAs from their tiles, slots for an
// even share (capped at max_splits: the share then grows, still correct).
FragmentSplits FittedBalancedSplits(absl::Span<const int> lengths,
                                    const FragmentSplitMachine& machine);

}  // namespace kvplan::kernels

#endif  // KVPLAN_KERNELS_FRAGMENT_SPLITS_H_
