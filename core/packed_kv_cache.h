// The packed KV cache of one sequence (CPU reference): K and V of every layer
// and KV head stored in packed pages exactly as a plan lays them out, and
// decode attention computed straight from the codes. This is the contract the
// CUDA kernels (kernels/) match.
//
// Tokens of a sequence, by absolute position t:
//   t < sink_tokens                 fp16 K/V ("attention sinks"), never packed
//   otherwise                       encoded on arrival (grouped_quantizer.h, the
//                                   plan's K layout and uniform V at the layer's
//                                   KvPlan::VBits) into
//                                   packed pages (packed_page.h): token t is slot
//                                   (t - sinks) % kPageTokens of page
//                                   (t - sinks) / kPageTokens
// A query that sees the first n tokens reads the newest recent_tokens of them
// (those at positions >= n - recent_tokens, sinks excepted) from fp16 copies
// and all other non-sink tokens from their packed form; so a token is read
// packed once it leaves the recent window. Packing on arrival rather than on
// leaving the window gives the same bits (encoding is deterministic) and lets a
// chunk of queries each see its own window (causal prefill).
//
// Attention for one layer (q post-RoPE, original dimension order; query head h
// reads KV head h / G, G = num_q_heads / num_kv_heads):
//   - q is permuted and rotated once per K group: q̂ = [R_g·q_g] (K is never
//     decoded back to the original domain); score_t = scale·Σ_g n'_g·(q̂_g·ĉ_g)
//     with ĉ the codebook levels of the token's codes, scaled by 1/√d_g;
//   - V is accumulated in its rotated domain, weighted by p_t·n'_t, and its
//     rotation is undone once per split;
//   - the key axis is split (the sinks, each run of pages_per_split pages, the
//     recent window), each split yields (max, sum of exp, unnormalized output),
//     and the splits are merged by an exact log-sum-exp, as the kernel's CTAs
//     are.
// Arithmetic is fp32. The result equals fp32/fp64 softmax attention over
// ReadBack's decoded K/V up to fp32 rounding (tests/core/packed_kv_cache_test.cc
// bounds it) and PackedDecodeAttentionReference (fp64) within fp32 tolerance.
//
// Memory: a packed token costs PackedPageLayout::bytes_per_token() per KV head
// (codes, fp16 norms and the page's alignment padding); sinks and the window
// add 4·head_dim bytes per fp16 token.
//
// Example:
//   absl::StatusOr<PackedKvCache> cache =
//       PackedKvCache::Create(plan, /*num_q_heads=*/6, {.recent_tokens = 32});
//   cache->Append(/*layer=*/0, k, v);         // [tokens][kv_heads][head_dim] each
//   std::vector<float> out(6 * 64);
//   cache->Attend(0, q, cache->num_tokens(0), absl::MakeSpan(out));  // q: [6][64]
//
// Thread safety: const methods may run concurrently; Append and Clear need
// exclusive access.
#ifndef KVPLAN_CORE_PACKED_KV_CACHE_H_
#define KVPLAN_CORE_PACKED_KV_CACHE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/packed_attention.h"
#include "core/packed_page.h"
#include "core/plan.h"
#include "core/rotation.h"

namespace kvplan {

struct PackedKvCacheOptions {
  // Leading tokens kept in fp16 and never packed. A value past any sequence's
  // length keeps the whole cache in fp16 (the unquantized baseline on the same
  // code path). Default: 0.
  int sink_tokens = 0;
  // Newest tokens a query reads from fp16 copies rather than packed. Default: 0.
  int recent_tokens = 0;
  // Pages per key split of the log-sum-exp merge, >= 1. Default: 4.
  int pages_per_split = 4;
  // Logit scale; 0 means 1/√head_dim. Default: 0.
  double scale = 0.0;
};

// Packed bytes one token costs one KV head: codes, fp16 norms and page padding
// (page_bytes / kPageTokens, split at the V block).
struct PackedTokenBytes {
  double k = 0.0;
  double v = 0.0;
  double total() const { return k + v; }
};

// One KV head's cache as a query of prefix `num_keys` sees it, in
// PackedDecodeAttentionReference's terms. Spans point into the cache and are
// invalidated by Append and Clear.
struct PackedHeadView {
  const PackedPageLayout* layout = nullptr;
  std::vector<absl::Span<const uint8_t>> pages;
  int num_packed_tokens = 0;
  Fp16Tokens sink;
  Fp16Tokens recent;
};

class PackedKvCache {
 public:
  // A cache for `plan`'s model with `num_q_heads` query heads (a multiple of
  // the plan's KV heads). The plan's rotations are regenerated and checked
  // against its hashes (PlanRotations). InvalidArgument for bad options or
  // head counts; the plan's own errors otherwise.
  static absl::StatusOr<PackedKvCache> Create(const KvPlan& plan, int num_q_heads,
                                              const PackedKvCacheOptions& options = {});

  PackedKvCache(PackedKvCache&&) noexcept;
  PackedKvCache& operator=(PackedKvCache&&) noexcept;
  ~PackedKvCache();

  int num_layers() const;
  int num_kv_heads() const;
  int num_q_heads() const;
  int head_dim() const;
  const PackedKvCacheOptions& options() const;
  // Tokens appended to `layer` so far (0 for a layer out of range).
  int64_t num_tokens(int layer) const;

  // Appends tokens to `layer`: k, v [tokens][num_kv_heads][head_dim] fp32,
  // post-RoPE K. InvalidArgument (and nothing appended) for a layer out of
  // range, sizes that are not whole tokens or differ between k and v, or a
  // value that is not finite (named by token, head and dimension).
  absl::Status Append(int layer, absl::Span<const float> k, absl::Span<const float> v);

  // Attention of one query position over the first `num_keys` tokens of
  // `layer`. q: [num_q_heads][head_dim]; out: [num_q_heads][head_dim].
  // InvalidArgument for sizes, a non-finite q or num_keys outside
  // [1, num_tokens(layer)]; FailedPrecondition when num_keys is so far behind
  // the newest tokens that its recent window is no longer kept (a prefix is
  // kept while it is not older than the latest Append's first token).
  absl::Status Attend(int layer, absl::Span<const float> q, int64_t num_keys,
                      absl::Span<float> out) const;

  // The K and V the same query reads, decoded: k, v [num_keys][num_kv_heads]
  // [head_dim] (fp16 tokens widened, packed tokens decoded with
  // GroupedQuantizer::Decode). Errors as Attend.
  absl::Status ReadBack(int layer, int64_t num_keys, absl::Span<float> k,
                        absl::Span<float> v) const;

  // The pages and fp16 parts of one head for a prefix (errors as Attend), and
  // the rotations a kernel or PackedDecodeAttentionReference decodes them with.
  absl::StatusOr<PackedHeadView> HeadView(int layer, int kv_head, int64_t num_keys) const;
  std::vector<Rotation> KRotations(int layer, int kv_head) const;
  const Rotation& VRotation() const;

  // What one packed token of (layer, kv_head) costs, and the mean over heads.
  PackedTokenBytes BytesPerToken(int layer, int kv_head) const;
  PackedTokenBytes MeanBytesPerToken() const;

  // Forgets every token (a new sequence); keeps the plan's tables.
  void Clear();

 private:
  struct Impl;
  explicit PackedKvCache(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvplan

#endif  // KVPLAN_CORE_PACKED_KV_CACHE_H_
