// The verbs of the `kvplan` tool. Each takes the arguments after the verb,
// writes results to `out` and diagnostics to `err`, and returns the exit code
// (0 success, 1 failure, 2 bad usage).
#ifndef KVPLAN_CLIENT_CLI_COMMANDS_H_
#define KVPLAN_CLIENT_CLI_COMMANDS_H_

#include <ostream>
#include <string>
#include <vector>

namespace kvplan::cli {

// kvplan allocate --energy-json FILE --bits B [--score sum|product|q|k]
//                 [--min-bits 1] [--max-bits 8] [--json]
int RunAllocate(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// kvplan whatif --energy-json FILE --k-bits 2,2.5,3 --v-bits 2,3 [--score sum]
//               [--min-bits 1] [--max-bits 8] [--context 131072] [--batch 1]
//               [--memory-gib G] [--k-group-align N] [--per-layer] [--json]
int RunWhatIf(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// kvplan plan build --stats FILE [--model-config config.json] --k-bits B --v-bits B
//                   [--score sum] [--min-bits 1] [--max-bits 8] [--uniform]
//                   [--rotation-seed N] [--exempt-layers L,L [--exempt-bits 8]]
//                   [--k-group-align N] --out plan.json
int RunPlan(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace kvplan::cli

#endif  // KVPLAN_CLIENT_CLI_COMMANDS_H_
