// Small device helpers shared by the kvplan kernels: tensor-core MMA, async
// copies, bit-stream reads and reductions. Header-only, no host code.
//
// Example:
//   float acc[4] = {};
//   MmaF16x16x8(acc, a, b);  // acc += A(16x16, fp16) · B(16x8, fp16), fp32
#ifndef KVPLAN_KERNELS_DEVICE_UTILS_CUH_
#define KVPLAN_KERNELS_DEVICE_UTILS_CUH_

#include <cuda_fp16.h>

#include <cstdint>

namespace kvplan::kernels::internal {

// d += A·B for one m16n8k16 tile (row-major A, column-major B, fp32 C).
// Fragment ownership (g = lane / 4, t = lane % 4): a[0] (row g, k 2t..2t+1),
// a[1] (row g+8, same k), a[2] (row g, k 2t+8..2t+9), a[3] (row g+8, same);
// b[0] (k 2t..2t+1, col g), b[1] (k 2t+8..2t+9, col g); d[0..1] (row g, cols
// 2t..2t+1), d[2..3] (row g+8, same cols). Lower k in the low half.
__device__ __forceinline__ void MmaF16x16x8(float (&d)[4], const uint32_t (&a)[4],
                                            const uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// d += A·B for one m16n8k8 tile, one k-half of MmaF16x16x8: a0 (row g, k
// 2t..2t+1), a1 (row g+8, same k), b (k 2t..2t+1, col g); d as there.
__device__ __forceinline__ void MmaF16x8x8(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t b) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a0), "r"(a1), "r"(b));
}

// Four 8x8 fp16 matrices from shared memory, transposed: lane l gives the row
// address (16 bytes) of row l % 8 of matrix l / 8, and r[q] receives elements
// (rows 2t, 2t+1; column g) of matrix q (g = lane / 4, t = lane % 4): from a
// row-major [k][n] buffer, the B fragment of MmaF16x16x8 (matrices k 0-7, 8-15).
__device__ __forceinline__ void LdMatrixX4Trans(uint32_t (&r)[4], uint32_t shared_address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(shared_address));
}

// The bulk copy engine (cp.async.bulk, sm_90): one thread moves a whole
// contiguous run of bytes global -> shared (16-byte aligned, size a multiple
// of 16), completing on an mbarrier that counts the transferred bytes.
__device__ __forceinline__ uint32_t SharedAddress(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void MbarrierInit(uint64_t* bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(SharedAddress(bar)), "r"(count)
               : "memory");
}
// Makes initialized mbarriers visible to the async proxy (and, after a
// __syncthreads, to the other threads).
__device__ __forceinline__ void FenceMbarrierInit() {
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
}
// Orders this thread's earlier shared-memory accesses before later async-proxy ones.
__device__ __forceinline__ void FenceProxyAsyncShared() {
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
}
// One arrival that also announces `bytes` of transfers the phase waits for.
__device__ __forceinline__ void MbarrierArriveExpectTx(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(SharedAddress(bar)),
               "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void BulkCopyToShared(void* dst, const void* src, uint32_t bytes,
                                                 uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::
          "r"(SharedAddress(dst)),
      "l"(src), "r"(bytes), "r"(SharedAddress(bar))
      : "memory");
}
// Blocks until the phase of parity `parity` of the mbarrier has completed.
__device__ __forceinline__ void MbarrierWait(uint64_t* bar, uint32_t parity) {
  asm volatile(
      "{\n"
      ".reg .pred done;\n"
      "KVPLAN_MBARRIER_WAIT:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra KVPLAN_MBARRIER_WAIT;\n"
      "}\n" ::"r"(SharedAddress(bar)),
      "r"(parity)
      : "memory");
}

// threadIdx.x through an identity shuffle. Values derived from it stay in
// registers (or are recomputed with plain ALU ops): ptxas cannot re-read a
// shuffle, whereas it re-reads SR_TID (a long-latency S2R) wherever registers
// run short, at the head of every loop that needs the lane. Call with every
// warp complete and converged (full shuffle mask).
__device__ __forceinline__ int OpaqueThreadIndex() {
  int v;
  asm volatile("shfl.sync.idx.b32 %0, %1, %2, 0x1f, 0xffffffff;"
               : "=r"(v)
               : "r"(static_cast<int>(threadIdx.x)), "r"(static_cast<int>(threadIdx.x & 31u)));
  return v;
}

// v with its origin hidden from ptxas (an empty asm it cannot see through),
// for two effects at a kernel's register bound:
//   - ptxas must keep v in a register: it can no longer recompute it in every
//     loop iteration from S2R SR_CgaCtaId, constant-bank loads and 64-bit
//     adds (the fragment attention's table address and tile pointers: ~3% of
//     its step, NOTES.md run 25). Each such value holds a register for the
//     whole loop, so only for values the loop needs in every iteration;
//   - ptxas cannot merge a value derived from v with an equal one derived
//     earlier, so the earlier one need not stay live in between (the encode's
//     store-phase thread index, NOTES.md run 23).
// A pointer passed through loses its address space (loads through it are
// generic unless __ldg).
__device__ __forceinline__ uint32_t Opaque(uint32_t v) {
  asm volatile("" : "+r"(v));
  return v;
}
template <typename T>
__device__ __forceinline__ T* Opaque(T* p) {
  asm volatile("" : "+l"(p));
  return p;
}

