// Plans for the libkvplan-client tests: real plans built by core, bound to a
// chosen fingerprint, and their JSON as a coordinator would serve it.
#ifndef KVPLAN_TESTS_CLIENT_LIB_PLAN_FIXTURES_H_
#define KVPLAN_TESTS_CLIENT_LIB_PLAN_FIXTURES_H_

#include <cstdlib>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>

#include "client/lib/plan_tracker.h"
#include "core/block_stats.h"
#include "core/energy_table.h"
#include "core/plan.h"

namespace kvplan::testing {

inline constexpr char kNodeFingerprint[] = "fp-node-model-0001";

// Collects the library's log lines (called from its threads) for assertions.
class LogCapture {
 public:
  std::function<void(std::string_view)> Sink() {
    return [this](std::string_view line) {
      std::lock_guard<std::mutex> lock(mu_);
      text_ += std::string(line) + "\n";
    };
  }
  std::string text() {
    std::lock_guard<std::mutex> lock(mu_);
    return text_;
  }

 private:
  std::mutex mu_;
  std::string text_;
};

// A 2-layer, 2-KV-head, hd 8 plan; different `k_bits` give different digests.
inline KvPlan FixturePlan(double k_bits = 2.5, const std::string& fingerprint = kNodeFingerprint) {
  BlockStats stats =
      *BlockStats::Create({.num_layers = 2, .num_kv_heads = 2, .num_blocks = 4, .group_size = 1});
  for (int l = 0; l < 2; ++l) {
    for (int h = 0; h < 2; ++h) {
      if (!stats.Add(l, h, {40, 10, 4, 1}, 5, {30, 8, 2, 1}, 5).ok()) std::abort();
    }
  }
  RopeSpec rope;
  rope.head_dim = rope.rotary_dim = 8;
  absl::StatusOr<KvPlan> plan =
      BuildPlan(*EnergyTableFromStats(stats), rope, {.k_bits = k_bits, .v_bits = 2});
  if (!plan.ok()) std::abort();
  plan->model_fingerprint = fingerprint;
  plan->provenance.source = "fixture";
  return *std::move(plan);
}

// The offer a coordinator would make for `plan` (its id is its digest).
inline client::PlanOffer FixtureOffer(const KvPlan& plan, uint64_t version = 1) {
  return {.plan_json = PlanToJson(plan),
          .plan_id = PlanDigest(plan),
          .model_id = "tiny",
          .plan_name = "default",
          .version = version};
}

}  // namespace kvplan::testing

#endif  // KVPLAN_TESTS_CLIENT_LIB_PLAN_FIXTURES_H_
