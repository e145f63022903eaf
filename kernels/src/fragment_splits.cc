#include "kvplan/kernels/fragment_splits.h"

#include <algorithm>
#include <cstdint>

#include "core/fragment_geometry.h"  // kFragmentTileTokens
#include "kvplan/kernels/fragment_params.h"
#include "kvplan/kernels/packed_splits.h"  // UnitsOf
#include "kvplan/kernels/params.h"         // kKernelPageTokens, kFragmentTilesPerPage

namespace kvplan::kernels {
namespace {

// At least 8 tiles of 16 tokens per warp: the split count that keeps to it
// for splits of `tokens` (NOTES run 18, call 12).
int MostSplitsFor(int64_t tokens, int warps) {
  return static_cast<int>(
      std::clamp<int64_t>(tokens / (kFragmentTileTokens * 8 * warps), 1, INT32_MAX));
}

}  // namespace

int UniformPairSplits(int batch, int max_tokens, const FragmentSplitMachine& machine) {
  const int wave = std::max(1, machine.resident_ctas / std::max(1, batch * machine.kv_heads));
  return std::min(wave, MostSplitsFor(max_tokens, machine.warps));
}

int FittedPairSplits(absl::Span<const int> lengths, int max_pages_per_seq,
                     const FragmentSplitMachine& machine) {
  // Within what a step accepts (FragmentDecodeProgram::Step refuses wider tables).
  const int pages =
      std::clamp(max_pages_per_seq, 0, kMaxFragmentRangeTiles / kFragmentTilesPerPage);
  const int table_tiles = pages * kFragmentTilesPerPage;
  const int most = std::min(MostSplitsFor(int64_t{pages} * kKernelPageTokens, machine.warps),
                            std::max(1, machine.max_splits));
  // Non-empty CTAs of a step with `splits` splits; it only grows with splits
  // (each split gets shorter), so the search stops at the first that
  // overflows the wave.
  auto busy_ctas = [&](int splits) {
    const int64_t per_split = FragmentSplitTiles(table_tiles, splits);
    int64_t ctas = 0;
    for (int len : lengths) ctas += (FragmentTilesOf(len) + per_split - 1) / per_split;
    return ctas * machine.kv_heads;
  };
  int splits = 1;
  while (splits < most && busy_ctas(splits + 1) <= machine.resident_ctas) ++splits;
  // One wave is balanced when its longest split is close to the mean of its
  // busy CTAs' work (a uniform batch). A ragged batch's wave is not: the
  // short sequences' splits end early while the longest one's run on. There,
  // more and shorter splits, in several waves whose CTAs start as others
  // finish, come closer to the even share (NOTES run 27: Llama-3.1-8B batch
  // 16 of lengths up to 128K, 385 µs at 3 splits, 348 at 12).
  const BatchUnits tiles = UnitsOf(lengths, kFragmentTileTokens);
  const double all_tiles = static_cast<double>(tiles.total) * machine.kv_heads;
  const int resident = std::max(1, machine.resident_ctas);
  auto split_tiles = [&](int count) {
    return static_cast<double>(
        std::min<int64_t>(FragmentSplitTiles(table_tiles, count), tiles.longest));
  };
  // A step's time in tiles of one CTA: one wave takes its longest split;
  // several take the even share and half a split of tail; every wave costs 8
  // tiles per warp more (staging, combine, merge).
  auto estimate = [&](int count) {
    const int64_t waves = (busy_ctas(count) + resident - 1) / resident;
    const double work =
        waves <= 1 ? split_tiles(count)
                   : std::max(split_tiles(count), all_tiles / resident + 0.5 * split_tiles(count));
    return work + 8.0 * machine.warps * static_cast<double>(waves);
  };
  const double wave_mean = all_tiles / std::max<int64_t>(1, busy_ctas(splits));
  if (split_tiles(splits) > 1.1 * wave_mean) {
    // Only splits of at least 64 tiles per warp are tried.
    double best = estimate(splits);
    for (int count = splits + 1;
         count <= most && FragmentSplitTiles(table_tiles, count) >= 64 * machine.warps; ++count) {
      if (const double e = estimate(count); e < best) best = e, splits = count;
    }
  }
  // Splits no longer than the longest sequence do equal work with fewer
  // empty CTAs and partial slots to merge (a batch of short sequences in a
  // wide table, or of fp16 tokens only, takes one split).
  while (splits > 1 && split_tiles(splits - 1) == split_tiles(splits)) --splits;
  return splits;
}

int BalancedCtasPerKvHead(int64_t total_tiles, const FragmentSplitMachine& machine) {
  const int64_t most = std::max<int64_t>(1, total_tiles / (8 * machine.warps));
  return static_cast<int>(
      std::min<int64_t>(std::max(1, machine.resident_ctas / machine.kv_heads), most));
}

int BalancedSlots(int64_t total_tiles, int64_t longest_tiles, int ctas) {
  const int64_t even = std::max<int64_t>(1, (total_tiles + ctas - 1) / std::max(ctas, 1));
  return static_cast<int>((longest_tiles + even - 1) / even + 1);
}

FragmentSplits FittedBalancedSplits(absl::Span<const int> lengths,
                                    const FragmentSplitMachine& machine) {
  const BatchUnits tiles = UnitsOf(lengths, kFragmentTileTokens);
  FragmentSplits shape;
  shape.ctas_per_kv_head = BalancedCtasPerKvHead(tiles.total, machine);
  shape.num_splits = std::min(BalancedSlots(tiles.total, tiles.longest, shape.ctas_per_kv_head),
                              std::max(1, machine.max_splits));
  return shape;
}

}  // namespace kvplan::kernels
