// Encode + pack on the GPU against GroupedQuantizer + WriteRecordsToPage on the
// CPU, over whole page buffers: every K width 1..8, per-head layouts
// differing, a lopsided layout whose rotations take several staging rounds,
// every V width, token counts 1, odd, page boundary ±1, many pages; shuffled
// slots with a skipped token (per-code atomic stores), whole pages in slot
// order (the assembled 16-byte stores) and both in one launch; one and several
// slabs per CTA. The same for fragment-native pages (WriteRecordsToFragmentPage
// on the CPU) with layouts whose K groups are whole 8-dim units, and K groups
// of whole 16-dim units (the kernel's unchecked path, GroupShape::kWhole).
// Launches of at most 64 tokens per KV head that leave the shape to the
// launcher take the few-token kernel (encode_append.cuh; the cases set that
// bound unless they name one); the same sizes with a slab count given take the
// slab kernel. On an sm_90a device, longer launches at head_dim 128 that leave
// the shape to the launcher encode K and V with wgmma (encode_wgmma.cuh, held
// to the slab kernel's bounds below; the cases lift its size threshold,
// wgmma_min_token_heads), and the cases with a slab count keep both on the
// slab kernel.
//
// The slab kernel (and the wgmma encode) rotates on tensor cores with split
// fp16 operands, so its z is close to the CPU's but not bit-equal
// (encode_pack.cuh). Held to:
//  - every code equals the CPU's, except that it may differ by exactly one
//    where the CPU's z lies within kBoundaryTolerance·max(1, |z|) of the
//    boundary between the two codes; such flips are rare (at most 1e-3 of the
//    codes, at least one allowed);
//  - n' bit-equal to the CPU's for every group whose codes all match, else
//    within the relative change the flipped codes make to ‖c[codes]‖ plus one
//    fp16 ulp;
//  - every other byte exactly: the GPU's buffer with each written slot
//    overwritten by the CPU's records equals the CPU's buffer bit for bit (so
//    no other slot's bits and no byte outside the slots changed).
// The few-token kernel sums in the CPU's order: no flips at all.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "core/codebook.h"
#include "core/fragment_page.h"
#include "core/group_layout.h"
#include "core/grouped_quantizer.h"
#include "core/packed_page.h"
#include "core/random.h"
#include "kvplan/kernels/launch.h"
#include "kvplan/kernels/packed_plan.h"
#include "tests/kernels/codec_fixtures.h"
#include "tests/kernels/gpu_test_util.h"

