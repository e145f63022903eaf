// Retrying coordinator calls that failed for a transient reason (UNAVAILABLE:
// the coordinator is restarting or unreachable; DEADLINE_EXCEEDED: it was too
// slow) with exponential backoff and jitter, so that a fleet of workers does
// not hammer a coordinator that is coming back in lockstep.
//
// Example:
//   absl::Status st = RetryTransient({}, "LeaseShard", [&] { return CallOnce(); },
//                                    [](const std::string& line) { std::cerr << line; });
#ifndef KVPLAN_WORKER_SERVE_BACKOFF_H_
#define KVPLAN_WORKER_SERVE_BACKOFF_H_

#include <chrono>
#include <functional>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace kvplan::serve {

struct BackoffPolicy {
  // Delay ceiling of the first retry; it doubles (multiplier) per retry up to max.
  std::chrono::milliseconds initial{100};
  std::chrono::milliseconds max{5000};
  double multiplier = 2;
  // Stop retrying one call after this long of transient failures (the last
  // error is returned). Long enough for a coordinator to restart.
  std::chrono::seconds give_up_after{300};
};

// Calls `call` until it returns OK or a non-transient error, or give_up_after
// passes; `log` (may be empty) gets one line per retry naming `what`. Callers
// only retry calls that are safe to repeat (every JobService write is).
absl::Status RetryTransient(const BackoffPolicy& policy, std::string_view what,
                            const std::function<absl::Status()>& call,
                            const std::function<void(const std::string&)>& log);

}  // namespace kvplan::serve

#endif  // KVPLAN_WORKER_SERVE_BACKOFF_H_
