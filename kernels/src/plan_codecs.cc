#include "kvplan/kernels/plan_codecs.h"

#include <map>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "core/rotation.h"

namespace kvplan::kernels {

absl::StatusOr<std::vector<HeadCodec>> HeadCodecsForPlan(const KvPlan& plan) {
  const size_t num_heads = static_cast<size_t>(plan.num_layers) * plan.num_kv_heads;
  if (plan.num_layers < 1 || plan.num_kv_heads < 1 || plan.k_block_bits.size() != num_heads) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "plan has %d K allocations for %d layers x %d KV heads; it needs a positive number of each",
        plan.k_block_bits.size(), plan.num_layers, plan.num_kv_heads));
  }
  absl::StatusOr<std::map<int, Rotation>> rotations = PlanRotations(plan);
  if (!rotations.ok()) return rotations.status();
  auto rotation = [&](int dim) -> absl::StatusOr<Rotation> {
    auto it = rotations->find(dim);
    if (it == rotations->end()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("plan names no rotation for dimension %d, which its layouts use", dim));
    }
    return it->second;
  };
  absl::StatusOr<Rotation> v_rotation = rotation(plan.head_dim);
  if (!v_rotation.ok()) return v_rotation.status();

  std::vector<HeadCodec> codecs;
  codecs.reserve(num_heads);
  for (int l = 0; l < plan.num_layers; ++l) {
    for (int h = 0; h < plan.num_kv_heads; ++h) {
      absl::StatusOr<GroupLayout> layout = plan.KLayout(l, h);
      if (!layout.ok()) return layout.status();
      HeadCodec codec;
      for (const QuantGroup& g : layout->groups) {
        absl::StatusOr<Rotation> r = rotation(g.size);
        if (!r.ok()) return r.status();
        codec.k_rotations.push_back(*std::move(r));
      }
      codec.k_layout = *std::move(layout);
      codec.v_rotation = *v_rotation;
      codecs.push_back(std::move(codec));
    }
  }
  return codecs;
}

absl::StatusOr<PackedDecodePlan> CreateDecodePlanForPlan(const KvPlan& plan,
                                                         PackedDecodeConfig config) {
  absl::StatusOr<std::vector<HeadCodec>> codecs = HeadCodecsForPlan(plan);
  if (!codecs.ok()) return codecs.status();
  config.num_layers = plan.num_layers;
  config.num_kv_heads = plan.num_kv_heads;
  config.head_dim = plan.head_dim;
  // Unused once layer_v_bits is set; the plan's base width, for config() readers.
  config.v_bits = plan.options.v_bits;
  config.layer_v_bits.clear();
  for (int l = 0; l < plan.num_layers; ++l) config.layer_v_bits.push_back(plan.VBits(l));
  return PackedDecodePlan::Create(config, *codecs);
}

}  // namespace kvplan::kernels
