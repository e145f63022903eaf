// The serving node's plan cache file: round trip, and every kind of damage
// detected by name.
#include "client/lib/plan_cache.h"

#include <filesystem>

#include "core/file_io.h"
#include "gtest/gtest.h"
#include "tests/client/cli_runner.h"
#include "tests/client/lib/plan_fixtures.h"

namespace kvplan::client {
namespace {

using ::kvplan::testing::FixturePlan;
using ::kvplan::testing::kNodeFingerprint;
using ::kvplan::testing::ScratchDir;

CachedPlan Cached() {
  const KvPlan plan = FixturePlan();
  return {.model_fingerprint = kNodeFingerprint,
          .model_id = "tiny",
          .channel = "stable",
          .plan_id = PlanDigest(plan),
          .plan_name = "default",
          .version = 3,
          .plan_json = PlanToJson(plan)};
}

TEST(PlanCacheTest, RoundTripsAndCreatesTheDirectory) {
  ScratchDir dir("plan_cache_round_trip");
  const std::filesystem::path path =
      PlanCachePath(dir.Path("cache/nested"), kNodeFingerprint, "stable");
  EXPECT_EQ(path.filename().string().rfind("stable.", 0), 0u) << path;
  ASSERT_TRUE(WritePlanCache(path, Cached()).ok());
  absl::StatusOr<CachedPlan> back = ReadPlanCache(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->model_fingerprint, kNodeFingerprint);
  EXPECT_EQ(back->model_id, "tiny");
  EXPECT_EQ(back->channel, "stable");
  EXPECT_EQ(back->plan_id, Cached().plan_id);
  EXPECT_EQ(back->plan_name, "default");
  EXPECT_EQ(back->version, 3u);
  EXPECT_EQ(back->plan_json, Cached().plan_json);
}

TEST(PlanCacheTest, PathsDifferPerFingerprintAndChannel) {
  EXPECT_NE(PlanCachePath("/c", "fp-a", "stable"), PlanCachePath("/c", "fp-b", "stable"));
  EXPECT_NE(PlanCachePath("/c", "fp-a", "stable"), PlanCachePath("/c", "fp-a", "canary"));
  // A fingerprint with a slash cannot escape the directory.
  EXPECT_EQ(PlanCachePath("/c", "../../etc/x", "stable").parent_path(), "/c");
}

TEST(PlanCacheTest, MissingFileIsNotFound) {
  ScratchDir dir("plan_cache_missing");
  EXPECT_EQ(ReadPlanCache(dir.Path("absent.plan")).status().code(), absl::StatusCode::kNotFound);
}

TEST(PlanCacheTest, TruncationAtAnyLengthIsDataLoss) {
  ScratchDir dir("plan_cache_truncated");
  const std::string path = dir.Path("c.plan");
  ASSERT_TRUE(WritePlanCache(path, Cached()).ok());
  const std::string bytes = *ReadFile(path);
  for (size_t keep :
       {size_t{0}, size_t{5}, bytes.size() / 2, bytes.size() - 70, bytes.size() - 1}) {
    ASSERT_TRUE(WriteFileAtomically(path, bytes.substr(0, keep)).ok());
    absl::Status st = ReadPlanCache(path).status();
    EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << "kept " << keep << ": " << st;
    EXPECT_NE(st.message().find(path), std::string::npos) << "names the file: " << st;
  }
}

TEST(PlanCacheTest, AnyFlippedByteIsDataLoss) {
  ScratchDir dir("plan_cache_flipped");
  const std::string path = dir.Path("c.plan");
  ASSERT_TRUE(WritePlanCache(path, Cached()).ok());
  const std::string bytes = *ReadFile(path);
  // Header, metadata, plan body (provenance included), checksum.
  for (size_t at :
       {size_t{3}, size_t{40}, bytes.size() / 2, bytes.size() - 200, bytes.size() - 10}) {
    std::string flipped = bytes;
    flipped[at] ^= 0x04;
    ASSERT_TRUE(WriteFileAtomically(path, flipped).ok());
    absl::Status st = ReadPlanCache(path).status();
    EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << "byte " << at << ": " << st;
  }
}

}  // namespace
}  // namespace kvplan::client
