#include "client/lib/reconnect_backoff.h"

#include <algorithm>
#include <cmath>

namespace kvplan::client {

bool IsTransient(const absl::Status& status) {
  return status.code() == absl::StatusCode::kUnavailable ||
         status.code() == absl::StatusCode::kDeadlineExceeded;
}

std::chrono::milliseconds JitteredBackoff(std::chrono::milliseconds initial,
                                          std::chrono::milliseconds max, double multiplier,
                                          int attempt, std::mt19937_64& random) {
  // In doubles, so a large attempt saturates at max instead of overflowing.
  const double ceiling =
      std::min(static_cast<double>(max.count()),
               static_cast<double>(initial.count()) * std::pow(multiplier, attempt));
  std::uniform_real_distribution<double> jitter(ceiling / 2, ceiling);
  return std::chrono::milliseconds(static_cast<int64_t>(jitter(random)));
}

ReconnectBackoff::ReconnectBackoff(std::chrono::milliseconds min, std::chrono::milliseconds max,
                                   uint64_t seed)
    : min_(min), max_(max), random_(seed) {}

std::chrono::milliseconds ReconnectBackoff::Next() {
  const std::chrono::milliseconds wait = JitteredBackoff(min_, max_, 2.0, attempt_, random_);
  // Stop counting once the ceiling is reached: the wait no longer grows.
  if (min_.count() * std::pow(2.0, attempt_) < max_.count()) ++attempt_;
  return wait;
}

}  // namespace kvplan::client
