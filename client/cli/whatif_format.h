// How `kvplan whatif` prints its rows, shared by the offline verb and the
// coordinator-backed one so both look the same.
//
// Example:
//   PrintWhatIfTable(rows, request, /*per_layer=*/false, std::cout);
//   std::cout << WhatIfResultToJson(rows[0]).dump(2);
#ifndef KVPLAN_CLIENT_CLI_WHATIF_FORMAT_H_
#define KVPLAN_CLIENT_CLI_WHATIF_FORMAT_H_

#include <ostream>
#include <vector>

#include "absl/status/statusor.h"
#include "client/cli/flags.h"
#include "core/whatif.h"
#include "nlohmann/json.hpp"

namespace kvplan::cli {

inline constexpr double kBytesPerGiB = 1024.0 * 1024.0 * 1024.0;

// --k-bits, --v-bits (whole), --score, --min-bits, --max-bits, --context,
// --batch, --memory-gib and --k-group-align into a request; errors name the flag.
absl::StatusOr<WhatIfRequest> WhatIfRequestFlags(const Flags& flags);

nlohmann::ordered_json WhatIfResultToJson(const WhatIfResult& result);

// One row per budget pair (after a line naming the K alignment, if any); with
// `per_layer`, each K budget's per-layer histogram.
void PrintWhatIfTable(const std::vector<WhatIfResult>& results, const WhatIfRequest& request,
                      bool per_layer, std::ostream& out);

}  // namespace kvplan::cli

#endif  // KVPLAN_CLIENT_CLI_WHATIF_FORMAT_H_
