// The decode benchmark's timing loop (bench/kernels/event_median.h): its
// settle phase, which puts each timing in the kernel's own sustained clocks
// (NOTES.md run 42), runs untimed samples in order for the time asked and no
// longer. No device needed: without one the stream calls fail, and the loop
// still keeps time by the host clock.
#include "bench/kernels/event_median.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>
#include <vector>

namespace kvplan::bench {
namespace {

using Clock = std::chrono::steady_clock;

double MillisSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

TEST(SettleClocksTest, NoSettleTimeRunsNoSample) {
  int samples = 0;
  SettleClocks(nullptr, 0.0, [&](int) { ++samples; });
  SettleClocks(nullptr, -5.0, [&](int) { ++samples; });
  EXPECT_EQ(samples, 0);
}

TEST(SettleClocksTest, RunsSamplesInOrderUntilTheTimeHasPassed) {
  constexpr double kSettleMs = 30.0;
  std::vector<int> indices;
  std::vector<double> started_ms;
  // On a machine with a GPU the first stream call creates the CUDA context
  // (~0.2 s on the H200), which would end the settle after one sample: create
  // it before the clock starts.
  cudaStreamSynchronize(nullptr);
  const Clock::time_point start = Clock::now();
  SettleClocks(nullptr, kSettleMs, [&](int i) {
    indices.push_back(i);
    started_ms.push_back(MillisSince(start));
    std::this_thread::sleep_for(std::chrono::milliseconds(4));
  });
  EXPECT_GE(MillisSince(start), kSettleMs);
  ASSERT_GE(indices.size(), 2u);
  for (size_t i = 0; i < indices.size(); ++i) EXPECT_EQ(indices[i], static_cast<int>(i));
  // No sample starts once the time has passed.
  EXPECT_LT(started_ms.back(), kSettleMs);
}

}  // namespace
}  // namespace kvplan::bench
