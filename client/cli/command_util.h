// Small pieces every `kvplan` verb shares.
#ifndef KVPLAN_CLIENT_CLI_COMMAND_UTIL_H_
#define KVPLAN_CLIENT_CLI_COMMAND_UTIL_H_

#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/cli/flags.h"
#include "core/allocator.h"
#include "core/score.h"

namespace kvplan::cli {

// Prints "kvplan VERB: message" for a failed status and returns the exit code:
// 0 for OK, 2 for bad arguments (InvalidArgument, OutOfRange), 1 otherwise.
int ReportStatus(const absl::Status& status, std::string_view verb, std::ostream& err);

// `status` with "PATH: " before its message (same code).
absl::Status AnnotateWithPath(const absl::Status& status, const std::string& path);

// --score, defaulting to the paper's sum.
absl::StatusOr<ScoreKind> ScoreFlag(const Flags& flags);

// --min-bits / --max-bits (defaults 1 and 8) into allocation options.
absl::StatusOr<AllocationOptions> BitRangeFlags(const Flags& flags);

// Layers kept at higher precision (PlanOptions::exempt_layers / exempt_bits).
struct ExemptLayers {
  std::vector<int> layers;
  int bits = 8;
};

// --exempt-layers 0,31 (whole layer indices, as given: the plan checks them
// against the model) and --exempt-bits (whole, default 8; only with
// --exempt-layers). Empty layers when --exempt-layers is absent.
absl::StatusOr<ExemptLayers> ExemptLayerFlags(const Flags& flags);

// --k-group-align N (PlanOptions::k_group_align: dims per K width-group unit;
// default 0, off), as given: the plan or what-if checks it against the model's
// head_dim. OutOfRange when it does not fit an int.
absl::StatusOr<int> KGroupAlignFlag(const Flags& flags);

}  // namespace kvplan::cli

#endif  // KVPLAN_CLIENT_CLI_COMMAND_UTIL_H_
