// The wgmma encode + pack kernel (sm_90a, head_dim 128): K's half
// (encode_k_wgmma.cuh) and V's (encode_v_wgmma.cuh) of a long launch in one
// grid, so that V's CTAs start on the SMs that K's leave, without a second
// launch's gap and tail (two launches were 1.03-1.05x slower: NOTES.md run
// 32). LaunchEncodePack routes here (TakesWgmmaEncode: launch.h); K's half
// has a path for 16-aligned groups and one for any layout.
#ifndef KVPLAN_KERNELS_ENCODE_WGMMA_CUH_
#define KVPLAN_KERNELS_ENCODE_WGMMA_CUH_

#include <cstdint>

#include "kvplan/kernels/encode_k_wgmma.cuh"
#include "kvplan/kernels/encode_pack.cuh"
#include "kvplan/kernels/encode_v_wgmma.cuh"
#include "kvplan/kernels/encode_wgmma_slab.cuh"
#include "kvplan/kernels/params.h"

namespace kvplan::kernels {

namespace internal {

// Code tables of every width into the CTA's shared memory: c² exactly in
// fp64 (entry q is width b's k-th code, q = 2^b - 2 + k) and the code grids
// (code_grid.h). A thread loads all of its entries before storing any, so
// that their loads wait once (a loop over the widths, loading and storing a
// width at a time, waited eight times: NOTES.md run 33).
__device__ __forceinline__ void StageWgmmaCodeTables(const EncodePackParams& p, char* smem,
                                                     int tid) {
  using S = WgmmaSmem;
  static_assert(kCodeGridScale == kSumScale, "the grids' boundaries are scaled as z");
  double* squares = reinterpret_cast<double*>(smem + S::kSquares);
  uint4* grid = reinterpret_cast<uint4*>(smem + S::kGrid);
  const uint4* grid_src = reinterpret_cast<const uint4*>(&p.tables->grid);
  constexpr int kGridUnits = sizeof(CodeGrid) / sizeof(uint4);
  static_assert(sizeof(CodeGrid) % sizeof(uint4) == 0, "copied in 16-byte units");
  constexpr int kEntriesPerThread = (kCentroidEntries + kWgmmaThreads - 1) / kWgmmaThreads;
  constexpr int kUnitsPerThread = (kGridUnits + kWgmmaThreads - 1) / kWgmmaThreads;
  float centroid[kEntriesPerThread];
  uint4 unit[kUnitsPerThread];
#pragma unroll
  for (int u = 0; u < kEntriesPerThread; ++u) {
    const int q = tid + u * kWgmmaThreads, bits = 31 - __clz(q + 2), k = q + 2 - (1 << bits);
    if (q < kCentroidEntries) centroid[u] = p.tables->centroids[bits - 1][k];
  }
#pragma unroll
  for (int u = 0; u < kUnitsPerThread; ++u) {
    const int i = tid + u * kWgmmaThreads;
    if (i < kGridUnits) unit[u] = grid_src[i];
  }
#pragma unroll
  for (int u = 0; u < kEntriesPerThread; ++u) {
    const int q = tid + u * kWgmmaThreads;
    if (q < kCentroidEntries) squares[q] = Square(centroid[u]);
  }
#pragma unroll
  for (int u = 0; u < kUnitsPerThread; ++u) {
    const int i = tid + u * kWgmmaThreads;
    if (i < kGridUnits) grid[i] = unit[u];
  }
}

}  // namespace internal

// Grid (CTAs per head, num_kv_heads, 2): z is 0 for K, 1 for V; CTA x of a
// head takes slabs [x·per_cta, (x + 1)·per_cta) of its kind. K_WHOLE: K's
// groups all span whole 16-position blocks (p.k_groups_whole:
// encode_k_wgmma.cuh's block path, else its pair path).
// internal::kWgmmaThreads threads, WgmmaSmem::kBytes of dynamic shared
// memory; sm_90a only (wgmma.cuh).
template <int V_BITS, bool K_WHOLE>
__global__ void __launch_bounds__(internal::kWgmmaThreads, 1)
    EncodeWgmmaKernel(const __grid_constant__ EncodePackParams p, int slabs_per_cta) {
  using namespace internal;
  using S = WgmmaSmem;
  // Its own name: the slab kernel's extern array, of another type, shares
  // encode_pack.cu's translation unit.
  extern __shared__ __align__(128) char wgmma_smem[];
  char* smem = wgmma_smem;
  const int head = blockIdx.y, tid = threadIdx.x;
  const bool is_v = blockIdx.z == 1;
  const int slabs = (p.num_tokens + kSlabTokens - 1) / kSlabTokens;
  const int first = blockIdx.x * slabs_per_cta, end = min(slabs, first + slabs_per_cta);
  const SlabWarpgroup w(smem, tid >> 7);
  // Code tables, the head's descriptor and fragment geometry; the halves
  // synchronise before reading them.
  StageWgmmaCodeTables(p, smem, tid);
  CopyToShared(reinterpret_cast<PackedHeadDesc*>(smem + S::kDesc), p.heads + head, tid,
               kWgmmaThreads);
  if (p.fragment != nullptr) {
    CopyToShared(reinterpret_cast<FragmentHeadGeometry*>(smem + S::kFragment), p.fragment + head,
                 tid, kWgmmaThreads);
  }
  __syncthreads();
  const int group_first = first + (tid >> 7);
  if (!is_v) return EncodeKSlabs<K_WHOLE>(p, head, group_first, end, smem, w, tid);
  EncodeVSlabs<V_BITS>(p, head, group_first, end, smem, w, tid);
}

}  // namespace kvplan::kernels

#endif  // KVPLAN_KERNELS_ENCODE_WGMMA_CUH_
