#include "client/cli/service_commands.h"

#include "absl/strings/str_format.h"
#include "client/cli/command_util.h"
#include "client/cli/coordinator_connection.h"

namespace kvplan::cli {

bool IsServiceNoun(const std::string& noun) {
  return noun == "models" || noun == "jobs" || noun == "plans" || noun == "channels" ||
         noun == "whatif" || noun == "artifacts";
}

int RunServiceNoun(const CoordinatorFlags& coordinator, const std::string& noun,
                   const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  const std::string verb =
      noun == "whatif" || args.empty() ? noun : absl::StrFormat("%s %s", noun, args[0]);
  absl::StatusOr<CoordinatorConnection> connection = OpenCoordinator(coordinator);
  if (!connection.ok()) return ReportStatus(connection.status(), verb, err);
  absl::Status status;
  if (noun == "models") {
    status = RunModelsNoun(*connection, args, out);
  } else if (noun == "jobs") {
    status = RunJobsNoun(*connection, args, out);
  } else if (noun == "plans") {
    status = RunPlansNoun(*connection, args, out);
  } else if (noun == "channels") {
    status = RunChannelsNoun(*connection, args, out);
  } else if (noun == "whatif") {
    status = RunRemoteWhatIf(*connection, args, out);
  } else if (noun == "artifacts") {
    status = RunArtifactsNoun(*connection, args, out);
  } else {
    status = absl::InvalidArgumentError(absl::StrFormat("unknown noun '%s'", noun));
  }
  return ReportStatus(status, verb, err);
}

}  // namespace kvplan::cli
