// The fp64 reference (core/packed_attention.h) over pages a GPU test read back:
// one sequence of `num_tokens` tokens in pages 0, 1, .. of a pool laid out
// [pages, kv_heads, stride], every KV head's query heads at once.
//
// Example:
//   absl::StatusOr<std::vector<double>> want = ReferenceOverPool(
//       host_pool, {.kv_heads = 2, .group_size = 4, .head_dim = 128, .stride = stride,
//                   .num_tokens = 200, .scale = 1 / √128},
//       q, [&](int h, const PackedAttentionInputs& in, absl::Span<double> out) {
//         return PackedDecodeAttentionReference(layout(h), k_rot(h), v_rot, in, out);
//       });
#ifndef KVPLAN_TESTS_KERNELS_REFERENCE_FIXTURES_H_
#define KVPLAN_TESTS_KERNELS_REFERENCE_FIXTURES_H_

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/packed_attention.h"

namespace kvplan::kernels::testing {

struct PoolShape {
  int kv_heads = 0;
  int group_size = 1;
  int head_dim = 0;
  int64_t stride = 0;  // bytes per (page, KV head)
  int num_tokens = 0;
  double scale = 1.0;
};

// out [kv_heads · group_size, head_dim] for q of the same shape: `reference`
// (a PackedDecodeAttentionReference over head h's layout) per KV head. Its
// first error is returned.
inline absl::StatusOr<std::vector<double>> ReferenceOverPool(
    const std::vector<uint8_t>& pool, const PoolShape& shape, const std::vector<float>& q,
    const std::function<absl::Status(int, const PackedAttentionInputs&, absl::Span<double>)>&
        reference) {
  const size_t rows = static_cast<size_t>(shape.group_size) * shape.head_dim;
  const int pages = static_cast<int>(pool.size() / (shape.stride * shape.kv_heads));
  std::vector<double> out(q.size());
  for (int h = 0; h < shape.kv_heads; ++h) {
    std::vector<absl::Span<const uint8_t>> head_pages;
    for (int page = 0; page < pages; ++page) {
      head_pages.push_back(absl::MakeConstSpan(
          pool.data() + (static_cast<size_t>(page) * shape.kv_heads + h) * shape.stride,
          static_cast<size_t>(shape.stride)));
    }
    PackedAttentionInputs in;
    in.q = absl::MakeConstSpan(q.data() + h * rows, rows);
    in.group_size = shape.group_size;
    in.pages = head_pages;
    in.num_packed_tokens = shape.num_tokens;
    in.scale = shape.scale;
    if (absl::Status s = reference(h, in, absl::MakeSpan(out.data() + h * rows, rows)); !s.ok()) {
      return s;
    }
  }
  return out;
}

}  // namespace kvplan::kernels::testing

#endif  // KVPLAN_TESTS_KERNELS_REFERENCE_FIXTURES_H_
