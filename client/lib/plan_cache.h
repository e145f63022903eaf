// The serving node's on-disk plan cache: the last verified plan of each
// (model fingerprint, channel), so that a node can start while the coordinator
// is away. Plans are immutable, so a cached plan never goes stale in content;
// only the channel may have moved on, which the node learns on reconnect.
//
// One file per (fingerprint, channel), replaced atomically (temp + fsync +
// rename), so a crash leaves the old file or the new one:
//
//   file     := "kvplan-plan-cache 1\n" meta "\n" plan checksum
//   meta     := one line of JSON: {"model_fingerprint": S, "model_id": S,
//               "channel": S, "plan_id": S, "plan_name": S, "version": N}
//   plan     := the plan JSON exactly as the coordinator served it (core/plan.h)
//   checksum := "\nsha256 " 64 lowercase hex digits "\n": SHA-256 of every byte
//               before this line
//
// The checksum covers the provenance and the metadata, which the plan's own
// digest does not; the reader still verifies the plan (client/lib/plan_verify.h).
//
// Example:
//   std::filesystem::path path = PlanCachePath("/var/cache/kvplan", fingerprint, "stable");
//   absl::Status st = WritePlanCache(path, {.model_fingerprint = fp, ..., .plan_json = json});
//   absl::StatusOr<CachedPlan> back = ReadPlanCache(path);  // DataLoss if torn or altered
#ifndef KVPLAN_CLIENT_LIB_PLAN_CACHE_H_
#define KVPLAN_CLIENT_LIB_PLAN_CACHE_H_

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace kvplan::client {

struct CachedPlan {
  std::string model_fingerprint;
  std::string model_id;
  std::string channel;
  std::string plan_id;  // The plan's digest as the coordinator named it.
  std::string plan_name;
  uint64_t version = 0;
  std::string plan_json;
};

// `dir`/`channel`.<first 16 hex digits of SHA-256(fingerprint)>.plan: the
// fingerprint is hashed because it may hold any printable character.
std::filesystem::path PlanCachePath(const std::filesystem::path& dir,
                                    std::string_view model_fingerprint, std::string_view channel);

// Writes `plan` to `path` atomically, creating the directory if needed.
// Errors name the path.
absl::Status WritePlanCache(const std::filesystem::path& path, const CachedPlan& plan);

// NotFound when there is no file; DataLoss naming the bad part for a truncated,
// corrupt or foreign one.
absl::StatusOr<CachedPlan> ReadPlanCache(const std::filesystem::path& path);

}  // namespace kvplan::client

#endif  // KVPLAN_CLIENT_LIB_PLAN_CACHE_H_
