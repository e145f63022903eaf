// The CPU reference of fused decode attention over packed pages: one query
// step of one sequence and one KV head (all query heads of its GQA group),
// computed exactly (fp64) from the codes and norms, which is what the CUDA
// kernel (kernels/) is held to.
//
// The keys a step attends to are, in any order (softmax is order-free):
//   sink     fp16 K/V of the first tokens, kept unquantized (may be empty)
//   packed   num_packed_tokens tokens in packed pages (packed_page.h, or
//            fragment_page.h's grammar):
//            token t is slot t % kPageTokens of pages[t / kPageTokens]
//   recent   fp16 K/V of the most recent tokens (may be empty)
// For query head h (q[h], original dimension order, post-RoPE):
//   score_t = scale · q_h·k̂_t   with k̂ the decoded key (for packed tokens
//             computed as q̂·ŷ: q rotated per K group, ŷ = c[code]/√d_g · n')
//   out_h   = Σ_t softmax(score)_t · v̂_t   (V decoded as R_vᵀ·(c[code]/√d · n'))
// A step with no keys at all yields zeros.
//
// Example:
//   PackedAttentionInputs in{.q = q, .group_size = 4, .pages = pages,
//                            .num_packed_tokens = 1000, .scale = 1 / std::sqrt(128.0)};
//   std::vector<double> out(4 * 128);
//   absl::Status s = PackedDecodeAttentionReference(layout, k_rot, v_rot, in, absl::MakeSpan(out));
#ifndef KVPLAN_CORE_PACKED_ATTENTION_H_
#define KVPLAN_CORE_PACKED_ATTENTION_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "core/fragment_page.h"
#include "core/packed_page.h"
#include "core/rotation.h"

namespace kvplan {

// Unquantized tokens: fp16 bit patterns (half.h), row-major.
struct Fp16Tokens {
  // [num_tokens, head_dim]
  absl::Span<const uint16_t> k;
  // [num_tokens, head_dim]
  absl::Span<const uint16_t> v;
  int num_tokens = 0;
};

struct PackedAttentionInputs {
  // [group_size, head_dim] fp32, original dimension order.
  absl::Span<const float> q;
  // Query heads sharing this KV head. Default: 1.
  int group_size = 1;
  // The sequence's pages in token order, each at least layout.page_bytes().
  absl::Span<const absl::Span<const uint8_t>> pages;
  // Tokens stored in `pages` (at most pages.size() · kPageTokens).
  int num_packed_tokens = 0;
  // Optional fp16 prefix and window (num_tokens 0: absent).
  Fp16Tokens sink;
  Fp16Tokens recent;
  // Logit scale, usually 1/√head_dim.
  double scale = 1.0;
};

// out: [group_size, head_dim], original dimension order. `k_rotations[g]` is
// K group g's rotation, `v_rotation` V's (dim head_dim). InvalidArgument (and
// nothing written) when a size disagrees with the layout.
absl::Status PackedDecodeAttentionReference(const PackedPageLayout& layout,
                                            absl::Span<const Rotation> k_rotations,
                                            const Rotation& v_rotation,
                                            const PackedAttentionInputs& inputs,
                                            absl::Span<double> out);
// The same over fragment-native pages (fragment_page.h): the same codes and
// norms give the same result bit for bit.
absl::Status PackedDecodeAttentionReference(const FragmentPageLayout& layout,
                                            absl::Span<const Rotation> k_rotations,
                                            const Rotation& v_rotation,
                                            const PackedAttentionInputs& inputs,
                                            absl::Span<double> out);

}  // namespace kvplan

#endif  // KVPLAN_CORE_PACKED_ATTENTION_H_