namespace kvplan::kernels::testing {
namespace {

// A bound on |z_gpu - z_cpu| (z in units of the unit-variance codebook; at
// d = 128, the largest group). Both approximate z* = s·(R·x)_i with the same
// fp32 s, and Σ_j |R_ij·x_j·s| <= ‖R_i‖·‖x·s‖ = √d:
//  - the CPU's sequential fp32 sum of d rounded products: at most
//    (d + 1)·2^-24·√d = 8.7e-5 with every rounding the same way;
//  - the GPU's split operands, each exact to 2^-22 relative, and the dropped
//    x_lo·R_lo, below 2^-22 relative per term: 3·2^-22·√d = 8.1e-6;
//  - its fp32 tensor-core accumulation, about 2^-23 of |partial sum| <= √d
//    per MMA, d/16 MMAs and 2 adds: 10·2^-23·√d = 1.35e-5.
// Sum 1.09e-4 < 2^-13 = 1.22e-4; the max(1, |z|) factor covers the final
// roundings relative to |z|. In practice |z_gpu - z_cpu| is ~1e-7 (the flips
// an emulation of the kernel's arithmetic produced were within 1.2e-7 of their
// boundaries), so flips are far rarer than kMaxFlipFraction (~1e-6 of codes).
constexpr double kBoundaryTolerance = 1.0 / 8192;
constexpr double kMaxFlipFraction = 1e-3;

enum class Slots {
  kShuffled,  // shuffled slots of shuffled pages, token 2 skipped
  kInOrder,   // token t to slot t: whole pages (the tail slab partial)
  kMixed,     // whole pages, runs off page boundaries, a partial page, shuffled
};

enum class Head0 {
  kRandom,      // widths around 2 bits
  kEveryWidth,  // every width 1..8
  kLopsided,    // one wide 3-bit group and seven 2-dim groups: 3 staging rounds
};

struct EncodeCase {
  int head_dim;
  int kv_heads;
  int v_bits;
  int tokens;
  Head0 head0 = Head0::kRandom;
  Slots slots = Slots::kShuffled;
  int slabs_per_cta = 0;  // 0: the launcher's choice
  bool fragment = false;  // fragment-native pages (8-dim-unit K groups)
  bool align16 = false;   // K groups of whole 16-dim units (a 16-aligned plan's)
  // EncodePackParams::few_token_max_token_heads; -1: 64 tokens per head, so
  // that launches past a slab cover the slab and wgmma kernels.
  int64_t few_token_max = -1;
};

std::string Name(const EncodeCase& c) {
  std::ostringstream s;
  s << "encode_hd" << c.head_dim << "_h" << c.kv_heads << "_v" << c.v_bits << "_t" << c.tokens
    << (c.head0 == Head0::kEveryWidth ? "_allwidths"
        : c.head0 == Head0::kLopsided ? "_lopsided"
                                      : "")
    << (c.slots == Slots::kInOrder ? "_inorder"
        : c.slots == Slots::kMixed ? "_mixed"
                                   : "")
    << (c.slabs_per_cta > 0 ? "_slabs" + std::to_string(c.slabs_per_cta) : "")
    << (c.fragment ? "_fragment" : "") << (c.align16 ? "_a16" : "")
    << (c.few_token_max >= 0 ? "_few" + std::to_string(c.few_token_max) : "");
  return s.str();
}

// Head 0 of kEveryWidth and kLopsided cases (kLopsided: blocks 0..6 at widths
// 1, 2, 4, .., 8, one block each, the rest at 3 bits).
HeadCodec Head0Codec(const EncodeCase& c) {
  const int blocks = c.head_dim / 2;
  std::vector<int> widths(blocks);
  for (int i = 0; i < blocks; ++i) {
    widths[i] = c.head0 == Head0::kEveryWidth ? 1 + (i * 7 + 3) % 8 : i < 7 ? i + 1 + (i >= 2) : 3;
  }
  return CodecFromWidths(widths, 500);
}

// Head h's codec.
HeadCodec CaseCodec(const EncodeCase& c, int h) {
  if (c.fragment || c.align16) {
    return AlignedCodec(c.head_dim, 2.0 + h, 600 + h, h == 0 && c.head0 != Head0::kRandom,
                        c.align16 ? 16 : 8);
  }
  return h == 0 && c.head0 != Head0::kRandom ? Head0Codec(c)
                                             : RandomCodec(c.head_dim, 2.0 + h, 600 + h);
}

// The CPU's page writer of each grammar.
void WriteRecords(const PackedPageLayout& layout, absl::Span<const uint8_t> k,
                  absl::Span<const uint8_t> v, int slot, absl::Span<uint8_t> page) {
  WriteRecordsToPage(layout, k, v, slot, page);
}
void WriteRecords(const FragmentPageLayout& layout, absl::Span<const uint8_t> k,
                  absl::Span<const uint8_t> v, int slot, absl::Span<uint8_t> page) {
  WriteRecordsToFragmentPage(layout, k, v, slot, page);
}

// Slots of `tokens` tokens in a pool of `pages` pages (-1: skipped); kMixed
// needs at least 4 slabs of tokens and 6 pages.
std::vector<int64_t> MakeSlots(const EncodeCase& c, int pages, DeterministicRng& rng) {
  if (c.slots == Slots::kMixed && (c.tokens < 4 * kPageTokens || pages < 6)) {
    ADD_FAILURE() << "a kMixed case needs >= 256 tokens and 6 pages, has " << c.tokens
                  << " tokens and " << pages << " pages";
    return std::vector<int64_t>(c.tokens, -1);
  }
  std::vector<int64_t> slots(c.tokens);
  if (c.slots == Slots::kInOrder) {
    std::iota(slots.begin(), slots.end(), 0);
    return slots;
  }
  std::vector<bool> used(static_cast<size_t>(pages) * kPageTokens, false);
  int t = 0;
  auto take = [&](int64_t slot) {
    if (slot >= 0) used[slot] = true;
    slots[t++] = slot;
  };
  if (c.slots == Slots::kMixed) {
    // Slab 0 fills page 3 in order; slab 1 is consecutive but starts mid-page;
    // slab 2 is page 1 in order with a skipped token; slab 3 fills page 0.
    for (int i = 0; i < kPageTokens; ++i) take(3 * kPageTokens + i);
    for (int i = 0; i < kPageTokens; ++i) take(4 * kPageTokens + 4 + i);
    for (int i = 0; i < kPageTokens; ++i) take(i == 2 ? -1 : kPageTokens + i);
    for (int i = 0; i < kPageTokens; ++i) take(i);
  }
  // The rest: shuffled free slots.
  std::vector<int64_t> free_slots;
  for (size_t s = 0; s < used.size(); ++s) {
    if (!used[s]) free_slots.push_back(static_cast<int64_t>(s));
  }
  for (size_t i = free_slots.size() - 1; i > 0; --i) {
    std::swap(free_slots[i], free_slots[rng.NextU64() % (i + 1)]);
  }
  const int first_free = t;
  while (t < c.tokens) take(free_slots[t - first_free]);
  if (c.slots == Slots::kShuffled && c.tokens > 3) slots[2] = -1;  // a padding token
  return slots;
}

// ‖c[codes]‖² of codes at `bits`.
double CodeNorm2(const std::vector<int>& codes, int bits) {
  const std::vector<float>& c = LloydMaxCodebook(bits).centroids;
  double sum = 0.0;
  for (int k : codes) sum += static_cast<double>(c[k]) * c[k];
  return sum;
}

struct Tally {
  size_t codes = 0, flips = 0, bad = 0;
  double closest_flip = 0.0;  // largest |z - boundary| / max(1, |z|) of a flip
  std::ostringstream report;
  void Bad(const std::string& what) {
    if (bad++ < 200) report << what << '\n';
  }
};

// Compares one group's codes and norm of one slot (K group, or V with group -1).
void CompareGroup(const std::vector<int>& got, const std::vector<int>& want, const float* z,
                  int bits, float got_norm, float want_norm, const std::string& where,
                  Tally& tally) {
  const std::vector<float>& boundaries = LloydMaxCodebook(bits).boundaries;
  bool all_equal = true;
  for (size_t i = 0; i < got.size(); ++i) {
    ++tally.codes;
    if (got[i] == want[i]) continue;
    all_equal = false;
    const int lower = std::min(got[i], want[i]);
    const double margin = std::abs(static_cast<double>(z[i]) - boundaries[lower]) /
                          std::max(1.0, std::abs(double{z[i]}));
    if (std::abs(got[i] - want[i]) == 1 && margin <= kBoundaryTolerance) {
      ++tally.flips;
      tally.closest_flip = std::max(tally.closest_flip, margin);
    } else {
      std::ostringstream s;
      s << where << " coordinate " << i << ": code " << got[i] << ", CPU " << want[i] << " (z "
        << z[i] << ", boundary " << boundaries[lower] << ")";
      tally.Bad(s.str());
    }
  }
  double tolerance = 0.0;  // relative
  if (!all_equal) {
    tolerance =
        std::abs(std::sqrt(CodeNorm2(want, bits) / CodeNorm2(got, bits)) - 1.0) + 1.0 / 1024;
  }
  if (!(std::abs(double{got_norm} - want_norm) <= tolerance * std::abs(double{want_norm}))) {
    std::ostringstream s;
    s << where << ": n' " << got_norm << ", CPU " << want_norm << " (codes "
      << (all_equal ? "equal" : "differ") << ")";
    tally.Bad(s.str());
  }
}

// Layout: PackedPageLayout or FragmentPageLayout, the grammar of the pages.
template <typename Layout>
void RunEncodeCase(const EncodeCase& c) {
  KVPLAN_SKIP_WITHOUT_GPU();
  const int hd = c.head_dim;
  std::vector<HeadCodec> codecs;
  for (int h = 0; h < c.kv_heads; ++h) codecs.push_back(CaseCodec(c, h));
  PackedDecodeConfig config;
  config.num_layers = 1;
  config.num_kv_heads = c.kv_heads;
  config.head_dim = hd;
  config.group_size = 1;
  config.v_bits = c.v_bits;
  config.encode_only = true;  // attention's dispatch set has fewer V widths
  config.fragment_pages = c.fragment;
  // On an H200 the long launches that leave the slab count to the launcher
  // take K and V on wgmma (TakesWgmmaEncode); the slab-count cases keep the
  // slab kernel.
  config.wgmma = DeviceRunsSm90a();
  absl::StatusOr<PackedDecodePlan> plan = PackedDecodePlan::Create(config, codecs);
  ASSERT_TRUE(plan.ok()) << plan.status();
  std::vector<Layout> layouts;
  int64_t stride = 0;
  for (int h = 0; h < c.kv_heads; ++h) {
    absl::StatusOr<Layout> layout = Layout::Create(codecs[h].k_layout, c.v_bits);
    ASSERT_TRUE(layout.ok()) << layout.status();
    layouts.push_back(*std::move(layout));
    stride = std::max<int64_t>(stride, layouts.back().page_bytes());
  }
  const int pages = std::max(8, (c.tokens + kPageTokens - 1) / kPageTokens + 2);
  DeterministicRng rng(c.tokens * 7 + hd);
  const std::vector<int64_t> slots = MakeSlots(c, pages, rng);
  const std::vector<float> k =
      RandomVector(static_cast<size_t>(c.tokens) * c.kv_heads * hd, 21, 2.0);
  const std::vector<float> v = RandomVector(static_cast<size_t>(c.tokens) * c.kv_heads * hd, 22);
  std::vector<uint8_t> pool(static_cast<size_t>(pages) * c.kv_heads * stride);
  for (size_t i = 0; i < pool.size(); ++i) pool[i] = static_cast<uint8_t>(rng.NextU64());

  // CPU: records (kept), the values they quantize, then the page conversion.
  std::vector<GroupedQuantizer> kqs, vqs;
  for (int h = 0; h < c.kv_heads; ++h) {
    kqs.push_back(*GroupedQuantizer::Create(codecs[h].k_layout, codecs[h].k_rotations));
    vqs.push_back(*GroupedQuantizer::Create(*UniformLayout(hd, c.v_bits), {codecs[h].v_rotation}));
  }
  const size_t pairs = static_cast<size_t>(c.tokens) * c.kv_heads;
  std::vector<std::vector<uint8_t>> k_records(pairs), v_records(pairs);
  std::vector<float> k_z(pairs * hd), v_z(pairs * hd);
  std::vector<uint8_t> want = pool;
  for (int t = 0; t < c.tokens; ++t) {
    if (slots[t] < 0) continue;
    for (int h = 0; h < c.kv_heads; ++h) {
      const size_t pair = static_cast<size_t>(t) * c.kv_heads + h;
      const absl::Span<const float> kx(k.data() + pair * hd, hd), vx(v.data() + pair * hd, hd);
      k_records[pair].resize(kqs[h].PackedBytes());
      v_records[pair].resize(vqs[h].PackedBytes());
      kqs[h].Encode(kx, absl::MakeSpan(k_records[pair]));
      vqs[h].Encode(vx, absl::MakeSpan(v_records[pair]));
      kqs[h].CodedCoordinates(kx, absl::MakeSpan(k_z.data() + pair * hd, hd));
      vqs[h].CodedCoordinates(vx, absl::MakeSpan(v_z.data() + pair * hd, hd));
      uint8_t* page = want.data() + ((slots[t] / kPageTokens) * c.kv_heads + h) * stride;
      WriteRecords(layouts[h], k_records[pair], v_records[pair],
                   static_cast<int>(slots[t] % kPageTokens), absl::MakeSpan(page, stride));
    }
  }

  void* ws = nullptr;
  KVPLAN_CUDA_OK(cudaMalloc(&ws, plan->workspace_bytes()));
  KVPLAN_CUDA_OK(plan->Upload(ws, nullptr));
  DeviceBuffer<float> dk(k), dv(v);
  DeviceBuffer<int64_t> dslots(slots);
  DeviceBuffer<uint8_t> dpool(pool);
  EncodePackParams p = plan->EncodeParams(0, ws);
  ASSERT_EQ(p.page_stride, stride);
  p.k = dk.get();
  p.v = dv.get();
  p.slot_mapping = dslots.get();
  p.pages = dpool.get();
  p.num_tokens = c.tokens;
  p.wgmma_min_token_heads = 0;  // the wgmma encode at every size it takes
  p.few_token_max_token_heads =
      c.few_token_max >= 0 ? c.few_token_max : int64_t{kPageTokens} * c.kv_heads;
  KVPLAN_CUDA_OK(LaunchEncodePack(p, nullptr, c.slabs_per_cta));
  KVPLAN_CUDA_OK(cudaDeviceSynchronize());
  std::vector<uint8_t> got = dpool.ToHost();
  cudaFree(ws);

  Tally tally;
  for (int t = 0; t < c.tokens; ++t) {
    if (slots[t] < 0) continue;
    const int slot = static_cast<int>(slots[t] % kPageTokens);
    for (int h = 0; h < c.kv_heads; ++h) {
      const size_t pair = static_cast<size_t>(t) * c.kv_heads + h;
      const size_t page_offset = ((slots[t] / kPageTokens) * c.kv_heads + h) * stride;
      const absl::Span<const uint8_t> got_page(got.data() + page_offset, stride);
      const absl::Span<const uint8_t> want_page(want.data() + page_offset, stride);
      const Layout& layout = layouts[h];
      const std::string where = "token " + std::to_string(t) + " head " + std::to_string(h);
      for (int g = 0; g < layout.num_k_groups(); ++g) {
        const QuantGroup& group = layout.k_layout().groups[g];
        std::vector<int> got_codes(group.size), want_codes(group.size);
        for (int i = 0; i < group.size; ++i) {
          got_codes[i] = layout.KCode(got_page, g, slot, i);
          want_codes[i] = layout.KCode(want_page, g, slot, i);
        }
        CompareGroup(got_codes, want_codes, k_z.data() + pair * hd + group.offset, group.bits,
                     layout.KNorm(got_page, g, slot), layout.KNorm(want_page, g, slot),
                     where + " K group " + std::to_string(g), tally);
      }
      std::vector<int> got_codes(hd), want_codes(hd);
      for (int j = 0; j < hd; ++j) {
        got_codes[j] = layout.VCode(got_page, slot, j);
        want_codes[j] = layout.VCode(want_page, slot, j);
      }
      CompareGroup(got_codes, want_codes, v_z.data() + pair * hd, c.v_bits,
                   layout.VNorm(got_page, slot), layout.VNorm(want_page, slot), where + " V",
                   tally);
      // Overwrite the slot with the CPU's records for the byte comparison below.
      WriteRecords(layout, k_records[pair], v_records[pair], slot,
                   absl::MakeSpan(got.data() + page_offset, stride));
    }
  }
  EXPECT_EQ(tally.bad, 0u) << Name(c) << ": " << tally.bad << " codes or norms out of tolerance; "
                           << tally.flips << " flips at boundaries; dump: "
                           << DumpFailure(Name(c) + "_codes", tally.report.str());
  // The few-token kernel (encode_append.cuh) computes z as the CPU does.
  const bool few_token_kernel = TakesFewTokenEncode(p, c.slabs_per_cta);
  const size_t allowed =
      few_token_kernel ? 0
                       : std::max<size_t>(1, static_cast<size_t>(kMaxFlipFraction * tally.codes));
  EXPECT_LE(tally.flips, allowed) << Name(c) << ": " << tally.flips << " of " << tally.codes
                                  << " codes differ from the CPU's at a boundary (closest margin "
                                  << tally.closest_flip << ")";

  size_t bad = 0;
  std::ostringstream report;
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i] != want[i] && bad++ < 2000) {
      report << "byte " << i << " (page " << i / (c.kv_heads * stride) << " head "
             << (i / stride) % c.kv_heads << " offset " << i % stride << "): got " << int{got[i]}
             << " want " << int{want[i]} << '\n';
    }
  }
  EXPECT_EQ(bad, 0u) << Name(c) << ": " << bad
                     << " bytes differ outside the compared codes and norms; dump: "
                     << DumpFailure(Name(c), report.str());
}

