#include "worker/cli/runtime_flags.h"

namespace kvplan::worker_cli {

absl::StatusOr<RuntimeOptions> RuntimeFlags(const cli::Flags& flags) {
  RuntimeOptions options;
  if (auto device = flags.Get("device")) options.device = *device;
  if (auto dtype = flags.Get("dtype")) {
    absl::StatusOr<ComputeDType> parsed = ParseComputeDType(*dtype);
    if (!parsed.ok()) return parsed.status();
    options.dtype = *parsed;
  }
  return options;
}

int ReportStatus(const absl::Status& status, std::string_view verb, std::ostream& err) {
  if (status.ok()) return 0;
  err << "kvplan-worker " << verb << ": " << status.message() << "\n";
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kDataLoss:
    case absl::StatusCode::kUnimplemented:
      return 2;
    default:
      return 1;
  }
}

}  // namespace kvplan::worker_cli
