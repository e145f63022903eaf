// kvplan-coordinator: the plan registry and serving half of the kvplan service.
//
//   kvplan-coordinator --listen ADDR --data-dir DIR [--metrics-listen ADDR]
//                      [--auth-token-file F] [--tls-cert F --tls-key F]
//                      [--max-message-mib N]
//
// Prints "listening on HOST:PORT" (and "metrics on HOST:PORT") once serving,
// then runs until SIGTERM or SIGINT, when it drains and exits 0.
#include <signal.h>

#include <cstdlib>
#include <iostream>
#include <map>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "core/file_io.h"
#include "server/coordinator_server.h"

namespace {

constexpr char kUsage[] = R"(usage: kvplan-coordinator --listen ADDR --data-dir DIR [flags]

  --listen ADDR          gRPC address, host:port; port 0 picks a free port (default 127.0.0.1:0)
  --data-dir DIR         RocksDB store directory, created when missing (required)
  --metrics-listen ADDR  serve Prometheus /metrics on host:port (port 0: any free port)
  --auth-token-file F    write RPCs must carry "authorization: Bearer <token in F>"
  --tls-cert F           PEM certificate chain; with --tls-key serves TLS instead of plaintext
  --tls-key F            PEM private key
  --max-message-mib N    largest request accepted, MiB (default 64)

Prints "listening on HOST:PORT" once serving; SIGTERM or SIGINT drains and exits 0.
)";

int Fail(const std::string& message) {
  std::cerr << "kvplan-coordinator: " << message << "\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  const std::map<std::string, std::string> defaults = {
      {"listen", "127.0.0.1:0"}, {"data-dir", ""}, {"metrics-listen", ""},
      {"auth-token-file", ""},   {"tls-cert", ""}, {"tls-key", ""},
      {"max-message-mib", "64"}};
  std::map<std::string, std::string> flags = defaults;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "help" || arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      return 0;
    }
    if (!arg.starts_with("--") || !defaults.contains(arg.substr(2, arg.find('=') - 2))) {
      return Fail(absl::StrFormat("unknown argument '%s'\n\n%s", argv[i], kUsage));
    }
    arg = arg.substr(2);
    const size_t eq = arg.find('=');
    if (eq != std::string::npos) {
      flags[arg.substr(0, eq)] = arg.substr(eq + 1);
    } else if (i + 1 < argc) {
      flags[arg] = argv[++i];
    } else {
      return Fail(absl::StrFormat("--%s needs a value", arg));
    }
  }
  kvplan::server::CoordinatorOptions options;
  options.listen = flags["listen"];
  options.data_dir = flags["data-dir"];
  options.metrics_listen = flags["metrics-listen"];
  if (options.data_dir.empty()) return Fail(std::string("--data-dir is required\n\n") + kUsage);
  int mib = 0;
  if (!absl::SimpleAtoi(flags["max-message-mib"], &mib) || mib < 1 || mib > 1024) {
    return Fail("--max-message-mib must be a whole number in [1, 1024]");
  }
  options.max_receive_message_bytes = mib << 20;
  auto read = [](const std::string& path, std::string* out) -> absl::Status {
    absl::StatusOr<std::string> text = kvplan::ReadFile(path, 1 << 20);
    if (!text.ok()) return text.status();
    *out = *std::move(text);
    return absl::OkStatus();
  };
  if (!flags["auth-token-file"].empty()) {
    if (absl::Status st = read(flags["auth-token-file"], &options.auth_token); !st.ok()) {
      return Fail(std::string(st.message()));
    }
    options.auth_token = std::string(absl::StripAsciiWhitespace(options.auth_token));
    if (options.auth_token.empty()) return Fail("--auth-token-file holds an empty token");
  }
  if (flags["tls-cert"].empty() != flags["tls-key"].empty()) {
    return Fail("--tls-cert and --tls-key go together");
  }
  if (!flags["tls-cert"].empty()) {
    if (absl::Status st = read(flags["tls-cert"], &options.tls_cert_pem); !st.ok()) {
      return Fail(std::string(st.message()));
    }
    if (absl::Status st = read(flags["tls-key"], &options.tls_key_pem); !st.ok()) {
      return Fail(std::string(st.message()));
    }
  }

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
    std::cerr << "kvplan-coordinator: " << server.status().message() << "\n";
    return 1;
  }
  std::cout << "listening on " << (*server)->address() << std::endl;
  if ((*server)->metrics_port() != 0) {
    const std::string host = options.metrics_listen.substr(0, options.metrics_listen.rfind(':'));
    std::cout << "metrics on " << host << ":" << (*server)->metrics_port() << std::endl;
  }
  int signal_number = 0;
  sigwait(&signals, &signal_number);
  std::cout << "signal " << signal_number << ": draining" << std::endl;
  (*server)->Shutdown(absl::Seconds(5));
  std::cout << "stopped" << std::endl;
  return 0;
}
