#include "core/packed_attention.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "absl/types/span.h"
#include "core/codebook.h"
#include "core/half.h"
#include "core/packed_page.h"
#include "core/rotation.h"

namespace kvplan {
namespace {

absl::Status CheckFp16(const Fp16Tokens& t, int head_dim, const char* name) {
  const size_t need = static_cast<size_t>(t.num_tokens) * head_dim;
  if (t.num_tokens < 0 || t.k.size() < need || t.v.size() < need) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s holds %d tokens of head_dim %d but k has %d and v has %d values", name,
                        t.num_tokens, head_dim, t.k.size(), t.v.size()));
  }
  return absl::OkStatus();
}

// The reference over pages of either grammar: Layout is PackedPageLayout or
// FragmentPageLayout, read only through their common accessors (KCode, VCode,
// KNorm, VNorm, page_bytes and the layouts), so both grammars attend alike.
template <class Layout>
absl::Status AttendOverPages(const Layout& layout, absl::Span<const Rotation> k_rotations,
                             const Rotation& v_rotation, const PackedAttentionInputs& in,
                             absl::Span<double> out) {
  const GroupLayout& k_layout = layout.k_layout();
  const int hd = layout.head_dim();
  const int groups = layout.num_k_groups();
  const int heads = in.group_size;
  if (heads < 1 || in.q.size() != static_cast<size_t>(heads) * hd ||
      out.size() != static_cast<size_t>(heads) * hd) {
    return absl::InvalidArgumentError(
        absl::StrFormat("q has %d and out %d values; group_size %d x head_dim %d expected",
                        in.q.size(), out.size(), heads, hd));
  }
  if (k_rotations.size() != static_cast<size_t>(groups)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%d K rotations for %d K groups", k_rotations.size(), groups));
  }
  for (int g = 0; g < groups; ++g) {
    if (k_rotations[g].dim != k_layout.groups[g].size) {
      return absl::InvalidArgumentError(
          absl::StrFormat("K rotation %d has dim %d; group size is %d", g, k_rotations[g].dim,
                          k_layout.groups[g].size));
    }
  }
  if (v_rotation.dim != hd) {
    return absl::InvalidArgumentError(
        absl::StrFormat("V rotation has dim %d; head_dim is %d", v_rotation.dim, hd));
  }
  if (in.num_packed_tokens < 0 ||
      static_cast<size_t>(in.num_packed_tokens) > in.pages.size() * kPageTokens) {
    return absl::InvalidArgumentError(absl::StrFormat("%d packed tokens do not fit %d pages",
                                                      in.num_packed_tokens, in.pages.size()));
  }
  for (size_t p = 0; p < in.pages.size(); ++p) {
    if (in.pages[p].size() < layout.page_bytes()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "page %d has %d bytes; the layout needs %d", p, in.pages[p].size(), layout.page_bytes()));
    }
  }
  if (absl::Status s = CheckFp16(in.sink, hd, "sink"); !s.ok()) return s;
  if (absl::Status s = CheckFp16(in.recent, hd, "recent"); !s.ok()) return s;

  // q̂ per head: [R_g·q_g for each group] in permuted order, fp64.
  std::vector<double> q_rot(static_cast<size_t>(heads) * hd);
  for (int h = 0; h < heads; ++h) {
    const float* q = in.q.data() + static_cast<size_t>(h) * hd;
    for (int g = 0; g < groups; ++g) {
      const QuantGroup& group = k_layout.groups[g];
      const std::vector<float>& r = k_rotations[g].matrix;
      for (int i = 0; i < group.size; ++i) {
        double acc = 0.0;
        for (int j = 0; j < group.size; ++j) {
          acc += static_cast<double>(r[static_cast<size_t>(i) * group.size + j]) *
                 q[k_layout.permutation[group.offset + j]];
        }
        q_rot[static_cast<size_t>(h) * hd + group.offset + i] = acc;
      }
    }
  }

  const int fp16_tokens = in.sink.num_tokens + in.recent.num_tokens;
  const int total = in.num_packed_tokens + fp16_tokens;
  std::vector<double> scores(static_cast<size_t>(heads) * total);
  std::vector<double> y(hd);
  for (int t = 0; t < in.num_packed_tokens; ++t) {
    const absl::Span<const uint8_t> page = in.pages[t / kPageTokens];
    const int slot = t % kPageTokens;
    for (int g = 0; g < groups; ++g) {
      const QuantGroup& group = k_layout.groups[g];
      const Codebook& book = LloydMaxCodebook(group.bits);
      const double n = layout.KNorm(page, g, slot) / std::sqrt(static_cast<double>(group.size));
      for (int i = 0; i < group.size; ++i) {
        y[group.offset + i] = book.centroids[layout.KCode(page, g, slot, i)] * n;
      }
    }
    for (int h = 0; h < heads; ++h) {
      double dot = 0.0;
      for (int p = 0; p < hd; ++p) dot += q_rot[static_cast<size_t>(h) * hd + p] * y[p];
      scores[static_cast<size_t>(h) * total + t] = in.scale * dot;
    }
  }
  auto fp16_row = [&](absl::Span<const uint16_t> data, int row, int dim) {
    return static_cast<double>(HalfToFloat(data[static_cast<size_t>(row) * hd + dim]));
  };
  for (int f = 0; f < fp16_tokens; ++f) {
    const Fp16Tokens& src = f < in.sink.num_tokens ? in.sink : in.recent;
    const int row = f < in.sink.num_tokens ? f : f - in.sink.num_tokens;
    for (int h = 0; h < heads; ++h) {
      double dot = 0.0;
      for (int d = 0; d < hd; ++d)
        dot += static_cast<double>(in.q[h * hd + d]) * fp16_row(src.k, row, d);
      scores[static_cast<size_t>(h) * total + in.num_packed_tokens + f] = in.scale * dot;
    }
  }

  std::fill(out.begin(), out.end(), 0.0);
  if (total == 0) return absl::OkStatus();
  const Codebook& v_book = LloydMaxCodebook(layout.v_bits());
  const double v_scale = 1.0 / std::sqrt(static_cast<double>(hd));
  std::vector<double> v_rot_acc(hd), plain_acc(hd);
  for (int h = 0; h < heads; ++h) {
    const double* s = scores.data() + static_cast<size_t>(h) * total;
    const double m = *std::max_element(s, s + total);
    double l = 0.0;
    std::fill(v_rot_acc.begin(), v_rot_acc.end(), 0.0);
    std::fill(plain_acc.begin(), plain_acc.end(), 0.0);
    for (int t = 0; t < in.num_packed_tokens; ++t) {
      const double p = std::exp(s[t] - m);
      l += p;
      const absl::Span<const uint8_t> page = in.pages[t / kPageTokens];
      const int slot = t % kPageTokens;
      const double w = p * layout.VNorm(page, slot) * v_scale;
      for (int j = 0; j < hd; ++j)
        v_rot_acc[j] += w * v_book.centroids[layout.VCode(page, slot, j)];
    }
    for (int f = 0; f < fp16_tokens; ++f) {
      const Fp16Tokens& src = f < in.sink.num_tokens ? in.sink : in.recent;
      const int row = f < in.sink.num_tokens ? f : f - in.sink.num_tokens;
      const double p = std::exp(s[in.num_packed_tokens + f] - m);
      l += p;
      for (int d = 0; d < hd; ++d) plain_acc[d] += p * fp16_row(src.v, row, d);
    }
    // Undo V's rotation once: x_i = Σ_j R[j][i]·y_j.
    double* o = out.data() + static_cast<size_t>(h) * hd;
    for (int i = 0; i < hd; ++i) {
      double acc = plain_acc[i];
      for (int j = 0; j < hd; ++j) {
        acc +=
            static_cast<double>(v_rotation.matrix[static_cast<size_t>(j) * hd + i]) * v_rot_acc[j];
      }
      o[i] = acc / l;
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status PackedDecodeAttentionReference(const PackedPageLayout& layout,
                                            absl::Span<const Rotation> k_rotations,
                                            const Rotation& v_rotation,
                                            const PackedAttentionInputs& inputs,
                                            absl::Span<double> out) {
  return AttendOverPages(layout, k_rotations, v_rotation, inputs, out);
}

absl::Status PackedDecodeAttentionReference(const FragmentPageLayout& layout,
                                            absl::Span<const Rotation> k_rotations,
                                            const Rotation& v_rotation,
                                            const PackedAttentionInputs& inputs,
                                            absl::Span<double> out) {
  return AttendOverPages(layout, k_rotations, v_rotation, inputs, out);
}

}  // namespace kvplan
