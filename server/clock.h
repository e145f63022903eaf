// The coordinator's notion of "now", injectable so tests can fix timestamps.
//
// Example:
//   Clock clock = SystemClock();
//   int64_t t = clock();  // seconds since the Unix epoch
#ifndef KVPLAN_SERVER_CLOCK_H_
#define KVPLAN_SERVER_CLOCK_H_

#include <chrono>
#include <cstdint>
#include <functional>

namespace kvplan::server {

// Seconds since the Unix epoch.
using Clock = std::function<int64_t()>;

inline Clock SystemClock() {
  return [] {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
}

}  // namespace kvplan::server

#endif  // KVPLAN_SERVER_CLOCK_H_
