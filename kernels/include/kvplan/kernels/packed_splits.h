// How a version-1 decode step (LaunchPackedDecode) divides each sequence's
// pages among its attention CTAs: host arithmetic only, so that
// PackedDecodePlan and CPU tests share one definition.
//
// The kernel cuts every sequence into num_splits splits of its own length
// (decode_attention.cuh), so each CTA of a step is busy, and a sequence's
// CTAs are as long as its pages / num_splits. One wave of CTAs
// (kAttentionCtasPerSm per SM) is the fewest CTAs that fill the machine, but
// measured on the H200 it is the right count only for short, even batches
// (NOTES run 28):
//   - long CTAs are slow: at batch 16, 128K tokens, one wave's CTAs of 512
//     pages took 5% longer than CTAs of 128 pages in four waves (9% at 512K);
//   - ragged batches (continuous batching) leave SMs idle in one wave while
//     the longest sequence's CTAs run on; CTAs in several waves fill them
//     (1.3-1.7x at batch 16), as long as the longest sequence's CTAs keep
//     16 pages or more.
// Every count is correct for any lengths; the sizing only decides how fast.
//
// Example:
//   PackedSplitMachine m{.resident_ctas = 528, .kv_heads = 8, .max_splits = 66};
//   int splits = PackedPairSplits(PagesOf(lengths), m);
#ifndef KVPLAN_KERNELS_PACKED_SPLITS_H_
#define KVPLAN_KERNELS_PACKED_SPLITS_H_

#include <cstdint>

#include "absl/types/span.h"

namespace kvplan::kernels {

// What the sizing depends on besides the batch.
struct PackedSplitMachine {
  // Attention CTAs the device holds at once (one wave).
  int resident_ctas = 1;
  int kv_heads = 1;
  // The decode plan's max_splits (the partial slots its scratch holds).
  int max_splits = 1;
};

// A batch counted in units of a fixed number of tokens (pages here, 16-token
// tiles for the fragment path's sizing, fragment_splits.h): how many
// sequences, the longest one's units and all of them.
struct BatchUnits {
  int batch = 0;
  int64_t longest = 0;
  int64_t total = 0;
};

// The units of `unit_tokens` tokens that sequences of `lengths` tokens take
// (negative lengths count as 0).
BatchUnits UnitsOf(absl::Span<const int> lengths, int unit_tokens);
// The 64-token pages of sequences of `lengths` packed tokens.
BatchUnits PagesOf(absl::Span<const int> lengths);

// Splits for a batch of these pages, in [1, max_splits]: the most CTAs that
// fit one wave with at least 4 pages each; raised until the longest
// sequence's CTAs hold at most 128 pages; for a ragged batch (its longest
// sequence over 1.1x the mean), raised up to four waves while the longest
// sequence's CTAs keep at least 16 pages.
int PackedPairSplits(const BatchUnits& pages, const PackedSplitMachine& machine);

}  // namespace kvplan::kernels

#endif  // KVPLAN_KERNELS_PACKED_SPLITS_H_
