#include "kvplan/kernels/decode_attention.cuh"
#include "kvplan/kernels/dispatch.h"
#include "kvplan/kernels/launch.h"
#include "kvplan/kernels/overlapping_launch.h"

namespace kvplan::kernels {
namespace {

template <int HEAD_DIM, int GROUP_SIZE, int HEADS>
cudaError_t LaunchMergeHeads(const PackedDecodeParams& p, cudaStream_t stream) {
  // It may start under the attention's tail: it loads V's rotation, then waits.
  const OverlappingLaunch launch(
      dim3(p.num_kv_heads * GROUP_SIZE / HEADS, p.batch), dim3(internal::MergeThreads<HEAD_DIM>()),
      static_cast<size_t>(MergeSmemFloats(HEAD_DIM, p.num_splits, HEADS)) * sizeof(float), stream);
  return cudaLaunchKernelEx(launch.config(), MergeKernel<HEAD_DIM, GROUP_SIZE, HEADS>, p);
}

// `heads`: MergeHeadsPerCta(p), checked by ValidMerge.
template <int HEAD_DIM, int GROUP_SIZE>
cudaError_t LaunchMergeTyped(const PackedDecodeParams& p, int heads, cudaStream_t stream) {
  if (heads == 1) return LaunchMergeHeads<HEAD_DIM, GROUP_SIZE, 1>(p, stream);
  if constexpr (GROUP_SIZE > 1) {
    if (heads == GROUP_SIZE) return LaunchMergeHeads<HEAD_DIM, GROUP_SIZE, GROUP_SIZE>(p, stream);
  }
  return cudaErrorInvalidValue;
}

template <int HEAD_DIM, int GROUP_SIZE, int V_BITS>
cudaError_t LaunchPackedDecodeTyped(const PackedDecodeParams& p, int merge_heads,
                                    cudaStream_t stream) {
  auto* kernel = PackedAttentionKernel<HEAD_DIM, GROUP_SIZE, V_BITS>;
  const int smem = internal::AttentionSmemBytes<HEAD_DIM>(static_cast<int>(p.page_stride));
  // Raising the limit is a host-side attribute write, cheap and capture-safe.
  if (cudaError_t e =
          cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
      e != cudaSuccess) {
    return e;
  }
  // An ordinary launch: the pages and q it reads are earlier kernels' output.
  kernel<<<dim3(p.num_splits + 1, p.num_kv_heads, p.batch), internal::kAttentionThreads, smem,
           stream>>>(p);
  if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
  return LaunchMergeTyped<HEAD_DIM, GROUP_SIZE>(p, merge_heads, stream);
}

bool ValidStep(const PackedDecodeParams& p) {
  return p.num_splits >= 1 && p.num_kv_heads > 0 && p.page_stride > 0 && p.page_stride % 16 == 0 &&
         p.max_sink + p.max_recent <= kMaxFp16Tokens && p.num_sms >= 1;
}

// Within the 48 KB of dynamic shared memory a launch gets without an opt-in.
bool MergeSmemFits(const PackedDecodeParams& p, int heads) {
  constexpr int64_t kDefaultSmemBytes = 48 * 1024;
  return int64_t{MergeSmemFloats(p.head_dim, p.num_splits, heads)} * int64_t{sizeof(float)} <=
         kDefaultSmemBytes;
}

bool ValidMerge(const PackedDecodeParams& p, int heads) {
  return (heads == 1 || heads == p.group_size) && MergeSmemFits(p, heads);
}

}  // namespace

int MergeHeadsPerCta(const PackedDecodeParams& p) {
  if (p.merge_heads_per_cta != 0) return p.merge_heads_per_cta;
  if (p.group_size <= 1 || !MergeSmemFits(p, p.group_size)) return 1;
  // One head per CTA is faster while its grid fits one wave: the merge's time
  // is then latency, which more CTAs share; once it takes two, whole groups,
  // which load V's rotation GROUP_SIZE times less, are (NOTES.md run 40).
  const int64_t one_head_ctas = int64_t{p.batch} * p.num_kv_heads * p.group_size;
  return one_head_ctas > int64_t{internal::kOneHeadMergeCtasPerSm} * p.num_sms ? p.group_size : 1;
}

cudaError_t LaunchPackedDecode(const PackedDecodeParams& p, cudaStream_t stream) {
  if (p.batch <= 0) return cudaSuccess;
  // Fragment-native pages are FragmentDecodeProgram::Step's.
  const int merge_heads = MergeHeadsPerCta(p);
  if (!ValidStep(p) || !ValidMerge(p, merge_heads) || p.fragment != nullptr) {
    return cudaErrorInvalidValue;
  }
  return DispatchDecodeConfig(p.head_dim, p.group_size, p.v_bits, [&](auto hd, auto gs, auto vb) {
    return LaunchPackedDecodeTyped<decltype(hd)::value, decltype(gs)::value, decltype(vb)::value>(
        p, merge_heads, stream);
  });
}

cudaError_t LaunchPackedMerge(const PackedDecodeParams& p, cudaStream_t stream) {
  if (p.batch <= 0) return cudaSuccess;
  const int heads = MergeHeadsPerCta(p);
  if (!ValidStep(p) || !ValidMerge(p, heads)) return cudaErrorInvalidValue;
  return DispatchHeadDim(p.head_dim, [&](auto hd) {
    return DispatchGroupSize(p.group_size, [&](auto gs) {
      return LaunchMergeTyped<decltype(hd)::value, decltype(gs)::value>(p, heads, stream);
    });
  });
}

}  // namespace kvplan::kernels
