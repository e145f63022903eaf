// Plan once, run many: the host side of the packed-cache kernels.
//
// A PackedDecodePlan is computed once per model and bit plan from every
// (layer, KV head)'s K GroupLayout and rotations and V's rotation and width
// (per layer: a stored plan's exempt layers keep V wider; plan_codecs.h builds
// all of it from a core/plan.h KvPlan). It fixes the page layout of each head
// (core/packed_page.h) and one page stride per layer, the largest page of its
// heads, so that pages of a layer are [num_pages, num_kv_heads,
// page_stride(layer)] and narrow layers do not pay for an exempt layer's wide
// pages. It carves a caller-owned device workspace into named, 256-byte
// aligned regions:
//   descs       [num_layers, num_kv_heads] PackedHeadDesc       (uploaded)
//   fragment    [num_layers, num_kv_heads] FragmentHeadGeometry (uploaded; fragment_pages
//               only; zero for version1_layers)
//   tables      CodeTables: codebooks, boundaries, fp16 decode tables (uploaded)
//   rotations   every K group's Rᵀ, V's Rᵀ and R, fp32            (uploaded)
//   partial_o   [max_batch, num_kv_heads, max_splits + 1, group_size, head_dim] fp32
//   partial_ml  [max_batch, num_kv_heads, max_splits + 1, group_size, 2] fp32
// Upload() makes the one async copy of the uploaded part; the step launchers
// (launch.h) then allocate nothing and can be captured in a CUDA graph.
//
// Example:
//   absl::StatusOr<PackedDecodePlan> plan = PackedDecodePlan::Create(config, heads);
//   void* ws; cudaMalloc(&ws, plan->workspace_bytes());
//   plan->Upload(ws, stream);
//   PackedDecodeParams p = plan->DecodeParams(layer, ws, batch, plan->SplitsForLengths(lengths));
//   ... fill per-step pointers ...; LaunchPackedDecode(p, stream);
#ifndef KVPLAN_KERNELS_PACKED_PLAN_H_
#define KVPLAN_KERNELS_PACKED_PLAN_H_

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/fragment_page.h"
#include "core/group_layout.h"
#include "core/packed_page.h"
#include "core/rotation.h"
#include "kvplan/kernels/packed_splits.h"
#include "kvplan/kernels/params.h"

namespace kvplan::kernels {

struct PackedDecodeConfig {
  int num_layers = 0;
  int num_kv_heads = 0;
  // Query heads per KV head. Must be in the dispatch set (dispatch.h).
  int group_size = 1;
  // Must be in the dispatch set: 64 or 128.
  int head_dim = 0;
  // V width (uniform TQ-MSE) of every layer while layer_v_bits is empty;
  // unused otherwise. Must be in the dispatch set.
  int v_bits = 3;
  // V width per layer ([num_layers]; KvPlan::VBits), for plans whose exempt
  // layers store V wider. Each must be in the dispatch set. Default: empty
  // (v_bits for every layer).
  std::vector<int> layer_v_bits;
  // Largest batch a step may have (sizes the per-step scratch). Default: 1.
  int max_batch = 1;
  // Largest key-axis split count; 0 derives it from num_sms. Default: 0.
  int max_splits = 0;
  // Multiprocessors to fill (cudaDevAttrMultiProcessorCount). Default: 132 (H100/H200 SXM).
  int num_sms = 132;
  // The device runs sm_90a code (compute capability 9.0: H100, H200): encode
  // launches at head_dim 128 past the few-token kernel's then encode K and V
  // with wgmma (on the H200 1.06-1.50x faster encodes of 512-32K tokens x 8
  // heads with 16-aligned plans, 1.12-1.23x with greedy plans at most sizes;
  // EncodePackParams::wgmma; BENCHMARKS.md). Set it from the device's compute
  // capability; another device would trap in that kernel. Default: false.
  bool wgmma = false;
  // Most fp16 sink and recent tokens per sequence; sum <= kMaxFp16Tokens.
  int max_sink = 0;
  int max_recent = 0;
  // The plan only feeds encode (any V width in [1, 8]), not attention, whose
  // dispatch set is narrower. Default: false.
  bool encode_only = false;
  // Pages are fragment-native (core/fragment_page.h; every K group a multiple
  // of 8 dims: plans allocated with k_group_align 8 or 16): encode writes
  // them and FragmentDecodeProgram::Step (fragment_decode_program.h) decodes
  // them, ~1.5x faster than version-1 pages on the H200 (BENCHMARKS.md).
  // Default: false (version-1 pages, core/packed_page.h, any layout).
  bool fragment_pages = false;
  // With fragment_pages: layers that keep version-1 pages (LaunchPackedDecode
  // decodes them), those the fragment kernel cannot decode, e.g. 8-bit exempt
  // layers: FragmentDecodeProgram::version1_layers(). Default: none.
  std::vector<int> version1_layers;
};

// One (layer, KV head)'s codec.
struct HeadCodec {
  GroupLayout k_layout;
  // One per K group, dims equal to the group sizes.
  std::vector<Rotation> k_rotations;
  // dim head_dim.
  Rotation v_rotation;
};

class PackedDecodePlan {
 public:
  // heads: [num_layers * num_kv_heads], layer-major. InvalidArgument naming the
  // problem (and the layer or head it is in) for sizes outside the dispatch
  // set, wrong counts, invalid layouts, rotations that do not fit their groups.
  static absl::StatusOr<PackedDecodePlan> Create(const PackedDecodeConfig& config,
                                                 absl::Span<const HeadCodec> heads);

