// The compact binary form of a plan for serving nodes ("sidecar").
//
// A serving node needs only the shape, the K bits of every block, V's width and
// the rotations' names to pack its cache; the sidecar carries exactly that, bound
// to the plan's digest and the model fingerprint, so a node can load it without
// a JSON parser and check it against the JSON plan it came from.
//
//   sidecar  := "KVPB" u32:version(=1) digest fingerprint
//               u16:num_layers u16:num_kv_heads u16:head_dim u8:v_bits u8:k_scheme
//               bits[num_layers·num_kv_heads·head_dim/2] u16:num_rotations rotation*
//               checksum
//   digest   := 64 ASCII bytes: the plan's PlanDigest
//   fingerprint := u16:length bytes
//   bits     := u8 per RoPE block (K bits per coordinate), head-major as KvPlan::k_block_bits
//   k_scheme := 0 block-gtq | 1 uniform
//   rotation := u16:dim 64 ASCII bytes: content hash
//   checksum := 64 ASCII bytes: lowercase hex SHA-256 of everything before it
//   (integers little-endian)
//
// Example:
//   std::string bytes = PlanToSidecar(plan);
//   absl::StatusOr<PlanSidecar> back = ParsePlanSidecar(bytes);
//   // back->digest == PlanDigest(plan)
#ifndef KVPLAN_CORE_PLAN_SIDECAR_H_
#define KVPLAN_CORE_PLAN_SIDECAR_H_

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/plan.h"

namespace kvplan {

struct PlanSidecar {
  std::string digest;
  std::string model_fingerprint;
  int num_layers = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int v_bits = 0;
  KScheme k_scheme = KScheme::kBlockGtq;
  std::vector<std::vector<int>> k_block_bits;  // As KvPlan::k_block_bits.
  std::map<int, std::string> rotation_hashes;  // Dimension -> content hash.
};

// The sidecar of `plan` (its digest computed afresh).
std::string PlanToSidecar(const KvPlan& plan);

// DataLoss naming the bad part for truncated, corrupt or foreign bytes.
absl::StatusOr<PlanSidecar> ParsePlanSidecar(std::string_view bytes);

}  // namespace kvplan

#endif  // KVPLAN_CORE_PLAN_SIDECAR_H_
