#include "worker/serve/backoff.h"

#include <random>
#include <thread>

#include "absl/strings/str_format.h"
#include "client/lib/reconnect_backoff.h"

namespace kvplan::serve {

absl::Status RetryTransient(const BackoffPolicy& policy, std::string_view what,
                            const std::function<absl::Status()>& call,
                            const std::function<void(const std::string&)>& log) {
  // Seeded per thread from the OS so that workers started together spread out.
  thread_local std::mt19937_64 random{std::random_device{}()};
  const auto give_up = std::chrono::steady_clock::now() + policy.give_up_after;
  for (int attempt = 0;; ++attempt) {
    absl::Status status = call();
    if (!client::IsTransient(status) || std::chrono::steady_clock::now() >= give_up) return status;
    const std::chrono::milliseconds delay =
        client::JitteredBackoff(policy.initial, policy.max, policy.multiplier, attempt, random);
    if (log) {
      log(absl::StrFormat("%s: %s; retrying in %d ms\n", what, status.ToString(), delay.count()));
    }
    std::this_thread::sleep_for(delay);
  }
}

}  // namespace kvplan::serve