  const PackedDecodeConfig& config() const { return config_; }
  int max_splits() const { return max_splits_; }
  size_t workspace_bytes() const { return workspace_bytes_; }
  // V width of `layer` (layer_v_bits[layer], else v_bits).
  int v_bits(int layer) const;
  // Bytes of one (page, kv_head) of `layer`: the largest page of its heads (of
  // the plan's page format), a multiple of 16. What EncodeParams/DecodeParams
  // (layer) set; any larger multiple of 16 works too if the caller sets it in
  // the params instead.
  int64_t page_stride(int layer) const { return layer_page_strides_[layer]; }
  // The largest page_stride(layer) over all layers: an upper bound, e.g. for
  // one page pool shared by every layer (set it in each layer's params then).
  int64_t page_stride() const { return page_stride_; }
  // The version-1 page of a head (what a plan without fragment_pages stores).
  const PackedPageLayout& page_layout(int layer, int kv_head) const {
    return layouts_[static_cast<size_t>(layer) * config_.num_kv_heads + kv_head];
  }
  // The descriptor of a head as uploaded (host copy): its groups, page
  // offsets and rotation offsets.
  const PackedHeadDesc& head_desc(int layer, int kv_head) const {
    return reinterpret_cast<const PackedHeadDesc*>(
        image_.data())[static_cast<size_t>(layer) * config_.num_kv_heads + kv_head];
  }
  // Whether `layer` stores fragment-native pages (fragment_pages, and not one
  // of version1_layers).
  bool fragment_layer(int layer) const { return fragment_layers_[layer]; }
  // For a fragment_layer: the fragment-native page of a head.
  const FragmentPageLayout& fragment_layout(int layer, int kv_head) const {
    return *fragment_layouts_[static_cast<size_t>(layer) * config_.num_kv_heads + kv_head];
  }

  // Copies descriptors, tables and rotations into `workspace` (one async copy
  // on `stream`). The source is this plan's host image: keep the plan alive
  // until the stream has run the copy.
  cudaError_t Upload(void* workspace, cudaStream_t stream) const;

  // Splits for a step over sequences of `lengths` packed tokens, which a
  // serving scheduler knows on the host (packed_splits.h: one wave of
  // kAttentionCtasPerSm CTAs per SM, more for long or ragged batches), at
  // most max_splits(). O(lengths): once per step, not per layer.
  int SplitsForLengths(absl::Span<const int> lengths) const;
  // The same for `batch` sequences of `max_tokens` packed tokens each.
  int SplitsFor(int batch, int max_tokens) const;

  // Params with the plan-derived fields set (per-step fields left empty).
  EncodePackParams EncodeParams(int layer, void* workspace) const;
  PackedDecodeParams DecodeParams(int layer, void* workspace, int batch, int num_splits) const;

 private:
  PackedDecodePlan() = default;
  // The layer's geometries in `ws`, or nullptr for a layer of version-1 pages.
  const FragmentHeadGeometry* FragmentGeometry(int layer, uint8_t* ws) const;
  // What the split sizing sees of this plan: its SMs, KV heads and max_splits.
  PackedSplitMachine SplitMachine() const;

  PackedDecodeConfig config_;
  int max_splits_ = 0;
  int64_t page_stride_ = 0;
  std::vector<int64_t> layer_page_strides_;  // [num_layers]
  std::vector<PackedPageLayout> layouts_;
  std::vector<bool> fragment_layers_;  // [num_layers]
  std::vector<bool> k_groups_whole_;   // [num_layers]: EncodePackParams::k_groups_whole
  std::vector<std::optional<FragmentPageLayout>> fragment_layouts_;  // fragment layers' heads
  std::vector<uint8_t> image_;  // descs, tables, rotations as uploaded
  size_t fragment_offset_ = 0;
  size_t tables_offset_ = 0;
  size_t rotations_offset_ = 0;
  size_t partial_o_offset_ = 0;
  size_t partial_ml_offset_ = 0;
  size_t workspace_bytes_ = 0;
};

}  // namespace kvplan::kernels

#endif  // KVPLAN_KERNELS_PACKED_PLAN_H_
