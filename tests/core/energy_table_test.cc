#include "core/energy_table.h"

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace kvplan {
namespace {

using nlohmann::json;

TEST(EnergyTableTest, ReadsEnergiesInAnyKeyOrder) {
  absl::StatusOr<EnergyTable> table = EnergyTableFromJson(json::parse(R"({
      "1.0": {"q": [1, 2], "k": [3, 4]}, "0.1": {"q_energy": [5, 6], "k_energy": [7, 8]},
      "0.0": {"q": [0, 0], "k": [0, 0]}, "1.1": {"q": [1, 1], "k": [1, 1]}})"));
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->num_layers(), 2);
  EXPECT_EQ(table->num_kv_heads(), 2);
  EXPECT_EQ(table->num_blocks(), 2);
  EXPECT_TRUE(table->has_energies());
  EXPECT_EQ(*table->Scores(0, 1, ScoreKind::kSum), (std::vector<double>{6, 7}));
  EXPECT_EQ(*table->Scores(1, 0, ScoreKind::kProduct), (std::vector<double>{3, 8}));
  EXPECT_EQ(table->Scores(2, 0, ScoreKind::kSum).status().code(), absl::StatusCode::kNotFound);
}

TEST(EnergyTableTest, ReadyScoresAcceptOnlyTheSumScore) {
  absl::StatusOr<EnergyTable> table =
      EnergyTableFromJson(json::parse(R"({"block_energy_calib": {"0.0": [1.5, 2.5]}})"));
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_FALSE(table->has_energies());
  EXPECT_EQ(*table->Scores(0, 0, ScoreKind::kSum), (std::vector<double>{1.5, 2.5}));
  EXPECT_FALSE(table->Scores(0, 0, ScoreKind::kProduct).ok());
}

TEST(EnergyTableTest, BuildsFromStatisticsMeans) {
  BlockStats stats = *BlockStats::Create({.num_layers = 1, .num_kv_heads = 1, .num_blocks = 2});
  ASSERT_TRUE(stats.Add(0, 0, {2, 4}, 2, {6, 8}, 2).ok());
  absl::StatusOr<EnergyTable> table = EnergyTableFromStats(stats);
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->MeanQ(0, 0), (std::vector<double>{1, 2}));
  EXPECT_EQ(table->MeanK(0, 0), (std::vector<double>{3, 4}));
  BlockStats empty = *BlockStats::Create({.num_layers = 1, .num_kv_heads = 2, .num_blocks = 2});
  EXPECT_EQ(EnergyTableFromStats(empty).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(EnergyTableTest, RefusesMixedFormsDuplicatesAndGaps) {
  EXPECT_FALSE(
      EnergyTableFromJson(json::parse(R"({"0.0": [1], "0.1": {"q": [1], "k": [1]}})")).ok());
  EXPECT_FALSE(EnergyTableFromJson(json::parse(R"({"0.0": {"q": [1]}})")).ok());
  EXPECT_FALSE(EnergyTableFromJson(json::parse(R"({"0.x": [1]})")).ok());
  EXPECT_FALSE(EnergyTableFromJson(json::parse(R"({"-1.0": [1]})")).ok());
  EXPECT_FALSE(EnergyTableFromJson(json::parse(R"({"0.0": [1], "00.0": [1]})")).ok());
  EXPECT_FALSE(EnergyTableFromJson(json::parse(R"({"1.0": [1]})")).ok());
  EXPECT_FALSE(EnergyTableFromJson(json::parse(R"({})")).ok());
  EXPECT_FALSE(EnergyTableFromJson(json::parse(R"({"0.0": [1, -0.5]})")).ok());
}

}  // namespace
}  // namespace kvplan
