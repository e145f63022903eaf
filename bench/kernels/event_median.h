// The benchmark's one timing loop: the median of `iters` samples, each
// sample() between two CUDA events on `stream`, divided by the calls it makes.
// Header-only and CUDA-runtime only, so the LibTorch baseline's translation
// unit (sdpa_baseline.cc) times SDPA exactly as packed_decode_bench times ours.
//
// Example:
//   double us = MedianEventMicros(stream, 20, 1, [&](int i) { Launch(i, stream); });
#ifndef KVPLAN_BENCH_KERNELS_EVENT_MEDIAN_H_
#define KVPLAN_BENCH_KERNELS_EVENT_MEDIAN_H_

#include <cuda_runtime_api.h>

#include <algorithm>
#include <vector>

namespace kvplan::bench {

// Median µs per call; sample(i) enqueues calls_per_sample calls on `stream`.
// The caller synchronizes first (the stream must be idle).
template <typename F>
double MedianEventMicros(cudaStream_t stream, int iters, int calls_per_sample, F&& sample) {
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
