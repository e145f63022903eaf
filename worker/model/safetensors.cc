// Safetensors file layout (https://github.com/huggingface/safetensors):
//
//   file     := header_len header data
//   header_len := uint64, little-endian: byte length of `header`
//   header   := UTF-8 JSON object { name: entry, ..., ["__metadata__": {str: str}] }
//   entry    := { "dtype": DTYPE, "shape": [uint, ...], "data_offsets": [begin, end] }
//   data     := the tensors' bytes; an entry's bytes are data[begin, end),
//               row-major, little-endian
//
// The writer pads the header with spaces so that `data` starts 8-byte aligned,
// and orders tensors by decreasing alignment; we rely on neither and check
// every tensor's alignment instead.
#include "worker/model/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace kvplan {
namespace {

using nlohmann::json;

struct DTypeInfo {
  const char* name;
  int size;
  DType dtype;
};

constexpr DTypeInfo kDTypes[] = {
    {"F32", 4, DType::kF32},    {"F16", 2, DType::kF16},       {"BF16", 2, DType::kBF16},
    {"F64", 8, DType::kOther},  {"I64", 8, DType::kOther},     {"U64", 8, DType::kOther},
    {"I32", 4, DType::kOther},  {"U32", 4, DType::kOther},     {"I16", 2, DType::kOther},
    {"U16", 2, DType::kOther},  {"I8", 1, DType::kOther},      {"U8", 1, DType::kOther},
    {"BOOL", 1, DType::kOther}, {"F8_E4M3", 1, DType::kOther}, {"F8_E5M2", 1, DType::kOther},
};

const DTypeInfo* FindDType(std::string_view name) {
  for (const DTypeInfo& info : kDTypes) {
    if (name == info.name) return &info;
  }
  return nullptr;
}

std::string KnownDTypes() {
  std::vector<std::string> names;
  for (const DTypeInfo& info : kDTypes) names.emplace_back(info.name);
  return absl::StrJoin(names, ", ");
}

// Parses one header entry (everything but the checks across tensors).
absl::StatusOr<TensorView> ParseEntry(const std::string& name, const json& entry, uint64_t* begin,
                                      uint64_t* end) {
  if (!entry.is_object()) return absl::DataLossError("entry is not a JSON object");
  auto dtype_it = entry.find("dtype");
  if (dtype_it == entry.end() || !dtype_it->is_string()) {
    return absl::DataLossError("entry has no string \"dtype\"");
  }
  TensorView view;
  view.name = name;
  view.dtype_name = dtype_it->get<std::string>();
  const DTypeInfo* info = FindDType(view.dtype_name);
  if (info == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("unknown dtype \"", view.dtype_name,
                                                   "\"; safetensors defines ", KnownDTypes()));
  }
  view.dtype = info->dtype;
  view.element_size = info->size;

  auto shape_it = entry.find("shape");
  if (shape_it == entry.end() || !shape_it->is_array()) {
    return absl::DataLossError("entry has no \"shape\" array");
  }
  for (const json& dim : *shape_it) {
    if (!dim.is_number_unsigned()) {
      return absl::DataLossError(
          absl::StrCat("shape has a non-integer or negative dimension ", dim.dump()));
    }
    const uint64_t value = dim.get<uint64_t>();
    if (value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return absl::DataLossError(absl::StrCat("shape dimension ", value, " is too large"));
    }
    view.shape.push_back(static_cast<int64_t>(value));
  }

  auto offsets_it = entry.find("data_offsets");
  if (offsets_it == entry.end() || !offsets_it->is_array() || offsets_it->size() != 2 ||
      !(*offsets_it)[0].is_number_unsigned() || !(*offsets_it)[1].is_number_unsigned()) {
    return absl::DataLossError("entry has no \"data_offsets\": [begin, end] of unsigned integers");
  }
  *begin = (*offsets_it)[0].get<uint64_t>();
  *end = (*offsets_it)[1].get<uint64_t>();
  if (*end < *begin) {
    return absl::DataLossError(
        absl::StrCat("data_offsets [", *begin, ", ", *end, "] end before they begin"));
  }
  // shape × element size, refusing overflow rather than wrapping into a match.
  uint64_t expected = static_cast<uint64_t>(view.element_size);
  for (int64_t dim : view.shape) {
    if (dim != 0 && expected > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(dim)) {
      return absl::DataLossError(
          absl::StrCat("shape ", DimsString(view.shape), " overflows a 64-bit byte count"));
    }
    expected *= static_cast<uint64_t>(dim);
  }
  if (*end - *begin != expected) {
    return absl::DataLossError(
        absl::StrFormat("data_offsets [%d, %d] hold %d bytes but shape %s of %s needs %d", *begin,
                        *end, *end - *begin, DimsString(view.shape), view.dtype_name, expected));
  }
  return view;
}

}  // namespace

