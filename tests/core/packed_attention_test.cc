#include "core/packed_attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/fragment_page.h"
#include "core/group_layout.h"
#include "core/grouped_quantizer.h"
#include "core/half.h"
#include "core/packed_page.h"
#include "core/random.h"
#include "core/rotation.h"

namespace kvplan {
namespace {

// The reference (rotated-domain, fp64) against the obvious computation: decode
// every key and value with GroupedQuantizer::Decode and attend in fp64.
TEST(PackedAttentionTest, MatchesAttentionOverDecodedVectors) {
  const int hd = 32, heads = 3, tokens = 150, sinks = 2, recent = 5;
  std::vector<int> widths = {1, 2, 3, 3, 4, 5, 2, 3, 6, 3, 2, 1, 8, 3, 4, 2};
  std::vector<std::array<int, 2>> dims;
  for (int i = 0; i < hd / 2; ++i) dims.push_back({i, i + hd / 2});
  const GroupLayout k_layout = *BuildGroupLayout(widths, dims);
  std::vector<Rotation> k_rot;
  for (const QuantGroup& g : k_layout.groups) k_rot.push_back(HaarRotation(g.size, 40 + g.bits));
  const Rotation v_rot = HaarRotation(hd, 77);
  const PackedPageLayout layout = *PackedPageLayout::Create(k_layout, 3);
  const GroupedQuantizer kq = *GroupedQuantizer::Create(k_layout, k_rot);
  const GroupedQuantizer vq = *GroupedQuantizer::Create(*UniformLayout(hd, 3), {v_rot});

  DeterministicRng rng(5);
  const int num_pages = (tokens + kPageTokens - 1) / kPageTokens;
  std::vector<std::vector<uint8_t>> pages(num_pages, std::vector<uint8_t>(layout.page_bytes()));
  std::vector<float> k_dec(tokens * hd), v_dec(tokens * hd);
  for (int t = 0; t < tokens; ++t) {
    std::vector<float> k(hd), v(hd);
    for (float& x : k) x = static_cast<float>(rng.NextGaussian());
    for (float& x : v) x = static_cast<float>(rng.NextGaussian());
    std::vector<uint8_t> kr(kq.PackedBytes()), vr(vq.PackedBytes());
    kq.Encode(k, absl::MakeSpan(kr));
    vq.Encode(v, absl::MakeSpan(vr));
    kq.Decode(kr, absl::MakeSpan(k_dec.data() + t * hd, hd));
    vq.Decode(vr, absl::MakeSpan(v_dec.data() + t * hd, hd));
    WriteRecordsToPage(layout, kr, vr, t % kPageTokens, absl::MakeSpan(pages[t / kPageTokens]));
  }
  std::vector<uint16_t> fk((sinks + recent) * hd), fv((sinks + recent) * hd);
  for (auto* f : {&fk, &fv}) {
    for (uint16_t& h : *f) h = FloatToHalf(static_cast<float>(rng.NextGaussian()));
  }
  std::vector<float> q(heads * hd);
  for (float& x : q) x = static_cast<float>(2.0 * rng.NextGaussian());

  std::vector<absl::Span<const uint8_t>> spans(pages.begin(), pages.end());
  PackedAttentionInputs in;
  in.q = q;
  in.group_size = heads;
  in.pages = spans;
  in.num_packed_tokens = tokens;
  in.sink = {absl::MakeConstSpan(fk.data(), sinks * hd), absl::MakeConstSpan(fv.data(), sinks * hd),
             sinks};
  in.recent = {absl::MakeConstSpan(fk.data() + sinks * hd, recent * hd),
               absl::MakeConstSpan(fv.data() + sinks * hd, recent * hd), recent};
  in.scale = 1.0 / std::sqrt(static_cast<double>(hd));
  std::vector<double> out(heads * hd);
  ASSERT_TRUE(PackedDecodeAttentionReference(layout, k_rot, v_rot, in, absl::MakeSpan(out)).ok());

  for (int h = 0; h < heads; ++h) {
    const int total = tokens + sinks + recent;
    std::vector<double> s(total);
    auto key = [&](int t, int d) {
      return t < tokens ? static_cast<double>(k_dec[t * hd + d])
                        : HalfToFloat(fk[(t - tokens) * hd + d]);
    };
    auto value = [&](int t, int d) {
      return t < tokens ? static_cast<double>(v_dec[t * hd + d])
                        : HalfToFloat(fv[(t - tokens) * hd + d]);
    };
    for (int t = 0; t < total; ++t) {
      double dot = 0;
      for (int d = 0; d < hd; ++d) dot += q[h * hd + d] * key(t, d);
      s[t] = dot * in.scale;
    }
    const double m = *std::max_element(s.begin(), s.end());
    double l = 0;
    for (double& x : s) l += (x = std::exp(x - m));
    for (int d = 0; d < hd; ++d) {
      double want = 0;
      for (int t = 0; t < total; ++t) want += s[t] * value(t, d);
      want /= l;
      // Decode() rotates back in fp32: agreement to fp32 rounding.
      EXPECT_NEAR(out[h * hd + d], want, 1e-5) << "head " << h << " dim " << d;
    }
  }
}

// The same tokens in fragment-native pages (fragment_page.h) attend to the
// same result, bit for bit: only where codes live differs.
TEST(PackedAttentionTest, FragmentPagesAttendExactlyLikePackedPages) {
  const int hd = 32, heads = 2, tokens = 150;
  std::vector<int> widths;
  for (int w : {1, 5, 3, 2}) widths.insert(widths.end(), 4, w);  // 8-dim groups
  std::vector<std::array<int, 2>> dims;
  for (int i = 0; i < hd / 2; ++i) dims.push_back({i, i + hd / 2});
  const GroupLayout k_layout = *BuildGroupLayout(widths, dims);
  std::vector<Rotation> k_rot;
  for (const QuantGroup& g : k_layout.groups) k_rot.push_back(HaarRotation(g.size, 40 + g.bits));
  const Rotation v_rot = HaarRotation(hd, 77);
  const PackedPageLayout packed = *PackedPageLayout::Create(k_layout, 4);
  const FragmentPageLayout fragment = *FragmentPageLayout::Create(k_layout, 4);
  const GroupedQuantizer kq = *GroupedQuantizer::Create(k_layout, k_rot);
  const GroupedQuantizer vq = *GroupedQuantizer::Create(*UniformLayout(hd, 4), {v_rot});
  DeterministicRng rng(9);
  const int num_pages = (tokens + kPageTokens - 1) / kPageTokens;
  std::vector<std::vector<uint8_t>> v1(num_pages, std::vector<uint8_t>(packed.page_bytes()));
  std::vector<std::vector<uint8_t>> v2(num_pages, std::vector<uint8_t>(fragment.page_bytes()));
  for (int t = 0; t < tokens; ++t) {
    std::vector<float> k(hd), v(hd);
    for (float& x : k) x = static_cast<float>(rng.NextGaussian());
    for (float& x : v) x = static_cast<float>(rng.NextGaussian());
    std::vector<uint8_t> kr(kq.PackedBytes()), vr(vq.PackedBytes());
    kq.Encode(k, absl::MakeSpan(kr));
    vq.Encode(v, absl::MakeSpan(vr));
    WriteRecordsToPage(packed, kr, vr, t % kPageTokens, absl::MakeSpan(v1[t / kPageTokens]));
    WriteRecordsToFragmentPage(fragment, kr, vr, t % kPageTokens,
                               absl::MakeSpan(v2[t / kPageTokens]));
  }
  std::vector<float> q(heads * hd);
  for (float& x : q) x = static_cast<float>(2.0 * rng.NextGaussian());
  std::vector<absl::Span<const uint8_t>> spans1(v1.begin(), v1.end()), spans2(v2.begin(), v2.end());
  PackedAttentionInputs in;
  in.q = q;
  in.group_size = heads;
  in.num_packed_tokens = tokens;
  in.scale = 1.0 / std::sqrt(static_cast<double>(hd));
  std::vector<double> out1(heads * hd), out2(heads * hd);
  in.pages = spans1;
  ASSERT_TRUE(PackedDecodeAttentionReference(packed, k_rot, v_rot, in, absl::MakeSpan(out1)).ok());
  in.pages = spans2;
  ASSERT_TRUE(
      PackedDecodeAttentionReference(fragment, k_rot, v_rot, in, absl::MakeSpan(out2)).ok());
  EXPECT_EQ(out1, out2);
  EXPECT_NE(out1, std::vector<double>(heads * hd, 0.0));
}

TEST(PackedAttentionTest, RejectsMismatchedSizes) {
  const PackedPageLayout layout = *PackedPageLayout::Create(*UniformLayout(16, 2), 2);
  const Rotation r = HaarRotation(16, 1);
  std::vector<float> q(16);
  std::vector<double> out(16);
  PackedAttentionInputs in;
  in.q = q;
  in.num_packed_tokens = 1;  // but no pages
  EXPECT_FALSE(PackedDecodeAttentionReference(layout, {r}, r, in, absl::MakeSpan(out)).ok());
  in.num_packed_tokens = 0;
  EXPECT_TRUE(PackedDecodeAttentionReference(layout, {r}, r, in, absl::MakeSpan(out)).ok());
  EXPECT_EQ(out, std::vector<double>(16, 0.0));
  EXPECT_FALSE(PackedDecodeAttentionReference(layout, {}, r, in, absl::MakeSpan(out)).ok());
}

}  // namespace
}  // namespace kvplan
