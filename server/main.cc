// kvplan-coordinator: the plan registry and serving half of the kvplan service.
//
//   kvplan-coordinator --data-dir DIR [--config FILE] [--listen ADDR] [flags]
//
// Settings come from flags and an optional config file
// (server/coordinator_config.h; --help lists them). Prints "listening on
// HOST:PORT" (and "metrics on HOST:PORT") on stdout once serving; logs go to
// stderr, one JSON object (or text line) each. Runs until SIGTERM or SIGINT,
// then drains and exits 0.
#include <grpc/support/log.h>
#include <signal.h>

#include <atomic>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "server/coordinator_config.h"
#include "server/coordinator_server.h"
#include "server/logger.h"

namespace {

using ::kvplan::server::LogField;
using ::kvplan::server::Logger;
using ::kvplan::server::LogLevel;

// gRPC reports its own events (a client's failed TLS handshake, ...) through
// gpr_set_log_function, which takes a plain function pointer and no context
// pointer, so the logger it reaches has to be process-wide. It is set once in
// main before the server starts and never freed, so a gRPC thread that logs
// while the process exits still finds it.
std::atomic<const Logger*> grpc_log_target{nullptr};

void LogGrpcEvent(gpr_log_func_args* args) {
  const Logger* logger = grpc_log_target.load(std::memory_order_acquire);
  if (logger == nullptr) return;
  // gRPC's ERROR covers peers' failures (a bad handshake), which are not the
  // coordinator's errors; the coordinator logs its own faults at error itself.
  const LogLevel level = args->severity == GPR_LOG_SEVERITY_ERROR  ? LogLevel::kWarn
                         : args->severity == GPR_LOG_SEVERITY_INFO ? LogLevel::kInfo
                                                                   : LogLevel::kDebug;
  logger->Log(level, args->message, {{"file", args->file}, {"line", args->line}});
}

int UsageError(const std::string& message) {
  std::cerr << "kvplan-coordinator: " << message << "\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (kvplan::server::WantsHelp(args)) {
    std::cout << kvplan::server::CoordinatorUsage();
    return 0;
  }
  // Until the logger exists (its format is a setting), errors are plain text.
  absl::StatusOr<kvplan::server::CoordinatorConfig> config =
      kvplan::server::LoadCoordinatorConfig(args);
  if (!config.ok()) return UsageError(std::string(config.status().message()));
  kvplan::server::CoordinatorOptions& options = config->server;
  const Logger logger({.format = config->log_format,
                       .min_level = config->log_level,
                       .component = "coordinator",
                       .sink = kvplan::server::StderrSink()});
  options.logger = logger;
  grpc_log_target.store(new Logger(logger.WithComponent("grpc")), std::memory_order_release);
  gpr_set_log_function(LogGrpcEvent);

  // Blocked before any thread starts, so every thread inherits the mask and the
  // signals are taken only by sigwait below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::StatusOr<std::unique_ptr<kvplan::server::CoordinatorServer>> server =
      kvplan::server::CoordinatorServer::Start(options);
  if (!server.ok()) {
    logger.Error("cannot start", {{"error", std::string(server.status().message())},
                                  {"code", absl::StatusCodeToString(server.status().code())}});
    return 1;
  }
  // stdout carries only these lines, which scripts and tests wait for.
  std::cout << "listening on " << (*server)->address() << std::endl;
  std::string metrics_address;
  if ((*server)->metrics_port() != 0) {
    const std::string host = options.metrics_listen.substr(0, options.metrics_listen.rfind(':'));
    metrics_address = absl::StrFormat("%s:%d", host, (*server)->metrics_port());
    std::cout << "metrics on " << metrics_address << std::endl;
  }
  std::vector<LogField> fields = {{"address", (*server)->address()},
                                  {"data_dir", options.data_dir},
                                  {"tls", !options.tls_cert_pem.empty()},
                                  {"client_certificates", !options.tls_client_ca_pem.empty()},
                                  {"bearer_token", !options.auth_token.empty()},
                                  {"authenticate_reads", options.authenticate_reads}};
  if (!metrics_address.empty()) fields.emplace_back("metrics_address", metrics_address);
  if (!config->config_file.empty()) fields.emplace_back("config_file", config->config_file);
  logger.Info("serving", fields);

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  constexpr absl::Duration kGrace = absl::Seconds(5);
  logger.Info("draining",
              {{"signal", signal_number}, {"grace_ms", absl::ToInt64Milliseconds(kGrace)}});
  (*server)->Shutdown(kGrace);
  logger.Info("stopped");
  return 0;
}
