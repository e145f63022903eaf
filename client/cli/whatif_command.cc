// kvplan whatif: what K/V budgets cost and buy, offline from a statistics or energy file.
#include <cmath>

#include "absl/strings/str_format.h"
#include "client/cli/command_util.h"
#include "client/cli/commands.h"
#include "client/cli/inputs.h"
#include "client/cli/whatif_format.h"
#include "core/whatif.h"
#include "nlohmann/json.hpp"

namespace kvplan::cli {
namespace {

absl::Status WhatIf(const std::vector<std::string>& args, std::ostream& out) {
  absl::StatusOr<Flags> flags =
      Flags::Parse(args, {.values = {"energy-json", "k-bits", "v-bits", "score", "min-bits",
                                     "max-bits", "context", "batch", "memory-gib", "k-group-align"},
                          .switches = {"json", "per-layer"}});
  if (!flags.ok()) return flags.status();
  absl::StatusOr<std::string> path = flags->String("energy-json");
  if (!path.ok()) return path.status();
  absl::StatusOr<WhatIfRequest> parsed = WhatIfRequestFlags(*flags);
  if (!parsed.ok()) return parsed.status();
  const WhatIfRequest& request = *parsed;
  absl::StatusOr<EnergyTable> table = ReadEnergyTable(*path);
  if (!table.ok()) return table.status();
  absl::StatusOr<std::vector<WhatIfResult>> results = RunWhatIf(*table, request);
  if (!results.ok()) return results.status();
  if (flags->Has("json")) {
    nlohmann::ordered_json json = nlohmann::ordered_json::array();
    for (const WhatIfResult& r : *results) json.push_back(WhatIfResultToJson(r));
    out << json.dump(2) << "\n";
  } else {
    out << absl::StrFormat("%d layers x %d KV heads x %d blocks (head_dim %d), score %s\n",
                           table->num_layers(), table->num_kv_heads(), table->num_blocks(),
                           2 * table->num_blocks(), ScoreKindName(request.score));
    PrintWhatIfTable(*results, request, flags->Has("per-layer"), out);
  }
  return absl::OkStatus();
}

}  // namespace

int RunWhatIf(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  return ReportStatus(WhatIf(args, out), "whatif", err);
}

}  // namespace kvplan::cli
