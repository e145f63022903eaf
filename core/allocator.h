// Bit allocation across the RoPE blocks of one (layer, KV head).
//
// Minimizes the separable, convex distortion D(b) = Σ_i s_i·4^(−b_i) subject to
// Σ_i b_i = ⌊L·b̄⌋ and min_bits ≤ b_i ≤ max_bits, where b_i is bits per coordinate
// (a 2-D block spends 2·b_i bits). Greedy marginal gain is exactly optimal for
// such objectives; ties go to the lowest block index, as in the paper's code.
//
// Example:
//   AllocationOptions options{.avg_bits = 3.0};
//   absl::StatusOr<std::vector<int>> bits = GreedyAllocate(scores, options);
//   // e.g. {4, 4, 3, ..., 2}, summing to ⌊L·3⌋.
#ifndef KVPLAN_CORE_ALLOCATOR_H_
#define KVPLAN_CORE_ALLOCATOR_H_

#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace kvplan {

// Bits per coordinate a block may take.
inline constexpr int kMinSupportedBits = 1;
inline constexpr int kMaxSupportedBits = 8;

struct AllocationOptions {
  // Average bits per dimension b̄; fractional budgets (2.5) are allowed. Must lie in
  // [min_bits, max_bits]. Default: 3.
  double avg_bits = 3.0;
  // Fewest bits any block gets. Range [1, 8]. Default: 1.
  int min_bits = 1;
  // Most bits any block gets. Range [min_bits, 8]. Default: 8.
  int max_bits = 8;
};

// OK when `options` is usable for `num_blocks` blocks; otherwise names the bad value.
absl::Status ValidateAllocationOptions(const AllocationOptions& options, int num_blocks);

// Total bits per coordinate-pair budget: ⌊num_blocks·avg_bits⌋, robust to the
// representation error of decimal budgets (2.3·10 is 23, not 22).
int BitBudget(int num_blocks, double avg_bits);

// Greedy allocation for one head; O(budget·log L). Scores must be finite and >= 0.
absl::StatusOr<std::vector<int>> GreedyAllocate(absl::Span<const double> scores,
                                                const AllocationOptions& options);

// The same for several budgets at once (`avg_bits` each; `options.avg_bits` is
// ignored). Greedy allocations nest as the budget grows, so this runs the greedy
// once to the largest budget: the cost of one allocation, not of len(avg_bits).
// Result i is the allocation for avg_bits[i].
absl::StatusOr<std::vector<std::vector<int>>> GreedyAllocateBudgets(
    absl::Span<const double> scores, absl::Span<const double> avg_bits,
    const AllocationOptions& options);

// Most units of group_blocks blocks per head GroupAlignedAllocate searches:
// its multisets grow as C(units + 7, 7), 245,157 at 16 (a few ms per head).
inline constexpr int kMaxAlignedUnits = 16;

// The least-distortion allocation in which every width is held by a multiple
// of `group_blocks` blocks, spending at most ⌊L·b̄⌋ bits (the greedy's budget;
// alignment may leave some unspent). So every width group of the K layout is a
// multiple of 2·group_blocks dims: with group_blocks = 8, whole 16-dim MMA
// slices of the decode kernel, which then decodes no padding. Exact: it tries
// every multiset of widths in [min_bits, max_bits] (at most kMaxAlignedUnits
// units of group_blocks blocks) and gives widths to blocks in score order,
// which is optimal for a fixed multiset (ties to the lower block).
// InvalidArgument when group_blocks does not divide the number of blocks or the
// head has more than kMaxAlignedUnits units; the options' errors otherwise.
absl::StatusOr<std::vector<int>> GroupAlignedAllocate(absl::Span<const double> scores,
                                                      const AllocationOptions& options,
                                                      int group_blocks);

// Checks a K width-group alignment in dims for heads of `head_dim` dims, the
// `k_group_align` option of plans and what-ifs (0: off, the greedy). OK for 0
// or an even divisor of head_dim that leaves at most kMaxAlignedUnits groups,
// which GroupAlignedAllocate(scores, options, k_group_align / 2) then accepts.
// OutOfRange for a negative value; InvalidArgument otherwise. Both name the
// value, head_dim and the values that would do, e.g. "k_group_align 12 does not
// split head_dim 64 into whole groups of an even number of dims (...); use 0
// (off) or one of 4, 8, 16, 32, 64".
absl::Status ValidateKGroupAlign(int k_group_align, int head_dim);

// The baseline: every block at ⌊b̄⌋, the bits a fractional budget leaves over go
// one each to the lowest-index blocks.
absl::StatusOr<std::vector<int>> UniformAllocate(int num_blocks, const AllocationOptions& options);

// D(b) = Σ_i s_i·4^(−b_i), the objective the allocator minimizes.
double AllocationDistortion(absl::Span<const double> scores, absl::Span<const int> bits);

}  // namespace kvplan

#endif  // KVPLAN_CORE_ALLOCATOR_H_
