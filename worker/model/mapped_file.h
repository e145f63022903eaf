// A read-only memory mapping of a whole file.
//
// Checkpoint shards are gigabytes: they are mapped, never read into memory, so
// the page cache holds the only copy and unused tensors cost nothing.
//
// Example:
//   absl::StatusOr<MappedFile> file = MappedFile::Open("model.safetensors");
//   if (!file.ok()) return file.status();
//   absl::Span<const uint8_t> bytes = file->bytes();
//
// Thread safety: immutable after Open; the bytes may be read from any thread.
#ifndef KVPLAN_WORKER_MODEL_MAPPED_FILE_H_
#define KVPLAN_WORKER_MODEL_MAPPED_FILE_H_

#include <cstdint>
#include <filesystem>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace kvplan {

// Move-only owner of a read-only mapping; unmaps on destruction. Moving keeps
// the address of the bytes, so spans into a moved-from file stay valid.
class MappedFile {
 public:
  // Maps all of `path` read-only. NotFound / PermissionDenied / Internal name
  // the path. An empty file maps to an empty span.
  static absl::StatusOr<MappedFile> Open(const std::filesystem::path& path);

  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  absl::Span<const uint8_t> bytes() const { return {data_, size_}; }
  const std::filesystem::path& path() const { return path_; }

 private:
  MappedFile(std::filesystem::path path, const uint8_t* data, size_t size)
      : path_(std::move(path)), data_(data), size_(size) {}
  void Unmap();

  std::filesystem::path path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace kvplan

#endif  // KVPLAN_WORKER_MODEL_MAPPED_FILE_H_
