// The RocksDB store: round trips, ordering, restart persistence, schema version.
#include "server/store.h"

#include "gtest/gtest.h"
#include "tests/server/server_test_util.h"

namespace kvplan::server {
namespace {

using ::kvplan::testing::TempDir;

TEST(StoreTest, RoundTripsAndSurvivesReopen) {
  TempDir dir;
  {
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open({.path = dir.Path("db")});
    ASSERT_TRUE(store.ok()) << store.status();
    Store::Batch batch;
    batch.Put(Family::kModels, "a", "model-a");
    batch.Put(Family::kPlans, "digest", "{json}");
    batch.Put(Family::kChannelHistory, EncodeBe64(2), "two");
    batch.Put(Family::kChannelHistory, EncodeBe64(10), "ten");
    ASSERT_TRUE((*store)->Commit(batch).ok());
    // Families are separate key spaces.
    EXPECT_FALSE((*(*store)->Get(Family::kPlans, "a")).has_value());
  }
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open({.path = dir.Path("db")});
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ(**(*store)->Get(Family::kModels, "a"), "model-a");
  EXPECT_EQ(**(*store)->Get(Family::kPlans, "digest"), "{json}");
  absl::StatusOr<std::optional<std::string>> last = (*store)->LastKey(Family::kChannelHistory, "");
  ASSERT_TRUE(last.ok() && last->has_value());
  EXPECT_EQ(DecodeBe64Suffix(**last), 10u);  // Numeric, not lexicographic, order.
  std::vector<std::string> seen;
  ASSERT_TRUE((*store)
                  ->Scan(Family::kChannelHistory, "", EncodeBe64(3),
                         [&](std::string_view, std::string_view v) {
                           seen.emplace_back(v);
                           return true;
                         })
                  .ok());
  EXPECT_EQ(seen, std::vector<std::string>{"ten"});
  EXPECT_GT((*store)->ApproximateSizeBytes(), 0u);
}

TEST(StoreTest, ScanRecordsStopsAtARefusedRecordAndReturnsItsError) {
  TempDir dir;
  std::unique_ptr<Store> store = *Store::Open({.path = dir.Path("db")});
  Store::Batch batch;
  for (const char* key : {"a", "b", "c", "d"}) batch.Put(Family::kModels, key, key);
  ASSERT_TRUE(store->Commit(batch).ok());
  std::vector<std::string> seen;
  absl::Status st = store->ScanRecords(
      Family::kModels, "", "", [&](std::string_view key, std::string_view) -> absl::StatusOr<bool> {
        seen.emplace_back(key);
        if (key == "b") return absl::DataLossError("b is corrupt");
        return true;
      });
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(seen, (std::vector<std::string>{"a", "b"}));
  seen.clear();
  st = store->ScanRecords(Family::kModels, "", "",
                          [&](std::string_view key, std::string_view) -> absl::StatusOr<bool> {
                            seen.emplace_back(key);
                            return key != "c";
                          });
  EXPECT_TRUE(st.ok()) << st;
  EXPECT_EQ(seen, (std::vector<std::string>{"a", "b", "c"}));
}

TEST(StoreTest, RefusesANewerSchema) {
  TempDir dir;
  {
    std::unique_ptr<Store> store = *Store::Open({.path = dir.Path("db")});
    Store::Batch batch;
    batch.Put(Family::kMeta, "schema_version", "99");
    ASSERT_TRUE(store->Commit(batch).ok());
  }
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open({.path = dir.Path("db")});
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(std::string(store.status().message()).find("schema version 99"), std::string::npos);
}

TEST(StoreTest, SecondOpenOfTheSameDirectoryFailsWithAClearError) {
  TempDir dir;
  std::unique_ptr<Store> first = *Store::Open({.path = dir.Path("db")});
  absl::StatusOr<std::unique_ptr<Store>> second = Store::Open({.path = dir.Path("db")});
  EXPECT_FALSE(second.ok());
  EXPECT_NE(std::string(second.status().message()).find(dir.Path("db")), std::string::npos);
}

TEST(StoreTest, AVersionOneStoreOpensAndIsMarkedCurrent) {
  TempDir dir;
  {
    std::unique_ptr<Store> store = *Store::Open({.path = dir.Path("db")});
    Store::Batch batch;
    batch.Put(Family::kMeta, "schema_version", "1");
    batch.Put(Family::kModels, "a", "model-a");
    ASSERT_TRUE(store->Commit(batch).ok());
  }
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open({.path = dir.Path("db")});
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ(**(*store)->Get(Family::kMeta, "schema_version"), std::to_string(kStoreSchemaVersion));
  EXPECT_EQ(**(*store)->Get(Family::kModels, "a"), "model-a");
}

}  // namespace
}  // namespace kvplan::server
