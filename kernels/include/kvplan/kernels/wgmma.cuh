// Warpgroup MMA (wgmma, sm_90a) with both operands in shared memory, the
// pieces the encode's rotation uses (encode_wgmma_slab.cuh): operand
// descriptors of the no-swizzle K-major layout, one m64n128k16 fp16 step into
// fp32 accumulators, and the fence / commit / wait around a batch of steps.
// Only sm_90a has wgmma: in any other build (the compute_90 PTX fallback)
// these trap, and launchers must not reach them (EncodePackParams::wgmma).
//
// Layout (K-major, no swizzle): the operand is 8x16-byte core matrices (8 rows
// of 8 fp16 along K, rows 16 bytes apart, 128 bytes each); the descriptor's
// leading offset is the distance between the two core matrices of a 16-wide
// k-step, its stride the distance between 8-row groups.
//
// Example (a warpgroup of 128 threads; A: 64 x 16·k, B: 128 x 16·k):
//   float acc[64];
//   WgmmaFence();
//   for (int kk = 0; kk < k; ++kk)
//     WgmmaM64N128K16(acc, WgmmaDescriptor(a + 256 * kk, 128, 2048),
//                     WgmmaDescriptor(b + 256 * kk, 128, 2048), kk > 0);
//   WgmmaCommit();
//   WgmmaWait(acc);
#ifndef KVPLAN_KERNELS_WGMMA_CUH_
#define KVPLAN_KERNELS_WGMMA_CUH_

#include <cstdint>

namespace kvplan::kernels::internal {

// Descriptor of a no-swizzle K-major operand at shared address `address`
// (16-byte aligned), core matrices `leading` bytes apart along K and `stride`
// bytes apart along M or N.
__device__ __forceinline__ uint64_t WgmmaDescriptor(uint32_t address, uint32_t leading,
                                                    uint32_t stride) {
  return static_cast<uint64_t>((address & 0x3ffff) >> 4) |
         static_cast<uint64_t>((leading & 0x3ffff) >> 4) << 16 |
         static_cast<uint64_t>((stride & 0x3ffff) >> 4) << 32;
}

// d (+)= A·B for one m64n128k16 step of the warpgroup: A (64 x 16) and B
// (128 x 16, K-major) from shared memory through their descriptors, fp32
// accumulators in d (row 16w + lane/4 + 8·((i/2)%2), column 8·(i/4) + 2·(lane%4)
// + i%2 for warp w of the group). accumulate = false overwrites d.
__device__ __forceinline__ void WgmmaM64N128K16(float (&d)[64], uint64_t desc_a, uint64_t desc_b,
                                                bool accumulate) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile(
      "{\n .reg .pred p;\n setp.ne.b32 p, %66, 0;\n"
      " wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
      "}, %64, %65, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]),
        "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]),
        "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]),
        "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]),
        "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]),
        "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]),
        "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]),
        "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]),
        "+f"(d[63])
      : "l"(desc_a), "l"(desc_b), "r"(static_cast<int>(accumulate)));
#else
  (void)d, (void)desc_a, (void)desc_b, (void)accumulate;
  __trap();  // wgmma exists on sm_90a only; launchers route other devices elsewhere
#endif
}

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define KVPLAN_WGMMA_ASM(text) asm volatile(text ::: "memory")
#else
#define KVPLAN_WGMMA_ASM(text)
#endif
// Orders the warpgroup's register and shared-memory writes before the next wgmma.
__device__ __forceinline__ void WgmmaFence() { KVPLAN_WGMMA_ASM("wgmma.fence.sync.aligned;\n"); }
// Closes the batch of wgmma steps issued since the last commit.
__device__ __forceinline__ void WgmmaCommit() {
  KVPLAN_WGMMA_ASM("wgmma.commit_group.sync.aligned;\n");
}
// Waits for every committed batch; d is then safe to read. The empty asm
// statements keep the compiler from touching d's registers before the wait.
__device__ __forceinline__ void WgmmaWait(float (&d)[64]) {
  KVPLAN_WGMMA_ASM("wgmma.wait_group.sync.aligned 0;\n");
#pragma unroll
  for (int i = 0; i < 64; ++i) asm volatile("" : "+f"(d[i])::"memory");
}
#undef KVPLAN_WGMMA_ASM

}  // namespace kvplan::kernels::internal

#endif  // KVPLAN_KERNELS_WGMMA_CUH_
