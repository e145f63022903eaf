#include "core/calibration_file.h"

#include "gtest/gtest.h"

namespace kvplan {
namespace {

CalibrationFile Sample() {
  BlockStats stats =
      *BlockStats::Create({.num_layers = 2, .num_kv_heads = 1, .num_blocks = 4, .group_size = 3});
  EXPECT_TRUE(stats.Add(1, 0, {1, 2, 3, 4}, 3, {5, 6, 7, 8}, 1).ok());
  RopeSpec rope;
  rope.head_dim = 8;
  rope.rotary_dim = 8;
  rope.theta = 500000;
  return {.model_fingerprint = "fp",
          .architecture = "LlamaForCausalLM",
          .rope = rope,
          .num_q_heads = 3,
          .prompts_sha256 = "p",
          .source = "test",
          .stats = std::move(stats)};
}

TEST(CalibrationFileTest, RoundTrips) {
  const CalibrationFile file = Sample();
  const std::string bytes = SerializeCalibrationFile(file);
  EXPECT_TRUE(LooksLikeCalibrationFile(bytes));
  absl::StatusOr<CalibrationFile> back = ParseCalibrationFile(bytes);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->stats, file.stats);
  EXPECT_EQ(back->model_fingerprint, "fp");
  EXPECT_EQ(back->architecture, "LlamaForCausalLM");
  EXPECT_EQ(back->rope.theta, 500000);
  EXPECT_EQ(back->num_q_heads, 3);
  EXPECT_EQ(back->prompts_sha256, "p");
}

TEST(CalibrationFileTest, DetectsCorruptionAndInconsistency) {
  const std::string bytes = SerializeCalibrationFile(Sample());
  std::string flipped = bytes;
  flipped[30] ^= 1;
  EXPECT_EQ(ParseCalibrationFile(flipped).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(ParseCalibrationFile(bytes.substr(0, bytes.size() - 3)).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(ParseCalibrationFile("KVPS....").status().code(), absl::StatusCode::kDataLoss);

  CalibrationFile wrong_heads = Sample();
  wrong_heads.num_q_heads = 4;
  EXPECT_EQ(ParseCalibrationFile(SerializeCalibrationFile(wrong_heads)).status().code(),
            absl::StatusCode::kInvalidArgument);
  CalibrationFile wrong_rope = Sample();
  wrong_rope.rope.head_dim = wrong_rope.rope.rotary_dim = 16;
  absl::Status st = ParseCalibrationFile(SerializeCalibrationFile(wrong_rope)).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("4 blocks per head"), absl::string_view::npos) << st;
}

}  // namespace
}  // namespace kvplan
