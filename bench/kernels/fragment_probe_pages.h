// Host side of the design probe's pages (fragment_decode_probe.cu): the probe's
// K layouts written through core/fragment_page.h. A plain C++17 interface,
// because the probe's .cu is C++17 and core is C++20.
//
// Example:
//   const int widths[16] = {...};  // half-slice widths, ascending
//   std::vector<uint8_t> page(FragmentProbePageBytes(widths));
//   WriteFragmentProbeToken(widths, k_codes, k_norms, v_codes, v_norm, /*slot=*/3, page.data());
#ifndef KVPLAN_BENCH_KERNELS_FRAGMENT_PROBE_PAGES_H_
#define KVPLAN_BENCH_KERNELS_FRAGMENT_PROBE_PAGES_H_

#include <cstdint>
#include <string>

namespace kvplan::probe {

// Head dim, K and V bits of every probe page: 128, K3 on average, V3.
inline constexpr int kProbeHalves = 16;

// Bytes of one (page, KV head) and of one 16-token tile for a K layout given as
// the widths of its 16 half-slices (8 dims each, ascending); -1 and a message on
// stderr when core refuses the layout.
int64_t FragmentProbePageBytes(const int (&half_widths)[kProbeHalves]);
int FragmentProbeTileBytes(const int (&half_widths)[kProbeHalves]);

// Writes one token into slot `slot` of `page`: K codes per permuted coordinate
// (128), one fp16 norm per K group (groups = runs of equal width, ascending),
// V codes at 3 bits (128) and V's fp16 norm. False when core refuses the layout.
bool WriteFragmentProbeToken(const int (&half_widths)[kProbeHalves], const uint8_t* k_codes,
                             const uint16_t* k_group_norms, const uint8_t* v_codes, uint16_t v_norm,
                             int slot, uint8_t* page);

// The decode kernel source generated for `num_heads` heads whose K layouts are
// rows[h] (kvplan/kernels/fragment_decode_source.h), with `warps` warps per CTA
// and extern "C" kernel name `kernel_name` (the attention). Empty,
// with a message on stderr, when the generator refuses.
std::string FragmentProbeDecodeSource(int num_heads, const int* const* rows, int warps,
                                      const char* kernel_name);

}  // namespace kvplan::probe

#endif  // KVPLAN_BENCH_KERNELS_FRAGMENT_PROBE_PAGES_H_
