#include "server/store.h"

#include <array>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "rocksdb/db.h"
#include "rocksdb/options.h"
#include "rocksdb/write_batch.h"
#include "server/rocksdb_status.h"

namespace kvplan::server {
namespace {

// Indexed by Family.
constexpr std::array<const char*, 12> kFamilyNames = {
    "models", "stats", "plans",      "plan_versions", "channels",    "channel_history",
    "meta",   "jobs",  "job_shards", "shard_prompts", "shard_stats", "plan_validations"};
static_assert(kFamilyNames.size() == static_cast<size_t>(Family::kPlanValidations) + 1,
              "one name per Family, in enum order");
constexpr char kSchemaKey[] = "schema_version";

rocksdb::Slice ToSlice(std::string_view s) { return rocksdb::Slice(s.data(), s.size()); }
std::string_view ToView(const rocksdb::Slice& s) { return std::string_view(s.data(), s.size()); }

}  // namespace

std::string EncodeBe64(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 7; i >= 0; --i, v >>= 8) out[i] = static_cast<char>(v & 0xff);
  return out;
}

uint64_t DecodeBe64Suffix(std::string_view key) {
  if (key.size() < 8) return 0;
  uint64_t v = 0;
  for (char c : key.substr(key.size() - 8)) v = (v << 8) | static_cast<uint8_t>(c);
  return v;
}

struct Store::Impl {
  std::unique_ptr<rocksdb::DB> db;
  // Indexed by Family; owned by db (destroyed before it).
  std::vector<rocksdb::ColumnFamilyHandle*> families;

  rocksdb::ColumnFamilyHandle* Cf(Family f) const { return families[static_cast<size_t>(f)]; }

  ~Impl() {
    for (rocksdb::ColumnFamilyHandle* h : families) {
      // Destroying a handle only frees memory; its status cannot fail usefully here.
      db->DestroyColumnFamilyHandle(h).PermitUncheckedError();
    }
    if (db != nullptr) db->Close().PermitUncheckedError();
  }
};

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::~Store() = default;

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const StoreOptions& options) {
  if (options.path.empty()) return absl::InvalidArgumentError("store path is empty");
  rocksdb::DBOptions db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  descriptors.emplace_back(rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions());
  for (const char* name : kFamilyNames) {
    descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions());
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  if (absl::Status st =
          FromRocksDb(rocksdb::DB::Open(db_options, options.path, descriptors, &handles, &raw),
                      absl::StrFormat("opening store %s", options.path));
      !st.ok()) {
    return st;
  }
  auto impl = std::make_unique<Impl>();
  impl->db.reset(raw);
  // The default family is unused; keep its handle out of `families`.
  impl->db->DestroyColumnFamilyHandle(handles[0]).PermitUncheckedError();
  impl->families.assign(handles.begin() + 1, handles.end());
  std::unique_ptr<Store> store(new Store(std::move(impl)));

  absl::StatusOr<std::optional<std::string>> schema = store->Get(Family::kMeta, kSchemaKey);
  if (!schema.ok()) return schema.status();
  int version = 0;
  if (schema->has_value() && (!absl::SimpleAtoi(**schema, &version) || version < 1)) {
    return absl::DataLossError(
        absl::StrFormat("store %s: meta/schema_version is corrupt ('%s')", options.path, **schema));
  }
  if (version > kStoreSchemaVersion) {
    return absl::FailedPreconditionError(
        absl::StrFormat("store %s has schema version %d; this coordinator reads up to %d",
                        options.path, version, kStoreSchemaVersion));
  }
  if (version < kStoreSchemaVersion) {
    // New or older: the families this version added now exist (created above).
    Batch batch;
    batch.Put(Family::kMeta, kSchemaKey, absl::StrFormat("%d", kStoreSchemaVersion));
    if (absl::Status st = store->Commit(batch); !st.ok()) return st;
  }
  return store;
}

absl::StatusOr<std::optional<std::string>> Store::Get(Family family, std::string_view key) const {
  std::string value;
  rocksdb::Status s =
      impl_->db->Get(rocksdb::ReadOptions(), impl_->Cf(family), ToSlice(key), &value);
  if (s.IsNotFound()) return std::nullopt;
  if (absl::Status st =
          FromRocksDb(s, absl::StrFormat("reading %s", kFamilyNames[static_cast<size_t>(family)]));
      !st.ok()) {
    return st;
  }
  return value;
}

absl::Status Store::Scan(Family family, std::string_view prefix, std::string_view start,
                         absl::FunctionRef<bool(std::string_view, std::string_view)> fn) const {
  std::unique_ptr<rocksdb::Iterator> it(
      impl_->db->NewIterator(rocksdb::ReadOptions(), impl_->Cf(family)));
  for (it->Seek(ToSlice(start.empty() ? prefix : start)); it->Valid(); it->Next()) {
    const std::string_view key = ToView(it->key());
    if (!key.starts_with(prefix)) break;
    if (!fn(key, ToView(it->value()))) break;
  }
  return FromRocksDb(it->status(),
                     absl::StrFormat("scanning %s", kFamilyNames[static_cast<size_t>(family)]));
}

absl::Status Store::ScanRecords(
    Family family, std::string_view prefix, std::string_view start,
    absl::FunctionRef<absl::StatusOr<bool>(std::string_view, std::string_view)> fn) const {
  absl::Status refused;
  absl::Status scanned =
      Scan(family, prefix, start, [&](std::string_view key, std::string_view value) {
        absl::StatusOr<bool> more = fn(key, value);
        if (!more.ok()) {
          refused = more.status();
          return false;
        }
        return *more;
      });
  if (!scanned.ok()) return scanned;
  return refused;
}

absl::StatusOr<std::optional<std::string>> Store::LastKey(Family family,
                                                          std::string_view prefix) const {
  std::unique_ptr<rocksdb::Iterator> it(
      impl_->db->NewIterator(rocksdb::ReadOptions(), impl_->Cf(family)));
  // Every key with the prefix sorts below prefix + "\xff..." as keys here are short.
  const std::string upper = std::string(prefix) + std::string(16, '\xff');
  it->SeekForPrev(ToSlice(upper));
  std::optional<std::string> out;
  if (it->Valid() && ToView(it->key()).starts_with(prefix)) out = it->key().ToString();
  if (absl::Status st = FromRocksDb(it->status(), "seeking last key"); !st.ok()) return st;
  return out;
}

absl::Status Store::Commit(const Batch& batch) {
  rocksdb::WriteBatch wb;
  for (const Batch::Entry& e : batch.puts_) {
    if (absl::Status st = FromRocksDb(wb.Put(impl_->Cf(e.family), ToSlice(e.key), ToSlice(e.value)),
                                      "building write batch");
        !st.ok()) {
      return st;
    }
  }
  rocksdb::WriteOptions write_options;
  write_options.sync = true;  // Acknowledged means durable (see the file comment).
  return FromRocksDb(impl_->db->Write(write_options, &wb), "committing write batch");
}

uint64_t Store::ApproximateSizeBytes() const {
  uint64_t total = 0;
  for (rocksdb::ColumnFamilyHandle* h : impl_->families) {
    uint64_t v = 0;
    if (impl_->db->GetIntProperty(h, rocksdb::DB::Properties::kTotalSstFilesSize, &v)) total += v;
    if (impl_->db->GetIntProperty(h, rocksdb::DB::Properties::kCurSizeAllMemTables, &v)) total += v;
  }
  return total;
}

}  // namespace kvplan::server
