// Run-time compilation of CUDA kernels: NVRTC turns CUDA C++ source into a
// cubin for one GPU architecture, a content-addressed directory keeps the
// cubins across processes, and JitLibrary loads one (cudaLibraryLoadData) and
// hands out its kernels for cudaLaunchKernel / cudaLaunchKernelEx.
//
// Why: the fastest decode for a Block-GTQ plan has every code's bit position
// compiled in, and a plan's layouts are known only when the plan is loaded
// (bench/kernels/NOTES.md run 19), so the kernel is generated and compiled then.
//
// Compilation needs libnvrtc and the CUDA headers, not a GPU; loading needs a
// GPU. Device source may include <cuda_fp16.h>, the kvplan kernel headers and
// <cstdint>, <utility>, <type_traits> (mapped onto libcu++ for NVRTC by the
// headers in kernels/jit_include).
//
// Example:
//   JitOptions options;
//   options.cache_dir = "/var/cache/kvplan/cubins";
//   absl::StatusOr<std::string> cubin = CompileCubin(source, "decode_l0.cu", options);
//   absl::StatusOr<JitLibrary> library = JitLibrary::Load(*cubin);
//   absl::StatusOr<cudaKernel_t> kernel = library->Kernel("PackedDecode");
//   cudaLaunchKernel(reinterpret_cast<const void*>(*kernel), grid, block, args, smem, stream);
#ifndef KVPLAN_KERNELS_JIT_H_
#define KVPLAN_KERNELS_JIT_H_

#include <cuda_runtime_api.h>

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace kvplan::kernels {

struct JitOptions {
  // NVRTC's --gpu-architecture: the cubin runs on this architecture only.
  // Default: sm_90a (H100/H200, what the shipped kernels are built for).
  std::string arch = "sm_90a";
  // Extra -I directories, searched before the defaults (the CUDA toolkit's
  // include and libcu++ directories, the kvplan kernel headers and
  // kernels/jit_include, all fixed at build time).
  std::vector<std::string> include_dirs;
  // -D definitions, e.g. "KVPLAN_PROBE_LAYOUT=3".
  std::vector<std::string> defines;
  // Directory of cached cubins, named by the SHA-256 of everything that
  // determines them: NVRTC version, options, source, and the contents of every
  // file under include_dirs and kvplan's header directories (a new build's
  // headers never reuse an old build's cubins). Created if missing. Empty: no
  // cache, every call compiles.
  std::string cache_dir;
};

// The cubin of `source` (named `name` in compiler messages), from the cache
// when it holds one. InvalidArgument with the compiler's log when the source
// does not compile; FailedPrecondition when cache_dir cannot be created or
// written (the fix: a writable directory, or an empty cache_dir). A cached
// file that is not a cubin (truncated, overwritten) is compiled again and
// replaced.
absl::StatusOr<std::string> CompileCubin(std::string_view source, std::string_view name,
                                         const JitOptions& options);
// The same with JitOptionsDigest(options) computed by the caller: one digest
// for a batch of sources compiled with the same options (it reads headers).
absl::StatusOr<std::string> CompileCubin(std::string_view source, std::string_view name,
                                         const JitOptions& options,
                                         std::string_view options_digest);

// What, besides a source, determines its cubin: the NVRTC version, the
// options, and the contents of every header under include_dirs and kvplan's
// header directories (which it reads). Lowercase hex SHA-256.
std::string JitOptionsDigest(const JitOptions& options);

// The cache key of `source` compiled with options of that digest: lowercase
// hex SHA-256.
std::string CubinCacheKey(std::string_view source, std::string_view options_digest);

// A loaded cubin. Move-only; unloads on destruction, after which its kernels
// must not be launched.
class JitLibrary {
 public:
  // InvalidArgument when `cubin` is not an ELF image; Internal (from
  // cudaLibraryLoadData) with the CUDA error when it does not load, e.g. no
  // device or the wrong architecture.
  static absl::StatusOr<JitLibrary> Load(std::string_view cubin);

  JitLibrary(JitLibrary&& other) noexcept;
  JitLibrary& operator=(JitLibrary&& other) noexcept;
  JitLibrary(const JitLibrary&) = delete;
  JitLibrary& operator=(const JitLibrary&) = delete;
  ~JitLibrary();

  // The kernel named `name` (an extern "C" __global__ function, or a lowered
  // C++ name). NotFound naming the kernel when the library has none such.
  absl::StatusOr<cudaKernel_t> Kernel(const char* name) const;

 private:
  explicit JitLibrary(cudaLibrary_t library) : library_(library) {}
  cudaLibrary_t library_ = nullptr;
};

}  // namespace kvplan::kernels

#endif  // KVPLAN_KERNELS_JIT_H_
