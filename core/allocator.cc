#include "core/allocator.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace kvplan {
namespace {

// 4^(−b) for b in [0, 8]: powers of two, so s·kQuarterPow[b] is exactly s scaled
// by 2^(−2b) (the same bits ldexp would give, several times cheaper) and gain
// comparisons match any implementation of the paper's rule.
constexpr double kQuarterPow[kMaxSupportedBits + 1] = {
    1.0,          0.25,           0.0625,           0.015625,          0.00390625,
    0.0009765625, 0.000244140625, 0.00006103515625, 0.0000152587890625};

// A block's next marginal gain, s_i·4^(−b_i).
struct Candidate {
  double gain;
  int block;
};

// Heap order: larger gain first, then lower block index (the paper's tie rule).
bool Before(const Candidate& a, const Candidate& b) {
  return a.gain > b.gain || (a.gain == b.gain && a.block < b.block);
}

// Restores the heap property below `pos` after the top changed (one sift-down,
// cheaper than pop + push).
void SiftDown(std::vector<Candidate>& heap, size_t pos) {
  const size_t n = heap.size();
  const Candidate moving = heap[pos];
  while (true) {
    size_t child = 2 * pos + 1;
    if (child >= n) break;
    if (child + 1 < n && Before(heap[child + 1], heap[child])) ++child;
    if (!Before(heap[child], moving)) break;
    heap[pos] = heap[child];
    pos = child;
  }
  heap[pos] = moving;
}

absl::Status ValidateScores(absl::Span<const double> scores) {
  if (scores.empty()) {
    return absl::InvalidArgumentError("score list is empty; a head needs at least one RoPE block");
  }
  for (size_t i = 0; i < scores.size(); ++i) {
    if (!std::isfinite(scores[i]) || scores[i] < 0.0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("score of block %d is %g; scores must be finite and >= 0", i, scores[i]));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateAllocationOptions(const AllocationOptions& options, int num_blocks) {
  if (num_blocks <= 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("a head needs at least one RoPE block, got %d", num_blocks));
  }
  if (options.min_bits < kMinSupportedBits || options.max_bits > kMaxSupportedBits ||
      options.min_bits > options.max_bits) {
    return absl::InvalidArgumentError(
        absl::StrFormat("bit range [%d, %d] is invalid; need %d <= min_bits <= max_bits <= %d",
                        options.min_bits, options.max_bits, kMinSupportedBits, kMaxSupportedBits));
  }
  if (!std::isfinite(options.avg_bits) || options.avg_bits < options.min_bits ||
      options.avg_bits > options.max_bits) {
    return absl::OutOfRangeError(absl::StrFormat(
        "budget %g bits/dim is outside [min_bits=%d, max_bits=%d]; pick a budget in that range "
        "or widen it with --min-bits/--max-bits",
        options.avg_bits, options.min_bits, options.max_bits));
  }
  return absl::OkStatus();
}

int BitBudget(int num_blocks, double avg_bits) {
  // 1e-9 absorbs decimal representation error (0.29·100 = 28.999999999999996)
  // without moving any budget a person could mean.
  return static_cast<int>(std::floor(num_blocks * avg_bits + 1e-9));
}

absl::StatusOr<std::vector<std::vector<int>>> GreedyAllocateBudgets(
    absl::Span<const double> scores, absl::Span<const double> avg_bits,
    const AllocationOptions& options) {
  if (absl::Status st = ValidateScores(scores); !st.ok()) return st;
  const int num_blocks = static_cast<int>(scores.size());
  std::vector<int> budgets(avg_bits.size());
  for (size_t i = 0; i < avg_bits.size(); ++i) {
    AllocationOptions one = options;
    one.avg_bits = avg_bits[i];
    if (absl::Status st = ValidateAllocationOptions(one, num_blocks); !st.ok()) return st;
    budgets[i] = BitBudget(num_blocks, avg_bits[i]);
  }
  std::vector<size_t> order(budgets.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return budgets[a] < budgets[b]; });

  std::vector<int> bits(num_blocks, options.min_bits);
  std::vector<Candidate> heap;
  heap.reserve(num_blocks);
  if (options.max_bits > options.min_bits) {
    for (int i = 0; i < num_blocks; ++i) {
      heap.push_back({scores[i] * kQuarterPow[options.min_bits], i});
    }
    std::make_heap(heap.begin(), heap.end(),
                   [](const Candidate& a, const Candidate& b) { return Before(b, a); });
  }

  std::vector<std::vector<int>> result(budgets.size());
  int spent = num_blocks * options.min_bits;
  for (size_t index : order) {
    // The budget was validated against [min, max], so the heap cannot run dry first.
    while (spent < budgets[index]) {
      const int block = heap.front().block;
      ++bits[block];
      ++spent;
      if (bits[block] == options.max_bits) {
        heap.front() = heap.back();
        heap.pop_back();
      } else {
        heap.front().gain = scores[block] * kQuarterPow[bits[block]];
      }
      if (!heap.empty()) SiftDown(heap, 0);
    }
    result[index] = bits;
  }
  return result;
}

absl::StatusOr<std::vector<int>> GreedyAllocate(absl::Span<const double> scores,
                                                const AllocationOptions& options) {
  absl::StatusOr<std::vector<std::vector<int>>> all =
      GreedyAllocateBudgets(scores, {options.avg_bits}, options);
  if (!all.ok()) return all.status();
  return std::move(all->front());
}

absl::StatusOr<std::vector<int>> GroupAlignedAllocate(absl::Span<const double> scores,
                                                      const AllocationOptions& options,
                                                      int group_blocks) {
  if (absl::Status st = ValidateScores(scores); !st.ok()) return st;
  const int num_blocks = static_cast<int>(scores.size());
  if (absl::Status st = ValidateAllocationOptions(options, num_blocks); !st.ok()) return st;
  if (group_blocks < 1 || num_blocks % group_blocks != 0 ||
      num_blocks / group_blocks > kMaxAlignedUnits) {
    return absl::InvalidArgumentError(
        absl::StrFormat("group of %d blocks does not split %d blocks into at most %d whole groups",
                        group_blocks, num_blocks, kMaxAlignedUnits));
  }
  const int units = num_blocks / group_blocks;
  const int budget = BitBudget(num_blocks, options.avg_bits);
  // Blocks by score, highest first (ties: lower block first): the widest
  // widths go to them.
  std::vector<int> order(num_blocks);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return scores[a] > scores[b]; });
  std::vector<int> count(kMaxSupportedBits + 1, 0), bits(num_blocks), best;
  double best_distortion = std::numeric_limits<double>::infinity();
  // Units per width from max_bits down; `left` units still to place.
  auto search = [&](auto& self, int width, int left, int spent) -> void {
    if (width < options.min_bits) {
      if (left != 0) return;
      int next = 0;
      for (int w = options.max_bits; w >= options.min_bits; --w) {
        for (int i = 0; i < count[w] * group_blocks; ++i) bits[order[next++]] = w;
      }
      const double d = AllocationDistortion(scores, bits);
      if (d < best_distortion) {
        best_distortion = d;
        best = bits;
      }
      return;
    }
    for (int u = width == options.min_bits ? left : 0; u <= left; ++u) {
      const int with = spent + u * group_blocks * width;
      // The units left after this width take at least min_bits each.
      if (with + (left - u) * group_blocks * options.min_bits > budget) break;
      count[width] = u;
      self(self, width - 1, left - u, with);
    }
    count[width] = 0;
  };
  // Every block at min_bits always fits (the budget is at least L·min_bits).
  search(search, options.max_bits, units, 0);
  return best;
}

