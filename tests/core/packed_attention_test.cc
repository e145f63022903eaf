#include "core/packed_attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <utility>
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

// `tokens` random K and V vectors (N(0,1) from rng, k then v per token)
// encoded as records: K by k_layout's groups with Haar rotations seeded by
// width, V uniform at v_bits; with the rotations and the decoded vectors.
struct EncodedTokens {
  std::vector<Rotation> k_rot;
  Rotation v_rot;
  std::vector<std::vector<uint8_t>> k_records, v_records;
  std::vector<float> k_dec, v_dec;  // [tokens, head_dim]
};

EncodedTokens EncodeRandomTokens(const GroupLayout& k_layout, int v_bits, int tokens,
                                 DeterministicRng& rng) {
  const int hd = k_layout.head_dim;
  EncodedTokens e;
  for (const QuantGroup& g : k_layout.groups) e.k_rot.push_back(HaarRotation(g.size, 40 + g.bits));
  e.v_rot = HaarRotation(hd, 77);
  const GroupedQuantizer kq = *GroupedQuantizer::Create(k_layout, e.k_rot);
  const GroupedQuantizer vq = *GroupedQuantizer::Create(*UniformLayout(hd, v_bits), {e.v_rot});
  e.k_dec.resize(tokens * hd);
  e.v_dec.resize(tokens * hd);
  for (int t = 0; t < tokens; ++t) {
    std::vector<float> k(hd), v(hd);
    for (float& x : k) x = static_cast<float>(rng.NextGaussian());
    for (float& x : v) x = static_cast<float>(rng.NextGaussian());
    std::vector<uint8_t> kr(kq.PackedBytes()), vr(vq.PackedBytes());
    kq.Encode(k, absl::MakeSpan(kr));
    vq.Encode(v, absl::MakeSpan(vr));
    kq.Decode(kr, absl::MakeSpan(e.k_dec.data() + t * hd, hd));
    vq.Decode(vr, absl::MakeSpan(e.v_dec.data() + t * hd, hd));
    e.k_records.push_back(std::move(kr));
    e.v_records.push_back(std::move(vr));
  }
  return e;
}

// The reference (rotated-domain, fp64) against the obvious computation: decode
// every key and value with GroupedQuantizer::Decode and attend in fp64.
TEST(PackedAttentionTest, MatchesAttentionOverDecodedVectors) {
  const int hd = 32, heads = 3, tokens = 150, sinks = 2, recent = 5;
  std::vector<int> widths = {1, 2, 3, 3, 4, 5, 2, 3, 6, 3, 2, 1, 8, 3, 4, 2};
  std::vector<std::array<int, 2>> dims;
  for (int i = 0; i < hd / 2; ++i) dims.push_back({i, i + hd / 2});
  const GroupLayout k_layout = *BuildGroupLayout(widths, dims);
  const PackedPageLayout layout = *PackedPageLayout::Create(k_layout, 3);
  DeterministicRng rng(5);
  const EncodedTokens enc = EncodeRandomTokens(k_layout, 3, tokens, rng);
  const std::vector<Rotation>& k_rot = enc.k_rot;
  const Rotation& v_rot = enc.v_rot;
  const std::vector<float>& k_dec = enc.k_dec;
  const std::vector<float>& v_dec = enc.v_dec;
  const int num_pages = (tokens + kPageTokens - 1) / kPageTokens;
  std::vector<std::vector<uint8_t>> pages(num_pages, std::vector<uint8_t>(layout.page_bytes()));
  for (int t = 0; t < tokens; ++t) {
    WriteRecordsToPage(layout, enc.k_records[t], enc.v_records[t], t % kPageTokens,
                       absl::MakeSpan(pages[t / kPageTokens]));
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
  const PackedPageLayout packed = *PackedPageLayout::Create(k_layout, 4);
  const FragmentPageLayout fragment = *FragmentPageLayout::Create(k_layout, 4);
  DeterministicRng rng(9);
  const EncodedTokens enc = EncodeRandomTokens(k_layout, 4, tokens, rng);
  const int num_pages = (tokens + kPageTokens - 1) / kPageTokens;
  std::vector<std::vector<uint8_t>> v1(num_pages, std::vector<uint8_t>(packed.page_bytes()));
  std::vector<std::vector<uint8_t>> v2(num_pages, std::vector<uint8_t>(fragment.page_bytes()));
  for (int t = 0; t < tokens; ++t) {
    WriteRecordsToPage(packed, enc.k_records[t], enc.v_records[t], t % kPageTokens,
                       absl::MakeSpan(v1[t / kPageTokens]));
    WriteRecordsToFragmentPage(fragment, enc.k_records[t], enc.v_records[t], t % kPageTokens,
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
  ASSERT_TRUE(
      PackedDecodeAttentionReference(packed, enc.k_rot, enc.v_rot, in, absl::MakeSpan(out1)).ok());
  in.pages = spans2;
  ASSERT_TRUE(
      PackedDecodeAttentionReference(fragment, enc.k_rot, enc.v_rot, in, absl::MakeSpan(out2))
          .ok());
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
