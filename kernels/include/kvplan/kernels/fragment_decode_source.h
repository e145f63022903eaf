// Generates the CUDA source of a decode kernel for one layer's heads over
// fragment-native pages: each distinct K layout of the layer becomes one
// compile-time specialisation of kvplan/kernels/fragment_decode.cuh, and each
// CTA runs its own head's. Compile the result with CompileCubin (jit.h).
//
// Example:
//   absl::StatusOr<std::string> source = FragmentDecodeSource(layer_heads, {});
//   absl::StatusOr<std::string> cubin = CompileCubin(*source, "layer0.cu", JitOptions{});
//   // kernel: options.kernel_name (the attention; the step's other kernels are
//   // compiled ahead of time: launch.h)
#ifndef KVPLAN_KERNELS_FRAGMENT_DECODE_SOURCE_H_
#define KVPLAN_KERNELS_FRAGMENT_DECODE_SOURCE_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/fragment_page.h"

namespace kvplan::kernels {

struct FragmentDecodeSourceOptions {
  // Warps per CTA (4 or 8). 8 keeps to two CTAs, so at most two heads' code
  // paths, per SM (NOTES run 19: four thrashed the instruction cache).
  int warps = 8;
  // extern "C" name of the attention kernel.
  std::string kernel_name = "FragmentDecode";
  // Balanced splits (fragment_params.h): the kernel takes the grid (CTAs per
  // KV head, kv_heads) and shares the batch's tiles evenly among the CTAs of
  // a KV head; otherwise (num_splits, kv_heads, batch), splits per sequence.
  bool balanced_splits = false;
};

// `heads`: the layer's pages, indexed by KV head (blockIdx.y). InvalidArgument,
// naming the head and what fragment_decode.cuh does not cover yet, for an
// empty list, warps outside {4, 8}, heads that differ in head_dim or V width,
// or a head other than head_dim 64 or 128 with K and V runs of at most 8 words.
absl::StatusOr<std::string> FragmentDecodeSource(absl::Span<const FragmentPageLayout> heads,
                                                 const FragmentDecodeSourceOptions& options);

}  // namespace kvplan::kernels

#endif  // KVPLAN_KERNELS_FRAGMENT_DECODE_SOURCE_H_
