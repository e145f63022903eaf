// The coordinator's durable state: one RocksDB database, a column family per
// record kind.
//
// Key and value grammar (schema version 3: version 2 added the job families, 3 added
// plan_validations; ids, plan names and channel names are [A-Za-z0-9._-]{1,64} and plan digests
// are 64 hex digits, so "/" separates fields unambiguously; be64 is a big-endian u64 so that keys
// sort by number):
//
// clang-format off
//   family           key                                   value
//   models           model_id                              kvplan.v1.Model (protobuf)
//   stats            model_id "/" stats_sha256             BlockStats::Serialize() bytes
//   plans            plan_digest                           PlanToJson text (first one stored wins)
//   plan_versions    model_id "/" name "/" be64(version)   kvplan.v1.PlanVersion (protobuf)
//   channels         model_id "/" channel                  ChannelState (records.proto: the
//                                                          promotion stack and the policy)
//   channel_history  be64(sequence)                        kvplan.v1.ChannelMove (protobuf)
//   jobs             job_id                                kvplan.v1.Job (protobuf; progress holds
//                                                          shards_done and tokens only)
//   job_shards       job_id "/" be64(shard)                ShardState (records.proto)
//   shard_prompts    job_id "/" be64(shard)                the shard's prompts, JSONL text
//   shard_stats      job_id "/" be64(shard)                BlockStats::Serialize() bytes
//   plan_validations plan_digest "/" be64(sequence)        kvplan.v1.PlanValidation (protobuf;
//                                                          sequence from 1 per plan)
//   meta             "schema_version"                      decimal text, "3"
//                    "rotation/" content_hash              plan_digest of a plan naming it
// clang-format on
//
// Every change that touches more than one record is one WriteBatch written with
// sync=true, so a caller that got OK from Commit may acknowledge: a crash
// (kill -9, power loss) after it loses nothing and never leaves half a change.
//
// Example:
//   absl::StatusOr<std::unique_ptr<Store>> store = Store::Open({.path = "/var/lib/kvplan"});
//   Store::Batch batch;
//   batch.Put(Family::kModels, "llama", model.SerializeAsString());
//   absl::Status st = (*store)->Commit(batch);
//   absl::StatusOr<std::optional<std::string>> v = (*store)->Get(Family::kModels, "llama");
//
// Thread safety: all methods may be called concurrently. Read-modify-write
// sequences need the caller's own lock (the registries hold one each).
#ifndef KVPLAN_SERVER_STORE_H_
#define KVPLAN_SERVER_STORE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"

namespace kvplan::server {

enum class Family {
  kModels,
  kStats,
  kPlans,
  kPlanVersions,
  kChannels,
  kChannelHistory,
  kMeta,
  kJobs,
  kJobShards,
  kShardPrompts,
  kShardStats,
  kPlanValidations,
};

// Older databases open unchanged: the families added since (version 2: the job
// families; version 3: plan_validations) are created empty and the database is
// marked version 3, so that an older coordinator refuses it by its schema
// version (or RocksDB's list of unopened families) instead of misreading it.
inline constexpr int kStoreSchemaVersion = 3;

struct StoreOptions {
  // Directory of the database; created when missing. Required.
  std::string path;
};

// Big-endian u64, for keys that must sort numerically.
std::string EncodeBe64(uint64_t v);
// Reads the last 8 bytes of `key` as EncodeBe64 wrote them (0 if shorter).
uint64_t DecodeBe64Suffix(std::string_view key);

class Store {
 public:
  class Batch {
   public:
    void Put(Family family, std::string key, std::string value) {
      puts_.push_back({family, std::move(key), std::move(value)});
    }
    bool empty() const { return puts_.empty(); }

   private:
    friend class Store;
    struct Entry {
      Family family;
      std::string key;
      std::string value;
    };
    std::vector<Entry> puts_;
  };

  // Opens (creating when missing) the database and its column families, and
  // checks the schema version: FailedPrecondition for a database written by a
  // newer schema; errors from RocksDB (e.g. the directory locked by another
  // coordinator) name the path. Stores nullptr on error.
  static absl::StatusOr<std::unique_ptr<Store>> Open(const StoreOptions& options);
  ~Store();

  // nullopt when the key is absent.
  absl::StatusOr<std::optional<std::string>> Get(Family family, std::string_view key) const;

  // Calls `fn(key, value)` for every key starting with `prefix`, ascending, from
  // `start` (>= prefix; empty means prefix) until fn returns false.
  absl::Status Scan(Family family, std::string_view prefix, std::string_view start,
                    absl::FunctionRef<bool(std::string_view, std::string_view)> fn) const;

  // Scan for records a visitor parses: fn returns true to go on, false to stop,
  // or an error (a record that does not parse), which stops the scan and is
  // returned; the store's own errors come first.
  absl::Status ScanRecords(
      Family family, std::string_view prefix, std::string_view start,
      absl::FunctionRef<absl::StatusOr<bool>(std::string_view, std::string_view)> fn) const;

  // The last key starting with `prefix`, or nullopt.
  absl::StatusOr<std::optional<std::string>> LastKey(Family family, std::string_view prefix) const;

  // Writes the batch atomically and durably (WAL synced) before returning OK.
  absl::Status Commit(const Batch& batch);

  // Bytes on disk: SST files plus live memtables, over every family.
  uint64_t ApproximateSizeBytes() const;

 private:
  struct Impl;
  explicit Store(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvplan::server

#endif  // KVPLAN_SERVER_STORE_H_
