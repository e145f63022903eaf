// packed_decode_bench's command line (bench/kernels/bench_options.h): every
// device call's flags parse to what they say, and a typo, a missing value or a
// combination that would time the wrong thing stops the run with a message
// that names the flag, instead of returning a table measured some other way.
#include "bench/kernels/bench_options.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

namespace kvplan::bench {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<BenchOptions> Parse(std::vector<const char*> args) {
  args.insert(args.begin(), "packed_decode_bench");
  return ParseBenchOptions(static_cast<int>(args.size()), args.data());
}

// The error's message, or "" when the arguments parse.
std::string ErrorOf(std::vector<const char*> args) {
  const absl::StatusOr<BenchOptions> options = Parse(std::move(args));
  return options.ok() ? "" : std::string(options.status().message());
}

TEST(BenchOptionsTest, NoFlagsGiveTheDefaults) {
  const absl::StatusOr<BenchOptions> options = Parse({});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_TRUE(options->encode);
  EXPECT_FALSE(options->fragment);
  EXPECT_EQ(options->iters, 20);
  EXPECT_EQ(options->only_ctx, 0);
  EXPECT_EQ(options->wgmma_min, -1);
  EXPECT_EQ(options->settle_ms, 0.0);
}

TEST(BenchOptionsTest, ADeviceCallsFlagsParseToWhatTheySay) {
  // decode_tables.sh's sustained rows, as the session-28 and -29 calls ran them.
  const absl::StatusOr<BenchOptions> options = Parse({"--model",       "llama3.1-8b",
                                                      "--kbits",       "3",
                                                      "--k-align",     "16",
                                                      "--fragment",    "--graph",
                                                      "--iters",       "10",
                                                      "--batch",       "16",
                                                      "--ctx",         "32768",
                                                      "--settle-ms",   "2000",
                                                      "--no-encode",   "--fragment-step-only",
                                                      "--merge-heads", "group",
                                                      "--wgmma-min",   "8589934592"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->only_model, "llama3.1-8b");
  EXPECT_EQ(options->only_kbits, 3);
  EXPECT_EQ(options->k_align, 16);
  EXPECT_TRUE(options->fragment);
  EXPECT_TRUE(options->graph);
  EXPECT_EQ(options->iters, 10);
  EXPECT_EQ(options->only_batch, 16);
  EXPECT_EQ(options->only_ctx, 32768);
  EXPECT_EQ(options->settle_ms, 2000.0);
  EXPECT_FALSE(options->encode);
  EXPECT_TRUE(options->fragment_step_only);
  EXPECT_EQ(options->merge_heads, "group");
  EXPECT_EQ(options->wgmma_min, int64_t{1} << 33);  // 64-bit, not truncated
}

TEST(BenchOptionsTest, AnUnknownFlagIsAnError) {
  EXPECT_THAT(ErrorOf({"--settle", "2000"}), HasSubstr("unknown flag '--settle'"));
  EXPECT_THAT(ErrorOf({"--ctx", "4096", "extra"}), HasSubstr("unknown flag 'extra'"));
}

TEST(BenchOptionsTest, AMissingValueIsAnError) {
  EXPECT_THAT(ErrorOf({"--ctx"}), HasSubstr("--ctx needs a value"));
  // The next flag is not taken as the value.
  EXPECT_THAT(ErrorOf({"--model", "--graph"}), HasSubstr("--model needs a value"));
}

TEST(BenchOptionsTest, AMalformedNumberIsAnError) {
  EXPECT_THAT(ErrorOf({"--ctx", "32k"}), HasSubstr("--ctx takes an integer, not '32k'"));
  EXPECT_THAT(ErrorOf({"--settle-ms", "two"}), HasSubstr("--settle-ms takes a number"));
  EXPECT_THAT(ErrorOf({"--iters", "99999999999"}), HasSubstr("--iters takes an integer"));
}

// The probe (fragment_decode_probe.cu) takes --settle-ms through the same check.
TEST(BenchOptionsTest, SettleMsRangeIsSharedByEveryBench) {
  EXPECT_TRUE(CheckSettleMs(0.0).ok());
  EXPECT_TRUE(CheckSettleMs(60000.0).ok());
  EXPECT_THAT(std::string(CheckSettleMs(-0.5).message()),
              HasSubstr("--settle-ms takes 0 to 60000"));
  EXPECT_FALSE(CheckSettleMs(std::nan("")).ok());
  EXPECT_FALSE(CheckSettleMs(1e9).ok());
}

TEST(BenchOptionsTest, OutOfRangeValuesAreErrors) {
  EXPECT_THAT(ErrorOf({"--settle-ms", "-1"}), HasSubstr("--settle-ms takes 0 to 60000"));
  EXPECT_THAT(ErrorOf({"--settle-ms", "60001"}), HasSubstr("--settle-ms takes 0 to 60000"));
  EXPECT_THAT(ErrorOf({"--settle-ms", "nan"}), HasSubstr("--settle-ms takes 0 to 60000"));
  EXPECT_EQ(ErrorOf({"--settle-ms", "60000"}), "");
  EXPECT_THAT(ErrorOf({"--iters", "0"}), HasSubstr("--iters takes a count of samples >= 1"));
  EXPECT_THAT(ErrorOf({"--kbits", "4"}), HasSubstr("--kbits takes 2 or 3"));
  EXPECT_THAT(ErrorOf({"--batch", "8"}), HasSubstr("--batch takes 1 or 16"));
  EXPECT_THAT(ErrorOf({"--table-ctx", "-64"}), HasSubstr("--table-ctx takes a count >= 0"));
  EXPECT_THAT(ErrorOf({"--merge-heads", "all"}), HasSubstr("--merge-heads takes one or group"));
}

TEST(BenchOptionsTest, CombinationsThatWouldTimeSomethingElseAreErrors) {
  EXPECT_THAT(ErrorOf({"--fragment"}), HasSubstr("--fragment needs --k-align 8 or 16"));
  EXPECT_THAT(ErrorOf({"--fragment", "--k-align", "32"}), HasSubstr("--k-align 8 or 16"));
  EXPECT_THAT(ErrorOf({"--fragment-step-only", "--k-align", "16"}), HasSubstr("add --fragment"));
  EXPECT_THAT(ErrorOf({"--fragment-encode-only"}), HasSubstr("add --fragment"));
  EXPECT_THAT(ErrorOf({"--prefill", "--no-encode"}), HasSubstr("drop --no-encode"));
  EXPECT_EQ(ErrorOf({"--fragment", "--k-align", "8", "--fragment-step-only", "--prefill"}), "");
}

}  // namespace
}  // namespace kvplan::bench
