// How many 64-token slabs each CTA of an encode + pack launch
// (encode_pack.cuh) takes when the caller leaves it to the launcher: host
// arithmetic only, so that CPU tests check it.
//
// A launch has slabs x num_kv_heads x 2 (K, V) slab jobs; two CTAs fit an SM,
// each stages its rotations once (up to 64 KB of fp16 planes split from fp32)
// and then encodes its slabs two at a time. Measured on the H200 (NOTES runs
// 18 and 28; K3V3 plans, µs per launch):
//   - small launches want one wave of CTAs: Llama-3.1-8B (8 KV heads) 4K
//     tokens 56.1 at 2 slabs per CTA (two waves), 49.1 at 4 (one); Qwen2.5-3B
//     (2 heads) 4K 23.5 at 2 (half a wave), 22.3 at 1; Qwen 32K 100.5 at 4,
//     96.4 at 8 (one wave);
//   - large launches want about two waves: Llama 32K 331.6 at 16 slabs per
//     CTA (two waves), 346.5 at 8, 374.0 at 4; Llama 16K 179.9 at 8 (two
//     waves), 194.4 at 4; with run 18's kernel, one wave of 32 slabs per CTA
//     took 495 at 32K against 455 at 16.
//
// Example:
//   int per_cta = EncodeSlabsPerCta(/*slabs=*/512, /*num_kv_heads=*/8, /*num_sms=*/132);  // 16
#ifndef KVPLAN_KERNELS_ENCODE_SLABS_H_
#define KVPLAN_KERNELS_ENCODE_SLABS_H_

#include <algorithm>
#include <cstdint>

namespace kvplan::kernels {

// Slabs per CTA: one wave of CTAs (2 per SM) where that gives each at most 8
// slabs, otherwise about two waves of at most 16 slabs each; even above 1
// (the slabs are encoded in pairs: an odd count's last pair takes as long as
// a full one, so rounding up only saves CTAs).
inline int EncodeSlabsPerCta(int slabs, int num_kv_heads, int num_sms) {
  constexpr int64_t kOneWaveMostSlabs = 8, kTwoWaveMostSlabs = 16;
  const int64_t n = std::max(slabs, 1);
  // CTAs along the slabs of one (KV head, K|V) that one wave holds.
  const int64_t wave =
      std::max<int64_t>(1, int64_t{std::max(num_sms, 1)} / std::max(num_kv_heads, 1));
  const auto even_per = [n](int64_t ctas) {
    const int64_t per = (n + ctas - 1) / ctas;
    return per <= 1 ? int64_t{1} : (per + 1) & ~int64_t{1};
  };
  if (even_per(wave) <= kOneWaveMostSlabs) return static_cast<int>(even_per(wave));
  return static_cast<int>(std::min(even_per(2 * wave), kTwoWaveMostSlabs));
}

// Slabs per CTA of the wgmma encode (encode_wgmma.cuh: one CTA per SM, its
// `warpgroups` taking its slabs in turn) for a grid of two kinds (K and V) x
// num_kv_heads x CTAs. Each (head, kind)'s slabs spread evenly over the CTAs
// of one of two layouts:
//   - a wave per kind (V's CTAs take the SMs that K's leave): K's slabs cost
//     more than V's, so K's and V's CTAs sharing one wave left the SMs of V's
//     idle while K's finished (Llama-3.1-8B K3V3a16 32K tokens 273 µs against
//     233, fragment pages 369 against 287);
//   - the whole grid one wave, where that adds no slab to any warpgroup's
//     turn (rounds of `warpgroups` slabs per CTA): one staging of tables and
//     rotations instead of two, and no second wave (Llama 1K tokens, one slab
//     per CTA in two waves: 23.0 µs, two per CTA in one wave: 16.4).
// (NOTES.md run 34.)
inline int WgmmaEncodeSlabsPerCta(int slabs, int num_kv_heads, int num_sms, int warpgroups) {
  const int64_t n = std::max(slabs, 1), heads = std::max(num_kv_heads, 1);
  const int64_t rounds_of = std::max(warpgroups, 1);
  const auto per_cta = [n](int64_t ctas_per_head) {
    const int64_t ctas = std::min(n, std::max<int64_t>(1, ctas_per_head));
    return (n + ctas - 1) / ctas;
  };
  const int64_t sms = std::max(num_sms, 1);
  const int64_t per_kind = per_cta(sms / heads);
  const int64_t one_wave = per_cta(sms / (2 * heads));
  const auto rounds = [rounds_of](int64_t per) { return (per + rounds_of - 1) / rounds_of; };
  return static_cast<int>(rounds(one_wave) <= rounds(per_kind) ? one_wave : per_kind);
}

}  // namespace kvplan::kernels

#endif  // KVPLAN_KERNELS_ENCODE_SLABS_H_
