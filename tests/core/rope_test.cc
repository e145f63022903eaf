#include "core/rope.h"

#include <cmath>
#include <fstream>
#include <numbers>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace kvplan {
namespace {

using nlohmann::json;

RopeSpec Spec(RopeStyle style, int head_dim, int rotary_dim, double theta = 10000.0) {
  RopeSpec spec;
  spec.style = style;
  spec.head_dim = head_dim;
  spec.rotary_dim = rotary_dim;
  spec.theta = theta;
  return spec;
}

TEST(RopeTest, SplitHalfPairsDimWithDimPlusHalf) {
  RopeSpec spec = Spec(RopeStyle::kSplitHalf, 8, 8);
  ASSERT_TRUE(spec.Validate().ok());
  EXPECT_EQ(spec.num_blocks(), 4);
  EXPECT_EQ(spec.BlockDims(0), (std::array<int, 2>{0, 4}));
  EXPECT_EQ(spec.BlockDims(3), (std::array<int, 2>{3, 7}));
}

TEST(RopeTest, InterleavedPairsAdjacentDims) {
  RopeSpec spec = Spec(RopeStyle::kInterleaved, 8, 8);
  EXPECT_EQ(spec.BlockDims(0), (std::array<int, 2>{0, 1}));
  EXPECT_EQ(spec.BlockDims(3), (std::array<int, 2>{6, 7}));
}

TEST(RopeTest, PartialRotaryAppendsStaticPairsWithZeroFrequency) {
  RopeSpec spec = Spec(RopeStyle::kSplitHalf, 8, 4);
  ASSERT_TRUE(spec.Validate().ok());
  EXPECT_EQ(spec.num_blocks(), 4);
  EXPECT_EQ(spec.num_rotary_blocks(), 2);
  EXPECT_EQ(spec.BlockDims(0), (std::array<int, 2>{0, 2}));
  EXPECT_EQ(spec.BlockDims(1), (std::array<int, 2>{1, 3}));
  EXPECT_EQ(spec.BlockDims(2), (std::array<int, 2>{4, 5}));
  EXPECT_EQ(spec.BlockDims(3), (std::array<int, 2>{6, 7}));
  const std::vector<double> f = spec.InvFrequencies();
  EXPECT_DOUBLE_EQ(f[0], 1.0);
  EXPECT_DOUBLE_EQ(f[1], 0.01);  // 1e4^(-2/4)
  EXPECT_EQ(f[2], 0.0);
  EXPECT_EQ(f[3], 0.0);
}

TEST(RopeTest, EveryDimBelongsToExactlyOneBlock) {
  for (RopeStyle style : {RopeStyle::kSplitHalf, RopeStyle::kInterleaved}) {
    for (int rotary : {2, 32, 64, 128}) {
      RopeSpec spec = Spec(style, 128, rotary);
      std::vector<int> seen(128, 0);
      for (const auto& dims : spec.AllBlockDims()) {
        ++seen[dims[0]];
        ++seen[dims[1]];
      }
      for (int d = 0; d < 128; ++d) EXPECT_EQ(seen[d], 1) << "dim " << d << " rotary " << rotary;
    }
  }
}

TEST(RopeTest, DefaultFrequenciesFollowTheta) {
  RopeSpec spec = Spec(RopeStyle::kSplitHalf, 64, 64, 10000.0);
  const std::vector<double> f = spec.InvFrequencies();
  ASSERT_EQ(f.size(), 32u);
  for (int i = 0; i < 32; ++i) EXPECT_NEAR(f[i], std::pow(10000.0, -2.0 * i / 64), 1e-15);
}

TEST(RopeTest, LinearScalingDividesEveryFrequency) {
  RopeSpec spec = Spec(RopeStyle::kSplitHalf, 16, 16);
  spec.scaling.type = RopeScalingType::kLinear;
  spec.scaling.factor = 4.0;
  const std::vector<double> f = spec.InvFrequencies();
  for (int i = 0; i < 8; ++i) EXPECT_NEAR(f[i], std::pow(10000.0, -2.0 * i / 16) / 4.0, 1e-15);
}

// Llama-3.1-8B: θ 500000, factor 8, band 1..4 of an 8192 context.
RopeSpec Llama31() {
  RopeSpec spec = Spec(RopeStyle::kSplitHalf, 128, 128, 500000.0);
  spec.scaling = {.type = RopeScalingType::kLlama3,
                  .factor = 8.0,
                  .low_freq_factor = 1.0,
                  .high_freq_factor = 4.0,
                  .original_max_position_embeddings = 8192};
  return spec;
}

TEST(RopeTest, Llama3ScalingKeepsHighInterpolatesLowAndSmoothsBetween) {
  RopeSpec spec = Llama31();
  ASSERT_TRUE(spec.Validate().ok());
  const std::vector<double> f = spec.InvFrequencies();
  int high = 0, low = 0, medium = 0;
  for (int i = 0; i < 64; ++i) {
    const double base = std::pow(500000.0, -2.0 * i / 128);
    const double wavelen = 2 * std::numbers::pi / base;
    if (wavelen < 8192.0 / 4) {
      EXPECT_DOUBLE_EQ(f[i], base);
      ++high;
    } else if (wavelen > 8192.0) {
      EXPECT_DOUBLE_EQ(f[i], base / 8.0);
      ++low;
    } else {
      EXPECT_LT(f[i], base);
      EXPECT_GT(f[i], base / 8.0);
      ++medium;
    }
  }
  EXPECT_GT(high, 0);
  EXPECT_GT(low, 0);
  EXPECT_GT(medium, 0);
}

TEST(RopeTest, YarnRampsFromExtrapolationToInterpolation) {
  json config = {
      {"hidden_size", 2048},
      {"num_attention_heads", 16},
      {"rope_theta", 1000000.0},
      {"max_position_embeddings", 32768},
      {"rope_scaling",
       {{"type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 32768}}}};
  absl::StatusOr<RopeSpec> spec = RopeSpecFromHfConfig(config);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->scaling.type, RopeScalingType::kYarn);
  EXPECT_NEAR(spec->scaling.attention_factor, 0.1 * std::log(4.0) + 1.0, 1e-12);
  const std::vector<double> f = spec->InvFrequencies();
  EXPECT_DOUBLE_EQ(f[0], 1.0);
  EXPECT_DOUBLE_EQ(f[63], std::pow(1e6, -126.0 / 128) / 4.0);
  for (int i = 1; i < 64; ++i) EXPECT_LT(f[i], f[i - 1]);
}

TEST(RopeTest, ReadsTransformers5RopeParametersFromTheShippedModel) {
  std::ifstream in(std::string(KVPLAN_SHARED_DIR) + "/models/doc-llama-h64/config.json");
  if (!in) GTEST_SKIP() << "../shared/models/doc-llama-h64 not present";
  absl::StatusOr<RopeSpec> spec = RopeSpecFromHfConfig(json::parse(in));
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->head_dim, 64);
  EXPECT_EQ(spec->rotary_dim, 64);
  EXPECT_EQ(spec->theta, 10000.0);
  EXPECT_EQ(spec->style, RopeStyle::kSplitHalf);
  EXPECT_EQ(spec->scaling.type, RopeScalingType::kNone);
}

TEST(RopeTest, ReadsLegacyFieldsPartialRotaryAndInterleavedModels) {
  absl::StatusOr<RopeSpec> spec =
      RopeSpecFromHfConfig({{"hidden_size", 4096},
                            {"num_attention_heads", 32},
                            {"head_dim", 128},
                            {"rope_theta", 500000.0},
                            {"max_position_embeddings", 131072},
                            {"rope_scaling",
                             {{"rope_type", "llama3"},
                              {"factor", 8.0},
                              {"low_freq_factor", 1.0},
                              {"high_freq_factor", 4.0},
                              {"original_max_position_embeddings", 8192}}}});
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->scaling.original_max_position_embeddings, 8192);
  EXPECT_EQ(spec->InvFrequencies(), Llama31().InvFrequencies());

  spec = RopeSpecFromHfConfig({{"hidden_size", 2560},
                               {"num_attention_heads", 32},
                               {"partial_rotary_factor", 0.5},
                               {"rope_theta", 10000.0}});
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->head_dim, 80);
  EXPECT_EQ(spec->rotary_dim, 40);

  spec = RopeSpecFromHfConfig(
      {{"model_type", "gptj"}, {"n_embd", 4096}, {"head_dim", 256}, {"rotary_dim", 64}});
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->style, RopeStyle::kInterleaved);
  EXPECT_EQ(spec->rotary_dim, 64);
}

