// kvplan-worker serve: the worker side of the coordinator's calibration jobs
// (worker/serve/serve_loop.h). Built only with the wire API (KVPLAN_BUILD_SERVER).
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "client/cli/flags.h"
#include "worker/cli/calibration_flags.h"
#include "worker/cli/commands.h"
#include "worker/cli/coordinator_flags.h"
#include "worker/cli/runtime_flags.h"
#include "worker/serve/serve_loop.h"

namespace kvplan::worker_cli {
namespace {

absl::Status Serve(const cli::Flags& flags, std::ostream& out, std::ostream& err) {
  serve::ServeOptions options;
  absl::StatusOr<CoordinatorFlagValues> coordinator = CoordinatorFlags(flags);
  if (!coordinator.ok()) return coordinator.status();
  options.client.endpoint = coordinator->endpoint;
  options.client.log = [&err](const std::string& line) { err << line << std::flush; };
  options.models.model_dir = flags.Get("model").value_or("");
  options.models.cache_dir = flags.Get("model-cache").value_or("");
  if (options.models.model_dir.empty() == options.models.cache_dir.empty()) {
    return absl::InvalidArgumentError(
        "pass exactly one of --model DIR (one checkpoint for every job) and --model-cache DIR "
        "(checkpoints in DIR/<model id>/)");
  }
  absl::StatusOr<RuntimeOptions> runtime = RuntimeFlags(flags);
  if (!runtime.ok()) return runtime.status();
  options.models.runtime = *runtime;
  absl::StatusOr<CalibrationSettings> calibration = CalibrationFlags(flags);
  if (!calibration.ok()) return calibration.status();
  options.calibration = *calibration;
  options.worker_id = coordinator->worker_id;
  options.job_id = flags.Get("job").value_or("");
  options.once = flags.Has("once");
  return serve::Serve(options, out);
}

}  // namespace

int RunServe(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  absl::StatusOr<cli::Flags> flags = cli::Flags::Parse(
      args, {.values = {"coordinator", "device", "dtype", "model", "model-cache", "token-file",
                        "tls-ca", "tls-cert", "tls-key", "worker-id", "job", "seq-len", "batch"},
             .switches = {"bos", "once"}});
  if (!flags.ok()) return ReportStatus(flags.status(), "serve", err);
  return ReportStatus(Serve(*flags, out, err), "serve", err);
}

}  // namespace kvplan::worker_cli
