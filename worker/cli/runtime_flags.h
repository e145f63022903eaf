// Flags every model-running verb of kvplan-worker shares, and the exit-code
// convention.
//
// Example:
//   absl::StatusOr<RuntimeOptions> runtime = RuntimeFlags(flags);  // --device, --dtype
//   return ReportStatus(status, "generate", err);  // 2 for bad input, 1 otherwise
#ifndef KVPLAN_WORKER_CLI_RUNTIME_FLAGS_H_
#define KVPLAN_WORKER_CLI_RUNTIME_FLAGS_H_

#include <ostream>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/cli/flags.h"
#include "worker/model/transformer.h"

namespace kvplan::worker_cli {

// --device (default cpu) and --dtype (default fp32).
absl::StatusOr<RuntimeOptions> RuntimeFlags(const cli::Flags& flags);

// Prints "kvplan-worker VERB: message" for a failed status and returns the exit
// code: 0 OK; 2 InvalidArgument, OutOfRange, NotFound, DataLoss, Unimplemented
// (the input or the request is at fault); 1 otherwise.
int ReportStatus(const absl::Status& status, std::string_view verb, std::ostream& err);

}  // namespace kvplan::worker_cli

#endif  // KVPLAN_WORKER_CLI_RUNTIME_FLAGS_H_
