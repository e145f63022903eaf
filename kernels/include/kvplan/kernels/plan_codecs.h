// Serving a stored bit plan (core/plan.h) with the kernels: a KvPlan's K
// layouts, rotations and per-layer V widths (exempt layers store V wider) as
// the HeadCodecs and config a PackedDecodePlan is built from. The codecs are
// the ones PackedKvCache (core/packed_kv_cache.h, the CPU reference) encodes
// with, so pages the kernels write for a plan are the cache's pages.
//
// Example:
//   absl::StatusOr<KvPlan> stored = PlanFromJson(json);
//   absl::StatusOr<PackedDecodePlan> plan = CreateDecodePlanForPlan(
//       *stored, {.group_size = num_q_heads / stored->num_kv_heads, .max_batch = 16});
//   // pages of layer l: [num_pages, num_kv_heads, plan->page_stride(l)]
#ifndef KVPLAN_KERNELS_PLAN_CODECS_H_
#define KVPLAN_KERNELS_PLAN_CODECS_H_

#include <vector>

#include "absl/status/statusor.h"
#include "core/plan.h"
#include "kvplan/kernels/packed_plan.h"

namespace kvplan::kernels {

// Every (layer, KV head)'s codec, layer-major ([num_layers * num_kv_heads]):
// K layout plan.KLayout(layer, head), K group g's rotation the plan's
// rotation of that group's size, V's the one of head_dim. The plan's errors
// (PlanRotations: a rotation that does not match its hash; KLayout) pass
// through; InvalidArgument for a plan whose k_block_bits do not cover
// num_layers x num_kv_heads or that names no rotation for a size it uses.
absl::StatusOr<std::vector<HeadCodec>> HeadCodecsForPlan(const KvPlan& plan);

// PackedDecodePlan::Create(config, HeadCodecsForPlan(plan)) with num_layers,
// num_kv_heads, head_dim, v_bits and layer_v_bits (KvPlan::VBits of each
// layer) of `config` replaced by the plan's; the caller sets the rest
// (group_size, max_batch, num_sms, ...). Errors: HeadCodecsForPlan's, then
// Create's (naming a head_dim, group_size or layer's V width outside the
// dispatch set).
absl::StatusOr<PackedDecodePlan> CreateDecodePlanForPlan(const KvPlan& plan,
                                                         PackedDecodeConfig config);

}  // namespace kvplan::kernels

#endif  // KVPLAN_KERNELS_PLAN_CODECS_H_
