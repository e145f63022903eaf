#include "kvplan/kernels/packed_splits.h"

#include <algorithm>
#include <cstdint>

#include "kvplan/kernels/params.h"  // kKernelPageTokens

namespace kvplan::kernels {
namespace {

// Pages of the longest sequence per CTA: one wave's CTAs keep at least
// kLeastWavePages, no CTA of it takes more than kMostPages, and a ragged
// batch's extra waves keep at least kLeastRaggedPages (H200 measurements:
// NOTES run 28).
constexpr int64_t kLeastWavePages = 4;
constexpr int64_t kMostPages = 128;
constexpr int64_t kLeastRaggedPages = 16;
constexpr int kRaggedWaves = 4;

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

BatchUnits UnitsOf(absl::Span<const int> lengths, int unit_tokens) {
  BatchUnits units;
  units.batch = static_cast<int>(lengths.size());
  for (int len : lengths) {
    const int64_t u = CeilDiv(std::max(len, 0), unit_tokens);
    units.total += u;
    units.longest = std::max(units.longest, u);
  }
  return units;
}

BatchUnits PagesOf(absl::Span<const int> lengths) { return UnitsOf(lengths, kKernelPageTokens); }

int PackedPairSplits(const BatchUnits& pages, const PackedSplitMachine& machine) {
  const int64_t units = std::max<int64_t>(1, int64_t{pages.batch} * machine.kv_heads);
  const int64_t longest = std::max<int64_t>(1, pages.longest);
  int64_t splits = std::max<int64_t>(1, machine.resident_ctas / units);
  splits = std::min(splits, std::max<int64_t>(1, longest / kLeastWavePages));
  splits = std::max(splits, CeilDiv(longest, kMostPages));
  // Ragged: the longest sequence over 1.1x the mean (10 · longest · batch > 11 · total).
  if (10 * pages.longest * pages.batch > 11 * pages.total) {
    const int64_t waves = std::max<int64_t>(1, kRaggedWaves * machine.resident_ctas / units);
    splits = std::max(splits, std::min(waves, longest / kLeastRaggedPages));
  }
  return static_cast<int>(std::clamp<int64_t>(splits, 1, std::max(1, machine.max_splits)));
}

}  // namespace kvplan::kernels
