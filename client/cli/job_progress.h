// What `kvplan jobs watch` shows about a calibration job: its progress from
// successive GetJob samples, with the rate measured over a recent window
// rather than since the job was created (a job that waited an hour for
// workers is not slow once they arrive), and the one-line rendering.
//
// Pure arithmetic and formatting: no clock, no gRPC. Time is whatever
// monotonic seconds the caller samples at.
//
// Example:
//   JobRateMeter meter(/*window_seconds=*/30);
//   meter.Add({.seconds = 0, .shards_done = 0, .tokens = 0});
//   meter.Add({.seconds = 10, .shards_done = 2, .tokens = 1000});
//   meter.TokensPerSecond();              // 100
//   meter.EtaSeconds(/*shards_total=*/4);  // 10 (2 shards left at 0.2 shards/s)
#ifndef KVPLAN_CLIENT_CLI_JOB_PROGRESS_H_
#define KVPLAN_CLIENT_CLI_JOB_PROGRESS_H_

#include <cstdint>
#include <deque>
#include <optional>
#include <string>

namespace kvplan::cli {

// One observation of a job.
struct JobSample {
  // When it was taken, in seconds on a monotonic clock.
  double seconds = 0;
  // Shards committed.
  int32_t shards_done = 0;
  // Key tokens in the committed shards' statistics.
  int64_t tokens = 0;
};

// Rates over the samples of the last `window_seconds`. Progress only moves
// when a shard commits, so the window must span several commits to be smooth;
// the first sample older than the window is kept as its anchor, so the rate
// covers the whole window (not just the samples inside it).
class JobRateMeter {
 public:
  // window_seconds > 0. Default: 30 s.
  explicit JobRateMeter(double window_seconds = 30.0) : window_seconds_(window_seconds) {}

  // Samples must come in time order; one at or before the last is ignored.
  void Add(const JobSample& sample);

  // Committed tokens per second over the window; nullopt until two samples
  // span some time.
  std::optional<double> TokensPerSecond() const;
  // Seconds until shards_total shards are done at the window's shard rate;
  // 0 when all are done; nullopt while unknown (fewer than two samples, or no
  // shard committed within the window).
  std::optional<double> EtaSeconds(int32_t shards_total) const;

 private:
  double window_seconds_;
  std::deque<JobSample> samples_;
};

// Everything one progress line shows.
struct JobProgressLine {
  std::string job_id;
  // "RUNNING", "SUCCEEDED", "CANCELLED".
  std::string state;
  int32_t shards_done = 0;
  int32_t shards_total = 0;
  int32_t shards_leased = 0;
  int64_t tokens = 0;
  // Upper bound of the job's tokens (shards × tokens per shard); a shard whose
  // prompts run out early uses fewer. 0 when unknown.
  int64_t token_budget = 0;
  std::optional<double> tokens_per_second;
  std::optional<double> eta_seconds;
};

// "calib RUNNING [##########----------] shards 2/4 (1 leased)  tokens 1200 of
// <=2400  100.0 tok/s  ETA 12s": the bar fills by shards, the only unit whose
// total is exact. Unknown rate and ETA print as "?".
std::string FormatJobProgress(const JobProgressLine& line);

// 75 -> "1m15s", 3725 -> "1h02m", 9 -> "9s".
std::string FormatDuration(double seconds);

}  // namespace kvplan::cli

#endif  // KVPLAN_CLIENT_CLI_JOB_PROGRESS_H_
