// Budget what-if arithmetic: what a K/V bit budget costs and buys, without
// storing anything.
//
// For each (K budget, V budget) pair it allocates every head's blocks from the
// statistics, then reports the allocation per layer (bit histogram, entropy,
// predicted distortion against uniform TQ-MSE at the same budget) and the memory
// side: K and V bytes per token per KV head in the packed layout (codes plus fp16
// norms), compression against fp16 and fp8 caches, KV memory at a context length
// and batch, and the longest context that fits a memory size.
//
// Example:
//   WhatIfRequest request{.k_bits = {2, 3}, .v_bits = {2, 3}, .context_tokens = 131072};
//   absl::StatusOr<std::vector<WhatIfResult>> rows = RunWhatIf(table, request);
//   // rows->at(0): K2V2 ... compression_vs_fp16 ≈ 7.1 for hd 128
#ifndef KVPLAN_CORE_WHATIF_H_
#define KVPLAN_CORE_WHATIF_H_

#include <array>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/allocator.h"
#include "core/energy_table.h"
#include "core/score.h"

namespace kvplan {

// Bytes one token occupies in the packed cache of one KV head: a packed page
// (core/packed_page.h) over its kPageTokens slots. Codes are dense at every
// width, so a token can cost a fraction of a byte (a 2-dim block at 3 bits is
// 0.75 B); every part of a page is a whole number of 16-byte units for even
// head dims, so there is no padding to add.
struct KvTokenBytes {
  double k_codes = 0;  // K code streams, one per distinct width.
  double k_norms = 0;  // One fp16 norm per K group.
  double v_codes = 0;
  double v_norms = 0;  // V is one group: one fp16 norm.
  double k() const { return k_codes + k_norms; }
  double v() const { return v_codes + v_norms; }
  double total() const { return k() + v(); }
};

// Packed bytes for a head whose K blocks have `k_block_bits` (head_dim = 2·blocks)
// and whose V is uniform at `v_bits`; equal to PackedPageLayout::bytes_per_token
// of that head's layout (tested).
KvTokenBytes TokenBytesForHead(absl::Span<const int> k_block_bits, int v_bits);

struct WhatIfRequest {
  // K budgets, average bits per dimension (fractional allowed), each in [min_bits, max_bits].
  std::vector<double> k_bits;
  // V budgets, whole bits per dimension in [1, 8].
  std::vector<int> v_bits;
  // Score used to allocate K. Default: the paper's sum.
  ScoreKind score = ScoreKind::kSum;
  int min_bits = 1;
  int max_bits = 8;
  // Dims per K width-group unit, as PlanOptions::k_group_align: each K budget
  // is allocated with GroupAlignedAllocate (a few ms per head and budget at 16
  // units) instead of the greedy, so the rows show the aligned allocation's
  // bytes (fewer groups, fewer norms, maybe bits unspent) and distortion.
  // 0 (off), or as ValidateKGroupAlign accepts for the table's head_dim.
  // Default: 0.
  int k_group_align = 0;
  // Context length (tokens per sequence) and batch for the KV memory figure.
  int64_t context_tokens = 131072;
  int64_t batch = 1;
  // Memory to size the longest context against, in bytes; 0 skips that figure.
  int64_t memory_bytes = 0;
};

struct LayerAllocationSummary {
  int layer = 0;
  // Blocks at each width 0..8, summed over the layer's KV heads.
  std::array<int64_t, 9> bit_histogram{};
  // Shannon entropy of the histogram, in bits: 0 when every block has one width.
  double entropy_bits = 0.0;
  // Σ s_i·4^(−b_i) over the layer's heads for the greedy (or aligned) and the
  // uniform allocation.
  double distortion = 0.0;
  double uniform_distortion = 0.0;
};

struct WhatIfResult {
  double k_bits = 0.0;
  int v_bits = 0;
  std::vector<LayerAllocationSummary> layers;
  // Mean over KV heads of the packed bytes per token per KV head.
  double k_bytes_per_token_head = 0.0;
  double v_bytes_per_token_head = 0.0;
  // Whole model: Σ over layers and KV heads, per token (a multiple of 1/64:
  // pages hold 64 tokens).
  double bytes_per_token = 0.0;
  // fp16 K+V (4·hd bytes per head) and fp8 (2·hd) over the packed bytes.
  double compression_vs_fp16 = 0.0;
  double compression_vs_fp8 = 0.0;
  // What batch sequences of context_tokens occupy: whole pages, so a partial
  // last page counts in full.
  int64_t kv_bytes_at_context = 0;
  // Longest context per sequence that fits memory_bytes at this batch, in whole
  // pages (a multiple of 64); 0 if not asked.
  int64_t max_context_tokens = 0;
  // Predicted distortion of the greedy (or aligned) allocation over uniform
  // TQ-MSE's (< 1 is better).
  double distortion_ratio = 0.0;
};

// One result per (k_bits, v_bits) pair, K-major. Errors name the bad budget or head.
absl::StatusOr<std::vector<WhatIfResult>> RunWhatIf(const EnergyTable& table,
                                                    const WhatIfRequest& request);

}  // namespace kvplan

#endif  // KVPLAN_CORE_WHATIF_H_
