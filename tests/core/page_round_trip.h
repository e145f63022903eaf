// The round-trip property every page grammar (core/packed_page.h,
// core/fragment_page.h) must have: records written to a slot read back bit for
// bit, and no other slot of the page changes.
//
// Example:
//   ExpectRecordsRoundTrip(layout, WriteRecordsToPage, ReadRecordsFromPage, /*seed=*/1);
#ifndef KVPLAN_TESTS_CORE_PAGE_ROUND_TRIP_H_
#define KVPLAN_TESTS_CORE_PAGE_ROUND_TRIP_H_

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "core/group_layout.h"
#include "core/grouped_quantizer.h"
#include "core/packed_page.h"
#include "core/random.h"
#include "core/rotation.h"

namespace kvplan::testing {

// Encodes random K and V vectors (Haar rotations, the layout's widths) into
// several slots of a page of random bytes, one after another, and after each
// write checks the slot and every other slot.
template <class Layout, class Write, class Read>
void ExpectRecordsRoundTrip(const Layout& layout, Write write, Read read, uint64_t seed) {
  const GroupLayout& k_layout = layout.k_layout();
  const int hd = layout.head_dim(), v_bits = layout.v_bits();
  std::vector<Rotation> rotations;
  for (const QuantGroup& g : k_layout.groups) rotations.push_back(HaarRotation(g.size, g.bits));
  const GroupedQuantizer kq = *GroupedQuantizer::Create(k_layout, rotations);
  const GroupedQuantizer vq =
      *GroupedQuantizer::Create(*UniformLayout(hd, v_bits), {HaarRotation(hd, 9)});
  DeterministicRng rng(seed);
  std::vector<uint8_t> page(layout.page_bytes());
  for (uint8_t& b : page) b = static_cast<uint8_t>(rng.NextU64());
  const std::string where = "hd " + std::to_string(hd) + ", v_bits " + std::to_string(v_bits);
  for (int slot : {0, 1, 7, 8, 15, 16, 31, 40, 62, 63}) {
    std::vector<float> x(hd), y(hd);
    for (float& f : x) f = static_cast<float>(rng.NextGaussian());
    for (float& f : y) f = static_cast<float>(rng.NextGaussian());
    std::vector<uint8_t> kr(kq.PackedBytes()), vr(vq.PackedBytes());
    kq.Encode(x, absl::MakeSpan(kr));
    vq.Encode(y, absl::MakeSpan(vr));
    const std::vector<uint8_t> before = page;
    write(layout, kr, vr, slot, absl::MakeSpan(page));
    std::vector<uint8_t> kb(kr.size()), vb(vr.size());
    read(layout, page, slot, absl::MakeSpan(kb), absl::MakeSpan(vb));
    ASSERT_EQ(kb, kr) << where << ", slot " << slot;
    ASSERT_EQ(vb, vr) << where << ", slot " << slot;
    for (int other = 0; other < kPageTokens; ++other) {
      if (other == slot) continue;
      std::vector<uint8_t> k0(kr.size()), v0(vr.size()), k1(kr.size()), v1(vr.size());
      read(layout, before, other, absl::MakeSpan(k0), absl::MakeSpan(v0));
      read(layout, page, other, absl::MakeSpan(k1), absl::MakeSpan(v1));
      ASSERT_EQ(k0, k1) << where << ": writing slot " << slot << " changed slot " << other;
      ASSERT_EQ(v0, v1) << where << ": writing slot " << slot << " changed slot " << other;
    }
  }
}

}  // namespace kvplan::testing

#endif  // KVPLAN_TESTS_CORE_PAGE_ROUND_TRIP_H_
