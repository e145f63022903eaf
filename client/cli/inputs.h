// Reading the inputs the offline verbs of `kvplan` take.
#ifndef KVPLAN_CLIENT_CLI_INPUTS_H_
#define KVPLAN_CLIENT_CLI_INPUTS_H_

#include <filesystem>

#include "absl/status/statusor.h"
#include "core/energy_table.h"

namespace kvplan::cli {

// Reads block energies from `path`: a statistics file written by
// `kvplan-worker calibrate` (binary, "KVPS" header) or a JSON energy/score file
// (see core/energy_table.h). Errors name the file and what is wrong in it.
absl::StatusOr<EnergyTable> ReadEnergyTable(const std::filesystem::path& path);

}  // namespace kvplan::cli

#endif  // KVPLAN_CLIENT_CLI_INPUTS_H_
