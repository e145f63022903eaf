#include "worker/cli/calibration_flags.h"

#include <cstdint>
#include <utility>

#include "absl/strings/str_format.h"

namespace kvplan::worker_cli {

absl::StatusOr<CalibrationSettings> CalibrationFlags(const cli::Flags& flags) {
  CalibrationSettings settings;
  for (auto [name, target] : {std::pair<const char*, int64_t*>{"max-tokens", &settings.max_tokens},
                              {"seq-len", &settings.seq_len},
                              {"batch", &settings.batch}}) {
    absl::StatusOr<int64_t> value = flags.Int(name, *target);
    if (!value.ok()) return value.status();
    if (*value < 0 || (*value == 0 && flags.Has(name))) {
      return absl::InvalidArgumentError(
          absl::StrFormat("--%s must be positive, got %d", name, *value));
    }
    *target = *value;
  }
  settings.add_bos = flags.Has("bos");
  return settings;
}

}  // namespace kvplan::worker_cli
