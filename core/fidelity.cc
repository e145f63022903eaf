#include "core/fidelity.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_format.h"

namespace kvplan {
namespace {

absl::Status CheckShape(const AttentionShape& s, size_t q, size_t k, size_t k_hat) {
  if (s.tokens <= 0 || s.num_q_heads <= 0 || s.num_kv_heads <= 0 || s.head_dim <= 0 ||
      s.head_dim % 2 != 0 || s.num_q_heads % s.num_kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "attention shape tokens=%d q_heads=%d kv_heads=%d head_dim=%d is invalid (need positive "
        "sizes, an even head_dim, q_heads a multiple of kv_heads)",
        s.tokens, s.num_q_heads, s.num_kv_heads, s.head_dim));
  }
  const size_t q_expected = static_cast<size_t>(s.tokens) * s.num_q_heads * s.head_dim;
  const size_t k_expected = static_cast<size_t>(s.tokens) * s.num_kv_heads * s.head_dim;
  if (q != q_expected || k != k_expected || k_hat != k_expected) {
    return absl::InvalidArgumentError(
        absl::StrFormat("q/k/k_hat hold %d/%d/%d values; the shape needs %d/%d/%d", q, k, k_hat,
                        q_expected, k_expected, k_expected));
  }
  return absl::OkStatus();
}

// Row-wise log-softmax of the causal logits q_t·k_j/√hd, j ≤ t, in fp64.
void CausalLogSoftmax(const float* q, const float* keys, int keys_count, int stride, int head_dim,
                      std::vector<double>& out) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  out.resize(keys_count);
  double max_logit = -INFINITY;
  for (int j = 0; j < keys_count; ++j) {
    const float* kj = keys + static_cast<size_t>(j) * stride;
    double dot = 0.0;
    for (int d = 0; d < head_dim; ++d) dot += static_cast<double>(q[d]) * kj[d];
    out[j] = dot * scale;
    max_logit = std::max(max_logit, out[j]);
  }
  double sum = 0.0;
  for (double v : out) sum += std::exp(v - max_logit);
  const double log_z = max_logit + std::log(sum);
  for (double& v : out) v -= log_z;
}

// Indices of the `k` largest values, ties to the lower index.
std::vector<int> TopK(const std::vector<double>& values, int k) {
  std::vector<int> index(values.size());
  std::iota(index.begin(), index.end(), 0);
  k = std::min<int>(k, static_cast<int>(values.size()));
  std::partial_sort(index.begin(), index.begin() + k, index.end(), [&](int a, int b) {
    return values[a] > values[b] || (values[a] == values[b] && a < b);
  });
  index.resize(k);
  std::sort(index.begin(), index.end());
  return index;
}

}  // namespace

std::vector<double> DiagnosticOffsets(int count, double max_offset) {
  std::vector<double> offsets(count);
  if (count == 1) return {-max_offset};
  for (int i = 0; i < count; ++i) offsets[i] = -max_offset + 2.0 * max_offset * i / (count - 1);
  return offsets;
}