TEST(RopeTest, RefusesUnsupportedOrMalformedConfigs) {
  absl::StatusOr<RopeSpec> spec = RopeSpecFromHfConfig(
      {{"head_dim", 64}, {"rope_scaling", {{"type", "dynamic"}, {"factor", 2.0}}}});
  ASSERT_FALSE(spec.ok());
  EXPECT_NE(spec.status().message().find("'dynamic'"), std::string::npos);

  spec = RopeSpecFromHfConfig({{"hidden_size", 100}});
  ASSERT_FALSE(spec.ok());
  EXPECT_NE(spec.status().message().find("head_dim"), std::string::npos);

  spec = RopeSpecFromHfConfig({{"head_dim", "64"}});
  ASSERT_FALSE(spec.ok());
  EXPECT_NE(spec.status().message().find("'head_dim' must be an integer"), std::string::npos);

  spec = RopeSpecFromHfConfig({{"head_dim", 63}});
  EXPECT_FALSE(spec.ok());
  spec = RopeSpecFromHfConfig({{"head_dim", 64}, {"rope_theta", -1.0}});
  EXPECT_FALSE(spec.ok());
  spec = RopeSpecFromHfConfig({{"head_dim", 64}, {"rope_scaling", {{"type", "llama3"}}}});
  EXPECT_FALSE(spec.ok()) << "llama3 without original_max_position_embeddings";
  EXPECT_FALSE(RopeSpecFromHfConfig(json::array()).ok());
}

}  // namespace
}  // namespace kvplan
