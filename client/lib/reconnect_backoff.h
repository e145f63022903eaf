// Waits between a serving node's reconnect attempts: exponential with "equal
// jitter", so that a fleet that lost its coordinator together does not come
// back in lockstep, and never zero, so a flapping coordinator is not hammered.
//
// Example:
//   ReconnectBackoff backoff(std::chrono::milliseconds(100), std::chrono::seconds(30));
//   backoff.Next();   // in [50, 100] ms
//   backoff.Next();   // in [100, 200] ms
//   backoff.Reset();  // after a success: back to [50, 100] ms
#ifndef KVPLAN_CLIENT_LIB_RECONNECT_BACKOFF_H_
#define KVPLAN_CLIENT_LIB_RECONNECT_BACKOFF_H_

#include <chrono>
#include <cstdint>
#include <random>

#include "absl/status/status.h"

namespace kvplan::client {

// UNAVAILABLE or DEADLINE_EXCEEDED: the coordinator is away or slow, and the
// same call may succeed later.
bool IsTransient(const absl::Status& status);

// "Equal jitter": uniform in [c/2, c] with c = min(max, initial·multiplier^attempt),
// never zero and never above the ceiling. `attempt` counts from 0.
std::chrono::milliseconds JitteredBackoff(std::chrono::milliseconds initial,
                                          std::chrono::milliseconds max, double multiplier,
                                          int attempt, std::mt19937_64& random);

// Not thread-safe: one per reconnect loop.
class ReconnectBackoff {
 public:
  // `min` <= `max`, both positive. `seed` fixes the jitter for tests; the
  // default draws it from the OS so nodes started together spread out.
  ReconnectBackoff(std::chrono::milliseconds min, std::chrono::milliseconds max,
                   uint64_t seed = std::random_device{}());

  // The next wait: uniform in [c/2, c], c = min(max, min·2^attempts so far).
  std::chrono::milliseconds Next();
  void Reset() { attempt_ = 0; }

 private:
  std::chrono::milliseconds min_;
  std::chrono::milliseconds max_;
  int attempt_ = 0;
  std::mt19937_64 random_;
};

}  // namespace kvplan::client

#endif  // KVPLAN_CLIENT_LIB_RECONNECT_BACKOFF_H_
