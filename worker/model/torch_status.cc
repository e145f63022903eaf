#include "worker/model/torch_status.h"

#include <new>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace kvplan::torch_internal {

absl::Status StatusFromTorchError(const c10::Error& error, std::string_view context) {
  const std::string message = absl::StrFormat("%s: %s", context, error.what_without_backtrace());
  // Subclass checks first: these classes exist from LibTorch 1.13 to 2.x.
  if (dynamic_cast<const c10::OutOfMemoryError*>(&error) != nullptr) {
    return absl::ResourceExhaustedError(message);
  }
  if (dynamic_cast<const c10::NotImplementedError*>(&error) != nullptr) {
    return absl::UnimplementedError(message);
  }
  if (dynamic_cast<const c10::IndexError*>(&error) != nullptr ||
      dynamic_cast<const c10::ValueError*>(&error) != nullptr ||
      dynamic_cast<const c10::TypeError*>(&error) != nullptr) {
    return absl::InvalidArgumentError(message);
  }
  // A kernel missing for a dtype is a plain c10::Error ("... not implemented for
  // 'Half'"); the wording has been stable across releases, and the fallback if it
  // ever changes is only a less specific code.
  if (std::string_view(error.what_without_backtrace()).find("not implemented for") !=
      std::string_view::npos) {
    return absl::UnimplementedError(message);
  }
  return absl::InternalError(message);
}

absl::Status StatusFromException(const std::exception& error, std::string_view context) {
  const std::string message = absl::StrFormat("%s: %s", context, error.what());
  if (dynamic_cast<const std::bad_alloc*>(&error) != nullptr) {
    return absl::ResourceExhaustedError(message);
  }
  return absl::InternalError(message);
}

}  // namespace kvplan::torch_internal
