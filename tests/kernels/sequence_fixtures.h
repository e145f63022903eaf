// One sequence on the device in slot order, for GPU tests that encode a
// layer through a PackedDecodePlan and then decode it: token t in slot t, so
// pages 0, 1, .. in order (whole pages, then a partial one).
//
// Example:
//   const InOrderSequence seq(/*num_tokens=*/200);
//   DeviceBuffer<uint8_t> pool(static_cast<size_t>(seq.pages) * kv_heads * plan.page_stride(l));
//   KVPLAN_CUDA_OK(seq.Encode(plan, l, ws, k, v, pool.get()));
//   PackedDecodeParams p = seq.DecodeParams(plan, l, ws, /*splits=*/2, q, pool.get(), out);
#ifndef KVPLAN_TESTS_KERNELS_SEQUENCE_FIXTURES_H_
#define KVPLAN_TESTS_KERNELS_SEQUENCE_FIXTURES_H_

#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "core/packed_page.h"
#include "kvplan/kernels/launch.h"
#include "kvplan/kernels/packed_plan.h"
#include "tests/kernels/gpu_test_util.h"

namespace kvplan::kernels::testing {

class InOrderSequence {
 public:
  explicit InOrderSequence(int tokens)
      : num_tokens(tokens),
        pages((tokens + kPageTokens - 1) / kPageTokens),
        slots_(Iota<int64_t>(tokens)),
        page_table_(Iota<int>(pages)),
        packed_len_(std::vector<int>{tokens}) {}

  // Encodes the sequence's fp32 K and V (device, [num_tokens, kv_heads,
  // head_dim]) of `layer` into `pool` with the plan's params.
  cudaError_t Encode(const PackedDecodePlan& plan, int layer, void* workspace, const float* k,
                     const float* v, uint8_t* pool) const {
    EncodePackParams e = plan.EncodeParams(layer, workspace);
    e.k = k;
    e.v = v;
    e.slot_mapping = slots_.get();
    e.pages = pool;
    e.num_tokens = num_tokens;
    return LaunchEncodePack(e, nullptr);
  }

  // One decode step of the sequence over `pool`: fp32 q in, fp32 out, scale
  // 1/√head_dim.
  PackedDecodeParams DecodeParams(const PackedDecodePlan& plan, int layer, void* workspace,
                                  int splits, const float* q, uint8_t* pool, float* out) const {
    PackedDecodeParams p = plan.DecodeParams(layer, workspace, 1, splits);
    p.q = q;
    p.pages = pool;
    p.page_table = page_table_.get();
    p.max_pages_per_seq = pages;
    p.packed_len = packed_len_.get();
    p.scale = 1.0f / std::sqrt(static_cast<float>(plan.config().head_dim));
    p.out = out;
    return p;
  }

  const int num_tokens;
  const int pages;

 private:
  template <typename T>
  static std::vector<T> Iota(int n) {
    std::vector<T> v(n);
    std::iota(v.begin(), v.end(), T{0});
    return v;
  }

  DeviceBuffer<int64_t> slots_;
  DeviceBuffer<int> page_table_;
  DeviceBuffer<int> packed_len_;
};

}  // namespace kvplan::kernels::testing

#endif  // KVPLAN_TESTS_KERNELS_SEQUENCE_FIXTURES_H_
