// Every way a plan can fail a serving node's checks, and the message that
// names what differs.
#include "client/lib/plan_verify.h"

#include <algorithm>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/client/lib/plan_fixtures.h"

namespace kvplan::client {
namespace {

using ::kvplan::testing::FixturePlan;
using ::kvplan::testing::kNodeFingerprint;

// The first head's allocation with two blocks of different width swapped: a
// plan just as valid (same budget), but not the one that was announced.
KvPlan Retuned(KvPlan plan) {
  std::vector<int>& bits = plan.k_block_bits[0];
  const auto other = std::find_if(bits.begin(), bits.end(), [&](int b) { return b != bits[0]; });
  EXPECT_NE(other, bits.end());
  std::iter_swap(bits.begin(), other);
  return plan;
}

TEST(PlanVerifyTest, AcceptsThePlanItWasPromised) {
  const KvPlan plan = FixturePlan();
  absl::StatusOr<KvPlan> back = VerifyPlan(PlanToJson(plan), PlanDigest(plan), kNodeFingerprint);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->k_block_bits, plan.k_block_bits);
}

TEST(PlanVerifyTest, WrongFingerprintFailsClosedNamingBoth) {
  const KvPlan plan = FixturePlan(2.5, "fp-other-model");
  absl::Status st = VerifyPlan(PlanToJson(plan), PlanDigest(plan), kNodeFingerprint).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(st.message().find("is for model fp-other-model, this node runs fp-node-model-0001"),
            std::string::npos)
      << st;
  EXPECT_NE(st.message().find(PlanDigest(plan)), std::string::npos) << st;
}

TEST(PlanVerifyTest, ContentThatDoesNotHashToItsOwnDigestIsRefused) {
  const KvPlan plan = FixturePlan();
  nlohmann::json json = nlohmann::json::parse(PlanToJson(plan));
  json["k_block_bits"] = nlohmann::json(Retuned(plan).k_block_bits);  // "digest" left as it was.
  absl::Status st = VerifyPlan(json.dump(), PlanDigest(plan), kNodeFingerprint).status();
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("digest mismatch"), std::string::npos) << st;
  EXPECT_NE(st.message().find(PlanDigest(plan)), std::string::npos) << "names the plan: " << st;
}

TEST(PlanVerifyTest, AConsistentPlanOtherThanTheAnnouncedOneIsRefused) {
  // Tampered and re-signed: self-consistent, but not the digest the coordinator named.
  const KvPlan promised = FixturePlan();
  const KvPlan swapped = Retuned(promised);
  ASSERT_NE(PlanDigest(swapped), PlanDigest(promised));
  absl::Status st =
      VerifyPlan(PlanToJson(swapped), PlanDigest(promised), kNodeFingerprint).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(st.message().find("announced as " + PlanDigest(promised)), std::string::npos) << st;
  EXPECT_NE(st.message().find("hashes to " + PlanDigest(swapped)), std::string::npos) << st;
}

TEST(PlanVerifyTest, AnUnknownFormatVersionIsRefusedByNumber) {
  const KvPlan plan = FixturePlan();
  nlohmann::json json = nlohmann::json::parse(PlanToJson(plan));
  json["format_version"] = 99;
  absl::Status st = VerifyPlan(json.dump(), PlanDigest(plan), kNodeFingerprint).status();
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("format_version 99"), std::string::npos) << st;
}

TEST(PlanVerifyTest, TruncatedOrForeignJsonIsRefused) {
  const KvPlan plan = FixturePlan();
  const std::string json = PlanToJson(plan);
  EXPECT_FALSE(
      VerifyPlan(json.substr(0, json.size() / 2), PlanDigest(plan), kNodeFingerprint).ok());
  EXPECT_FALSE(VerifyPlan("{\"hello\": 1}", PlanDigest(plan), kNodeFingerprint).ok());
  EXPECT_FALSE(VerifyPlan("", PlanDigest(plan), kNodeFingerprint).ok());
}

}  // namespace
}  // namespace kvplan::client
