#include "bench/kernels/fragment_probe_pages.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/bit_packing.h"
#include "core/fragment_page.h"
#include "core/group_layout.h"
#include "kvplan/kernels/fragment_decode_source.h"

namespace kvplan::probe {
namespace {

constexpr int kHeadDim = 8 * kProbeHalves;
constexpr int kVBits = 3;

// Each half-slice's width over its 4 RoPE blocks (split-half dims; the page
// only sees permuted positions).
absl::StatusOr<FragmentPageLayout> PageLayout(const int (&half_widths)[kProbeHalves]) {
  std::vector<int> widths;
  std::vector<std::array<int, 2>> dims;
  for (int w : half_widths) widths.insert(widths.end(), 4, w);
  for (int i = 0; i < kHeadDim / 2; ++i) dims.push_back({i, i + kHeadDim / 2});
  absl::StatusOr<GroupLayout> k = BuildGroupLayout(widths, dims);
  if (!k.ok()) return k.status();
  return FragmentPageLayout::Create(*k, kVBits);
}

absl::StatusOr<FragmentPageLayout> Reported(const int (&half_widths)[kProbeHalves]) {
  absl::StatusOr<FragmentPageLayout> layout = PageLayout(half_widths);
  if (!layout.ok())
    std::fprintf(stderr, "probe layout: %s\n", std::string(layout.status().message()).c_str());
  return layout;
}

}  // namespace

int64_t FragmentProbePageBytes(const int (&half_widths)[kProbeHalves]) {
  absl::StatusOr<FragmentPageLayout> layout = Reported(half_widths);
  return layout.ok() ? static_cast<int64_t>(layout->page_bytes()) : -1;
}

int FragmentProbeTileBytes(const int (&half_widths)[kProbeHalves]) {
  absl::StatusOr<FragmentPageLayout> layout = Reported(half_widths);
  return layout.ok() ? static_cast<int>(layout->tile_bytes()) : -1;
}

bool WriteFragmentProbeToken(const int (&half_widths)[kProbeHalves], const uint8_t* k_codes,
                             const uint16_t* k_group_norms, const uint8_t* v_codes, uint16_t v_norm,
                             int slot, uint8_t* page) {
  absl::StatusOr<FragmentPageLayout> layout = Reported(half_widths);
  if (!layout.ok()) return false;
  const GroupLayout& k = layout->k_layout();
  std::vector<uint8_t> k_record(k.PackedBytes()), v_record(PackedCodeBytes(kHeadDim, kVBits) + 2);
  size_t segment = 0;
  for (size_t g = 0; g < k.groups.size(); ++g) {
    const QuantGroup& group = k.groups[g];
    PackCodes(absl::MakeConstSpan(k_codes + group.offset, group.size), group.bits,
              absl::MakeSpan(k_record).subspan(segment));
    segment += PackedCodeBytes(group.size, group.bits);
    std::memcpy(&k_record[k.CodeBytes() + 2 * g], &k_group_norms[g], 2);
  }
  PackCodes(absl::MakeConstSpan(v_codes, kHeadDim), kVBits, absl::MakeSpan(v_record));
  std::memcpy(&v_record[PackedCodeBytes(kHeadDim, kVBits)], &v_norm, 2);
  WriteRecordsToFragmentPage(*layout, k_record, v_record, slot,
                             absl::MakeSpan(page, layout->page_bytes()));
  return true;
}

std::string FragmentProbeDecodeSource(int num_heads, const int* const* rows, int warps,
                                      const char* kernel_name) {
  std::vector<FragmentPageLayout> heads;
  for (int h = 0; h < num_heads; ++h) {
    int widths[kProbeHalves];
    std::copy(rows[h], rows[h] + kProbeHalves, widths);
    absl::StatusOr<FragmentPageLayout> layout = Reported(widths);
    if (!layout.ok()) return "";
    heads.push_back(*std::move(layout));
  }
  kernels::FragmentDecodeSourceOptions options;
  options.warps = warps;
  options.kernel_name = kernel_name;
  absl::StatusOr<std::string> source = kernels::FragmentDecodeSource(heads, options);
  if (!source.ok()) {
    std::fprintf(stderr, "decode source: %s\n", std::string(source.status().message()).c_str());
    return "";
  }
  return *std::move(source);
}

}  // namespace kvplan::probe
