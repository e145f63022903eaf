// Every layer's fragment-page decode kernel for one plan: the pages of each
// (layer, KV head) (core/fragment_page.h), each layer's generated attention
// kernel (fragment_decode_source.h), compiled with NVRTC (jit.h) in parallel,
// layers with the same source compiled once, through the cubin cache when
// options name one. Compile needs no GPU; Load does.
//
// Step serves LaunchPackedDecode's contract (launch.h: a PackedDecodeParams
// from PackedDecodePlan::DecodeParams, q post-RoPE fp32, fp16 sink/recent
// tokens, out in the original dims) over fragment pages: the prologue (q̂,
// the fp16 part), the layer's generated attention, the merge (V's rotation
// undone). Like the launchers it allocates nothing and never synchronizes, so
// a step can be captured in a CUDA graph.
//
// Layers it cannot serve (an 8-bit exempt layer's runs, K groups not whole
// 8-dim units) are refused, or with version1_fallback left to version-1 pages
// layer by layer, so a plan's other layers still take this path.
//
// Example:
//   FragmentProgramOptions options;
//   options.jit.cache_dir = state_dir + "/cubins";
//   options.version1_fallback = true;
//   absl::StatusOr<FragmentDecodeProgram> program = FragmentDecodeProgram::Compile(plan, options);
//   absl::Status loaded = program->Load();
//   absl::StatusOr<PackedDecodePlan> decode_plan = CreateDecodePlanForPlan(plan,
//       {.group_size = g, .fragment_pages = true, .version1_layers = program->version1_layers()});
//   PackedDecodeParams p = decode_plan->DecodeParams(layer, ws, batch, splits);
//   p.q = q; p.pages = pool; ...
//   if (program->serves(layer)) {
//     absl::Status s = program->Step(layer, p, {.tables = d_tables, .q_rot = d_q_rot}, stream);
//   } else {
//     cudaError_t e = LaunchPackedDecode(p, stream);  // a version-1 layer
//   }
#ifndef KVPLAN_KERNELS_FRAGMENT_DECODE_PROGRAM_H_
#define KVPLAN_KERNELS_FRAGMENT_DECODE_PROGRAM_H_

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/fragment_page.h"
#include "core/plan.h"
#include "kvplan/kernels/fragment_params.h"
#include "kvplan/kernels/fragment_splits.h"
#include "kvplan/kernels/jit.h"
#include "kvplan/kernels/params.h"

namespace kvplan::kernels {

struct FragmentProgramOptions {
  JitOptions jit;
  // Warps per attention CTA (FragmentDecodeSourceOptions::warps). Default: 8.
  int warps = 8;
  // Compiler threads; 0: one per hardware thread. Default: 0.
  int threads = 0;
  // Balanced splits (fragment_params.h): each step's attention CTAs share all
  // the batch's tiles of a KV head evenly, across sequences, instead of
  // splitting each sequence num_splits ways. Uniform batches are 3-12% slower
  // (NOTES run 26); on ragged batches, both sized by SplitsForLengths,
  // Llama-3.1-8B K3V3 batch 16 of lengths up to 32K / 128K / 512K takes
  // 0.94x / 0.98x / 1.03x the per-pair step's time, Qwen2.5-3B 1.11x at 32K
  // (NOTES run 27). Default: false.
  bool balanced_splits = false;
  // Compile(KvPlan): leave the layers the fragment path cannot serve (K groups
  // not whole 8-dim units, runs the kernel cannot hold: 8-bit exempt layers)
  // to version-1 pages instead of refusing the plan: version1_layers() names
  // them, for PackedDecodeConfig::version1_layers. Default: false.
  bool version1_fallback = false;
};

// Device buffers a step uses besides PackedDecodeParams' own.
struct FragmentStepBuffers {
  // FragmentTableImage() (fragment_tables.h), uploaded once.
  const uint32_t* tables = nullptr;
  // Scratch for q̂: FragmentQRotBytes(max_batch, num_kv_heads, head_dim) bytes.
  uint16_t* q_rot = nullptr;
};

inline constexpr size_t FragmentQRotBytes(int batch, int num_kv_heads, int head_dim) {
  return sizeof(uint16_t) * static_cast<size_t>(batch) * num_kv_heads * kFragmentQueryRows *
         head_dim;
}

class FragmentDecodeProgram {
 public:
  // InvalidArgument naming the layer and KV head whose pages or kernel the
  // fragment path cannot hold yet (the message says why: a K group not a
  // multiple of 8 dims, built without k_group_align 8 or 16; a head_dim, K
  // budget or V width the kernel does not cover, e.g. an exempt layer) unless
  // options.version1_fallback, or the compiler's message naming the layer.
  static absl::StatusOr<FragmentDecodeProgram> Compile(const KvPlan& plan,
                                                       const FragmentProgramOptions& options);
  // The same from the pages of every (layer, KV head), layer-major
  // ([num_layers * num_kv_heads]); InvalidArgument when the count is not a
  // positive multiple of num_kv_heads.
  static absl::StatusOr<FragmentDecodeProgram> Compile(int num_kv_heads,
                                                       std::vector<FragmentPageLayout> pages,
                                                       const FragmentProgramOptions& options);

