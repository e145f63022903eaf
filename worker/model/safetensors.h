// Read-only, zero-copy access to the tensors of a .safetensors file.
//
// The file is memory-mapped and its JSON header parsed and checked once: every
// tensor's bytes lie inside the file, do not overlap another's, are aligned to
// their element size, and are exactly shape × element-size long. A `TensorView`
// then points straight into the mapping; nothing is copied.
//
// Example:
//   absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Open("model.safetensors");
//   if (!file.ok()) return file.status();
//   if (const TensorView* w = file->Find("model.embed_tokens.weight")) {
//     // w->dtype == DType::kBF16, w->shape == {4096, 384}, w->bytes.size() == 4096*384*2
//   }
//
// Thread safety: immutable after Open; views may be read from any thread while
// the file object is alive.
#ifndef KVPLAN_WORKER_MODEL_SAFETENSORS_H_
#define KVPLAN_WORKER_MODEL_SAFETENSORS_H_

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "worker/model/mapped_file.h"

namespace kvplan {

// Element types the model runtime computes with. Other safetensors types
// (integers, F64, FP8, ...) are parsed, so their sizes are checked too, but
// reported as kOther: a model that needs such a tensor is refused by name.
enum class DType { kF32, kF16, kBF16, kOther };

// "F32", "F16", "BF16" ("other" for kOther; see TensorView::dtype_name).
std::string_view DTypeName(DType dtype);

// One tensor of a safetensors file: a view into the file's mapping.
struct TensorView {
  std::string name;
  DType dtype = DType::kOther;
  // The dtype string as written in the file ("BF16", "I32", ...).
  std::string dtype_name;
  // Bytes per element (1 for BOOL/U8/I8/F8_*, 8 for I64/U64/F64).
  int element_size = 0;
  std::vector<int64_t> shape;
  // Row-major data, little-endian, exactly num_elements() * element_size bytes.
  absl::Span<const uint8_t> bytes;

  int64_t num_elements() const;
};

// "[4096, 384]".
std::string DimsString(absl::Span<const int64_t> shape);

class SafetensorsFile {
 public:
  // Largest JSON header accepted (the reference implementation's limit).
  static constexpr uint64_t kMaxHeaderBytes = 100 << 20;

  // Maps and validates `path`. Errors name the file and, where one is at fault,
  // the tensor:
  //   DataLoss: file shorter than the 8-byte header length; header length past
  //     the end of the file; malformed JSON or a malformed tensor entry; data
  //     offsets past the end, overlapping, or not aligned to the element size;
  //     byte length not equal to shape × element size.
  //   InvalidArgument: a dtype string that safetensors does not define.
  //   NotFound / PermissionDenied: the file cannot be opened.
  static absl::StatusOr<SafetensorsFile> Open(const std::filesystem::path& path);

  // The tensor named `name`, or nullptr.
  const TensorView* Find(std::string_view name) const;
  // Every tensor, in order of their data offsets.
  const std::vector<TensorView>& tensors() const { return tensors_; }
  const std::filesystem::path& path() const { return file_.path(); }

 private:
  SafetensorsFile(MappedFile file, std::vector<TensorView> tensors);

  MappedFile file_;
  std::vector<TensorView> tensors_;
  absl::flat_hash_map<std::string, size_t> index_;
};

}  // namespace kvplan

#endif  // KVPLAN_WORKER_MODEL_SAFETENSORS_H_
