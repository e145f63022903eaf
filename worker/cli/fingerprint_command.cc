// kvplan-worker fingerprint: the identity a coordinator registers a model under.
#include "absl/strings/str_format.h"
#include "client/cli/flags.h"
#include "worker/cli/commands.h"
#include "worker/cli/runtime_flags.h"
#include "worker/model/checkpoint.h"
#include "worker/model/fingerprint.h"

namespace kvplan::worker_cli {
namespace {

absl::Status Fingerprint(const cli::Flags& flags, std::ostream& out) {
  absl::StatusOr<std::string> model_dir = flags.String("model");
  if (!model_dir.ok()) return model_dir.status();
  absl::StatusOr<Checkpoint> checkpoint = Checkpoint::Open(*model_dir);
  if (!checkpoint.ok()) return checkpoint.status();
  absl::StatusOr<std::string> fingerprint = ModelFingerprint(*checkpoint);
  if (!fingerprint.ok()) return fingerprint.status();
  out << *fingerprint << "\n";
  return absl::OkStatus();
}

}  // namespace

int RunFingerprint(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  absl::StatusOr<cli::Flags> flags = cli::Flags::Parse(args, {.values = {"model"}});
  if (!flags.ok()) return ReportStatus(flags.status(), "fingerprint", err);
  return ReportStatus(Fingerprint(*flags, out), "fingerprint", err);
}

}  // namespace kvplan::worker_cli
