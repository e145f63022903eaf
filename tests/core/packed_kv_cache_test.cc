#include "core/packed_kv_cache.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/bit_packing.h"
#include "core/packed_attention.h"
#include "core/plan.h"
#include "core/random.h"
#include "core/whatif.h"

namespace kvplan {
namespace {

// A plan with the given K widths for every head (block i of head h of layer l
// takes widths[(i + h + l) % widths.size()], so heads differ) but the `exempt`
// layers, whose K blocks and V are all at exempt_bits; named rotations and no
// statistics behind it.
KvPlan MakePlan(int layers, int kv_heads, int head_dim, const std::vector<int>& widths, int v_bits,
                KScheme scheme = KScheme::kBlockGtq, const std::vector<int>& exempt = {},
                int exempt_bits = 8) {
  KvPlan plan;
  plan.num_layers = layers;
  plan.num_kv_heads = kv_heads;
  plan.head_dim = head_dim;
  plan.rope.head_dim = head_dim;
  plan.rope.rotary_dim = head_dim;
  plan.options.k_scheme = scheme;
  plan.options.v_bits = v_bits;
  plan.options.exempt_layers = exempt;
  plan.options.exempt_bits = exempt_bits;
  for (int l = 0; l < layers; ++l) {
    for (int h = 0; h < kv_heads; ++h) {
      std::vector<int> bits(head_dim / 2);
      for (size_t i = 0; i < bits.size(); ++i) {
        bits[i] = plan.IsExempt(l) ? exempt_bits : widths[(i + h + l) % widths.size()];
      }
      plan.k_block_bits.push_back(bits);
    }
  }
  std::vector<int> dims = {head_dim};
  for (int l = 0; l < layers; ++l) {
    for (int h = 0; h < kv_heads; ++h) {
      const GroupLayout layout = *plan.KLayout(l, h);
      for (const QuantGroup& g : layout.groups) dims.push_back(g.size);
    }
  }
  for (int dim : dims) {
    plan.rotation_hashes[dim] = HaarRotation(dim, plan.RotationSeed(dim)).content_hash;
  }
  return plan;
}

// Keys with uneven energy across dimensions (as RoPE blocks have), values
// Gaussian: [tokens][kv_heads][head_dim].
std::vector<float> RandomRows(DeterministicRng& rng, int tokens, int kv_heads, int head_dim,
                              bool uneven) {
  std::vector<float> x(static_cast<size_t>(tokens) * kv_heads * head_dim);
  for (size_t i = 0; i < x.size(); ++i) {
    const int d = static_cast<int>(i % head_dim);
    const double scale = uneven ? 0.3 + 3.0 * ((d * 7) % head_dim) / head_dim : 1.0;
    x[i] = static_cast<float>(scale * rng.NextGaussian());
  }
  return x;
}

// fp64 softmax attention of q [q_heads][hd] over k, v [n][kv_heads][hd].
std::vector<double> Attention(const std::vector<float>& q, const std::vector<float>& k,
                              const std::vector<float>& v, int q_heads, int kv_heads, int hd,
                              double scale) {
  const int n = static_cast<int>(k.size() / (static_cast<size_t>(kv_heads) * hd));
  const int group = q_heads / kv_heads;
  std::vector<double> out(static_cast<size_t>(q_heads) * hd, 0.0);
  for (int h = 0; h < q_heads; ++h) {
    const int kv = h / group;
    std::vector<double> s(n);
    for (int t = 0; t < n; ++t) {
      double dot = 0;
      for (int d = 0; d < hd; ++d) {
        dot += static_cast<double>(q[h * hd + d]) *
               k[(static_cast<size_t>(t) * kv_heads + kv) * hd + d];
      }
      s[t] = scale * dot;
    }
    const double top = *std::max_element(s.begin(), s.end());
    double sum = 0;
    for (int t = 0; t < n; ++t) {
      const double p = std::exp(s[t] - top);
      sum += p;
      for (int d = 0; d < hd; ++d) {
        out[h * hd + d] += p * v[(static_cast<size_t>(t) * kv_heads + kv) * hd + d];
      }
    }
    for (int d = 0; d < hd; ++d) out[h * hd + d] /= sum;
  }
  return out;
}

double MaxAbs(const std::vector<float>& x) {
  double m = 0;
  for (float f : x) m = std::max(m, static_cast<double>(std::abs(f)));
  return m;
}

struct CacheCase {
  std::string name;
  std::vector<int> widths;
  KScheme scheme = KScheme::kBlockGtq;
  int v_bits = 3;
  int kv_heads = 2;
  int q_heads = 2;
  int sinks = 0;
  int recent = 0;
  int tokens = 150;         // two full pages and a partial one (without sinks)
  std::vector<int> chunks;  // appended in these sizes, the rest at the end
  std::vector<int> exempt;  // layers at exempt_bits for K and V
  int exempt_bits = 8;
};

std::vector<CacheCase> Cases() {
  const std::vector<int> uneven = {1, 2, 3, 4, 5, 6, 7, 8, 3, 2, 2, 1, 4, 3, 2, 3};
  return {
      {.name = "BlockGtqWidths1To8", .widths = uneven, .v_bits = 2, .chunks = {1, 63, 1}},
      {.name = "Uniform3", .widths = {3}, .scheme = KScheme::kUniform, .chunks = {150}},
      {.name = "UniformGqa",
       .widths = {2},
       .scheme = KScheme::kUniform,
       .v_bits = 4,
       .q_heads = 6,
       .chunks = {100, 1, 1}},
      {.name = "BlockGtqGqaSinks",
       .widths = uneven,
       .q_heads = 4,
       .sinks = 4,
       .tokens = 133,
       .chunks = {3, 2, 64}},
      {.name = "BlockGtqGqaRecent",
       .widths = uneven,
       .q_heads = 4,
       .recent = 16,
       .chunks = {10, 1, 70}},
      {.name = "SinksAndRecent",
       .widths = {2, 4, 1, 8},
       .v_bits = 1,
       .q_heads = 6,
       .sinks = 3,
       .recent = 70,
       .tokens = 200,
       .chunks = {2, 2, 100, 1}},
      {.name = "AllFp16", .widths = {3}, .q_heads = 4, .sinks = 1 << 30, .chunks = {50}},
      {.name = "ExactPages", .widths = uneven, .tokens = 128, .chunks = {64}},
      // Layer 0 at 5 bits for K and V, the other at V2: a V width taken from
      // the plan rather than the layer would decode garbage in one of them.
      {.name = "ExemptLayer",
       .widths = uneven,
       .v_bits = 2,
       .q_heads = 4,
       .chunks = {1, 70},
       .exempt = {0},
       .exempt_bits = 5},
  };
}

class PackedKvCacheCaseTest : public ::testing::TestWithParam<CacheCase> {};

// Attention over the packed pages equals fp64 attention over the K/V that
// ReadBack decodes (the same codes, un-rotated by GroupedQuantizer::Decode),
// for every query position of every chunk (causal prefill), to fp32 rounding.
//
// Tolerance: the cache works in fp32 in the rotated domain. A score
// s = scale·q̂·ŷ differs from scale·q·k̂ (k̂ decoded in fp32) by the rounding
// of the rotation of q, of k̂ and of the dot products: each a sum of at most
// head_dim terms, relative error ≲ head_dim·2⁻²⁴ of Σ|q_i·k_i|. A score error
// δ moves the output by at most δ·max|v|, and V's own decode and un-rotation
// add head_dim·2⁻²⁴·max|v|. With head_dim 32 and |scores| ≲ 30 here, that is
// ~1e-4·max|v| in the worst case; typical errors are 1e-6 (checked below with
// 2e-5·max|v|, which a wrong code, norm, token or window would exceed by
// orders of magnitude: quantization errors are ~1e-1).
TEST_P(PackedKvCacheCaseTest, AttendEqualsAttentionOverReadBack) {
  const CacheCase& c = GetParam();
  const int layers = 2, hd = 32;
  const KvPlan plan =
      MakePlan(layers, c.kv_heads, hd, c.widths, c.v_bits, c.scheme, c.exempt, c.exempt_bits);
  absl::StatusOr<PackedKvCache> cache = PackedKvCache::Create(
      plan, c.q_heads, {.sink_tokens = c.sinks, .recent_tokens = c.recent, .pages_per_split = 1});
  ASSERT_TRUE(cache.ok()) << cache.status();
  DeterministicRng rng(11);
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  std::vector<int> chunks = c.chunks;
  int total = 0;
  for (int n : chunks) total += n;
  if (total < c.tokens) chunks.push_back(c.tokens - total);
  double worst = 0;
  for (int n : chunks) {
    for (int layer = 0; layer < layers; ++layer) {
      const std::vector<float> k = RandomRows(rng, n, c.kv_heads, hd, /*uneven=*/true);
      const std::vector<float> v = RandomRows(rng, n, c.kv_heads, hd, /*uneven=*/false);
      const int64_t before = cache->num_tokens(layer);
      ASSERT_TRUE(cache->Append(layer, k, v).ok());
      ASSERT_EQ(cache->num_tokens(layer), before + n);
      // Every query of the chunk, each over its own prefix.
      for (int64_t keys = before + 1; keys <= before + n; ++keys) {
        std::vector<float> q(static_cast<size_t>(c.q_heads) * hd);
        for (float& x : q) x = static_cast<float>(1.5 * rng.NextGaussian());
        std::vector<float> out(q.size());
        ASSERT_TRUE(cache->Attend(layer, q, keys, absl::MakeSpan(out)).ok());
        const size_t kv_values = static_cast<size_t>(keys) * c.kv_heads * hd;
        std::vector<float> kd(kv_values), vd(kv_values);
        ASSERT_TRUE(cache->ReadBack(layer, keys, absl::MakeSpan(kd), absl::MakeSpan(vd)).ok());
        const std::vector<double> ref = Attention(q, kd, vd, c.q_heads, c.kv_heads, hd, scale);
        const double tol = 2e-5 * MaxAbs(vd);
        for (size_t i = 0; i < out.size(); ++i) {
          ASSERT_TRUE(std::isfinite(out[i]));
          ASSERT_NEAR(out[i], ref[i], tol)
              << c.name << " layer " << layer << " keys " << keys << " element " << i;
          worst = std::max(worst, std::abs(out[i] - ref[i]) / MaxAbs(vd));
        }
      }
    }
  }
  RecordProperty("worst_relative_error", std::to_string(worst));
}

// The cache's view of each head, run through the fp64 reference of the CUDA
// kernel (PackedDecodeAttentionReference), gives the cache's output within
// fp32 tolerance; the reference reads the very pages the cache wrote.
TEST_P(PackedKvCacheCaseTest, AgreesWithPackedDecodeAttentionReference) {
  const CacheCase& c = GetParam();
  const int hd = 32;
  const KvPlan plan =
      MakePlan(1, c.kv_heads, hd, c.widths, c.v_bits, c.scheme, c.exempt, c.exempt_bits);
  absl::StatusOr<PackedKvCache> cache =
      PackedKvCache::Create(plan, c.q_heads, {.sink_tokens = c.sinks, .recent_tokens = c.recent});
  ASSERT_TRUE(cache.ok()) << cache.status();
  DeterministicRng rng(3);
  const std::vector<float> k = RandomRows(rng, c.tokens, c.kv_heads, hd, true);
  const std::vector<float> v = RandomRows(rng, c.tokens, c.kv_heads, hd, false);
  ASSERT_TRUE(cache->Append(0, k, v).ok());
  std::vector<float> q(static_cast<size_t>(c.q_heads) * hd);
  for (float& x : q) x = static_cast<float>(1.5 * rng.NextGaussian());
  std::vector<float> out(q.size());
  ASSERT_TRUE(cache->Attend(0, q, c.tokens, absl::MakeSpan(out)).ok());
  const int group = c.q_heads / c.kv_heads;
  for (int kv = 0; kv < c.kv_heads; ++kv) {
    absl::StatusOr<PackedHeadView> view = cache->HeadView(0, kv, c.tokens);
    ASSERT_TRUE(view.ok()) << view.status();
    EXPECT_EQ(view->sink.num_tokens + view->num_packed_tokens + view->recent.num_tokens, c.tokens);
    const std::vector<Rotation> k_rot = cache->KRotations(0, kv);
    PackedAttentionInputs in;
    in.q = absl::MakeConstSpan(q).subspan(static_cast<size_t>(kv) * group * hd, group * hd);
    in.group_size = group;
    in.pages = view->pages;
    in.num_packed_tokens = view->num_packed_tokens;
    in.sink = view->sink;
    in.recent = view->recent;
    in.scale = 1.0 / std::sqrt(static_cast<double>(hd));
    std::vector<double> ref(static_cast<size_t>(group) * hd);
    ASSERT_TRUE(PackedDecodeAttentionReference(*view->layout, k_rot, cache->VRotation(), in,
                                               absl::MakeSpan(ref))
                    .ok());
    for (int i = 0; i < group * hd; ++i) {
      ASSERT_NEAR(out[kv * group * hd + i], ref[i], 2e-5 * MaxAbs(v)) << c.name << " kv " << kv;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, PackedKvCacheCaseTest, ::testing::ValuesIn(Cases()),
                         [](const auto& param_info) { return param_info.param.name; });

// Splitting the key axis into one partial per page and merging them by
// log-sum-exp gives the single-partial result up to fp32 rounding order.
TEST(PackedKvCacheTest, SplitMergeEqualsUnsplit) {
  const KvPlan plan = MakePlan(1, 2, 32, {1, 2, 3, 4, 5, 6, 7, 8}, 3);
  absl::StatusOr<PackedKvCache> split = PackedKvCache::Create(plan, 4, {.pages_per_split = 1});
  absl::StatusOr<PackedKvCache> whole = PackedKvCache::Create(plan, 4, {.pages_per_split = 1000});
  ASSERT_TRUE(split.ok() && whole.ok());
  DeterministicRng rng(8);
  const std::vector<float> k = RandomRows(rng, 300, 2, 32, true);
  const std::vector<float> v = RandomRows(rng, 300, 2, 32, false);
  ASSERT_TRUE(split->Append(0, k, v).ok());
  ASSERT_TRUE(whole->Append(0, k, v).ok());
  std::vector<float> q(4 * 32);
  for (float& x : q) x = static_cast<float>(2.0 * rng.NextGaussian());
  std::vector<float> a(q.size()), b(q.size());
  ASSERT_TRUE(split->Attend(0, q, 300, absl::MakeSpan(a)).ok());
  ASSERT_TRUE(whole->Attend(0, q, 300, absl::MakeSpan(b)).ok());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-5 * MaxAbs(v)) << i;
}

// Bytes per packed token are the page's bytes over its 64 slots, and the
// what-if reports exactly those (codes dense at every width, norms included).
TEST(PackedKvCacheTest, BytesPerTokenAgainstWhatIf) {
  // hd 64 uniform K3V3: 24 + 2 bytes of K and of V.
  const KvPlan uniform = MakePlan(1, 1, 64, {3}, 3, KScheme::kUniform);
  absl::StatusOr<PackedKvCache> u = PackedKvCache::Create(uniform, 1);
  ASSERT_TRUE(u.ok());
  KvTokenBytes w = TokenBytesForHead(uniform.KBlockBits(0, 0), 3);
  EXPECT_EQ(u->BytesPerToken(0, 0).k, w.k());
  EXPECT_EQ(u->BytesPerToken(0, 0).v, w.v());
  EXPECT_EQ(u->BytesPerToken(0, 0).k, 26.0);

  // One block at each width 1..8 (2 dims each): 2·Σw/8 = 9 code bytes where a
  // per-token record would take 1+1+1+1+2+2+2+2 = 12; 8 norms.
  const KvPlan ladder = MakePlan(1, 1, 16, {1, 2, 3, 4, 5, 6, 7, 8}, 3);
  absl::StatusOr<PackedKvCache> l = PackedKvCache::Create(ladder, 1);
  ASSERT_TRUE(l.ok());
  w = TokenBytesForHead(ladder.KBlockBits(0, 0), 3);
  EXPECT_EQ(l->BytesPerToken(0, 0).k, 9.0 + 16.0);
  EXPECT_EQ(w.k(), l->BytesPerToken(0, 0).k);
  EXPECT_EQ(l->BytesPerToken(0, 0).v, w.v());
  const PackedTokenBytes mean = l->MeanBytesPerToken();
  EXPECT_EQ(mean.total(), l->BytesPerToken(0, 0).total());

  // Fractional bytes: 3 blocks at 3 bits (6 dims, 2.25 B) + 5 at 2 (10 dims, 2.5 B).
  const KvPlan odd = MakePlan(1, 1, 16, {3, 3, 3, 2, 2, 2, 2, 2}, 2);
  absl::StatusOr<PackedKvCache> o = PackedKvCache::Create(odd, 1);
  ASSERT_TRUE(o.ok()) << o.status();
  w = TokenBytesForHead(odd.KBlockBits(0, 0), 2);
  EXPECT_EQ(w.k(), 2.25 + 2.5 + 4.0);
  EXPECT_EQ(o->BytesPerToken(0, 0).k, w.k());
  EXPECT_EQ(o->BytesPerToken(0, 0).v, w.v());
}

// An exempt layer's pages hold K as one group and V at exempt_bits; the mean
// over heads (what kvplan-worker ppl reports) and the plan's bytes per token
// (PlanToJson, the coordinator) both count them.
TEST(PackedKvCacheTest, ExemptLayerBytesPerToken) {
  const KvPlan plan = MakePlan(3, 2, 32, {1, 2, 3}, 2, KScheme::kBlockGtq, {0, 2}, 8);
  absl::StatusOr<PackedKvCache> cache = PackedKvCache::Create(plan, 2);
  ASSERT_TRUE(cache.ok()) << cache.status();
  EXPECT_EQ(plan.VBits(0), 8);
  EXPECT_EQ(plan.VBits(1), 2);
  // hd 32 at 8 bits: 32 code bytes + one fp16 norm, for K and for V alike.
  EXPECT_EQ(cache->BytesPerToken(0, 1).k, 34.0);
  EXPECT_EQ(cache->BytesPerToken(0, 1).v, 34.0);
  EXPECT_EQ(cache->BytesPerToken(2, 0).v, 34.0);
  // V2: 8 code bytes + a norm.
  EXPECT_EQ(cache->BytesPerToken(1, 0).v, 10.0);
  double k = 0, v = 0;
  for (int l = 0; l < 3; ++l) {
    for (int h = 0; h < 2; ++h) {
      const KvTokenBytes w = TokenBytesForHead(plan.KBlockBits(l, h), plan.VBits(l));
      EXPECT_EQ(cache->BytesPerToken(l, h).k, w.k()) << l << "." << h;
      EXPECT_EQ(cache->BytesPerToken(l, h).v, w.v()) << l << "." << h;
      k += w.k();
      v += w.v();
    }
  }
  const KvTokenBytes whole = PlanBytesPerToken(plan);
  EXPECT_EQ(whole.k(), k);
  EXPECT_EQ(whole.v(), v);
  EXPECT_DOUBLE_EQ(cache->MeanBytesPerToken().total(), whole.total() / 6);
}

TEST(PackedKvCacheTest, RefusesBadInputs) {
  const KvPlan plan = MakePlan(2, 2, 16, {2, 3}, 2);
  EXPECT_FALSE(PackedKvCache::Create(plan, 3).ok());  // 3 q heads over 2 KV heads
  EXPECT_FALSE(PackedKvCache::Create(plan, 2, {.pages_per_split = 0}).ok());
  EXPECT_FALSE(PackedKvCache::Create(plan, 2, {.recent_tokens = -1}).ok());
  absl::StatusOr<PackedKvCache> cache = PackedKvCache::Create(plan, 4, {.recent_tokens = 4});
  ASSERT_TRUE(cache.ok());
  DeterministicRng rng(1);
  std::vector<float> k = RandomRows(rng, 10, 2, 16, true), v = RandomRows(rng, 10, 2, 16, false);

  EXPECT_TRUE(absl::IsInvalidArgument(cache->Append(2, k, v)));  // no layer 2
  EXPECT_TRUE(absl::IsInvalidArgument(cache->Append(0, k, absl::MakeConstSpan(v).first(16))));
  EXPECT_TRUE(absl::IsInvalidArgument(
      cache->Append(0, absl::MakeConstSpan(k).first(20), absl::MakeConstSpan(v).first(20))));
  std::vector<float> bad = k;
  bad[3 * 32 + 16 + 5] = std::numeric_limits<float>::quiet_NaN();
  const absl::Status nan = cache->Append(0, bad, v);
  EXPECT_TRUE(absl::IsInvalidArgument(nan));
  EXPECT_NE(nan.message().find("k[3][1][5]"), std::string_view::npos) << nan;
  EXPECT_EQ(cache->num_tokens(0), 0);  // nothing appended by a refused call

  ASSERT_TRUE(cache->Append(0, k, v).ok());
  std::vector<float> q(4 * 16, 0.5f), out(4 * 16);
  EXPECT_TRUE(absl::IsInvalidArgument(cache->Attend(0, q, 0, absl::MakeSpan(out))));
  EXPECT_TRUE(absl::IsInvalidArgument(cache->Attend(0, q, 11, absl::MakeSpan(out))));
  EXPECT_TRUE(absl::IsInvalidArgument(cache->Attend(1, q, 1, absl::MakeSpan(out))));  // empty
  EXPECT_TRUE(absl::IsInvalidArgument(
      cache->Attend(0, absl::MakeConstSpan(q).first(16), 5, absl::MakeSpan(out))));
  q[7] = std::numeric_limits<float>::infinity();
  EXPECT_TRUE(absl::IsInvalidArgument(cache->Attend(0, q, 5, absl::MakeSpan(out))));
  q[7] = 0.5f;
  EXPECT_TRUE(cache->Attend(0, q, 1, absl::MakeSpan(out)).ok());

  // After another chunk, prefixes older than its first token lost their window.
  ASSERT_TRUE(cache->Append(0, k, v).ok());
  EXPECT_TRUE(cache->Attend(0, q, 11, absl::MakeSpan(out)).ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(cache->Attend(0, q, 5, absl::MakeSpan(out))));

  cache->Clear();
  EXPECT_EQ(cache->num_tokens(0), 0);
  EXPECT_TRUE(absl::IsInvalidArgument(cache->Attend(0, q, 1, absl::MakeSpan(out))));
}

}  // namespace
}  // namespace kvplan
