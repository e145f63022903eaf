#include "kvplan/kernels/jit.h"

#include <nvrtc.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/digest.h"

// Set by kernels/CMakeLists.txt, '|'-separated: the toolkit's include and
// libcu++ directories (covered in the cache key by the NVRTC version), and
// kvplan's own (kernels/include, kernels/jit_include: covered by content).
#if !defined(KVPLAN_JIT_TOOLKIT_INCLUDE_DIRS) || !defined(KVPLAN_JIT_KVPLAN_INCLUDE_DIRS)
#error "kernels/CMakeLists.txt defines the JIT's default include directories"
#endif

namespace kvplan::kernels {
namespace {

constexpr char kElfMagic[] =
    "\x7f"
    "ELF";

std::vector<std::string> SplitDirs(absl::string_view dirs) {
  std::vector<std::string> out;
  for (absl::string_view dir : absl::StrSplit(dirs, '|')) {
    if (!dir.empty()) out.emplace_back(dir.data(), dir.size());
  }
  return out;
}

// The directories whose headers a kernel source may include and the cache key
// covers by content: the caller's and kvplan's own.
std::vector<std::string> HashedIncludeDirs(const JitOptions& options) {
  std::vector<std::string> dirs = options.include_dirs;
  for (std::string& dir : SplitDirs(KVPLAN_JIT_KVPLAN_INCLUDE_DIRS)) dirs.push_back(std::move(dir));
  return dirs;
}

// Every NVRTC option, in order.
std::vector<std::string> CompilerOptions(const JitOptions& options) {
  std::vector<std::string> args = {"--gpu-architecture=" + options.arch, "--std=c++17"};
  for (const std::string& d : options.defines) args.push_back("-D" + d);
  for (const std::string& dir : HashedIncludeDirs(options)) args.push_back("-I" + dir);
  for (const std::string& dir : SplitDirs(KVPLAN_JIT_TOOLKIT_INCLUDE_DIRS))
    args.push_back("-I" + dir);
  return args;
}

// Every regular file under `dirs`, as path and contents in path order: a
// header that changes (a new build of kvplan) changes the cache key, so a
// cached cubin is never one of older headers.
std::string IncludedFiles(const std::vector<std::string>& dirs) {
  std::vector<std::filesystem::path> files;
  for (const std::string& dir : dirs) {
    std::error_code error;
    for (auto it = std::filesystem::recursive_directory_iterator(dir, error);
         !error && it != std::filesystem::recursive_directory_iterator(); it.increment(error)) {
      if (it->is_regular_file()) files.push_back(it->path());
    }
  }
  std::sort(files.begin(), files.end());
  std::string all;
  for (const std::filesystem::path& file : files) {
    std::ifstream in(file, std::ios::binary);
    absl::StrAppend(
        &all, file.string(), std::string(1, '\0'),
        std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()),
        std::string(1, '\0'));
  }
  return all;
}

std::string NvrtcVersion() {
  int major = 0, minor = 0;
  nvrtcVersion(&major, &minor);
  return absl::StrCat(major, ".", minor);
}

bool LooksLikeCubin(std::string_view bytes) {
  return bytes.size() > 64 && bytes.substr(0, 4) == std::string_view(kElfMagic, 4);
}

std::string ProgramLog(nvrtcProgram program) {
  size_t size = 0;
  if (nvrtcGetProgramLogSize(program, &size) != NVRTC_SUCCESS || size <= 1) return "";
  std::string log(size, '\0');
  nvrtcGetProgramLog(program, log.data());
  log.resize(size - 1);  // the terminating NUL
  return log;
}

absl::StatusOr<std::string> Compile(std::string_view source, std::string_view name,
                                    const JitOptions& options) {
  const std::string text(source), file(name);
  nvrtcProgram program = nullptr;
  if (nvrtcResult r = nvrtcCreateProgram(&program, text.c_str(), file.c_str(), 0, nullptr, nullptr);
      r != NVRTC_SUCCESS) {
    return absl::InternalError(
        absl::StrCat("nvrtcCreateProgram(", file, "): ", nvrtcGetErrorString(r)));
  }
  const std::vector<std::string> args = CompilerOptions(options);
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  const nvrtcResult compiled =
      nvrtcCompileProgram(program, static_cast<int>(argv.size()), argv.data());
  const std::string log = ProgramLog(program);
  std::string cubin;
  size_t size = 0;
  if (compiled == NVRTC_SUCCESS && nvrtcGetCUBINSize(program, &size) == NVRTC_SUCCESS) {
    cubin.resize(size);
    if (nvrtcGetCUBIN(program, cubin.data()) != NVRTC_SUCCESS) cubin.clear();
  }
  nvrtcDestroyProgram(&program);
  if (compiled != NVRTC_SUCCESS) {
    return absl::InvalidArgumentError(
        absl::StrCat("NVRTC could not compile ", file, " for ", options.arch, " (",
                     nvrtcGetErrorString(compiled), "); compiler log:\n", log,
                     "\noptions: ", absl::StrJoin(args, " ")));
  }
  if (cubin.empty()) {
    return absl::InternalError(absl::StrCat(
        "NVRTC compiled ", file, " but produced no cubin for ", options.arch,
        ": --gpu-architecture must name a real architecture (sm_XX), not a virtual one"));
  }
  return cubin;
}

// Writes atomically: a reader sees the old file, no file, or the whole cubin.
absl::Status WriteCacheFile(const std::filesystem::path& path, std::string_view bytes) {
  // Unique per process and call: two writers of one key never share a file.
  static std::atomic<uint64_t> counter{0};
  std::filesystem::path tmp = path;
  tmp += absl::StrFormat(".tmp%d.%d", static_cast<int>(::getpid()), counter++);
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot write the cubin cache file ", tmp.string(),
                       ": make cache_dir writable, or leave it empty to compile without a cache"));
    }
  }
  std::error_code error;
  std::filesystem::rename(tmp, path, error);
  if (error) {
    std::filesystem::remove(tmp, error);
    return absl::FailedPreconditionError(
        absl::StrCat("cannot move the compiled cubin to ", path.string(), " (", error.message(),
                     "): make cache_dir writable, or leave it empty to compile without a cache"));
  }
  return absl::OkStatus();
}

}  // namespace

