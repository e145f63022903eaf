// The compact binary form of a plan for serving nodes ("sidecar").
//
// A serving node needs only the shape, the RoPE layout (which dimensions pair
// into block i, so it can rebuild each head's group layout from the bits), the
// K bits of every block, V's width, the exempt layers (whose V is at
// exempt_bits), and the names of the rotations and codebooks
// to pack its cache; the sidecar carries exactly that, bound to the plan's
// digest and the model fingerprint, so a node can load it without a JSON
// parser and check it against the JSON plan it came from. Options that only
// chose the allocation (k_bits, score, bit range, k_group_align) are not
// carried: the bits they produced are, and the digest binds them, so an
// aligned plan needs no other format.
//
//   sidecar  := "KVPB" u32:version(=3) digest fingerprint
//               u16:num_layers u16:num_kv_heads u16:head_dim u8:v_bits u8:k_scheme
//               rope bits[num_layers·num_kv_heads·head_dim/2] exempt hashes:rotations
//               hashes:codebooks checksum
//   digest   := 64 ASCII bytes: the plan's PlanDigest
//   fingerprint := u16:length bytes
//   k_scheme := 0 block-gtq | 1 uniform
//   rope     := u8:style (0 split-half | 1 interleaved) u16:rotary_dim f64:theta
//               u8:scaling (0 none | 1 linear | 2 llama3 | 3 yarn) f64:factor
//               f64:low_freq_factor f64:high_freq_factor u32:original_max_position_embeddings
//               f64:beta_fast f64:beta_slow u8:truncate f64:attention_factor
//               (core/rope.h RopeSpec; its head_dim is the sidecar's)
//   bits     := u8 per RoPE block (K bits per coordinate), head-major as KvPlan::k_block_bits
//   exempt   := u8:exempt_bits u16:count u16:layer*   (layers ascending, each < num_layers;
//               V of these layers is at exempt_bits, of the others at v_bits)
//   hashes   := u16:count (u16:key 64 ASCII bytes: content hash)*, keys ascending;
//               rotations are keyed by dimension, codebooks by code width
//   checksum := 64 ASCII bytes: lowercase hex SHA-256 of everything before it
//   (integers little-endian; f64 the IEEE binary64 bits as a little-endian u64)
//
// Versions 1 (no rope) and 2 (no exempt layers) are refused rather than read
// with defaults: sidecars are exported from stored plans on demand, so a node
// asks the coordinator for a fresh one.
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
  int v_bits = 0;  // V's width outside the exempt layers; read V widths with VBits.
  KScheme k_scheme = KScheme::kBlockGtq;
  RopeSpec rope;                               // As KvPlan::rope; rope.head_dim == head_dim.
  std::vector<std::vector<int>> k_block_bits;  // As KvPlan::k_block_bits.
  std::map<int, std::string> rotation_hashes;  // Dimension -> content hash.
  std::map<int, std::string> codebook_hashes;  // Code width -> content hash.
  std::vector<int> exempt_layers;              // As PlanOptions::exempt_layers.
  int exempt_bits = 8;                         // As PlanOptions::exempt_bits.

  // V's width in `layer`, as KvPlan::VBits.
  int VBits(int layer) const;
};

// The sidecar of `plan` (its digest computed afresh).
std::string PlanToSidecar(const KvPlan& plan);

// DataLoss naming the bad part for truncated, corrupt or foreign bytes, or a
// version this build does not read.
absl::StatusOr<PlanSidecar> ParsePlanSidecar(std::string_view bytes);

}  // namespace kvplan

#endif  // KVPLAN_CORE_PLAN_SIDECAR_H_
