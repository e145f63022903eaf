#include "kvplan/kernels/fragment_decode_program.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "kvplan/kernels/fragment_decode_source.h"

namespace kvplan::kernels {
namespace {

constexpr char kKernelName[] = "FragmentDecode";

}  // namespace

absl::StatusOr<FragmentDecodeProgram> FragmentDecodeProgram::Compile(
    const KvPlan& plan, const FragmentProgramOptions& options) {
  FragmentDecodeProgram program;
  program.num_kv_heads_ = plan.num_kv_heads;
  program.warps_ = options.warps;
  program.head_dim_ = plan.head_dim;
  std::map<std::string, int> source_ids;
  std::vector<std::string> sources;
  for (int l = 0; l < plan.num_layers; ++l) {
    int64_t stride = 0;
    for (int h = 0; h < plan.num_kv_heads; ++h) {
      absl::StatusOr<GroupLayout> k = plan.KLayout(l, h);
      absl::StatusOr<FragmentPageLayout> page =
          k.ok() ? FragmentPageLayout::Create(*k, plan.VBits(l))
                 : absl::StatusOr<FragmentPageLayout>(k.status());
      if (!page.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("layer ", l, ", KV head ", h, ": ", page.status().message()));
      }
      stride = std::max(stride, static_cast<int64_t>(page->page_bytes()));
      program.pages_.push_back(*std::move(page));
    }
    FragmentDecodeSourceOptions source_options;
    source_options.warps = options.warps;
    source_options.kernel_name = kKernelName;
    absl::StatusOr<std::string> source = FragmentDecodeSource(
        absl::MakeConstSpan(program.pages_)
            .subspan(static_cast<size_t>(l) * plan.num_kv_heads, plan.num_kv_heads),
        source_options);
    if (!source.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("layer ", l, ": ", source.status().message()));
    }
    auto [it, inserted] = source_ids.emplace(*source, static_cast<int>(sources.size()));
    if (inserted) sources.push_back(*std::move(source));
    program.layer_source_.push_back(it->second);
    program.page_strides_.push_back(stride);
  }

  // Distinct sources, compiled on `threads` threads; the first failure wins.
  program.cubins_.resize(sources.size());
  std::vector<absl::Status> status(sources.size());
  std::atomic<size_t> next{0};
  const int hardware = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int threads = std::min<int>(options.threads > 0 ? options.threads : hardware,
                                    static_cast<int>(sources.size()));
  auto work = [&] {
    for (size_t i = next++; i < sources.size(); i = next++) {
      absl::StatusOr<std::string> cubin =
          CompileCubin(sources[i], absl::StrCat("fragment_decode_", i, ".cu"), options.jit);
      if (cubin.ok()) {
        program.cubins_[i] = *std::move(cubin);
      } else {
        status[i] = cubin.status();
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
  for (size_t i = 0; i < sources.size(); ++i) {
    if (status[i].ok()) continue;
    const int layer = static_cast<int>(
        std::find(program.layer_source_.begin(), program.layer_source_.end(), static_cast<int>(i)) -
        program.layer_source_.begin());
    return absl::Status(status[i].code(),
                        absl::StrCat("layer ", layer, "'s decode kernel: ", status[i].message()));
  }
  return program;
}

absl::Status FragmentDecodeProgram::Load() {
  std::vector<JitLibrary> libraries;
  std::vector<cudaKernel_t> attention, merge;
  for (const std::string& cubin : cubins_) {
    absl::StatusOr<JitLibrary> library = JitLibrary::Load(cubin);
    if (!library.ok()) return library.status();
    absl::StatusOr<cudaKernel_t> a = library->Kernel(kKernelName);
    absl::StatusOr<cudaKernel_t> m = library->Kernel(absl::StrCat(kKernelName, "Merge").c_str());
    if (!a.ok()) return a.status();
    if (!m.ok()) return m.status();
    if (const cudaError_t e =
            cudaFuncSetAttribute(reinterpret_cast<const void*>(*a),
                                 cudaFuncAttributeMaxDynamicSharedMemorySize, kFragmentDynamicSmem);
        e != cudaSuccess) {
      return absl::InternalError(
          absl::StrCat("cudaFuncSetAttribute(FragmentDecode): ", cudaGetErrorString(e)));
    }
    libraries.push_back(*std::move(library));
    attention.push_back(*a);
    merge.push_back(*m);
  }
  libraries_ = std::move(libraries);
  attention_ = std::move(attention);
  merge_ = std::move(merge);
  return absl::OkStatus();
}

absl::StatusOr<int> FragmentDecodeProgram::SplitsFor(int layer, int batch, int max_tokens) const {
  if (attention_.empty())
    return absl::FailedPreconditionError("FragmentDecodeProgram: Load() first");
  int per_sm = 0, sms = 0, device = 0;
  cudaError_t e = cudaGetDevice(&device);
  if (e == cudaSuccess) e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  if (e == cudaSuccess) {
    e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(
        &per_sm, reinterpret_cast<const void*>(attention(layer)), 32 * warps_,
        kFragmentDynamicSmem);
  }
  if (e != cudaSuccess) {
    return absl::InternalError(
        absl::StrCat("FragmentDecodeProgram::SplitsFor: ", cudaGetErrorString(e)));
  }
  const int wave = std::max(1, sms * per_sm / std::max(1, batch * num_kv_heads_));
  // At least 8 tiles of 16 tokens per warp: shorter splits cost more in
  // prologue and merge than they win in parallelism (NOTES run 18, call 12).
  const int longest = std::max(1, max_tokens / (16 * 8 * warps_));
  return std::min(wave, longest);
}

absl::Status FragmentDecodeProgram::Launch(int layer, const FragmentDecodeParams& params, int batch,
                                           int group_size, float* out, cudaStream_t stream) const {
  if (attention_.empty())
    return absl::FailedPreconditionError("FragmentDecodeProgram: Load() first");
  if (group_size < 1 || group_size > kFragmentQueryRows) {
    return absl::InvalidArgumentError(
        absl::StrCat("group_size must be in [1, ", kFragmentQueryRows, "], got ", group_size));
  }
  FragmentDecodeParams p = params;
  void* attention_args[] = {&p};
  cudaError_t e = cudaLaunchKernel(reinterpret_cast<const void*>(attention(layer)),
                                   dim3(p.num_splits, p.kv_heads, batch), dim3(32 * warps_),
                                   attention_args, kFragmentDynamicSmem, stream);
  if (e == cudaSuccess) {
    void* merge_args[] = {&p, &group_size, &out};
    e = cudaLaunchKernel(reinterpret_cast<const void*>(merge(layer)),
                         dim3(p.kv_heads * group_size, batch), dim3(head_dim_), merge_args, 0,
                         stream);
  }
  if (e != cudaSuccess) {
    return absl::InternalError(
        absl::StrCat("FragmentDecodeProgram::Launch(layer ", layer, "): ", cudaGetErrorString(e)));
  }
  return absl::OkStatus();
}

}  // namespace kvplan::kernels
