// Parameters of the fragment-page attention kernels (fragment_decode.cuh),
// plain data shared by the generated device code and the host step
// (FragmentDecodeProgram::Step, which fills them from a PackedDecodeParams).
// Every pointer is a device pointer.
//
// Example (what Step does, after the prologue has written q̂):
//   FragmentDecodeParams p;
//   p.q_rot = q_hat; p.pages = pool; p.page_table = table; p.len = lens; ...
//   void* args[] = {&p};
//   cudaLaunchKernelExC(OverlappingLaunch(dim3(p.num_splits, p.kv_heads, batch), ...).config(),
//                       program.attention(layer), args);
#ifndef KVPLAN_KERNELS_FRAGMENT_PARAMS_H_
#define KVPLAN_KERNELS_FRAGMENT_PARAMS_H_

#include <cstdint>

namespace kvplan::kernels {

// Query rows the kernel reserves per KV head (the MMA's N): group sizes 1..8.
inline constexpr int kFragmentQueryRows = 8;
// Dynamic shared memory of an attention CTA: the code tables
// (fragment_tables.h, 20416 bytes) and the slack that aligns them to 8 KB.
inline constexpr int kFragmentDynamicSmem = 20416 + 8192;

struct FragmentDecodeParams {
  // [batch, kv_heads, kFragmentQueryRows, head_dim] fp16: q̂ per K group,
  // R_g·q_g · scale·log2(e)/√d_g in the K layout's permuted order; rows past
  // the group size are ignored.
  const uint16_t* q_rot = nullptr;
  const uint8_t* pages = nullptr;    // [num_pages, kv_heads, page_stride]
  const int* page_table = nullptr;   // [batch, max_pages]: page ids in token order
  const int* len = nullptr;          // [batch]: tokens in pages
  const uint32_t* tables = nullptr;  // FragmentTableImage(), uploaded once
  int64_t page_stride = 0;           // bytes per (page, kv_head): the layer's largest page
  int max_pages = 0;
  int kv_heads = 0;
  int group_size = 1;       // query rows written per KV head, 1..kFragmentQueryRows
  int num_splits = 1;       // key-axis splits per (sequence, kv_head)
  int tiles_per_split = 1;  // 16-token tiles per split: ceil(max_pages · 4 / num_splits)
  // LaunchPackedDecode's scratch layout: split s writes slot s; slot num_splits
  // is the fp16 sink + recent part's (LaunchFragmentPrologue).
  float* partial_o = nullptr;   // [batch, kv_heads, num_splits + 1, group_size, head_dim]
  float* partial_ml = nullptr;  // [batch, kv_heads, num_splits + 1, group_size, 2]: (m, l)
};

}  // namespace kvplan::kernels

#endif  // KVPLAN_KERNELS_FRAGMENT_PARAMS_H_
