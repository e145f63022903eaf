// Bit plans: everything a serving node needs to pack and read a model's KV cache.
//
// A `KvPlan` fixes, for every (layer, KV head), the bits of each RoPE block of K
// (hence its group layout, core/group_layout.h) and V's width, plus the exact
// rotations used, named by content hash. Rotations are shared by dimension: the
// plan holds one Haar rotation per distinct group size (and V's head_dim), drawn
// from the plan's rotation seed, so a plan names a few dozen matrices at most.
// It also names, by content hash, the Lloyd–Max codebook (core/codebook.h) of
// every code width it uses (K's block widths and V's), so a node can check that
// it decodes with the tables the cache was coded with.
//
// Exempt layers (PlanOptions::exempt_layers) keep K and V at exempt_bits: every
// K block of such a layer has that width (one uniform group, as in the uniform
// scheme) and its V is stored at that width, so V's width is per layer
// (KvPlan::VBits). The K budget k_bits is spent on the other layers only.
//
// Slice-aligned K (PlanOptions::k_group_align = N dims) allocates each
// block-gtq head with GroupAlignedAllocate (core/allocator.h), so every K
// width group is a multiple of N dims: with N = 16 the decode kernel, which
// pads each group to whole 16-dim MMA slices, decodes no padding (measured
// 1.14-1.19x faster at batch 16 on the H200) for +5.5% (hd 128) to +8.4%
// (hd 64) of allocation distortion at K3. Such a head may spend a few bits
// less than the budget.
//
// Plans are immutable and content-addressed: `PlanDigest` is the SHA-256 of the
// canonical JSON of everything but the provenance, so the same statistics and
// options give the same digest on every machine.
//
// JSON form (format_version 2):
//   {"format_version": 2,
//    "digest": "<sha256 of the canonical content>",
//    "model": {"fingerprint": "...", "num_layers": L, "num_kv_heads": H, "head_dim": D,
//              "rope": <RopeSpecToJson>},
//    "options": {"k_scheme": "block-gtq" | "uniform", "k_bits": 3, "v_bits": 3,
//                "score": "sum", "min_bits": 1, "max_bits": 8, "rotation_seed": N,
//                "exempt_layers": [0, 31], "exempt_bits": 8, "k_group_align": 16},
//               (exempt_layers and exempt_bits only when some layer is exempt,
//               k_group_align only when non-zero, so plans without those options
//               keep the JSON and digest they had before the options existed)
//    "rotations": {"<dim>": "<sha256 of the matrix bytes>", ...},
//    "codebooks": {"<bits>": "<sha256 of the centroid bytes>", ...},
//    "k_block_bits": [[bits per block of layer 0 head 0], [layer 0 head 1], ...],
//    "bytes_per_token": {"k": .., "v": .., "per_head_mean": ..},
//    "provenance": {"tokens": N, "stats_digest": "...", "created_unix": T, "source": "..."}}
//
// Example:
//   absl::StatusOr<KvPlan> plan = BuildPlan(table, rope, {.k_bits = 3, .v_bits = 3});
//   std::string json = PlanToJson(*plan);
//   absl::StatusOr<GroupLayout> layout = plan->KLayout(/*layer=*/0, /*kv_head=*/1);
#ifndef KVPLAN_CORE_PLAN_H_
#define KVPLAN_CORE_PLAN_H_

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/energy_table.h"
#include "core/group_layout.h"
#include "core/rope.h"
#include "core/rotation.h"
#include "core/score.h"
#include "core/whatif.h"

namespace kvplan {

// 2: plans name their codebooks ("codebooks"); 1 (unreadable now) did not.
inline constexpr int kPlanFormatVersion = 2;

enum class KScheme {
  kBlockGtq,  // Greedy per-block allocation from the statistics.
  kUniform,   // TQ-MSE baseline: one group over the head at ⌊k_bits⌋ (+ leftovers).
};

struct PlanOptions {
  KScheme k_scheme = KScheme::kBlockGtq;
  // Average K bits per dimension, fractional allowed, in [min_bits, max_bits]. Default: 3.
  double k_bits = 3.0;
  // V bits per dimension, whole, in [1, 8]. Default: 3.
  int v_bits = 3;
  // How statistics become block scores. Default: the paper's sum.
  ScoreKind score = ScoreKind::kSum;
  int min_bits = 1;
  int max_bits = 8;
  // Seed of the plan's rotations (rotation for dim d: HaarRotation(d, f(seed, d))).
  uint64_t rotation_seed = 0x6b76706c616e0001;
  // Layers kept at exempt_bits for both K (every block) and V, as inference
  // practice does for a few sensitive layers (often the first and last):
  // sorted, unique, each in [0, num_layers). k_bits budgets the other layers
  // only (min_bits and max_bits bound their blocks alone), so the mean K width
  // over the whole model is above k_bits when exempt_bits is. Default: none.
  std::vector<int> exempt_layers;
  // Bits per dimension of an exempt layer's K blocks and V, whole, in [1, 8].
  // Ignored (and not part of the digest) while exempt_layers is empty. Default: 8.
  int exempt_bits = 8;
  // Dims per K width-group unit: every width of a block-gtq head is held by a
  // multiple of this many dims (GroupAlignedAllocate with k_group_align / 2
  // blocks), so the decode kernel's 16-dim slices carry no padding at 16 (or a
  // multiple of 16), at some allocation quality. 0 (off: the greedy), or an
  // even divisor of head_dim leaving at most kMaxAlignedUnits groups, e.g. 8,
  // 16 or 32 at head_dim 128 (ValidateKGroupAlign). Not with the uniform
  // scheme, which is one group already; exempt layers stay one group. Not part
  // of the digest while 0. Default: 0.
  int k_group_align = 0;
};

struct PlanProvenance {
  uint64_t tokens = 0;       // Calibration tokens behind the statistics.
  std::string stats_digest;  // SHA-256 of the statistics the plan came from.
  int64_t created_unix = 0;  // Seconds since the epoch.
  std::string source;        // Free text: job id, file name, ...
};

struct KvPlan {
  int format_version = kPlanFormatVersion;
  std::string model_fingerprint;
  int num_layers = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  RopeSpec rope;
  PlanOptions options;
  // [layer * num_kv_heads + kv_head][block]: K bits per coordinate of each block.
  std::vector<std::vector<int>> k_block_bits;
  // Group size (dimension) -> content hash of its rotation.
  std::map<int, std::string> rotation_hashes;
  // Code width in bits -> content hash of its Lloyd–Max codebook, for every
  // width a K block or V uses (and no other).
  std::map<int, std::string> codebook_hashes;
  PlanProvenance provenance;

