#include "core/score.h"

#include "gtest/gtest.h"

namespace kvplan {
namespace {

TEST(ScoreTest, EachKindCombinesEnergiesAsDocumented) {
  const std::vector<double> q = {2.0, 4.0}, k = {6.0, 0.5};
  EXPECT_EQ(BlockScores(q, k, ScoreKind::kSum), (std::vector<double>{4.0, 2.25}));
  EXPECT_EQ(BlockScores(q, k, ScoreKind::kProduct), (std::vector<double>{12.0, 2.0}));
  EXPECT_EQ(BlockScores(q, k, ScoreKind::kQ), q);
  EXPECT_EQ(BlockScores(q, k, ScoreKind::kK), k);
}

TEST(ScoreTest, NamesRoundTripAndUnknownNamesAreRefused) {
  for (ScoreKind kind : {ScoreKind::kSum, ScoreKind::kProduct, ScoreKind::kQ, ScoreKind::kK}) {
    absl::StatusOr<ScoreKind> parsed = ParseScoreKind(ScoreKindName(kind));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, kind);
  }
  absl::StatusOr<ScoreKind> bad = ParseScoreKind("mean");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("sum, product, q, k"), std::string::npos);
}

}  // namespace
}  // namespace kvplan