absl::StatusOr<double> KernelMae(absl::Span<const float> q, absl::Span<const float> k,
                                 absl::Span<const float> k_hat, const AttentionShape& shape,
                                 const RopeSpec& rope, absl::Span<const double> offsets) {
  if (absl::Status st = CheckShape(shape, q.size(), k.size(), k_hat.size()); !st.ok()) return st;
  if (rope.head_dim != shape.head_dim) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "RoPE head_dim %d differs from the attention head_dim %d", rope.head_dim, shape.head_dim));
  }
  if (offsets.empty()) return absl::InvalidArgumentError("kernel MAE needs at least one offset");
  const int blocks = rope.num_blocks();
  const std::vector<std::array<int, 2>> dims = rope.AllBlockDims();
  const std::vector<double> theta = rope.InvFrequencies();
  std::vector<double> cos_table(offsets.size() * blocks), sin_table(offsets.size() * blocks);
  for (size_t o = 0; o < offsets.size(); ++o) {
    for (int i = 0; i < blocks; ++i) {
      cos_table[o * blocks + i] = std::cos(offsets[o] * theta[i]);
      sin_table[o * blocks + i] = std::sin(offsets[o] * theta[i]);
    }
  }
  const int group = shape.num_q_heads / shape.num_kv_heads;
  const int hd = shape.head_dim;
  std::vector<double> dot(blocks), cross(blocks), error(hd);
  double total = 0.0;
  for (int t = 0; t < shape.tokens; ++t) {
    for (int kv = 0; kv < shape.num_kv_heads; ++kv) {
      const size_t k_base = (static_cast<size_t>(t) * shape.num_kv_heads + kv) * hd;
      for (int d = 0; d < hd; ++d) {
        error[d] = static_cast<double>(k[k_base + d]) - k_hat[k_base + d];
      }
      for (int g = 0; g < group; ++g) {
        const size_t q_base = (static_cast<size_t>(t) * shape.num_q_heads + kv * group + g) * hd;
        for (int i = 0; i < blocks; ++i) {
          const double qa = q[q_base + dims[i][0]], qb = q[q_base + dims[i][1]];
          const double ea = error[dims[i][0]], eb = error[dims[i][1]];
          dot[i] = qa * ea + qb * eb;
          cross[i] = qb * ea - qa * eb;
        }
        for (size_t o = 0; o < offsets.size(); ++o) {
          const double* c = &cos_table[o * blocks];
          const double* s = &sin_table[o * blocks];
          double value = 0.0;
          for (int i = 0; i < blocks; ++i) value += c[i] * dot[i] + s[i] * cross[i];
          total += std::abs(value);
        }
      }
    }
  }
  return total / (static_cast<double>(shape.tokens) * shape.num_q_heads * offsets.size());
}

absl::StatusOr<std::vector<AttentionFidelity>> CausalAttentionFidelities(
    absl::Span<const float> q, absl::Span<const float> k,
    absl::Span<const absl::Span<const float>> k_hats, const AttentionShape& shape,
    int first_query, int top_k) {
  for (absl::Span<const float> k_hat : k_hats) {
    if (absl::Status st = CheckShape(shape, q.size(), k.size(), k_hat.size()); !st.ok()) return st;
  }
  if (first_query < 0 || first_query >= shape.tokens || top_k <= 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "first_query %d must be in [0, tokens=%d) and top_k %d positive", first_query,
        shape.tokens, top_k));
  }
  const int group = shape.num_q_heads / shape.num_kv_heads;
  const int hd = shape.head_dim;
  const int stride = shape.num_kv_heads * hd;
  std::vector<AttentionFidelity> results(k_hats.size());
  std::vector<double> log_p, log_p_hat;
  std::vector<int> common;
  for (int h = 0; h < shape.num_q_heads; ++h) {
    const int kv = h / group;
    for (int t = first_query; t < shape.tokens; ++t) {
      const float* q_row = q.data() + (static_cast<size_t>(t) * shape.num_q_heads + h) * hd;
      CausalLogSoftmax(q_row, k.data() + kv * hd, t + 1, stride, hd, log_p);
      const std::vector<int> top = TopK(log_p, top_k);
      for (size_t m = 0; m < k_hats.size(); ++m) {
        CausalLogSoftmax(q_row, k_hats[m].data() + kv * hd, t + 1, stride, hd, log_p_hat);
        double kl = 0.0;
        for (int j = 0; j <= t; ++j) kl += std::exp(log_p[j]) * (log_p[j] - log_p_hat[j]);
        const std::vector<int> top_hat = TopK(log_p_hat, top_k);
        common.clear();
        std::set_intersection(top.begin(), top.end(), top_hat.begin(), top_hat.end(),
                              std::back_inserter(common));
        results[m].kl += kl;
        results[m].top_k_overlap += static_cast<double>(common.size()) / top.size();
        ++results[m].queries;
      }
    }
  }
  for (AttentionFidelity& r : results) {
    r.kl /= r.queries;
    r.top_k_overlap /= r.queries;
  }
  return results;
}

absl::StatusOr<AttentionFidelity> CausalAttentionFidelity(absl::Span<const float> q,
                                                          absl::Span<const float> k,
                                                          absl::Span<const float> k_hat,
                                                          const AttentionShape& shape,
                                                          int first_query, int top_k) {
  const absl::Span<const float> k_hats[] = {k_hat};
  absl::StatusOr<std::vector<AttentionFidelity>> all =
      CausalAttentionFidelities(q, k, k_hats, shape, first_query, top_k);
  if (!all.ok()) return all.status();
  return all->front();
}

}  // namespace kvplan
