// The statistics file `kvplan-worker calibrate` writes and `kvplan plan build` reads.
//
// It carries the merged BlockStats together with what a plan needs to know about
// the model they came from (its fingerprint, RoPE layout and query heads), so a
// plan can be built offline from the file alone.
//
//   file     := "KVPC" u32:version(=1) u32:meta_bytes meta u64:stats_bytes stats checksum
//   meta     := JSON {"model": {"fingerprint": str, "architecture": str, "num_q_heads": int,
//                     "rope": <RopeSpecToJson>}, "prompts_sha256": str, "source": str}
//   stats    := BlockStats::Serialize() (its own "KVPS" grammar and checksum)
//   checksum := 64 ASCII bytes: lowercase hex SHA-256 of everything before it
//   (integers little-endian)
//
// Example:
//   CalibrationFile file{.model_fingerprint = fp, .rope = rope, .num_q_heads = 32,
//                        .stats = std::move(stats)};
//   absl::Status st = WriteFileAtomically(path, SerializeCalibrationFile(file));
//   absl::StatusOr<CalibrationFile> back = ParseCalibrationFile(bytes);
#ifndef KVPLAN_CORE_CALIBRATION_FILE_H_
#define KVPLAN_CORE_CALIBRATION_FILE_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "core/block_stats.h"
#include "core/rope.h"

namespace kvplan {

struct CalibrationFile {
  std::string model_fingerprint;
  std::string architecture;
  RopeSpec rope;
  int num_q_heads = 0;
  // SHA-256 of the prompt file the statistics were taken over.
  std::string prompts_sha256;
  // Free text: where the statistics came from (host, job, command).
  std::string source;
  BlockStats stats;
};

// True when `bytes` start like a calibration file (cheap sniffing for readers
// that accept several formats).
bool LooksLikeCalibrationFile(std::string_view bytes);

std::string SerializeCalibrationFile(const CalibrationFile& file);

// DataLoss naming the bad part for truncated, corrupt or foreign bytes;
// InvalidArgument when the parts disagree (stats blocks vs the RoPE head_dim,
// or query heads not a multiple of KV heads).
absl::StatusOr<CalibrationFile> ParseCalibrationFile(std::string_view bytes);

}  // namespace kvplan

#endif  // KVPLAN_CORE_CALIBRATION_FILE_H_
