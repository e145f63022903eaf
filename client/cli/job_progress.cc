#include "client/cli/job_progress.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_format.h"

namespace kvplan::cli {
namespace {

constexpr int kBarWidth = 20;

}  // namespace

void JobRateMeter::Add(const JobSample& sample) {
  if (!samples_.empty() && sample.seconds <= samples_.back().seconds) return;
  samples_.push_back(sample);
  // Drop samples while the next one is still old enough to anchor the window.
  while (samples_.size() > 2 && samples_[1].seconds <= sample.seconds - window_seconds_) {
    samples_.pop_front();
  }
}

std::optional<double> JobRateMeter::TokensPerSecond() const {
  if (samples_.size() < 2) return std::nullopt;
  const JobSample& first = samples_.front();
  const JobSample& last = samples_.back();
  return static_cast<double>(last.tokens - first.tokens) / (last.seconds - first.seconds);
}

std::optional<double> JobRateMeter::EtaSeconds(int32_t shards_total) const {
  if (samples_.empty()) return std::nullopt;
  const JobSample& last = samples_.back();
  if (last.shards_done >= shards_total) return 0.0;
  if (samples_.size() < 2) return std::nullopt;
  const JobSample& first = samples_.front();
  const double shards_per_second =
      static_cast<double>(last.shards_done - first.shards_done) / (last.seconds - first.seconds);
  if (!(shards_per_second > 0)) return std::nullopt;
  return static_cast<double>(shards_total - last.shards_done) / shards_per_second;
}

std::string FormatDuration(double seconds) {
  const int64_t s = static_cast<int64_t>(std::ceil(std::max(seconds, 0.0)));
  if (s < 60) return absl::StrFormat("%ds", s);
  if (s < 3600) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%dh%02dm", s / 3600, (s % 3600) / 60);
}

std::string FormatJobProgress(const JobProgressLine& line) {
  const int filled =
      line.shards_total > 0
          ? static_cast<int>(static_cast<int64_t>(line.shards_done) * kBarWidth / line.shards_total)
          : 0;
  const std::string bar = std::string(static_cast<size_t>(filled), '#') +
                          std::string(static_cast<size_t>(kBarWidth - filled), '-');
  const std::string tokens =
      line.token_budget > 0 ? absl::StrFormat("tokens %d of <=%d", line.tokens, line.token_budget)
                            : absl::StrFormat("tokens %d", line.tokens);
  const std::string rate = line.tokens_per_second
                               ? absl::StrFormat("%.1f tok/s", *line.tokens_per_second)
                               : std::string("? tok/s");
  const std::string eta =
      line.eta_seconds ? "ETA " + FormatDuration(*line.eta_seconds) : std::string("ETA ?");
  return absl::StrFormat("%s %s [%s] shards %d/%d (%d leased)  %s  %s  %s", line.job_id, line.state,
                         bar, line.shards_done, line.shards_total, line.shards_leased, tokens, rate,
                         eta);
}

}  // namespace kvplan::cli
