// The flags that shape a calibration pass, shared by `calibrate` and `serve`
// so that a served shard is windowed and batched exactly as `calibrate` would.
//
// Example:
//   absl::StatusOr<CalibrationSettings> s = CalibrationFlags(flags);
//   // --max-tokens (when present in the verb's spec), --seq-len, --batch, --bos
#ifndef KVPLAN_WORKER_CLI_CALIBRATION_FLAGS_H_
#define KVPLAN_WORKER_CLI_CALIBRATION_FLAGS_H_

#include "absl/status/statusor.h"
#include "client/cli/flags.h"
#include "worker/calibration/calibration_pass.h"

namespace kvplan::worker_cli {

// --max-tokens N, --seq-len N, --batch N (default 8): positive when given;
// --bos. InvalidArgument naming the flag.
absl::StatusOr<CalibrationSettings> CalibrationFlags(const cli::Flags& flags);

}  // namespace kvplan::worker_cli

#endif  // KVPLAN_WORKER_CLI_CALIBRATION_FLAGS_H_
