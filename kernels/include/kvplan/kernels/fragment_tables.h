// The code tables of the fragment-page decode kernel (fragment_decode.cuh) as
// they sit in its shared memory: each width's table at a multiple of its own
// size within an 8 KB-aligned area, so that a lookup's address is one LOP3,
// (field & mask) | (area + table start + the lane's replica):
//   widths 1..3: 2^(2b) code-pair entries x 32 replicas, entry stride 128 B
//                (replica = lane: conflict-free lookups)
//   width 4:     256 pair entries x 8 replicas, entry stride 32 B
//   widths 5..8: 2^b fp16 centroids, one copy
// A pair entry e holds fp16x2 (c[e mod 2^b], c[e div 2^b]), low half first.
// Plain C++ (host and device): the image is built once on the host from the
// unit Lloyd–Max codebooks (core/codebook.h) and copied to every CTA.
//
// Example:
//   const std::vector<uint32_t> image = FragmentTableImage();  // kFragmentTableBytes / 4 words
//   cudaMemcpy(d_tables, image.data(), kFragmentTableBytes, cudaMemcpyHostToDevice);
#ifndef KVPLAN_KERNELS_FRAGMENT_TABLES_H_
#define KVPLAN_KERNELS_FRAGMENT_TABLES_H_

#include <cstdint>
#ifndef __CUDACC_RTC__
#include <vector>
#endif

#include "kvplan/kernels/host_device.h"

namespace kvplan::kernels {

// Byte offset of width `bits`' table in the image.
KVPLAN_HOST_DEVICE constexpr int FragmentTableStart(int bits) {
  return bits == 3   ? 0
         : bits == 4 ? 8192
         : bits == 2 ? 16384
         : bits == 1 ? 18432
         : bits == 8 ? 19456
         : bits == 7 ? 19968
         : bits == 6 ? 20224
                     : 20352;
}
// Bytes between consecutive entries of width `bits`' table.
KVPLAN_HOST_DEVICE constexpr int FragmentTableStride(int bits) {
  return bits <= 3 ? 128 : bits == 4 ? 32 : 2;
}
// Entries of width `bits`' table: code pairs for widths 1..4, codes above.
KVPLAN_HOST_DEVICE constexpr int FragmentTableEntries(int bits) {
  return bits <= 4 ? 1 << (2 * bits) : 1 << bits;
}
inline constexpr int kFragmentTableBytes = 20416;

#ifndef __CUDACC_RTC__
// The image (kFragmentTableBytes / 4 words) of the unit Lloyd–Max codebooks.
std::vector<uint32_t> FragmentTableImage();
// Centroid `code` of the unit Lloyd–Max codebook of width `bits`, as the
// image holds it before the fp16 rounding (for host-side checks).
float FragmentUnitCentroid(int bits, int code);
#endif

}  // namespace kvplan::kernels

#endif  // KVPLAN_KERNELS_FRAGMENT_TABLES_H_
