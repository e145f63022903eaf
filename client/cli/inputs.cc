#include "client/cli/inputs.h"

#include "absl/strings/str_format.h"
#include "client/cli/command_util.h"
#include "core/block_stats.h"
#include "core/calibration_file.h"
#include "core/file_io.h"
#include "nlohmann/json.hpp"

namespace kvplan::cli {

absl::StatusOr<EnergyTable> ReadEnergyTable(const std::filesystem::path& path) {
  absl::StatusOr<std::string> bytes = ReadFile(path);
  if (!bytes.ok()) return bytes.status();
  auto annotate = [&](const absl::Status& st) { return AnnotateWithPath(st, path.string()); };
  if (LooksLikeCalibrationFile(*bytes)) {
    absl::StatusOr<CalibrationFile> file = ParseCalibrationFile(*bytes);
    if (!file.ok()) return annotate(file.status());
    absl::StatusOr<EnergyTable> table = EnergyTableFromStats(file->stats);
    if (!table.ok()) return annotate(table.status());
    return table;
  }
  if (bytes->starts_with("KVPS")) {
    absl::StatusOr<BlockStats> stats = BlockStats::Deserialize(*bytes);
    if (!stats.ok()) return annotate(stats.status());
    absl::StatusOr<EnergyTable> table = EnergyTableFromStats(*stats);
    if (!table.ok()) return annotate(table.status());
    return table;
  }
  nlohmann::json json = nlohmann::json::parse(*bytes, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s is neither valid JSON nor a kvplan statistics file", path.string()));
  }
  absl::StatusOr<EnergyTable> table = EnergyTableFromJson(json);
  if (!table.ok()) return annotate(table.status());
  return table;
}

}  // namespace kvplan::cli
