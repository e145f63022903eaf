#include "core/allocator.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "gtest/gtest.h"

namespace kvplan {
namespace {

int Sum(const std::vector<int>& v) { return std::accumulate(v.begin(), v.end(), 0); }

TEST(AllocatorTest, SpendsExactlyTheFlooredBudget) {
  const std::vector<double> scores = {5.0, 1.0, 0.5, 3.0, 2.0, 0.1, 9.0, 4.0};
  for (double avg : {1.0, 1.5, 2.0, 2.5, 3.0, 3.3, 4.0, 7.9, 8.0}) {
    absl::StatusOr<std::vector<int>> bits = GreedyAllocate(scores, {.avg_bits = avg});
    ASSERT_TRUE(bits.ok()) << bits.status();
    EXPECT_EQ(Sum(*bits), BitBudget(8, avg)) << "avg " << avg;
    for (int b : *bits) {
      EXPECT_GE(b, 1);
      EXPECT_LE(b, 8);
    }
  }
}

TEST(AllocatorTest, BudgetRoundsDecimalsAsAPersonMeansThem) {
  EXPECT_EQ(BitBudget(100, 0.29), 29);
  EXPECT_EQ(BitBudget(10, 2.3), 23);
  EXPECT_EQ(BitBudget(32, 2.5), 80);
  EXPECT_EQ(BitBudget(3, 2.5), 7);
}

TEST(AllocatorTest, TiesGoToLowestBlock) {
  const std::vector<double> equal(6, 1.0);
  absl::StatusOr<std::vector<int>> bits = GreedyAllocate(equal, {.avg_bits = 2.5});
  ASSERT_TRUE(bits.ok());
  EXPECT_EQ(*bits, (std::vector<int>{3, 3, 3, 2, 2, 2}));

  // All-zero scores: every gain ties, so block 0 fills to the cap first.
  const std::vector<double> zeros(4, 0.0);
  bits = GreedyAllocate(zeros, {.avg_bits = 2.0, .min_bits = 1, .max_bits = 3});
  ASSERT_TRUE(bits.ok());
  EXPECT_EQ(*bits, (std::vector<int>{3, 3, 1, 1}));
}

TEST(AllocatorTest, RespectsMinAndMaxBits) {
  const std::vector<double> scores = {1e6, 1.0, 1.0, 1.0};
  absl::StatusOr<std::vector<int>> bits =
      GreedyAllocate(scores, {.avg_bits = 3.0, .min_bits = 2, .max_bits = 5});
  ASSERT_TRUE(bits.ok());
  EXPECT_EQ((*bits)[0], 5);
  for (int b : *bits) EXPECT_GE(b, 2);
  EXPECT_EQ(Sum(*bits), 12);
}

TEST(AllocatorTest, FullBudgetFillsEveryBlockToMax) {
  absl::StatusOr<std::vector<int>> bits =
      GreedyAllocate(std::vector<double>{1.0, 2.0, 3.0}, {.avg_bits = 8.0});
  ASSERT_TRUE(bits.ok());
  EXPECT_EQ(*bits, (std::vector<int>{8, 8, 8}));
}

// Calls visit(bits) for every allocation of n blocks in [min_bits, max_bits].
template <typename Visit>
void ForEachAllocation(int n, int min_bits, int max_bits, Visit visit) {
  std::vector<int> bits(n, min_bits);
  while (true) {
    visit(bits);
    int i = 0;
    while (i < n && bits[i] == max_bits) bits[i++] = min_bits;
    if (i == n) return;
    ++bits[i];
  }
}

// The least distortion of any allocation that spends exactly the budget.
double ExhaustiveOptimum(const std::vector<double>& scores, int budget, int min_bits,
                         int max_bits) {
  double best = std::numeric_limits<double>::infinity();
  ForEachAllocation(static_cast<int>(scores.size()), min_bits, max_bits,
                    [&](const std::vector<int>& bits) {
                      if (Sum(bits) == budget) {
                        best = std::min(best, AllocationDistortion(scores, bits));
                      }
                    });
  return best;
}

TEST(AllocatorTest, GreedyIsOptimalAgainstExhaustiveSearch) {
  std::mt19937_64 rng(20261129);
  std::lognormal_distribution<double> score(0.0, 2.0);
  std::uniform_int_distribution<int> blocks(1, 6);
  for (int trial = 0; trial < 300; ++trial) {
    const int n = blocks(rng);
    std::vector<double> scores(n);
    for (double& s : scores) s = score(rng);
    if (trial % 7 == 0) scores[0] = scores[n - 1];  // Exercise ties.
    const int min_bits = 1 + trial % 2;
    const int max_bits = min_bits + 1 + trial % 4;
    for (int budget = n * min_bits; budget <= n * max_bits; ++budget) {
      const double avg = static_cast<double>(budget) / n;
      absl::StatusOr<std::vector<int>> bits =
          GreedyAllocate(scores, {.avg_bits = avg, .min_bits = min_bits, .max_bits = max_bits});
      ASSERT_TRUE(bits.ok()) << bits.status();
      ASSERT_EQ(Sum(*bits), budget);
      const double optimum = ExhaustiveOptimum(scores, budget, min_bits, max_bits);
      EXPECT_LE(AllocationDistortion(scores, *bits), optimum * (1 + 1e-12))
          << "trial " << trial << " budget " << budget;
    }
  }
}

// The least distortion of any allocation whose widths each cover a multiple
// of `group` blocks and that spends at most the budget.
double ExhaustiveAlignedOptimum(const std::vector<double>& scores, int budget, int min_bits,
                                int max_bits, int group) {
  double best = std::numeric_limits<double>::infinity();
  ForEachAllocation(
      static_cast<int>(scores.size()), min_bits, max_bits, [&](const std::vector<int>& bits) {
        std::vector<int> count(kMaxSupportedBits + 1, 0);
        for (int b : bits) ++count[b];
        const bool aligned =
            std::all_of(count.begin(), count.end(), [&](int c) { return c % group == 0; });
        if (aligned && Sum(bits) <= budget) {
          best = std::min(best, AllocationDistortion(scores, bits));
        }
      });
  return best;
}

TEST(AllocatorTest, GroupAlignedIsOptimalAgainstExhaustiveSearch) {
  std::mt19937_64 rng(7);
  std::lognormal_distribution<double> score(0.0, 2.0);
  for (int trial = 0; trial < 60; ++trial) {
    const int group = 1 + trial % 3;  // 1, 2 or 3 blocks
    const int n = group * (1 + trial % 2 + (group == 1 ? 2 : 0));
    std::vector<double> scores(n);
    for (double& s : scores) s = score(rng);
    const int min_bits = 1 + trial % 2, max_bits = min_bits + 2 + trial % 3;
    for (int budget = n * min_bits; budget <= n * max_bits; ++budget) {
      const double avg = static_cast<double>(budget) / n;
      absl::StatusOr<std::vector<int>> bits = GroupAlignedAllocate(
          scores, {.avg_bits = avg, .min_bits = min_bits, .max_bits = max_bits}, group);
      ASSERT_TRUE(bits.ok()) << bits.status();
      EXPECT_LE(Sum(*bits), budget);
      std::vector<int> count(kMaxSupportedBits + 1, 0);
      for (int b : *bits) {
        ASSERT_GE(b, min_bits);
        ASSERT_LE(b, max_bits);
        ++count[b];
      }
      for (int c : count) EXPECT_EQ(c % group, 0) << "trial " << trial;
      const double optimum = ExhaustiveAlignedOptimum(scores, budget, min_bits, max_bits, group);
      EXPECT_LE(AllocationDistortion(scores, *bits), optimum * (1 + 1e-12))
          << "trial " << trial << " budget " << budget;
    }
  }
}

TEST(AllocatorTest, GroupAlignedEqualsGreedyWhenGreedyIsAligned) {
  // Two tiers of 8 blocks: the greedy gives each tier one width, so 8-block
  // groups cost nothing.
  std::vector<double> scores(16, 1.0);
  for (int i = 0; i < 8; ++i) scores[i] = 16.0;
  const AllocationOptions options{.avg_bits = 3.0};
  const std::vector<int> greedy = *GreedyAllocate(scores, options);
  EXPECT_EQ(*GroupAlignedAllocate(scores, options, 8), greedy);
  EXPECT_EQ(greedy[0], 4);
  EXPECT_EQ(greedy[15], 2);
}

TEST(AllocatorTest, GroupAlignedRejectsGroupsThatDoNotTile) {
  const std::vector<double> scores(64, 1.0);
  EXPECT_EQ(GroupAlignedAllocate(scores, {}, 6).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GroupAlignedAllocate(scores, {}, 2).status().code(),
            absl::StatusCode::kInvalidArgument);  // 32 groups: too many to search
  EXPECT_EQ(GroupAlignedAllocate(scores, {.avg_bits = 9.0}, 8).status().code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_TRUE(GroupAlignedAllocate(scores, {}, 8).ok());
}

TEST(AllocatorTest, BudgetsBatchEqualsOneAtATime) {
  std::mt19937_64 rng(7);
  std::exponential_distribution<double> score(0.3);
  std::vector<double> scores(64);
  for (double& s : scores) s = score(rng);
  const std::vector<double> budgets = {4.0, 1.5, 2.5, 3.0, 8.0, 2.0};
  absl::StatusOr<std::vector<std::vector<int>>> all = GreedyAllocateBudgets(scores, budgets, {});
  ASSERT_TRUE(all.ok());
  for (size_t i = 0; i < budgets.size(); ++i) {
    absl::StatusOr<std::vector<int>> one = GreedyAllocate(scores, {.avg_bits = budgets[i]});
    ASSERT_TRUE(one.ok());
    EXPECT_EQ((*all)[i], *one) << "budget " << budgets[i];
  }
}

TEST(AllocatorTest, UniformSpreadsLeftoverBitsFromBlockZero) {
  absl::StatusOr<std::vector<int>> bits = UniformAllocate(4, {.avg_bits = 2.5});
  ASSERT_TRUE(bits.ok());
  EXPECT_EQ(*bits, (std::vector<int>{3, 3, 2, 2}));
  bits = UniformAllocate(4, {.avg_bits = 3.0});
  ASSERT_TRUE(bits.ok());
  EXPECT_EQ(*bits, (std::vector<int>{3, 3, 3, 3}));
}

TEST(AllocatorTest, RejectsBadInput) {
  const std::vector<double> ok = {1.0, 2.0};
  EXPECT_EQ(GreedyAllocate({}, {}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GreedyAllocate(std::vector<double>{1.0, -1.0}, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GreedyAllocate(std::vector<double>{1.0, std::nan("")}, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GreedyAllocate(std::vector<double>{1.0, INFINITY}, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GreedyAllocate(ok, {.avg_bits = 0.5}).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(GreedyAllocate(ok, {.avg_bits = 9.0}).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(GreedyAllocate(ok, {.avg_bits = std::nan("")}).status().code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(GreedyAllocate(ok, {.avg_bits = 3, .min_bits = 4, .max_bits = 8}).status().code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(GreedyAllocate(ok, {.avg_bits = 3, .min_bits = 0}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GreedyAllocate(ok, {.avg_bits = 3, .max_bits = 9}).status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::Status st = GreedyAllocate(ok, {.avg_bits = 9.0}).status();
  EXPECT_NE(st.message().find("outside [min_bits=1, max_bits=8]"), std::string::npos) << st;
}

}  // namespace
}  // namespace kvplan