  int num_layers() const { return static_cast<int>(layer_source_.size()); }
  // Distinct sources (and cubins) over the layers.
  int num_sources() const { return static_cast<int>(cubins_.size()); }
  // Whether the program decodes `layer` (false: a version1_fallback layer).
  bool serves(int layer) const { return layer_source_[layer] >= 0; }
  // The layers left to version-1 pages, ascending.
  std::vector<int> version1_layers() const;
  // For a served layer: a head's page, the bytes per (page, KV head) of the
  // layer (its largest head's page; 0 for a layer not served) and its cubin.
  const FragmentPageLayout& page_layout(int layer, int kv_head) const {
    return *pages_[static_cast<size_t>(layer) * num_kv_heads_ + kv_head];
  }
  int64_t page_stride(int layer) const { return page_strides_[layer]; }
  const std::string& cubin(int layer) const { return cubins_[layer_source_[layer]]; }

  // Loads every cubin (one JitLibrary each), lets the attention kernels use
  // kFragmentDynamicSmem of shared memory and records how many of their CTAs
  // the current device holds at once. Internal with the CUDA error when one
  // does not load (no device, another architecture).
  absl::Status Load();

  // After Load: PackedDecodeParams::num_splits for `batch` sequences of up to
  // `max_tokens` tokens, which the decode plan caps at its max_splits (the
  // scratch it sized). Per-pair splits: the splits per sequence that fill one
  // wave of the kernel's resident CTAs, at least 8 tiles per warp. Balanced
  // splits: the partial slots a sequence spans when all `batch` are
  // max_tokens long. For a ragged batch, SplitsForLengths fits both.
  absl::StatusOr<int> SplitsFor(int layer, int batch, int max_tokens) const;
  // After Load, for balanced splits: the attention CTAs per KV head (the
  // grid's x) of such a step unless PackedDecodeParams::fragment_ctas_per_kv_head
  // sets it: one wave of the kernel's resident CTAs, at most one per 8 tiles
  // per warp of the batch's tiles.
  absl::StatusOr<int> CtasPerKvHead(int layer, int batch, int max_tokens) const;
  // After Load: the shape of a step whose packed lengths the host knows (a
  // serving scheduler does), in a page table of max_pages_per_seq pages, for
  // a decode plan of max_splits (fragment_splits.h: FittedPairSplits,
  // FittedBalancedSplits). Where SplitsFor leaves CTAs idle (ragged batches,
  // tables wider than the sequences) this sizes the splits to the lengths;
  // on uniform batches in tables of their width it gives SplitsFor's split
  // length. Set PackedDecodeParams::num_splits and fragment_ctas_per_kv_head
  // from it. Any shape is correct for any lengths the table holds, so a graph
  // captured with one stays correct as they change. InvalidArgument naming
  // the sequence whose length is negative or more than the table holds, or
  // for max_splits < 1.
  absl::StatusOr<FragmentSplits> SplitsForLengths(int layer, absl::Span<const int> lengths,
                                                  int max_pages_per_seq, int max_splits) const;

  // After Load: one decode step of `layer` on `stream`, writing p.out
  // ([batch, kv_heads · group_size, head_dim] fp32, original dims). p comes
  // from PackedDecodePlan::DecodeParams of a plan of the same codecs built
  // with fragment_pages (its heads, rotations, scratch and page stride), with
  // p.pages the fragment pages its encode wrote; p.tables and p.v_bits are not
  // read. FailedPrecondition before Load, and for a layer the program does
  // not serve (the message says why; decode it with LaunchPackedDecode);
  // InvalidArgument naming the field for a layer, head count, head_dim,
  // group size, stride, split count or buffer the program cannot run; Internal
  // with the CUDA error of a launch that fails.
  // append (optional): the step's new tokens, as the same plan's
  // EncodeParams(layer, ...) with their K, V and slots in p.pages, encoded
  // before the attention reads them, in the step's first launch where
  // FragmentPrologueFusesAppend (launch.h: one launch fewer than
  // LaunchEncodePack then Step), else in their own; the same pages bit for
  // bit either way. InvalidArgument if they are not this layer's fragment
  // pages or are more than kMaxFusedAppendTokens tokens.
  absl::Status Step(int layer, const PackedDecodeParams& p, const FragmentStepBuffers& buffers,
                    cudaStream_t stream, const EncodePackParams* append = nullptr) const;
  // After Load: a served layer's attention kernel (fragment_decode.cuh).
  cudaKernel_t attention(int layer) const { return attention_[layer_source_[layer]]; }

 private:
  FragmentDecodeProgram() = default;
  // The split sizing's inputs for a served layer (fragment_splits.h), max_splits unset.
  absl::StatusOr<FragmentSplitMachine> SplitMachine(int layer) const;
  // Both Compile()s: `pages` layer-major, a layer of nullopt (with `why` in
  // version1_why) left to version-1 pages.
  static absl::StatusOr<FragmentDecodeProgram> CompileLayers(
      int num_kv_heads, std::vector<std::optional<FragmentPageLayout>> pages,
      std::vector<std::string> version1_why, const FragmentProgramOptions& options);

  int num_kv_heads_ = 0;
  int warps_ = 8;
  bool balanced_splits_ = false;
  int head_dim_ = 0;
  std::vector<std::optional<FragmentPageLayout>> pages_;  // [layer * num_kv_heads + head]
  std::vector<int64_t> page_strides_;                     // [layer]; 0: not served
  std::vector<int> layer_source_;          // [layer] -> index into cubins_; -1: not served
  std::vector<std::string> version1_why_;  // [layer]: why not served ("" if served)
  std::vector<std::string> cubins_;
  std::vector<JitLibrary> libraries_;  // after Load
  std::vector<cudaKernel_t> attention_;
  std::vector<int> resident_ctas_;  // per cubin: attention CTAs resident on the device at once
  bool loaded_ = false;
};

}  // namespace kvplan::kernels

#endif  // KVPLAN_KERNELS_FRAGMENT_DECODE_PROGRAM_H_
