#include "kvplan/kernels/fragment_decode_program.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "kvplan/kernels/dispatch.h"
#include "kvplan/kernels/fragment_decode_source.h"
#include "kvplan/kernels/launch.h"
#include "kvplan/kernels/overlapping_launch.h"

namespace kvplan::kernels {
namespace {

constexpr char kKernelName[] = "FragmentDecode";

}  // namespace

absl::StatusOr<FragmentDecodeProgram> FragmentDecodeProgram::Compile(
    const KvPlan& plan, const FragmentProgramOptions& options) {
  std::vector<std::optional<FragmentPageLayout>> pages;
  std::vector<std::string> version1_why(plan.num_layers);
  for (int l = 0; l < plan.num_layers; ++l) {
    std::vector<std::optional<FragmentPageLayout>> layer;
    for (int h = 0; h < plan.num_kv_heads && version1_why[l].empty(); ++h) {
      absl::StatusOr<GroupLayout> k = plan.KLayout(l, h);
      absl::StatusOr<FragmentPageLayout> page =
          k.ok() ? FragmentPageLayout::Create(*k, plan.VBits(l))
                 : absl::StatusOr<FragmentPageLayout>(k.status());
      if (page.ok()) {
        layer.push_back(*std::move(page));
        continue;
      }
      version1_why[l] = absl::StrCat("layer ", l, ", KV head ", h, ": ", page.status().message());
      if (!options.version1_fallback) return absl::InvalidArgumentError(version1_why[l]);
    }
    if (!version1_why[l].empty()) layer.assign(plan.num_kv_heads, std::nullopt);
    pages.insert(pages.end(), layer.begin(), layer.end());
  }
  return CompileLayers(plan.num_kv_heads, std::move(pages), std::move(version1_why), options);
}

absl::StatusOr<FragmentDecodeProgram> FragmentDecodeProgram::Compile(
    int num_kv_heads, std::vector<FragmentPageLayout> pages,
    const FragmentProgramOptions& options) {
  if (num_kv_heads <= 0 || pages.empty() || pages.size() % num_kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "FragmentDecodeProgram: ", pages.size(), " page layouts are not whole layers of ",
        num_kv_heads, " KV heads: give one per (layer, KV head), layer-major"));
  }
  const size_t num_layers = pages.size() / num_kv_heads;
  return CompileLayers(
      num_kv_heads,
      std::vector<std::optional<FragmentPageLayout>>(std::make_move_iterator(pages.begin()),
                                                     std::make_move_iterator(pages.end())),
      std::vector<std::string>(num_layers), options);
}

