// What it would cost to allocate K bits so that every width group fills whole
// MMA slices. The decode kernel pads each K group to 16-dim slices (at K3 a
// head_dim-128 head has ~11 slices for 128 dims: ~27% of its K work decodes
// padding). An allocator whose groups are multiples of `align` dims removes
// that padding; this program measures its price in the allocation objective
// D(b) = Σ_i s_i·4^(−b_i) (allocator.h) against the unconstrained greedy, on
// real calibration energies and on synthetic heavy-tailed hd-128 heads.
//
//   build/bin/slice_alignment [--stats ../shared/reference/doc-llama-h64.blockgtq-reference.json]
//
// The aligned allocation is GroupAlignedAllocate's (exact).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "nlohmann/json.hpp"

namespace kvplan {
namespace {

// Slices of 16 dims the kernel decodes for one head: Σ_w ceil(2·count_w / 16).
int Slices(const std::vector<int>& bits) {
  int count[kMaxSupportedBits + 1] = {};
  for (int b : bits) ++count[b];
  int slices = 0;
  for (int w = 1; w <= kMaxSupportedBits; ++w) slices += (2 * count[w] + 15) / 16;
  return slices;
}

struct Summary {
  std::vector<double> ratio;  // D(aligned) / D(greedy), per head
  double slices_greedy = 0, slices_aligned = 0;
};

void Report(const char* what, const std::vector<std::vector<double>>& heads,
            const std::vector<double>& budgets, int align) {
  for (double avg : budgets) {
    Summary s;
    for (const auto& scores : heads) {
      const std::vector<int> greedy = *GreedyAllocate(scores, {.avg_bits = avg});
      const std::vector<int> aligned = *GroupAlignedAllocate(scores, {.avg_bits = avg}, align / 2);
      s.ratio.push_back(AllocationDistortion(scores, aligned) /
                        AllocationDistortion(scores, greedy));
      s.slices_greedy += Slices(greedy);
      s.slices_aligned += Slices(aligned);
    }
    std::sort(s.ratio.begin(), s.ratio.end());
    const double mean = std::accumulate(s.ratio.begin(), s.ratio.end(), 0.0) / s.ratio.size();
    std::printf(
        "%-28s  K%.0f  align %3d  D ratio mean %.3f  median %.3f  max %.3f  "
        "slices/head %.2f -> %.2f\n",
        what, avg, align, mean, s.ratio[s.ratio.size() / 2], s.ratio.back(),
        s.slices_greedy / heads.size(), s.slices_aligned / heads.size());
  }
}

int Main(int argc, char** argv) {
  std::string stats = "../shared/reference/doc-llama-h64.blockgtq-reference.json";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--stats") == 0) stats = argv[i + 1];
  }
  std::ifstream in(stats);
  if (!in) {
    std::fprintf(stderr, "cannot read %s; pass --stats FILE (a *.blockgtq-reference.json)\n",
                 stats.c_str());
    return 2;
  }
  const nlohmann::json j = nlohmann::json::parse(in);
  std::vector<std::vector<double>> real;
  for (const auto& [head, energies] : j.at("block_energy_calib").items()) {
    real.push_back(energies.get<std::vector<double>>());
  }
  // Synthetic hd-128 heads: lognormal energies (σ 1.5), as allocator_bench.
  std::mt19937_64 rng(42);
  std::lognormal_distribution<double> energy(0.0, 1.5);
  std::vector<std::vector<double>> synthetic(64, std::vector<double>(64));
  for (auto& head : synthetic) {
    for (double& e : head) e = energy(rng);
  }
  const std::string name =
      j.at("model").get<std::string>() + " (" + std::to_string(real.size()) + " heads)";
  for (int align : {8, 16}) Report(name.c_str(), real, {2, 3, 4}, align);
  for (int align : {8, 16}) Report("lognormal hd128 (64 heads)", synthetic, {2, 3, 4}, align);
  return 0;
}

}  // namespace
}  // namespace kvplan

int main(int argc, char** argv) { return kvplan::Main(argc, argv); }
