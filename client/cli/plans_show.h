// Private to the service verbs of `kvplan`: `kvplan plans show`, a stored plan
// with its validation results (PlanService.GetPlan + ListValidations).
//
// Example:
//   absl::Status st = ShowPlan(connection, {"--model", "llama", "--channel", "stable"}, out);
#ifndef KVPLAN_CLIENT_CLI_PLANS_SHOW_H_
#define KVPLAN_CLIENT_CLI_PLANS_SHOW_H_

#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "client/cli/coordinator_connection.h"

namespace kvplan::cli {

// kvplan plans show (--id DIGEST | --model M --channel C | --model M [--name N] [--version V])
//     [--json]: the plan's version and budget, then every validation result,
// oldest first, with the per-layer table of the latest (the one promotion
// gating reads). --json prints {"version": PlanVersion, "validations": [...]}.
absl::Status ShowPlan(const CoordinatorConnection& c, const std::vector<std::string>& args,
                      std::ostream& out);

}  // namespace kvplan::cli

#endif  // KVPLAN_CLIENT_CLI_PLANS_SHOW_H_
