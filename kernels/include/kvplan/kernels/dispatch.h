// Runtime sizes -> compile-time kernel parameters, with one explicit supported
// set per parameter. Anything outside a set is an error that names the value
// and the set (UnsupportedDecodeConfig), never a silent fallback.
//
// Supported:  head_dim {64, 128}   group_size {1, 2, 4, 8}   v_bits {2, 3, 4, 8}
// K group widths are runtime values inside the kernels (all of 1..8).
//
// Example:
//   std::string error = UnsupportedDecodeConfig(128, 4, 3);  // "" (supported)
//   UnsupportedDecodeConfig(96, 4, 3);
//   // "head_dim 96 is not supported; supported: {64, 128}"
//   cudaError_t e = DispatchDecodeConfig(128, 4, 3, [&](auto hd, auto gs, auto vb) {
//     return Launch<decltype(hd)::value, decltype(gs)::value, decltype(vb)::value>(...);
//   });
#ifndef KVPLAN_KERNELS_DISPATCH_H_
#define KVPLAN_KERNELS_DISPATCH_H_

#include <cuda_runtime_api.h>

#include <string>
#include <type_traits>

namespace kvplan::kernels {

// "" when the value is in its dispatch set, otherwise a message naming it and
// the set. Separate so that callers can check one parameter (a plan checks
// each layer's V width and names the layer).
inline std::string UnsupportedHeadDim(int head_dim) {
  if (head_dim == 64 || head_dim == 128) return "";
  return "head_dim " + std::to_string(head_dim) + " is not supported; supported: {64, 128}";
}
inline std::string UnsupportedGroupSize(int group_size) {
  if (group_size == 1 || group_size == 2 || group_size == 4 || group_size == 8) return "";
  return "group_size " + std::to_string(group_size) + " is not supported; supported: {1, 2, 4, 8}";
}
inline std::string UnsupportedVBits(int v_bits) {
  if (v_bits == 2 || v_bits == 3 || v_bits == 4 || v_bits == 8) return "";
  return "v_bits " + std::to_string(v_bits) + " is not supported; supported: {2, 3, 4, 8}";
}

// "" when (head_dim, group_size, v_bits) is in the dispatch set, otherwise a
// message naming the first unsupported value and its set.
inline std::string UnsupportedDecodeConfig(int head_dim, int group_size, int v_bits) {
  if (std::string e = UnsupportedHeadDim(head_dim); !e.empty()) return e;
  if (std::string e = UnsupportedGroupSize(group_size); !e.empty()) return e;
  return UnsupportedVBits(v_bits);
}

template <int V>
using IntConstant = std::integral_constant<int, V>;

// Calls f(IntConstant<V>{}) for the V of VALUES equal to `value`; returns
// cudaErrorInvalidValue when none is.
template <int... VALUES, typename F>
cudaError_t DispatchOneOf(int value, F&& f) {
  cudaError_t result = cudaErrorInvalidValue;
  (void)((value == VALUES ? (result = f(IntConstant<VALUES>{}), true) : false) || ...);
  return result;
}

template <typename F>
cudaError_t DispatchHeadDim(int head_dim, F&& f) {
  return DispatchOneOf<64, 128>(head_dim, f);
}

template <typename F>
cudaError_t DispatchGroupSize(int group_size, F&& f) {
  return DispatchOneOf<1, 2, 4, 8>(group_size, f);
}

template <typename F>
cudaError_t DispatchVBits(int v_bits, F&& f) {
  return DispatchOneOf<2, 3, 4, 8>(v_bits, f);
}

// f(IntConstant<HEAD_DIM>, IntConstant<GROUP_SIZE>, IntConstant<V_BITS>).
template <typename F>
cudaError_t DispatchDecodeConfig(int head_dim, int group_size, int v_bits, F&& f) {
  return DispatchHeadDim(head_dim, [&](auto hd) {
    return DispatchGroupSize(group_size, [&](auto gs) {
      return DispatchVBits(v_bits, [&](auto vb) { return f(hd, gs, vb); });
    });
  });
}

}  // namespace kvplan::kernels

#endif  // KVPLAN_KERNELS_DISPATCH_H_
