// The one place LibTorch exceptions become absl::Status.
//
// Private to the worker's Torch translation units (it includes a c10 header):
// public headers of worker/model stay free of Torch. Every entry point that
// runs Torch code wraps it in CallTorch, so no exception crosses a module
// boundary.
//
// Example:
//   absl::StatusOr<at::Tensor> t = CallTorch("loading weights", [&]() -> absl::StatusOr<at::Tensor>
//   {
//     return at::ones({2, 2});
//   });
//   // On a c10::Error: Internal "loading weights: <LibTorch's message>".
#ifndef KVPLAN_WORKER_MODEL_TORCH_STATUS_H_
#define KVPLAN_WORKER_MODEL_TORCH_STATUS_H_

#include <exception>
#include <string_view>

#include "absl/status/status.h"
#include "c10/util/Exception.h"

namespace kvplan::torch_internal {

// ResourceExhausted for out-of-memory, Unimplemented for an operator missing
// for a dtype/device, InvalidArgument for index/value/type errors, else
// Internal. The message is `context` then LibTorch's message without backtrace.
absl::Status StatusFromTorchError(const c10::Error& error, std::string_view context);
// For exceptions that are not c10::Error (std::bad_alloc, ...).
absl::Status StatusFromException(const std::exception& error, std::string_view context);

// Runs `fn` (returning absl::Status or absl::StatusOr<T>), turning exceptions
// into its status.
template <typename Fn>
auto CallTorch(std::string_view context, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const c10::Error& error) {
    return StatusFromTorchError(error, context);
  } catch (const std::exception& error) {
    return StatusFromException(error, context);
  }
}

}  // namespace kvplan::torch_internal

#endif  // KVPLAN_WORKER_MODEL_TORCH_STATUS_H_