std::string_view DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "F32";
    case DType::kF16:
      return "F16";
    case DType::kBF16:
      return "BF16";
    case DType::kOther:
      break;
  }
  return "other";
}

int64_t TensorView::num_elements() const {
  int64_t n = 1;
  for (int64_t dim : shape) n *= dim;
  return n;
}

std::string DimsString(absl::Span<const int64_t> shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

SafetensorsFile::SafetensorsFile(MappedFile file, std::vector<TensorView> tensors)
    : file_(std::move(file)), tensors_(std::move(tensors)) {
  for (size_t i = 0; i < tensors_.size(); ++i) index_.emplace(tensors_[i].name, i);
}

const TensorView* SafetensorsFile::Find(std::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

absl::StatusOr<SafetensorsFile> SafetensorsFile::Open(const std::filesystem::path& path) {
  absl::StatusOr<MappedFile> file = MappedFile::Open(path);
  if (!file.ok()) return file.status();
  const absl::Span<const uint8_t> bytes = file->bytes();
  const std::string where = path.string();
  if (bytes.size() < 8) {
    return absl::DataLossError(absl::StrFormat(
        "safetensors file %s is %d bytes, shorter than its 8-byte header length (truncated?)",
        where, bytes.size()));
  }
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];
  if (header_len > bytes.size() - 8) {
    return absl::DataLossError(absl::StrFormat(
        "safetensors file %s: header length %d runs past the end of the %d-byte file (truncated?)",
        where, header_len, bytes.size()));
  }
  if (header_len > kMaxHeaderBytes) {
    return absl::DataLossError(
        absl::StrFormat("safetensors file %s: header length %d exceeds the %d-byte limit", where,
                        header_len, kMaxHeaderBytes));
  }
  const char* header_begin = reinterpret_cast<const char*>(bytes.data() + 8);
  const json header = json::parse(header_begin, header_begin + header_len, nullptr,
                                  /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object()) {
    return absl::DataLossError(absl::StrFormat(
        "safetensors file %s: header is not a JSON object (malformed JSON)", where));
  }

  const uint64_t data_start = 8 + header_len;
  const uint64_t data_size = bytes.size() - data_start;
  struct Placed {
    uint64_t begin, end;
    size_t index;
  };
  std::vector<TensorView> tensors;
  std::vector<Placed> placed;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") continue;
    uint64_t begin = 0, end = 0;
    absl::StatusOr<TensorView> view = ParseEntry(name, entry, &begin, &end);
    if (!view.ok()) {
      return absl::Status(view.status().code(),
                          absl::StrFormat("safetensors file %s, tensor '%s': %s", where, name,
                                          std::string(view.status().message())));
    }
    if (end > data_size) {
      return absl::DataLossError(absl::StrFormat(
          "safetensors file %s, tensor '%s': data_offsets [%d, %d] run past the end of the "
          "%d-byte data section (truncated?)",
          where, name, begin, end, data_size));
    }
    if ((data_start + begin) % static_cast<uint64_t>(view->element_size) != 0) {
      return absl::DataLossError(absl::StrFormat(
          "safetensors file %s, tensor '%s': data at file offset %d is not aligned to its "
          "%d-byte %s elements",
          where, name, data_start + begin, view->element_size, view->dtype_name));
    }
    view->bytes = bytes.subspan(data_start + begin, end - begin);
    placed.push_back({begin, end, tensors.size()});
    tensors.push_back(*std::move(view));
  }

  std::sort(placed.begin(), placed.end(), [](const Placed& a, const Placed& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  // Sorted by begin, a tensor overlaps an earlier one iff it begins before the
  // furthest end seen so far. Empty tensors occupy no bytes and overlap nothing.
  const Placed* furthest = nullptr;
  for (const Placed& cur : placed) {
    if (cur.begin == cur.end) continue;
    if (furthest != nullptr && cur.begin < furthest->end) {
      return absl::DataLossError(
          absl::StrFormat("safetensors file %s: tensor '%s' [%d, %d) overlaps tensor '%s' [%d, %d)",
                          where, tensors[cur.index].name, cur.begin, cur.end,
                          tensors[furthest->index].name, furthest->begin, furthest->end));
    }
    if (furthest == nullptr || cur.end > furthest->end) furthest = &cur;
  }
  std::vector<TensorView> ordered;
  ordered.reserve(tensors.size());
  for (const Placed& p : placed) ordered.push_back(std::move(tensors[p.index]));
  return SafetensorsFile(*std::move(file), std::move(ordered));
}

}  // namespace kvplan
