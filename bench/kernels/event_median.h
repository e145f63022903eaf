// The benchmark's one timing loop: the median of `iters` samples, each
// sample() between two CUDA events on `stream`, divided by the calls it makes.
// Header-only and CUDA-runtime only, so the LibTorch baseline's translation
// unit (sdpa_baseline.cc) times SDPA exactly as packed_decode_bench times ours.
//
// settle_ms > 0 first runs sample() back to back for that long, untimed: the
// H200 lowers its SM clock under its 700 W power cap within ~0.1-1 s of a heavy
// load, so a timing right after warm-up (tens of milliseconds) sees a kernel
// before the cap acts, or in whatever state the previous timing left. With a
// settle, every kernel is timed in its own sustained clocks, whatever order a
// process measures them in (the fragment step 3-12% slower after 2 s, SDPA
// within 1%: NOTES.md run 42).
//
// Example:
//   double us = MedianEventMicros(stream, 20, 1, [&](int i) { Launch(i, stream); });
#ifndef KVPLAN_BENCH_KERNELS_EVENT_MEDIAN_H_
#define KVPLAN_BENCH_KERNELS_EVENT_MEDIAN_H_

#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <vector>

namespace kvplan::bench {

// Runs sample(0), sample(1), .. on `stream` until settle_ms of wall time have
// passed (none for settle_ms <= 0); returns with the stream idle.
template <typename F>
void SettleClocks(cudaStream_t stream, double settle_ms, F&& sample) {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point start = Clock::now();
  for (int i = 0;
       std::chrono::duration<double, std::milli>(Clock::now() - start).count() < settle_ms; ++i) {
    sample(i);
    cudaStreamSynchronize(stream);  // one sample in flight: the loop ends on time
  }
}

// Median µs per call; sample(i) enqueues calls_per_sample calls on `stream`.
// The caller synchronizes first (the stream must be idle).
template <typename F>
double MedianEventMicros(cudaStream_t stream, int iters, int calls_per_sample, F&& sample,
                         double settle_ms = 0.0) {
  SettleClocks(stream, settle_ms, sample);
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  std::vector<float> times;
  for (int i = 0; i < iters; ++i) {
    cudaEventRecord(start, stream);
    sample(i);
    cudaEventRecord(stop, stream);
    cudaEventSynchronize(stop);
    float ms = 0.0f;
    cudaEventElapsedTime(&ms, start, stop);
    times.push_back(ms * 1000.0f / calls_per_sample);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace kvplan::bench

#endif  // KVPLAN_BENCH_KERNELS_EVENT_MEDIAN_H_