class EncodePackTest : public ::testing::TestWithParam<EncodeCase> {};

TEST_P(EncodePackTest, MatchesCpuWithinTolerance) {
  if (GetParam().fragment) {
    RunEncodeCase<FragmentPageLayout>(GetParam());
  } else {
    RunEncodeCase<PackedPageLayout>(GetParam());
  }
}

INSTANTIATE_TEST_SUITE_P(
    Sizes, EncodePackTest,
    ::testing::Values(
        EncodeCase{128, 2, 3, 1, Head0::kEveryWidth}, EncodeCase{128, 3, 3, 33, Head0::kEveryWidth},
        EncodeCase{128, 2, 2, 63}, EncodeCase{128, 2, 4, 64, Head0::kEveryWidth},
        EncodeCase{128, 2, 8, 65}, EncodeCase{64, 4, 3, 129, Head0::kEveryWidth},
        EncodeCase{64, 2, 1, 40, Head0::kEveryWidth}, EncodeCase{64, 2, 5, 40},
        EncodeCase{128, 2, 6, 70, Head0::kEveryWidth}, EncodeCase{128, 2, 7, 17},
        EncodeCase{128, 8, 3, 1000},
        // Whole pages (the assembled stores); 200 = three pages and a partial one.
        EncodeCase{128, 2, 3, 256, Head0::kEveryWidth, Slots::kInOrder},
        EncodeCase{128, 3, 8, 200, Head0::kRandom, Slots::kInOrder},
        EncodeCase{64, 2, 1, 256, Head0::kEveryWidth, Slots::kInOrder},
        // Both store paths in one launch, one and several slabs per CTA.
        EncodeCase{128, 2, 4, 400, Head0::kEveryWidth, Slots::kMixed},
        EncodeCase{128, 2, 5, 400, Head0::kRandom, Slots::kMixed, 3},
        EncodeCase{64, 3, 2, 330, Head0::kEveryWidth, Slots::kMixed, 8},
        // Rotations staged in several rounds, with one and several slabs per CTA.
        EncodeCase{128, 2, 3, 300, Head0::kLopsided, Slots::kMixed},
        EncodeCase{64, 2, 3, 300, Head0::kLopsided, Slots::kMixed, 2},
        EncodeCase{128, 2, 3, 129, Head0::kLopsided, Slots::kShuffled, 3},
        // K groups of whole 16-dim k-steps (the kernel's unchecked path).
        EncodeCase{128, 3, 3, 291, Head0::kRandom, Slots::kMixed, 0, false, true},
        EncodeCase{64, 2, 2, 70, Head0::kEveryWidth, Slots::kShuffled, 0, false, true},
        EncodeCase{128, 2, 3, 257, Head0::kEveryWidth, Slots::kMixed, 2, true, true},
        // ... and K on wgmma (TakesWgmmaEncode, on an sm_90a device): eight
        // groups of every width, whole pages and per-code stores of both
        // grammars, several slabs per warpgroup.
        EncodeCase{128, 2, 3, 256, Head0::kEveryWidth, Slots::kInOrder, 0, true, true},
        EncodeCase{128, 3, 5, 400, Head0::kEveryWidth, Slots::kMixed, 0, false, true},
        EncodeCase{128, 2, 8, 129, Head0::kRandom, Slots::kShuffled, 0, true, true},
        EncodeCase{128, 1, 2, 2000, Head0::kRandom, Slots::kShuffled, 0, false, true},
        // ... two or more slabs per warpgroup (8 heads: 4-5 slabs per CTA),
        // whole pages in slot order, the last slab partial: both grammars,
        // both K paths.
        EncodeCase{128, 8, 3, 4100, Head0::kRandom, Slots::kInOrder, 0, true, true},
        EncodeCase{128, 8, 4, 4100, Head0::kEveryWidth, Slots::kInOrder, 0, false, false},
        // Fragment-native pages: decode tokens, whole pages, both.
        EncodeCase{128, 3, 3, 33, Head0::kEveryWidth, Slots::kShuffled, 0, true},
        EncodeCase{128, 2, 3, 256, Head0::kRandom, Slots::kInOrder, 0, true},
        EncodeCase{128, 2, 4, 400, Head0::kEveryWidth, Slots::kMixed, 3, true},
        EncodeCase{128, 2, 8, 65, Head0::kRandom, Slots::kShuffled, 0, true},
        EncodeCase{64, 3, 2, 330, Head0::kEveryWidth, Slots::kMixed, 8, true},
        EncodeCase{64, 2, 5, 129, Head0::kRandom, Slots::kInOrder, 0, true},
        // Few tokens through the slab kernel (a slab count given) ...
        EncodeCase{128, 2, 3, 1, Head0::kEveryWidth, Slots::kShuffled, 1},
        EncodeCase{64, 2, 1, 40, Head0::kEveryWidth, Slots::kShuffled, 1},
        EncodeCase{128, 3, 3, 33, Head0::kEveryWidth, Slots::kShuffled, 1, true},
        // ... and through the few-token kernel: a lopsided layout, a
        // whole page in slot order, 16-dim K units, fragment pages.
        EncodeCase{128, 2, 3, 40, Head0::kLopsided},
        EncodeCase{128, 2, 3, 64, Head0::kRandom, Slots::kInOrder},
        EncodeCase{64, 2, 2, 20, Head0::kEveryWidth, Slots::kShuffled, 0, false, true},
        EncodeCase{128, 2, 3, 64, Head0::kRandom, Slots::kInOrder, 0, true},
        EncodeCase{128, 3, 8, 16, Head0::kRandom, Slots::kShuffled, 0, true},
        // ... and on larger launches at the library's bound
        // (kFewTokenEncodeMaxTokenHeads) and above it (packed_decode_bench
        // --few-token-max): many tokens per page, in and out of slot order.
        EncodeCase{128, 2, 3, 200, Head0::kEveryWidth, Slots::kShuffled, 0, false, true,
                   kFewTokenEncodeMaxTokenHeads},
        EncodeCase{128, 2, 4, 150, Head0::kRandom, Slots::kInOrder, 0, true, false,
                   kFewTokenEncodeMaxTokenHeads},
        EncodeCase{128, 8, 3, 100, Head0::kRandom, Slots::kShuffled, 0, false, false, 1024},
        // Past the bound in under a slab of tokens: many heads, one partial
        // slab each (K and V on wgmma on an sm_90a device, both K paths).
        EncodeCase{128, 16, 3, 40, Head0::kRandom, Slots::kShuffled, 0, false, true,
                   kFewTokenEncodeMaxTokenHeads},
        EncodeCase{128, 16, 5, 33, Head0::kEveryWidth, Slots::kShuffled, 0, false, false,
                   kFewTokenEncodeMaxTokenHeads}),
    [](const ::testing::TestParamInfo<EncodeCase>& test_info) { return Name(test_info.param); });

}  // namespace
}  // namespace kvplan::kernels::testing