// Programmatic dependent launch (sm_90). A kernel launched with
// cudaLaunchAttributeProgrammaticStreamSerialization may start while the
// previous kernel of its stream still runs, once every CTA of that kernel has
// called AllowDependentLaunch() or exited; WaitForPrerequisiteGrids() then
// blocks until the previous kernel has completed and its writes are visible.
// So a dependent kernel runs its independent prologue (tables, prefetches)
// under its predecessor's tail. Both are no-ops in kernels launched without
// the attribute.
__device__ __forceinline__ void AllowDependentLaunch() {
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
}
__device__ __forceinline__ void WaitForPrerequisiteGrids() {
  asm volatile("griddepcontrol.wait;" ::: "memory");
}

// The transpose of an 8x8 matrix of 16-bit values held by a warp as an MMA
// C fragment (thread lane holds row lane / 4, columns 2·(lane % 4) and + 1,
// the lower column in the low half): returns the same positions of the
// transpose, in registers (movmatrix, sm_75+), without a shared-memory round
// trip.
__device__ __forceinline__ uint32_t Transpose8x8(uint32_t x) {
  uint32_t y;
  asm volatile("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;" : "=r"(y) : "r"(x));
  return y;
}

// 2^x with subnormal inputs and results flushed to zero: one MUFU.EX2, where
// exp2f (no fast-math) adds three instructions to keep subnormal results
// (measured from the cubin's code size). For softmax weights relative to the
// running maximum a weight below 2^-126 is 0 either way once it meets fp16 P
// or a row sum of at least 1.
__device__ __forceinline__ float Exp2Ftz(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// Named barriers (barrier 0 is __syncthreads'): `threads` threads, a multiple
// of 32, of the CTA wait at barrier ID (1..15), so that independent groups of
// warps in one CTA synchronise without waiting for each other. ID is a
// compile-time constant: with a register operand ptxas reserves all 16.
template <int ID>
__device__ __forceinline__ void NamedBarrier(int threads) {
  static_assert(ID >= 1 && ID < 16, "barrier 0 is __syncthreads'");
  asm volatile("bar.sync %0, %1;" ::"n"(ID), "r"(threads) : "memory");
}
// The same with the barrier id in a register, for code that one copy serves
// for several groups of warps (each its own id). Costs what the comment above
// says: ptxas reserves all 16 barriers for the kernel.
__device__ __forceinline__ void NamedBarrier(int id, int threads) {
  asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(threads) : "memory");
}
// NamedBarrier that also returns whether `pred` holds in every one of the threads.
template <int ID>
__device__ __forceinline__ bool NamedBarrierAnd(int threads, bool pred) {
  static_assert(ID >= 1 && ID < 16, "barrier 0 is __syncthreads'");
  int all;
  asm volatile(
      "{\n .reg .pred p, q;\n setp.ne.s32 p, %1, 0;\n bar.red.and.pred q, %2, %3, p;\n"
      " selp.s32 %0, 1, 0, q;\n}"
      : "=r"(all)
      : "r"(static_cast<int>(pred)), "n"(ID), "r"(threads)
      : "memory");
  return all != 0;
}
__device__ __forceinline__ bool NamedBarrierAnd(int id, int threads, bool pred) {
  int all;
  asm volatile(
      "{\n .reg .pred p, q;\n setp.ne.s32 p, %1, 0;\n bar.red.and.pred q, %2, %3, p;\n"
      " selp.s32 %0, 1, 0, q;\n}"
      : "=r"(all)
      : "r"(static_cast<int>(pred)), "r"(id), "r"(threads)
      : "memory");
  return all != 0;
}

// 16-byte global -> shared copy that does not block the issuing thread.
__device__ __forceinline__ void CpAsync16(void* smem, const void* gmem) {
  const uint32_t dst = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(gmem));
}
__device__ __forceinline__ void CpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void CpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// 32 stream bits starting at bit `bit` of a word-aligned stream (the words at
// bit / 32 and the next one must be readable).
__device__ __forceinline__ uint32_t ReadBits32(const uint32_t* words, uint32_t bit) {
  const uint32_t w = bit >> 5;
  return __funnelshift_r(words[w], words[w + 1], bit & 31u);
}

// 32 stream bits starting at bit `bit` (may be negative down to -31: then the
// word before `words` is read, which must lie in the same allocation).
__device__ __forceinline__ uint32_t ReadBits32Signed(const uint32_t* words, int bit) {
  const uint32_t* w = words + (bit >> 5);
  uint32_t r;
  asm("shf.r.wrap.b32 %0, %1, %2, %3;" : "=r"(r) : "r"(w[0]), "r"(w[1]), "r"(bit));
  return r;
}

__device__ __forceinline__ uint32_t PackHalves(uint16_t lo, uint16_t hi) {
  return static_cast<uint32_t>(lo) | (static_cast<uint32_t>(hi) << 16);
}

// Two floats as fp16x2 (each rounded to nearest even), lo in the low half:
// one paired conversion (cvt.rn.f16x2.f32), not two.
__device__ __forceinline__ uint32_t PackHalf2(float lo, float hi) {
  const __half2 h = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&h);
}

__device__ __forceinline__ float HalfBitsToFloat(uint16_t h) {
  return __half2float(__ushort_as_half(h));
}

// IEEE fp32 -> fp16, round to nearest even, finite overflow clamped to ±65504
// (core/half.h FloatToHalfSaturate).
__device__ __forceinline__ uint16_t FloatToHalfSaturate(float f) {
  const uint16_t h = __half_as_ushort(__float2half_rn(f));
  if ((h & 0x7fffu) == 0x7c00u && !isinf(f)) return static_cast<uint16_t>((h & 0x8000u) | 0x7bffu);
  return h;
}

template <typename T>
__device__ __forceinline__ T WarpSum(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float WarpMax(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

}  // namespace kvplan::kernels::internal

#endif  // KVPLAN_KERNELS_DEVICE_UTILS_CUH_