  const std::vector<int>& KBlockBits(int layer, int kv_head) const {
    return k_block_bits[static_cast<size_t>(layer) * num_kv_heads + kv_head];
  }
  // Whether `layer` is one of options.exempt_layers.
  bool IsExempt(int layer) const;
  // V's width in `layer`: options.exempt_bits for an exempt layer, else
  // options.v_bits. Every consumer of V (packing, byte counts) reads this.
  int VBits(int layer) const;
  // K's group layout for one head (uniform K or an exempt layer: one identity group).
  absl::StatusOr<GroupLayout> KLayout(int layer, int kv_head) const;
  // Seed of the rotation for groups of `dim` dimensions.
  uint64_t RotationSeed(int dim) const;
};

// Allocates every head of `table` under `options` (exempt layers at
// exempt_bits) and names the rotations and codebooks.
// InvalidArgument / OutOfRange for bad options or a table whose shape does not
// fit `rope` (num_blocks must be head_dim / 2).
absl::StatusOr<KvPlan> BuildPlan(const EnergyTable& table, const RopeSpec& rope,
                                 const PlanOptions& options);

// Checks options.exempt_layers and exempt_bits for a model of `num_layers`
// layers: InvalidArgument naming the layer that is out of range, repeated or out
// of order; OutOfRange for exempt_bits outside [1, 8]. BuildPlan and
// PlanFromJson call it; a service can call it before loading any statistics.
absl::Status ValidateExemptLayers(const PlanOptions& options, int num_layers);

// Checks options.k_group_align for heads of `head_dim` dims: the allocator's
// ValidateKGroupAlign (OutOfRange when negative, InvalidArgument naming the
// usable values otherwise), and InvalidArgument for the uniform scheme. BuildPlan
// and PlanFromJson call it; a service can call it before loading statistics.
absl::Status ValidateKGroupAlign(const PlanOptions& options, int head_dim);

// Packed bytes per token of the whole model: Σ over layers and KV heads of
// TokenBytesForHead with each layer's VBits (what PlanToJson reports).
KvTokenBytes PlanBytesPerToken(const KvPlan& plan);

// The plan's rotations by dimension, generated and checked against the hashes
// the plan names (FailedPrecondition naming the dimension if one differs).
absl::StatusOr<std::map<int, Rotation>> PlanRotations(const KvPlan& plan);

// SHA-256 of the canonical JSON content (all but provenance and digest).
std::string PlanDigest(const KvPlan& plan);

// Serialization; PlanFromJson verifies the format version, the shape, every
// allocation against the bit range and budget (an exempt layer's against
// exempt_bits; with k_group_align, each width's blocks a multiple of the unit
// and at most the budget spent), the exempt layers, the alignment, the
// codebooks against this build's tables
// (FailedPrecondition naming the width when one differs), and the digest,
// naming what is wrong.
std::string PlanToJson(const KvPlan& plan);
absl::StatusOr<KvPlan> PlanFromJson(std::string_view text);
// PlanFromJson of the file at `path` (a plan JSON written by `kvplan plan
// build` or `plans get --out`); ReadFile's errors, or PlanFromJson's prefixed
// with the path.
absl::StatusOr<KvPlan> ReadPlanFile(const std::filesystem::path& path);

std::string_view KSchemeName(KScheme scheme);

// A one-line name of the plan's budget for reports, e.g. "block-gtq K2.5V3",
// "block-gtq K2V2, layers 0,5 at 8 bits" with exempt layers, or
// "block-gtq K3V3, K groups of 16 dims" with k_group_align.
std::string PlanLabel(const KvPlan& plan);

}  // namespace kvplan

#endif  // KVPLAN_CORE_PLAN_H_
