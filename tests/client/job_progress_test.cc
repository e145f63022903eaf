#include "client/cli/job_progress.h"

#include "gtest/gtest.h"

namespace kvplan::cli {
namespace {

TEST(JobRateMeterTest, UnknownUntilTwoSamples) {
  JobRateMeter meter;
  EXPECT_FALSE(meter.TokensPerSecond().has_value());
  EXPECT_FALSE(meter.EtaSeconds(4).has_value());
  meter.Add({.seconds = 5, .shards_done = 1, .tokens = 600});
  EXPECT_FALSE(meter.TokensPerSecond().has_value());
  EXPECT_FALSE(meter.EtaSeconds(4).has_value());
}

TEST(JobRateMeterTest, RateAndEtaOverTheSamples) {
  JobRateMeter meter(/*window_seconds=*/30);
  meter.Add({.seconds = 0, .shards_done = 0, .tokens = 0});
  meter.Add({.seconds = 10, .shards_done = 2, .tokens = 1000});
  EXPECT_DOUBLE_EQ(*meter.TokensPerSecond(), 100.0);
  // 0.2 shards/s, 2 shards left.
  EXPECT_DOUBLE_EQ(*meter.EtaSeconds(4), 10.0);
}

TEST(JobRateMeterTest, RateForgetsWhatIsOlderThanTheWindow) {
  JobRateMeter meter(/*window_seconds=*/10);
  // A slow start (one shard in 100 s), then four shards in 10 s.
  meter.Add({.seconds = 0, .shards_done = 0, .tokens = 0});
  meter.Add({.seconds = 100, .shards_done = 1, .tokens = 100});
  meter.Add({.seconds = 105, .shards_done = 3, .tokens = 300});
  meter.Add({.seconds = 110, .shards_done = 5, .tokens = 500});
  // Anchored at t = 100 (the last sample at least 10 s old), not t = 0.
  EXPECT_DOUBLE_EQ(*meter.TokensPerSecond(), 40.0);
  EXPECT_DOUBLE_EQ(*meter.EtaSeconds(9), 10.0);  // 4 left at 0.4 shards/s.
}

TEST(JobRateMeterTest, StalledWindowHasNoEtaAndZeroRate) {
  JobRateMeter meter(/*window_seconds=*/10);
  meter.Add({.seconds = 0, .shards_done = 1, .tokens = 100});
  meter.Add({.seconds = 20, .shards_done = 1, .tokens = 100});
  meter.Add({.seconds = 40, .shards_done = 1, .tokens = 100});
  EXPECT_DOUBLE_EQ(*meter.TokensPerSecond(), 0.0);
  EXPECT_FALSE(meter.EtaSeconds(4).has_value());
}

TEST(JobRateMeterTest, DoneIsEtaZeroAndOutOfOrderSamplesAreIgnored) {
  JobRateMeter meter;
  meter.Add({.seconds = 1, .shards_done = 4, .tokens = 400});
  EXPECT_DOUBLE_EQ(*meter.EtaSeconds(4), 0.0);
  meter.Add({.seconds = 1, .shards_done = 0, .tokens = 0});
  meter.Add({.seconds = 0.5, .shards_done = 0, .tokens = 0});
  EXPECT_FALSE(meter.TokensPerSecond().has_value());
}

TEST(JobProgressFormatTest, OneLineWithBarTokensRateAndEta) {
  EXPECT_EQ(FormatJobProgress({.job_id = "calib",
                               .state = "RUNNING",
                               .shards_done = 2,
                               .shards_total = 4,
                               .shards_leased = 1,
                               .tokens = 1200,
                               .token_budget = 2400,
                               .tokens_per_second = 100.0,
                               .eta_seconds = 75.0}),
            "calib RUNNING [##########----------] shards 2/4 (1 leased)  tokens 1200 of <=2400  "
            "100.0 tok/s  ETA 1m15s");
  EXPECT_EQ(FormatJobProgress({.job_id = "j", .state = "RUNNING", .shards_total = 3}),
            "j RUNNING [--------------------] shards 0/3 (0 leased)  tokens 0  ? tok/s  ETA ?");
}

TEST(JobProgressFormatTest, Durations) {
  EXPECT_EQ(FormatDuration(0), "0s");
  EXPECT_EQ(FormatDuration(8.2), "9s");
  EXPECT_EQ(FormatDuration(75), "1m15s");
  EXPECT_EQ(FormatDuration(3725), "1h02m");
  EXPECT_EQ(FormatDuration(-3), "0s");
}

}  // namespace
}  // namespace kvplan::cli
