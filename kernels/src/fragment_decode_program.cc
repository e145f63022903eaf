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
    libraries.push_back(*std::move(library));
    attention.push_back(*a);
    merge.push_back(*m);
  }
  libraries_ = std::move(libraries);
  attention_ = std::move(attention);
  merge_ = std::move(merge);
  return absl::OkStatus();
}

}  // namespace kvplan::kernels