std::string JitOptionsDigest(const JitOptions& options) {
  // NUL separates fields so that no two (options, headers) share a digest.
  const std::string nul(1, '\0');
  return Sha256Hex(absl::StrCat("nvrtc ", NvrtcVersion(), nul,
                                absl::StrJoin(CompilerOptions(options), nul), nul,
                                IncludedFiles(HashedIncludeDirs(options))));
}

std::string CubinCacheKey(std::string_view source, std::string_view options_digest) {
  // The digest has a fixed length, so the concatenation is unambiguous.
  std::string keyed(options_digest);
  keyed.append(source.data(), source.size());
  return Sha256Hex(keyed);
}

absl::StatusOr<std::string> CompileCubin(std::string_view source, std::string_view name,
                                         const JitOptions& options) {
  if (options.cache_dir.empty()) return Compile(source, name, options);
  return CompileCubin(source, name, options, JitOptionsDigest(options));
}

absl::StatusOr<std::string> CompileCubin(std::string_view source, std::string_view name,
                                         const JitOptions& options,
                                         std::string_view options_digest) {
  if (options.cache_dir.empty()) return Compile(source, name, options);
  std::error_code error;
  std::filesystem::create_directories(options.cache_dir, error);
  if (error) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot create the cubin cache directory ", options.cache_dir, " (", error.message(),
        "): create it writable, or leave cache_dir empty to compile without a cache"));
  }
  const std::filesystem::path path =
      std::filesystem::path(options.cache_dir) / (CubinCacheKey(source, options_digest) + ".cubin");
  if (std::ifstream in(path, std::ios::binary); in) {
    std::string cached((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (LooksLikeCubin(cached)) return cached;
    // Anything else (truncated, overwritten) is compiled again and replaced.
  }
  absl::StatusOr<std::string> cubin = Compile(source, name, options);
  if (!cubin.ok()) return cubin.status();
  if (absl::Status written = WriteCacheFile(path, *cubin); !written.ok()) return written;
  return cubin;
}

absl::StatusOr<JitLibrary> JitLibrary::Load(std::string_view cubin) {
  // The driver would also take PTX text and fail only later, lazily, at the
  // first kernel lookup: refuse anything but a cubin here.
  if (!LooksLikeCubin(cubin)) {
    return absl::InvalidArgumentError(
        absl::StrCat("JitLibrary::Load takes a cubin (an ELF image from CompileCubin); these ",
                     cubin.size(), " bytes are not one"));
  }
  cudaLibrary_t library = nullptr;
  const cudaError_t e =
      cudaLibraryLoadData(&library, cubin.data(), nullptr, nullptr, 0, nullptr, nullptr, 0);
  if (e != cudaSuccess) {
    return absl::InternalError(absl::StrCat(
        "cudaLibraryLoadData of a ", cubin.size(), "-byte cubin failed: ", cudaGetErrorString(e),
        " (a cubin loads only on the architecture it was compiled for, JitOptions::arch)"));
  }
  return JitLibrary(library);
}

JitLibrary::JitLibrary(JitLibrary&& other) noexcept : library_(other.library_) {
  other.library_ = nullptr;
}

JitLibrary& JitLibrary::operator=(JitLibrary&& other) noexcept {
  if (this != &other) {
    if (library_ != nullptr) cudaLibraryUnload(library_);
    library_ = other.library_;
    other.library_ = nullptr;
  }
  return *this;
}

JitLibrary::~JitLibrary() {
  if (library_ != nullptr) cudaLibraryUnload(library_);
}

absl::StatusOr<cudaKernel_t> JitLibrary::Kernel(const char* name) const {
  cudaKernel_t kernel = nullptr;
  const cudaError_t e = cudaLibraryGetKernel(&kernel, library_, name);
  if (e != cudaSuccess) {
    return absl::NotFoundError(absl::StrCat("the compiled library has no kernel named ", name, " (",
                                            cudaGetErrorString(e),
                                            "): declare it extern \"C\" __global__"));
  }
  return kernel;
}

}  // namespace kvplan::kernels
