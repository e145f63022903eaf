// Block energies (or ready-made scores) for every (layer, KV head) of a model.
//
// `EnergyTable` is what allocation and what-if read: either mean energies
// E‖q⁽ⁱ⁾‖², E‖k⁽ⁱ⁾‖² per block, scored on demand with any `ScoreKind`, or scores
// computed elsewhere. It comes from merged `BlockStats` or from JSON:
//
//   energies: {"<layer>.<kv_head>": {"q": [E‖q⁽ⁱ⁾‖², ...], "k": [E‖k⁽ⁱ⁾‖², ...]}, ...}
//             ("q_energy"/"k_energy" are accepted for "q"/"k")
//   scores:   {"<layer>.<kv_head>": [s_i, ...], ...}
//   either, wrapped as {"block_energy_calib": {...}} or {"block_energy": {...}}
//
// Example:
//   absl::StatusOr<EnergyTable> table = EnergyTableFromJson(json);
//   absl::StatusOr<std::vector<double>> s = table->Scores(0, 1, ScoreKind::kSum);
#ifndef KVPLAN_CORE_ENERGY_TABLE_H_
#define KVPLAN_CORE_ENERGY_TABLE_H_

#include <vector>

#include "absl/status/statusor.h"
#include "core/block_stats.h"
#include "core/score.h"
#include "nlohmann/json_fwd.hpp"

namespace kvplan {

class EnergyTable {
 public:
  int num_layers() const { return num_layers_; }
  int num_kv_heads() const { return num_kv_heads_; }
  int num_blocks() const { return num_blocks_; }
  // True when the table holds q/k energies; false when it holds ready scores.
  bool has_energies() const { return has_energies_; }

  // Per-block scores of one head. With ready scores only `ScoreKind::kSum` (what
  // they are assumed to be) is accepted; asking for another kind is an error.
  absl::StatusOr<std::vector<double>> Scores(int layer, int kv_head, ScoreKind kind) const;

  // Mean energies of one head; empty when the table holds ready scores.
  const std::vector<double>& MeanQ(int layer, int kv_head) const {
    return q_[Index(layer, kv_head)];
  }
  const std::vector<double>& MeanK(int layer, int kv_head) const {
    return k_[Index(layer, kv_head)];
  }

  friend absl::StatusOr<EnergyTable> EnergyTableFromJson(const nlohmann::json& json);
  friend absl::StatusOr<EnergyTable> EnergyTableFromStats(const BlockStats& stats);

 private:
  size_t Index(int layer, int kv_head) const {
    return static_cast<size_t>(layer) * num_kv_heads_ + kv_head;
  }

  int num_layers_ = 0;
  int num_kv_heads_ = 0;
  int num_blocks_ = 0;
  bool has_energies_ = false;
  std::vector<std::vector<double>> q_;  // [layer * kv_heads + head][block]
  std::vector<std::vector<double>> k_;
  std::vector<std::vector<double>> scores_;  // Ready scores, when !has_energies_.
};

// Parses either JSON form above. Every head of a dense layers × kv_heads grid must
// be present, every list must have the same positive length, and every value must
// be a finite number >= 0; errors name the offending key.
absl::StatusOr<EnergyTable> EnergyTableFromJson(const nlohmann::json& json);

// Mean energies of complete statistics (FailedPrecondition if a head saw nothing).
absl::StatusOr<EnergyTable> EnergyTableFromStats(const BlockStats& stats);

}  // namespace kvplan

#endif  // KVPLAN_CORE_ENERGY_TABLE_H_
