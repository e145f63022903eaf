#include "core/calibration_file.h"

#include <cstring>

#include "absl/strings/str_format.h"
#include "core/byte_io.h"
#include "core/digest.h"
#include "nlohmann/json.hpp"

namespace kvplan {
namespace {

constexpr char kMagic[4] = {'K', 'V', 'P', 'C'};
constexpr uint32_t kVersion = 1;
constexpr size_t kChecksumBytes = 64;

// A little-endian integer at a position the caller has bounds-checked.
uint64_t LittleEndianAt(std::string_view in, size_t pos, int bytes) {
  uint64_t value = 0;
  ByteReader(in.substr(pos)).LittleEndian(bytes, &value);
  return value;
}

std::string StringField(const nlohmann::json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : "";
}

}  // namespace

bool LooksLikeCalibrationFile(std::string_view bytes) {
  return bytes.size() >= sizeof(kMagic) && std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) == 0;
}

std::string SerializeCalibrationFile(const CalibrationFile& file) {
  const nlohmann::json meta = {{"model",
                                {{"fingerprint", file.model_fingerprint},
                                 {"architecture", file.architecture},
                                 {"num_q_heads", file.num_q_heads},
                                 {"rope", RopeSpecToJson(file.rope)}}},
                               {"prompts_sha256", file.prompts_sha256},
                               {"source", file.source}};
  const std::string meta_text = meta.dump();
  const std::string stats = file.stats.Serialize();
  std::string out(kMagic, sizeof(kMagic));
  AppendLittleEndian(out, kVersion, 4);
  AppendLittleEndian(out, meta_text.size(), 4);
  out += meta_text;
  AppendLittleEndian(out, stats.size(), 8);
  out += stats;
  out += Sha256Hex(out);
  return out;
}

absl::StatusOr<CalibrationFile> ParseCalibrationFile(std::string_view bytes) {
  if (!LooksLikeCalibrationFile(bytes) || bytes.size() < 12 + 8 + kChecksumBytes) {
    return absl::DataLossError("not a kvplan calibration file (no 'KVPC' header)");
  }
  const uint32_t version = static_cast<uint32_t>(LittleEndianAt(bytes, 4, 4));
  if (version != kVersion) {
    return absl::DataLossError(absl::StrFormat(
        "calibration file version %d is not supported (this build reads %d)", version, kVersion));
  }
  const std::string_view body = bytes.substr(0, bytes.size() - kChecksumBytes);
  if (Sha256Hex(body) != bytes.substr(bytes.size() - kChecksumBytes)) {
    return absl::DataLossError("calibration file checksum mismatch: truncated or corrupt");
  }
  const uint64_t meta_bytes = LittleEndianAt(bytes, 8, 4);
  if (12 + meta_bytes + 8 > body.size()) {
    return absl::DataLossError("calibration file metadata runs past the end of the file");
  }
  const uint64_t stats_bytes = LittleEndianAt(bytes, 12 + meta_bytes, 8);
  if (12 + meta_bytes + 8 + stats_bytes != body.size()) {
    return absl::DataLossError("calibration file statistics length disagrees with the file size");
  }
  const nlohmann::json meta =
      nlohmann::json::parse(body.substr(12, meta_bytes), nullptr, /*allow_exceptions=*/false);
  if (meta.is_discarded() || !meta.is_object() || !meta.contains("model") ||
      !meta["model"].is_object() || !meta["model"].contains("rope")) {
    return absl::DataLossError("calibration file metadata is not the expected JSON object");
  }
  absl::StatusOr<BlockStats> stats =
      BlockStats::Deserialize(body.substr(12 + meta_bytes + 8, stats_bytes));
  if (!stats.ok()) return stats.status();
  absl::StatusOr<RopeSpec> rope = RopeSpecFromJson(meta["model"]["rope"]);
  if (!rope.ok()) return rope.status();
  const nlohmann::json& model = meta["model"];
  CalibrationFile file{
      .model_fingerprint = StringField(model, "fingerprint"),
      .architecture = StringField(model, "architecture"),
      .rope = *rope,
      .num_q_heads = model.contains("num_q_heads") && model["num_q_heads"].is_number_integer()
                         ? model["num_q_heads"].get<int>()
                         : 0,
      .prompts_sha256 = StringField(meta, "prompts_sha256"),
      .source = StringField(meta, "source"),
      .stats = *std::move(stats)};
  const StatsShape& shape = file.stats.shape();
  if (shape.num_blocks != file.rope.num_blocks()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "calibration file statistics have %d blocks per head but its RoPE head_dim %d has %d",
        shape.num_blocks, file.rope.head_dim, file.rope.num_blocks()));
  }
  if (file.num_q_heads != shape.num_kv_heads * shape.group_size) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "calibration file names %d query heads but its statistics have %d KV heads x group %d",
        file.num_q_heads, shape.num_kv_heads, shape.group_size));
  }
  return file;
}

}  // namespace kvplan
