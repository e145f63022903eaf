#include "client/lib/reconnect_backoff.h"

#include <algorithm>

namespace kvplan::client {

ReconnectBackoff::ReconnectBackoff(std::chrono::milliseconds min, std::chrono::milliseconds max,
                                   uint64_t seed)
    : min_(min), max_(max), random_(seed) {}

std::chrono::milliseconds ReconnectBackoff::Next() {
  // Doubling stops once the ceiling is reached, so the shift never overflows.
  int64_t ceiling = min_.count();
  for (int i = 0; i < attempt_ && ceiling < max_.count(); ++i) ceiling *= 2;
  ceiling = std::min(ceiling, static_cast<int64_t>(max_.count()));
  if (ceiling < max_.count()) ++attempt_;
  std::uniform_int_distribution<int64_t> jitter((ceiling + 1) / 2, ceiling);
  return std::chrono::milliseconds(jitter(random_));
}

}  // namespace kvplan::client
