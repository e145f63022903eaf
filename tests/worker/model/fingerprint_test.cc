#include "worker/model/fingerprint.h"

#include "gtest/gtest.h"
#include "tests/worker/model/test_util.h"
#include "tests/worker/model/tiny_model.h"

namespace kvplan {
namespace {

using model_test::MakeTestDir;
using model_test::WriteTinyModel;

std::string FingerprintOf(const std::filesystem::path& dir) {
  absl::StatusOr<Checkpoint> ckpt = Checkpoint::Open(dir);
  EXPECT_TRUE(ckpt.ok()) << ckpt.status();
  if (!ckpt.ok()) return "";
  absl::StatusOr<std::string> fp = ModelFingerprint(*ckpt);
  EXPECT_TRUE(fp.ok()) << fp.status();
  return fp.ok() ? *fp : "";
}

TEST(FingerprintTest, SameWeightsSameFingerprintOtherWeightsOther) {
  const nlohmann::json config = model_test::TinyConfig("LlamaForCausalLM");
  const std::filesystem::path a = MakeTestDir(), b = MakeTestDir(), c = MakeTestDir(),
                              d = MakeTestDir();
  WriteTinyModel(a, config, /*bf16=*/false, /*seed=*/7);
  WriteTinyModel(b, config, /*bf16=*/false, /*seed=*/7);
  WriteTinyModel(c, config, /*bf16=*/false, /*seed=*/8);
  WriteTinyModel(d, config, /*bf16=*/true, /*seed=*/7);
  const std::string fa = FingerprintOf(a);
  EXPECT_EQ(fa.size(), 64u);
  EXPECT_EQ(FingerprintOf(b), fa);
  EXPECT_NE(FingerprintOf(c), fa);
  EXPECT_NE(FingerprintOf(d), fa) << "dtype is part of the identity";
}

TEST(FingerprintTest, RopeChangesTheFingerprint) {
  nlohmann::json config = model_test::TinyConfig("LlamaForCausalLM");
  const std::filesystem::path a = MakeTestDir(), b = MakeTestDir();
  WriteTinyModel(a, config);
  config["rope_theta"] = 12345.0;
  WriteTinyModel(b, config);
  EXPECT_NE(FingerprintOf(a), FingerprintOf(b));
}

}  // namespace
}  // namespace kvplan
