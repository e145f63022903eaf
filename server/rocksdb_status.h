// The one place RocksDB statuses become absl::Status.
//
// Example:
//   rocksdb::Status s = db->Write(options, &batch);
//   if (absl::Status st = FromRocksDb(s, "committing plan"); !st.ok()) return st;
#ifndef KVPLAN_SERVER_ROCKSDB_STATUS_H_
#define KVPLAN_SERVER_ROCKSDB_STATUS_H_

#include <string_view>

#include "absl/status/status.h"
#include "rocksdb/status.h"

namespace kvplan::server {

// OK for OK; otherwise the closest absl code (NotFound, DataLoss for corruption,
// Unavailable for busy/timed-out/try-again, ResourceExhausted for a full disk,
// Internal otherwise) with "`what`: <rocksdb message>".
absl::Status FromRocksDb(const rocksdb::Status& status, std::string_view what);

}  // namespace kvplan::server

#endif  // KVPLAN_SERVER_ROCKSDB_STATUS_H_