absl::StatusOr<FragmentDecodeProgram> FragmentDecodeProgram::CompileLayers(
    int num_kv_heads, std::vector<std::optional<FragmentPageLayout>> pages,
    std::vector<std::string> version1_why, const FragmentProgramOptions& options) {
  FragmentDecodeProgram program;
  program.num_kv_heads_ = num_kv_heads;
  program.warps_ = options.warps;
  program.balanced_splits_ = options.balanced_splits;
  program.pages_ = std::move(pages);
  program.version1_why_ = std::move(version1_why);
  const int num_layers = static_cast<int>(program.version1_why_.size());
  std::map<std::string, int> source_ids;
  std::vector<std::string> sources;
  auto leave_to_version1 = [&](size_t first) {
    for (int h = 0; h < num_kv_heads; ++h) program.pages_[first + h].reset();
    program.layer_source_.push_back(-1);
    program.page_strides_.push_back(0);
  };
  for (int l = 0; l < num_layers; ++l) {
    const size_t first = static_cast<size_t>(l) * num_kv_heads;
    if (!program.pages_[first].has_value()) {
      leave_to_version1(first);
      continue;
    }
    std::vector<FragmentPageLayout> layer;
    int64_t stride = 0;
    for (int h = 0; h < num_kv_heads; ++h) {
      const FragmentPageLayout& page = *program.pages_[first + h];
      if (program.head_dim_ == 0) program.head_dim_ = page.head_dim();
      if (page.head_dim() != program.head_dim_) {
        return absl::InvalidArgumentError(
            absl::StrCat("layer ", l, " has head_dim ", page.head_dim(), ", an earlier layer ",
                         program.head_dim_, ": one program serves one head_dim"));
      }
      stride = std::max(stride, static_cast<int64_t>(page.page_bytes()));
      layer.push_back(page);
    }
    FragmentDecodeSourceOptions source_options;
    source_options.warps = options.warps;
    source_options.kernel_name = kKernelName;
    source_options.balanced_splits = options.balanced_splits;
    absl::StatusOr<std::string> source = FragmentDecodeSource(layer, source_options);
    if (!source.ok()) {
      program.version1_why_[l] = absl::StrCat("layer ", l, ": ", source.status().message());
      if (!options.version1_fallback) return absl::InvalidArgumentError(program.version1_why_[l]);
      leave_to_version1(first);
      continue;
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
  // The headers are read once for the cache keys of all sources, not per source.
  const std::string jit_digest =
      options.jit.cache_dir.empty() ? std::string() : JitOptionsDigest(options.jit);
  auto work = [&] {
    for (size_t i = next++; i < sources.size(); i = next++) {
      absl::StatusOr<std::string> cubin = CompileCubin(
          sources[i], absl::StrCat("fragment_decode_", i, ".cu"), options.jit, jit_digest);
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

std::vector<int> FragmentDecodeProgram::version1_layers() const {
  std::vector<int> layers;
  for (int l = 0; l < num_layers(); ++l) {
    if (!serves(l)) layers.push_back(l);
  }
  return layers;
}

absl::Status FragmentDecodeProgram::Load() {
  std::vector<JitLibrary> libraries;
  std::vector<cudaKernel_t> attention;
  std::vector<int> resident;
  int sms = 0, device = 0;
  cudaError_t queried = cudaGetDevice(&device);
  if (queried == cudaSuccess) {
    queried = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  }
  if (queried != cudaSuccess) {
    return absl::InternalError(
        absl::StrCat("FragmentDecodeProgram::Load: no device (", cudaGetErrorString(queried), ")"));
  }
  for (const std::string& cubin : cubins_) {
    absl::StatusOr<JitLibrary> library = JitLibrary::Load(cubin);
    if (!library.ok()) return library.status();
    absl::StatusOr<cudaKernel_t> a = library->Kernel(kKernelName);
    if (!a.ok()) return a.status();
    if (const cudaError_t e =
            cudaFuncSetAttribute(reinterpret_cast<const void*>(*a),
                                 cudaFuncAttributeMaxDynamicSharedMemorySize, kFragmentDynamicSmem);
        e != cudaSuccess) {
      return absl::InternalError(
          absl::StrCat("cudaFuncSetAttribute(FragmentDecode): ", cudaGetErrorString(e)));
    }
    // What SplitsFor fills: the CTAs resident at once, queried here and not per step.
    int per_sm = 0;
    if (const cudaError_t e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(
            &per_sm, reinterpret_cast<const void*>(*a), 32 * warps_, kFragmentDynamicSmem);
        e != cudaSuccess) {
      return absl::InternalError(
          absl::StrCat("occupancy of FragmentDecode: ", cudaGetErrorString(e)));
    }
    libraries.push_back(*std::move(library));
    attention.push_back(*a);
    resident.push_back(sms * per_sm);
  }
  libraries_ = std::move(libraries);
  attention_ = std::move(attention);
  resident_ctas_ = std::move(resident);
  loaded_ = true;
  return absl::OkStatus();
}

absl::StatusOr<FragmentSplitMachine> FragmentDecodeProgram::SplitMachine(int layer) const {
  if (!loaded_) return absl::FailedPreconditionError("FragmentDecodeProgram: Load() first");
  if (layer < 0 || layer >= num_layers() || !serves(layer)) {
    return absl::FailedPreconditionError(
        absl::StrCat("FragmentDecodeProgram: layer ", layer, " is not one the program serves"));
  }
  FragmentSplitMachine machine;
  machine.resident_ctas = resident_ctas_[layer_source_[layer]];
  machine.kv_heads = num_kv_heads_;
  machine.warps = warps_;
  return machine;
}

absl::StatusOr<int> FragmentDecodeProgram::CtasPerKvHead(int layer, int batch,
                                                         int max_tokens) const {
  absl::StatusOr<FragmentSplitMachine> machine = SplitMachine(layer);
  if (!machine.ok()) return machine.status();
  return BalancedCtasPerKvHead(std::max(batch, 1) * FragmentTilesOf(max_tokens), *machine);
}

absl::StatusOr<int> FragmentDecodeProgram::SplitsFor(int layer, int batch, int max_tokens) const {
  absl::StatusOr<FragmentSplitMachine> machine = SplitMachine(layer);
  if (!machine.ok()) return machine.status();
  if (!balanced_splits_) return UniformPairSplits(batch, max_tokens, *machine);
  const int ctas = *CtasPerKvHead(layer, batch, max_tokens);
  const int64_t tiles = FragmentTilesOf(max_tokens);
  const int64_t total = std::max(batch, 1) * tiles;
  if (total > kMaxFragmentRangeTiles) return ctas + 1;  // Step refuses such a step anyway
  // With an even share per CTA and this many slots, the kernel's chunk
  // (FragmentChunkTiles) is the even share: the bound it keeps to is for a
  // sequence at any place in the range.
  return BalancedSlots(total, tiles, ctas);
}

absl::StatusOr<FragmentSplits> FragmentDecodeProgram::SplitsForLengths(
    int layer, absl::Span<const int> lengths, int max_pages_per_seq, int max_splits) const {
  absl::StatusOr<FragmentSplitMachine> machine = SplitMachine(layer);
  if (!machine.ok()) return machine.status();
  if (max_splits < 1 || max_pages_per_seq < 0 ||
      max_pages_per_seq > kMaxFragmentRangeTiles / kFragmentTilesPerPage) {
    return absl::InvalidArgumentError(absl::StrCat(
        "SplitsForLengths: max_splits ", max_splits,
        " (>= 1: the decode plan's, PackedDecodePlan::max_splits) or max_pages_per_seq ",
        max_pages_per_seq, " (0 .. ", kMaxFragmentRangeTiles / kFragmentTilesPerPage,
        ") out of range"));
  }
  const int64_t holds = int64_t{max_pages_per_seq} * kKernelPageTokens;
  for (size_t b = 0; b < lengths.size(); ++b) {
    if (lengths[b] < 0 || lengths[b] > holds) {
      return absl::InvalidArgumentError(
          absl::StrCat("SplitsForLengths: sequence ", b, " has ", lengths[b],
                       " tokens; a page table of ", max_pages_per_seq, " pages holds 0 .. ", holds,
                       ": pass the step's packed lengths (PackedDecodeParams::packed_len) and page "
                       "table width"));
    }
  }
  machine->max_splits = max_splits;
  if (balanced_splits_) return FittedBalancedSplits(lengths, *machine);
  FragmentSplits shape;
  shape.num_splits = FittedPairSplits(lengths, max_pages_per_seq, *machine);
  return shape;
}

absl::Status FragmentDecodeProgram::Step(int layer, const PackedDecodeParams& p,
                                         const FragmentStepBuffers& buffers, cudaStream_t stream,
                                         const EncodePackParams* append) const {
  if (!loaded_) return absl::FailedPreconditionError("FragmentDecodeProgram: Load() first");
  // Built only for an error: a step on the decode path allocates nothing.
  auto where = [layer] { return absl::StrCat("FragmentDecodeProgram::Step(layer ", layer, "): "); };
  if (layer < 0 || layer >= num_layers()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where(), "the program has layers 0 .. ", num_layers() - 1));
  }
  if (!serves(layer)) {
    return absl::FailedPreconditionError(absl::StrCat(where(), "left to version-1 pages (",
                                                      version1_why_[layer],
                                                      "): decode it with LaunchPackedDecode"));
  }
  if (p.num_kv_heads != num_kv_heads_ || p.head_dim != head_dim_) {
    return absl::InvalidArgumentError(absl::StrCat(
        where(), "params have ", p.num_kv_heads, " KV heads of head_dim ", p.head_dim,
        "; the program ", num_kv_heads_, " of ", head_dim_, ": use the same plan's DecodeParams"));
  }
  if (p.fragment == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(where(),
                     "params of a plan without fragment_pages: its pages are version-1 pages, for "
                     "LaunchPackedDecode; build the PackedDecodePlan with fragment_pages = true"));
  }
  if (std::string e = UnsupportedGroupSize(p.group_size); !e.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(where(), e));
  }
  if (p.page_stride < page_stride(layer) || p.page_stride % 16 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        where(), "page_stride ", p.page_stride, " must be a multiple of 16 and at least ",
        page_stride(layer), " (page_stride(layer): the layer's fragment pages)"));
  }
  // The kernel addresses a page of all KV heads with 32-bit byte offsets.
  if (static_cast<int64_t>(p.num_kv_heads) * p.page_stride > int64_t{UINT32_MAX}) {
    return absl::InvalidArgumentError(absl::StrCat(
        where(), "page_stride ", p.page_stride, " x ", p.num_kv_heads,
        " KV heads is over 4 GiB per page: use page_stride(layer), not a padded stride"));
  }
  if (p.num_splits < 1 || p.max_pages_per_seq < 0 || p.max_sink + p.max_recent > kMaxFp16Tokens) {
    return absl::InvalidArgumentError(
        absl::StrCat(where(), "num_splits ", p.num_splits, " (>= 1), max_pages_per_seq ",
                     p.max_pages_per_seq, " (>= 0) or max_sink + max_recent ",
                     p.max_sink + p.max_recent, " (<= ", kMaxFp16Tokens, ") out of range"));
  }
  if (p.fragment_ctas_per_kv_head < 0) {
    return absl::InvalidArgumentError(absl::StrCat(where(), "fragment_ctas_per_kv_head ",
                                                   p.fragment_ctas_per_kv_head,
                                                   " must be >= 0 (0: CtasPerKvHead)"));
  }
  // The kernels count a sequence's tiles (balanced: a KV head's over the
  // batch) in 32 bits.
  constexpr int64_t kMostPages = kMaxFragmentRangeTiles / kFragmentTilesPerPage;
  if (p.max_pages_per_seq > kMostPages) {
    return absl::InvalidArgumentError(absl::StrCat(where(), "max_pages_per_seq ",
                                                   p.max_pages_per_seq, " is over ", kMostPages,
                                                   " pages: no sequence can be that long"));
  }
  if (balanced_splits_ && int64_t{p.batch} * p.max_pages_per_seq > kMostPages) {
    return absl::InvalidArgumentError(absl::StrCat(
        where(), "batch ", p.batch, " x max_pages_per_seq ", p.max_pages_per_seq, " is over ",
        kMostPages, " pages per KV head: split the batch into several steps"));
  }
  if (buffers.tables == nullptr || buffers.q_rot == nullptr || p.out == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(where(), "buffers.tables, buffers.q_rot and p.out must be device buffers"));
  }
  if (append != nullptr) {
    // The same layer's heads into the pages this step reads (the version-1
    // store path would scramble fragment pages).
    if (append->heads != p.heads || append->fragment != p.fragment || append->pages != p.pages ||
        append->page_stride != p.page_stride) {
      return absl::InvalidArgumentError(absl::StrCat(
          where(), "append must be the same plan's EncodeParams(", layer,
          ") with pages = p.pages: its heads, fragment geometry, pages or page_stride differ"));
    }
    if (append->num_tokens < 0 || append->num_tokens > kMaxFusedAppendTokens) {
      return absl::InvalidArgumentError(absl::StrCat(where(), "append.num_tokens ",
                                                     append->num_tokens, " must be in [0, ",
                                                     kMaxFusedAppendTokens, "]"));
    }
  }
  if (p.batch <= 0) {
    // No step, but the new tokens still belong in their slots.
    const cudaError_t e = LaunchFragmentPrologue(p, buffers.q_rot, stream, append);
    if (e != cudaSuccess) return absl::InternalError(absl::StrCat(where(), cudaGetErrorString(e)));
    return absl::OkStatus();
  }
  FragmentDecodeParams f;
  f.q_rot = buffers.q_rot;
  f.pages = p.pages;
  f.page_table = p.page_table;
  f.len = p.packed_len;
  f.tables = buffers.tables;
  f.page_stride = p.page_stride;
  f.max_pages = p.max_pages_per_seq;
  f.kv_heads = p.num_kv_heads;
  f.group_size = p.group_size;
  f.num_splits = p.num_splits;
  f.partial_o = p.partial_o;
  f.partial_ml = p.partial_ml;
  f.batch = p.batch;
  // Per-pair splits: (num_splits, kv_heads, batch); balanced: (CTAs per KV
  // head, kv_heads), all of a head's CTAs sharing the batch's tiles.
  dim3 grid(p.num_splits, p.num_kv_heads, p.batch);
  if (balanced_splits_) {
    absl::StatusOr<int> ctas =
        p.fragment_ctas_per_kv_head > 0
            ? p.fragment_ctas_per_kv_head
            : CtasPerKvHead(layer, p.batch, p.max_pages_per_seq * kKernelPageTokens);
    if (!ctas.ok()) return ctas.status();
    grid = dim3(*ctas, p.num_kv_heads);
  }

  cudaError_t e = LaunchFragmentPrologue(p, buffers.q_rot, stream, append);
  if (e == cudaSuccess) {
    // A programmatic dependent of the prologue: it stages its code tables,
    // then waits for q̂ (fragment_decode.cuh).
    const OverlappingLaunch launch(grid, dim3(32 * warps_), kFragmentDynamicSmem, stream);
    void* args[] = {&f};
    e = cudaLaunchKernelExC(launch.config(), reinterpret_cast<const void*>(attention(layer)), args);
  }
  if (e == cudaSuccess) e = LaunchPackedMerge(p, stream);
  if (e != cudaSuccess) return absl::InternalError(absl::StrCat(where(), cudaGetErrorString(e)));
  return absl::OkStatus();
}

}  // namespace kvplan::kernels