absl::Status ValidateKGroupAlign(int k_group_align, int head_dim) {
  if (k_group_align == 0) return absl::OkStatus();
  // The alignments that would do: even divisors leaving few enough groups
  // (head_dim itself always does).
  std::vector<int> usable;
  for (int d = 2; d <= head_dim; d += 2) {
    if (head_dim % d == 0 && head_dim / d <= kMaxAlignedUnits) usable.push_back(d);
  }
  const std::string usable_list = absl::StrJoin(usable, ", ");
  if (k_group_align < 0) {
    return absl::OutOfRangeError(absl::StrFormat(
        "k_group_align %d is negative; it counts dims per K width group: use 0 (off) or, for "
        "head_dim %d, one of %s",
        k_group_align, head_dim, usable_list));
  }
  if (k_group_align % 2 != 0 || head_dim % k_group_align != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "k_group_align %d does not split head_dim %d into whole groups of an even number of dims "
        "(RoPE blocks are 2 dims); use 0 (off) or one of %s",
        k_group_align, head_dim, usable_list));
  }
  if (head_dim / k_group_align > kMaxAlignedUnits) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "k_group_align %d splits head_dim %d into %d groups, more than the %d the exact aligned "
        "allocation searches; use a coarser alignment (one of %s) or 0 (off)",
        k_group_align, head_dim, head_dim / k_group_align, kMaxAlignedUnits, usable_list));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int>> UniformAllocate(int num_blocks, const AllocationOptions& options) {
  if (absl::Status st = ValidateAllocationOptions(options, num_blocks); !st.ok()) return st;
  const int budget = BitBudget(num_blocks, options.avg_bits);
  const int base = budget / num_blocks;
  std::vector<int> bits(num_blocks, base);
  for (int i = 0; i < budget - base * num_blocks; ++i) ++bits[i];
  return bits;
}

double AllocationDistortion(absl::Span<const double> scores, absl::Span<const int> bits) {
  double total = 0.0;
  for (size_t i = 0; i < scores.size() && i < bits.size(); ++i) {
    const int b = bits[i];
    total += b >= 0 && b <= kMaxSupportedBits ? scores[i] * kQuarterPow[b]
                                              : std::ldexp(scores[i], -2 * b);
  }
  return total;
}

}  // namespace kvplan
