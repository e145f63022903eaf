#include "worker/serve/backoff.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <thread>

#include "absl/strings/str_format.h"

namespace kvplan::serve {

bool IsTransient(const absl::Status& status) {
  return status.code() == absl::StatusCode::kUnavailable ||
         status.code() == absl::StatusCode::kDeadlineExceeded;
}

std::chrono::milliseconds BackoffDelay(const BackoffPolicy& policy, int attempt,
                                       std::mt19937_64& random) {
  const double ceiling =
      std::min(static_cast<double>(policy.max.count()),
               static_cast<double>(policy.initial.count()) * std::pow(policy.multiplier, attempt));
  std::uniform_real_distribution<double> jitter(ceiling / 2, ceiling);
  return std::chrono::milliseconds(static_cast<int64_t>(jitter(random)));
}

absl::Status RetryTransient(const BackoffPolicy& policy, std::string_view what,
                            const std::function<absl::Status()>& call,
                            const std::function<void(const std::string&)>& log) {
  // Seeded per thread from the OS so that workers started together spread out.
  thread_local std::mt19937_64 random{std::random_device{}()};
  const auto give_up = std::chrono::steady_clock::now() + policy.give_up_after;
  for (int attempt = 0;; ++attempt) {
    absl::Status status = call();
    if (!IsTransient(status) || std::chrono::steady_clock::now() >= give_up) return status;
    const std::chrono::milliseconds delay = BackoffDelay(policy, attempt, random);
    if (log) {
      log(absl::StrFormat("%s: %s; retrying in %d ms\n", what, status.ToString(), delay.count()));
    }
    std::this_thread::sleep_for(delay);
  }
}

}  // namespace kvplan::serve
