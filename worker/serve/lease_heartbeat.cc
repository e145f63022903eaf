#include "worker/serve/lease_heartbeat.h"

#include <algorithm>
#include <chrono>
#include <string>

namespace kvplan::serve {
namespace {

// A third of the remaining lease, within [1 s, 60 s]: short leases (tests)
// still get several heartbeats, long ones do not flood the coordinator.
std::chrono::milliseconds Interval(int64_t expires_unix) {
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  const int64_t third_ms = (expires_unix - now) * 1000 / 3;
  return std::chrono::milliseconds(std::clamp<int64_t>(third_ms, 1000, 60000));
}

}  // namespace

LeaseHeartbeat::LeaseHeartbeat(JobClient& client, const ShardLease& lease)
    : thread_([this, &client, id = lease.lease_id, expires = lease.expires_unix] {
        Run(client, id, expires);
      }) {}

LeaseHeartbeat::~LeaseHeartbeat() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

absl::Status LeaseHeartbeat::status() const {
  std::lock_guard<std::mutex> lock(mu_);
  return status_;
}

void LeaseHeartbeat::Run(JobClient& client, std::string lease_id, int64_t expires_unix) {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (wake_.wait_for(lock, Interval(expires_unix), [this] { return stop_; })) return;
    }
    absl::StatusOr<int64_t> renewed = client.Heartbeat(lease_id);
    if (renewed.ok()) {
      expires_unix = *renewed;
      continue;
    }
    // Transient errors were retried inside the client until it gave up; any
    // error left means the lease cannot be kept.
    std::lock_guard<std::mutex> lock(mu_);
    status_ = renewed.status();
    return;
  }
}

}  // namespace kvplan::serve
