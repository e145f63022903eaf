// Stored bit plans for the kernel tests: built by core from block statistics,
// as a calibration run would build them.
//
// Example:
//   absl::StatusOr<KvPlan> plan = ExemptLayerPlan(/*layers=*/3, /*head_dim=*/64);
#ifndef KVPLAN_TESTS_KERNELS_PLAN_FIXTURES_H_
#define KVPLAN_TESTS_KERNELS_PLAN_FIXTURES_H_

#include <cmath>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/block_stats.h"
#include "core/energy_table.h"
#include "core/plan.h"
#include "core/rope.h"

namespace kvplan::kernels::testing {

inline constexpr int kPlanKvHeads = 2;

// Block-GTQ at K`k_bits`V`v_bits` over `layers` layers of kPlanKvHeads KV heads, the
// `exempt_layers` at 8 bits (K one 8-bit group, V 8 bits). Block energies fall
// off with the block index and vary with layer and head, so the heads get
// several K groups and differ from one another. k_group_align:
// PlanOptions::k_group_align (16: every K group whole 16-dim slices of the
// decode kernel; 8: what fragment pages need).
inline absl::StatusOr<KvPlan> BlockGtqPlan(int layers, int head_dim, int k_group_align,
                                           std::vector<int> exempt_layers, int k_bits = 3,
                                           int v_bits = 3) {
  const int blocks = head_dim / 2;
  absl::StatusOr<BlockStats> stats = BlockStats::Create(
      {.num_layers = layers, .num_kv_heads = kPlanKvHeads, .num_blocks = blocks});
  if (!stats.ok()) return stats.status();
  for (int l = 0; l < layers; ++l) {
    for (int h = 0; h < kPlanKvHeads; ++h) {
      std::vector<double> q(blocks), k(blocks);
      for (int i = 0; i < blocks; ++i) {
        q[i] = std::pow(0.85, i) * (1 + (i * 7 + 3 * l + 5 * h) % 4);
        k[i] = std::pow(0.9, i) * (1 + (i * 5 + l + 2 * h) % 3);
      }
      if (absl::Status s = stats->Add(l, h, q, 1, k, 1); !s.ok()) return s;
    }
  }
  absl::StatusOr<EnergyTable> table = EnergyTableFromStats(*stats);
  if (!table.ok()) return table.status();
  RopeSpec rope;
  rope.head_dim = rope.rotary_dim = head_dim;
  return BuildPlan(*table, rope,
                   {.k_bits = static_cast<double>(k_bits),
                    .v_bits = v_bits,
                    .exempt_layers = std::move(exempt_layers),
                    .exempt_bits = 8,
                    .k_group_align = k_group_align});
}

// Layer 0 exempt: the shape of plan whose V width differs per layer.
inline absl::StatusOr<KvPlan> ExemptLayerPlan(int layers, int head_dim, int k_group_align = 0) {
  return BlockGtqPlan(layers, head_dim, k_group_align, {0});
}

}  // namespace kvplan::kernels::testing

#endif  // KVPLAN_TESTS_KERNELS_PLAN_FIXTURES_H_
