// What compiling a plan's fragment decode kernels at plan load costs
// (kvplan/kernels/fragment_decode_program.h): a Llama-3.1-8B-shaped plan (32
// layers x 8 KV heads, head_dim 128, K3V3, k_group_align 16) from synthetic
// block energies that vary by layer and head, compiled cold without a cache,
// cold into a cache, and again from the cache. Needs NVRTC, not a GPU.
// --keep-cubins DIR: the cache is DIR (new or empty) and stays (one cubin
// per distinct source): bench/kernels/cubin_text.py then prints each kernel's code size, an
// offline measure of what a change costs per tile (the attention loop is
// unrolled, so its instructions are most of the kernel's).
//
// Usage: build/bin/fragment_program_compile [--threads N] [--layers N] [--align 8|16]
//                                           [--keep-cubins DIR]
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "bench/kernels/flag_parser.h"
#include "core/block_stats.h"
#include "core/energy_table.h"
#include "core/plan.h"
#include "core/random.h"
#include "core/rope.h"
#include "kvplan/kernels/fragment_decode_program.h"

namespace {

using kvplan::kernels::FragmentDecodeProgram;
using kvplan::kernels::FragmentProgramOptions;

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

// Lognormal block energies decaying with the block index, per layer and head.
absl::StatusOr<kvplan::KvPlan> LlamaShapedPlan(int layers, int align) {
  constexpr int kHeads = 8, kBlocks = 64;
  absl::StatusOr<kvplan::BlockStats> stats = kvplan::BlockStats::Create(
      {.num_layers = layers, .num_kv_heads = kHeads, .num_blocks = kBlocks});
  if (!stats.ok()) return stats.status();
  kvplan::DeterministicRng rng(2026);
  for (int l = 0; l < layers; ++l) {
    for (int h = 0; h < kHeads; ++h) {
      std::vector<double> q(kBlocks), k(kBlocks);
      for (int i = 0; i < kBlocks; ++i) {
        q[i] = std::exp(1.5 * rng.NextGaussian()) * std::pow(0.95, i);
        k[i] = std::exp(1.5 * rng.NextGaussian()) * std::pow(0.95, i);
      }
      if (absl::Status s = stats->Add(l, h, q, 1, k, 1); !s.ok()) return s;
    }
  }
  absl::StatusOr<kvplan::EnergyTable> table = kvplan::EnergyTableFromStats(*stats);
  if (!table.ok()) return table.status();
  kvplan::RopeSpec rope;
  rope.head_dim = rope.rotary_dim = 2 * kBlocks;
  return kvplan::BuildPlan(*table, rope, {.k_bits = 3, .v_bits = 3, .k_group_align = align});
}

struct Options {
  int threads = 0, layers = 32, align = 16;
  std::string keep_cubins;
};
constexpr kvplan::bench::FlagSpec<Options> kFlags[] = {{"--threads", &Options::threads},
                                                       {"--layers", &Options::layers},
                                                       {"--align", &Options::align},
                                                       {"--keep-cubins", &Options::keep_cubins}};

absl::Status CheckOptions(const Options& o) {
  if (o.threads < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--threads takes a count >= 0 (0: the machine's), not ", o.threads));
  }
  if (o.layers < 1) {
    return absl::InvalidArgumentError(absl::StrCat("--layers takes a count >= 1, not ", o.layers));
  }
  if (o.align != 8 && o.align != 16) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--align takes 8 or 16 (fragment pages hold K groups of whole 8-dim halves), not ",
        o.align));
  }
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  absl::Status parsed = kvplan::bench::ParseFlags<Options>(
      argc, argv, kFlags, "see the usage at the top of bench/kernels/fragment_program_compile.cc",
      o);
  if (parsed.ok()) parsed = CheckOptions(o);
  if (!parsed.ok()) {
    std::fprintf(stderr, "%s\n", std::string(parsed.message()).c_str());
    return 1;
  }
  const int threads = o.threads, layers = o.layers, align = o.align;
  const std::string& keep_cubins = o.keep_cubins;
  absl::StatusOr<kvplan::KvPlan> plan = LlamaShapedPlan(layers, align);
  if (!plan.ok()) {
    std::fprintf(stderr, "plan: %s\n", std::string(plan.status().message()).c_str());
    return 1;
  }
  std::filesystem::path cache =
      std::filesystem::temp_directory_path() / "kvplan_fragment_program_compile";
  if (keep_cubins.empty()) {
    std::filesystem::remove_all(cache);
  } else {
    cache = keep_cubins;
    std::error_code error;
    if (std::filesystem::exists(cache, error) && !std::filesystem::is_empty(cache, error)) {
      std::fprintf(stderr, "--keep-cubins %s: not empty; name a new or empty directory\n",
                   keep_cubins.c_str());
      return 1;
    }
  }
  FragmentProgramOptions options;
  options.threads = threads;
  auto run = [&](const char* what) -> bool {
    const auto start = std::chrono::steady_clock::now();
    absl::StatusOr<FragmentDecodeProgram> program = FragmentDecodeProgram::Compile(*plan, options);
    if (!program.ok()) {
      std::fprintf(stderr, "%s: %s\n", what, std::string(program.status().message()).c_str());
      return false;
    }
    std::printf("%-22s %3d layers, %3d distinct sources: %8.3f s\n", what, program->num_layers(),
                program->num_sources(), Seconds(start));
    return true;
  };
  std::printf("plan: %d layers x %d KV heads, head_dim %d, K3V3, k_group_align %d; %d threads\n",
              plan->num_layers, plan->num_kv_heads, plan->head_dim, align, threads);
  if (!run("no cache")) return 1;
  options.jit.cache_dir = cache.string();
  if (!run("cold cache")) return 1;
  if (!run("warm cache")) return 1;
  if (keep_cubins.empty()) {
    std::filesystem::remove_all(cache);
  } else {
    std::printf("cubins kept in %s\n", cache.c_str());
  }
  return 0;
}
