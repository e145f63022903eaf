#include "kvplan/kernels/fragment_tables.h"

#include <cstring>

#include "core/codebook.h"
#include "core/half.h"

namespace kvplan::kernels {

std::vector<uint32_t> FragmentTableImage() {
  std::vector<uint32_t> words(kFragmentTableBytes / 4, 0);
  auto* bytes = reinterpret_cast<uint8_t*>(words.data());
  for (int bits = 1; bits <= 8; ++bits) {
    const Codebook& book = LloydMaxCodebook(bits);
    const int start = FragmentTableStart(bits), stride = FragmentTableStride(bits);
    if (bits <= 4) {
      const int n = 1 << bits;
      for (int e = 0; e < FragmentTableEntries(bits); ++e) {
        const uint32_t pair = FloatToHalf(book.centroids[e & (n - 1)]) |
                              (uint32_t{FloatToHalf(book.centroids[e >> bits])} << 16);
        for (int replica = 0; replica < stride / 4; ++replica) {
          std::memcpy(bytes + start + e * stride + 4 * replica, &pair, 4);
        }
      }
    } else {
      for (int k = 0; k < FragmentTableEntries(bits); ++k) {
        const uint16_t c = FloatToHalf(book.centroids[k]);
        std::memcpy(bytes + start + k * stride, &c, 2);
      }
    }
  }
  return words;
}

float FragmentUnitCentroid(int bits, int code) { return LloydMaxCodebook(bits).centroids[code]; }

}  // namespace kvplan::kernels
