// Allocation speed: the coordinator allocates whole models on every CreatePlan and
// WhatIf, so a large model at several budgets must stay in the milliseconds.
//
//   build/bin/allocator_bench
#include <random>

#include "benchmark/benchmark.h"
#include "core/allocator.h"

namespace kvplan {
namespace {

// Uneven, heavy-tailed energies like real heads (a few low-frequency blocks dominate).
std::vector<std::vector<double>> ModelScores(int heads, int blocks) {
  std::mt19937_64 rng(42);
  std::lognormal_distribution<double> energy(0.0, 1.5);
  std::vector<std::vector<double>> scores(heads, std::vector<double>(blocks));
  for (auto& head : scores) {
    for (double& s : head) s = energy(rng);
  }
  return scores;
}

const std::vector<double> kBudgets = {1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0};

// 80 layers x 8 KV heads x 64 blocks (a 70B-class model, hd 128) at 8 budgets.
void BM_AllocateModel80x8x64At8Budgets(benchmark::State& state) {
  const auto scores = ModelScores(80 * 8, 64);
  for (auto _ : state) {
    for (const auto& head : scores) {
      auto bits = GreedyAllocateBudgets(head, kBudgets, {});
      benchmark::DoNotOptimize(bits);
    }
  }
  state.SetItemsProcessed(state.iterations() * 80 * 8 * kBudgets.size());
}
BENCHMARK(BM_AllocateModel80x8x64At8Budgets)->Unit(benchmark::kMillisecond);

// The same model, one budget at a time (what a caller without the batch API pays).
void BM_AllocateModel80x8x64At8BudgetsOneByOne(benchmark::State& state) {
  const auto scores = ModelScores(80 * 8, 64);
  for (auto _ : state) {
    for (const auto& head : scores) {
      for (double b : kBudgets) {
        auto bits = GreedyAllocate(head, {.avg_bits = b});
        benchmark::DoNotOptimize(bits);
      }
    }
  }
  state.SetItemsProcessed(state.iterations() * 80 * 8 * kBudgets.size());
}
BENCHMARK(BM_AllocateModel80x8x64At8BudgetsOneByOne)->Unit(benchmark::kMillisecond);

// One head at 3 b/dim: the unit cost, O(budget·log L).
void BM_AllocateOneHead(benchmark::State& state) {
  const auto scores = ModelScores(1, static_cast<int>(state.range(0)));
  for (auto _ : state) {
    auto bits = GreedyAllocate(scores[0], {.avg_bits = 3.0});
    benchmark::DoNotOptimize(bits);
  }
}
BENCHMARK(BM_AllocateOneHead)->Arg(32)->Arg(64)->Arg(256);

}  // namespace
}  // namespace kvplan

BENCHMARK_MAIN();
