#include "core/fidelity.h"

#include <cmath>
#include <random>

#include "gtest/gtest.h"

namespace kvplan {
namespace {

RopeSpec SmallRope(RopeStyle style) {
  RopeSpec rope;
  rope.style = style;
  rope.head_dim = 8;
  rope.rotary_dim = 8;
  rope.theta = 100.0;
  return rope;
}

std::vector<float> Random(size_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

TEST(FidelityTest, OffsetsMatchNumpyLinspace) {
  const std::vector<double> offsets = DiagnosticOffsets();
  ASSERT_EQ(offsets.size(), 50u);
  EXPECT_EQ(offsets.front(), -1024.0);
  EXPECT_EQ(offsets.back(), 1024.0);
  EXPECT_NEAR(offsets[1], -1024.0 + 2048.0 / 49, 1e-12);
}

TEST(FidelityTest, KernelMaeIsZeroForExactKeys) {
  const AttentionShape shape{.tokens = 5, .num_q_heads = 4, .num_kv_heads = 2, .head_dim = 8};
  const std::vector<float> q = Random(5 * 4 * 8, 1), k = Random(5 * 2 * 8, 2);
  absl::StatusOr<double> mae =
      KernelMae(q, k, k, shape, SmallRope(RopeStyle::kSplitHalf), DiagnosticOffsets());
  ASSERT_TRUE(mae.ok()) << mae.status();
  EXPECT_EQ(*mae, 0.0);
}

// The block decomposition must equal rotating the key by δ and taking the dot product.
TEST(FidelityTest, KernelMaeEqualsExplicitRotation) {
  const AttentionShape shape{.tokens = 3, .num_q_heads = 4, .num_kv_heads = 2, .head_dim = 8};
  const std::vector<float> q = Random(3 * 4 * 8, 3), k = Random(3 * 2 * 8, 4),
                           k_hat = Random(3 * 2 * 8, 5);
  const std::vector<double> offsets = {-700.0, -3.0, 0.0, 1.0, 250.5};
  for (RopeStyle style : {RopeStyle::kSplitHalf, RopeStyle::kInterleaved}) {
    const RopeSpec rope = SmallRope(style);
    const RopeRotator rotator(rope);
    double total = 0.0;
    for (int t = 0; t < 3; ++t) {
      for (int h = 0; h < 4; ++h) {
        for (double delta : offsets) {
          std::vector<float> e(8);
          for (int d = 0; d < 8; ++d)
            e[d] = k[(t * 2 + h / 2) * 8 + d] - k_hat[(t * 2 + h / 2) * 8 + d];
          // RopeRotator takes whole positions; use the fp64 formula for fractional δ.
          const std::vector<double> theta = rope.InvFrequencies();
          double value = 0.0;
          for (int i = 0; i < 4; ++i) {
            const auto [a, b] = rope.BlockDims(i);
            const double c = std::cos(delta * theta[i]), s = std::sin(delta * theta[i]);
            const double ra = c * e[a] - s * e[b], rb = s * e[a] + c * e[b];
            value += q[(t * 4 + h) * 8 + a] * ra + q[(t * 4 + h) * 8 + b] * rb;
          }
          if (delta == std::floor(delta)) {  // Cross-check against the rotator too.
            std::vector<float> rotated = e;
            rotator.Apply(static_cast<int64_t>(delta), absl::MakeSpan(rotated));
            double dot = 0.0;
            for (int d = 0; d < 8; ++d) dot += q[(t * 4 + h) * 8 + d] * rotated[d];
            EXPECT_NEAR(dot, value, 1e-4);
          }
          total += std::abs(value);
        }
      }
    }
    absl::StatusOr<double> mae = KernelMae(q, k, k_hat, shape, rope, offsets);
    ASSERT_TRUE(mae.ok()) << mae.status();
    EXPECT_NEAR(*mae, total / (3 * 4 * offsets.size()), 1e-6);  // e is fp32 here
  }
}

TEST(FidelityTest, IdenticalKeysGiveZeroKlAndFullOverlap) {
  const AttentionShape shape{.tokens = 40, .num_q_heads = 2, .num_kv_heads = 1, .head_dim = 8};
  const std::vector<float> q = Random(40 * 2 * 8, 6), k = Random(40 * 8, 7);
  absl::StatusOr<AttentionFidelity> f = CausalAttentionFidelity(q, k, k, shape);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->kl, 0.0);
  EXPECT_EQ(f->top_k_overlap, 1.0);
  EXPECT_EQ(f->queries, 2 * (40 - 16));
}

TEST(FidelityTest, KlAndOverlapOfAHandComputedCase) {
  // One query at position 1 sees keys 0 and 1; hd 2 so logits are dot/√2.
  const AttentionShape shape{.tokens = 2, .num_q_heads = 1, .num_kv_heads = 1, .head_dim = 2};
  const std::vector<float> q = {0, 0, 1, 0};
  const std::vector<float> k = {0, 0, 0, 0};                                       // p = (½, ½)
  const std::vector<float> k_hat = {0, 0, static_cast<float>(std::sqrt(2.0)), 0};  // p̂ ∝ (1, e)
  absl::StatusOr<AttentionFidelity> f =
      CausalAttentionFidelity(q, k, k_hat, shape, /*first_query=*/1, /*top_k=*/1);
  ASSERT_TRUE(f.ok()) << f.status();
  const double z = 1.0 + std::exp(1.0);
  const double expected =
      0.5 * std::log(0.5 / (1.0 / z)) + 0.5 * std::log(0.5 / (std::exp(1.0) / z));
  EXPECT_NEAR(f->kl, expected, 1e-6);
  EXPECT_EQ(f->top_k_overlap, 0.0);  // top-1 of p is key 0 (tie → lower index); of p̂ key 1.
}

TEST(FidelityTest, NoisierKeysScoreWorse) {
  const AttentionShape shape{.tokens = 64, .num_q_heads = 4, .num_kv_heads = 2, .head_dim = 8};
  const std::vector<float> q = Random(64 * 4 * 8, 8, 2.0f), k = Random(64 * 2 * 8, 9, 2.0f);
  const std::vector<float> small = Random(k.size(), 10, 0.05f), large = Random(k.size(), 10, 0.5f);
  std::vector<float> k_small(k.size()), k_large(k.size());
  for (size_t i = 0; i < k.size(); ++i) {
    k_small[i] = k[i] + small[i];
    k_large[i] = k[i] + large[i];
  }
  const RopeSpec rope = SmallRope(RopeStyle::kSplitHalf);
  const std::vector<double> offsets = DiagnosticOffsets();
  EXPECT_LT(*KernelMae(q, k, k_small, shape, rope, offsets),
            *KernelMae(q, k, k_large, shape, rope, offsets));
  const AttentionFidelity fs = *CausalAttentionFidelity(q, k, k_small, shape);
  const AttentionFidelity fl = *CausalAttentionFidelity(q, k, k_large, shape);
  EXPECT_LT(fs.kl, fl.kl);
  EXPECT_GT(fs.top_k_overlap, fl.top_k_overlap);
}

TEST(FidelityTest, RefusesInconsistentShapes) {
  const AttentionShape shape{.tokens = 2, .num_q_heads = 3, .num_kv_heads = 2, .head_dim = 8};
  const std::vector<float> q(2 * 3 * 8), k(2 * 2 * 8);
  EXPECT_FALSE(KernelMae(q, k, k, shape, SmallRope(RopeStyle::kSplitHalf), {0.0}).ok());
  const AttentionShape ok{.tokens = 2, .num_q_heads = 2, .num_kv_heads = 2, .head_dim = 8};
  EXPECT_FALSE(KernelMae(q, k, k, ok, SmallRope(RopeStyle::kSplitHalf), {0.0}).ok());
  EXPECT_FALSE(CausalAttentionFidelity(std::vector<float>(32), k, k, ok, 5).ok());
}

}  // namespace
}  // namespace kvplan
