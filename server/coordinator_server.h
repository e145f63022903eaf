// kvplan-coordinator as a component: the store, the registries, the gRPC
// services (plus health and reflection) and the metrics endpoint, started
// together and shut down together.
//
// Example:
//   absl::StatusOr<std::unique_ptr<CoordinatorServer>> server = CoordinatorServer::Start(
//       {.listen = "127.0.0.1:0", .data_dir = dir});
//   std::string target = (*server)->address();  // "127.0.0.1:41234"
//   (*server)->Shutdown(absl::Seconds(5));
//
// Thread safety: Shutdown may be called from any thread, once or more.
#ifndef KVPLAN_SERVER_COORDINATOR_SERVER_H_
#define KVPLAN_SERVER_COORDINATOR_SERVER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/clock.h"
#include "server/logger.h"
#include "server/validation_registry.h"

namespace kvplan::server {

struct CoordinatorOptions {
  // host:port for gRPC; port 0 binds a free port (see port()). Default: loopback, any port.
  std::string listen = "127.0.0.1:0";
  // Directory of the RocksDB store; created when missing. Required.
  std::string data_dir;
  // host:port for Prometheus /metrics; port 0 binds a free port; empty serves
  // none. Default: empty.
  std::string metrics_listen;
  // Bearer token that authorizes writes. Writes are open only while this and
  // tls_client_ca_pem are both empty. Default: empty.
  std::string auth_token;
  // PEM server certificate chain and private key; both empty: plaintext. Default: empty.
  std::string tls_cert_pem;
  std::string tls_key_pem;
  // PEM CA certificates for mTLS. Non-empty: the server asks every client for a
  // certificate and fails the handshake of one it cannot verify against these;
  // a verified certificate authorizes writes, and a client without one can
  // still use the bearer token. Needs tls_cert_pem. Default: empty.
  std::string tls_client_ca_pem;
  // Common names of the client certificates that authorize writes; empty: any
  // certificate tls_client_ca_pem verifies. Default: empty.
  std::vector<std::string> tls_allowed_client_cns;
  // Whether reads need the same credentials as writes; needs auth_token or
  // tls_client_ca_pem. Default: false (reads are open to the fleet).
  bool authenticate_reads = false;
  // Largest request accepted, bytes; larger ones fail with RESOURCE_EXHAUSTED
  // before any handler runs. Default: 64 MiB (statistics are kilobytes to a few MiB).
  int max_receive_message_bytes = 64 << 20;
  // When a plan's validation passes (server/validation_registry.h). Default:
  // it must win at least 3/4 of the layers and have the lower mean MAE.
  ValidationRule validation_rule;
  // Seconds since the epoch for timestamps. Default: the system clock.
  Clock clock = SystemClock();
  // State changes at info, every RPC at debug. Default: discards.
  Logger logger;
};

class CoordinatorServer {
 public:
  // Opens the store and starts serving. InvalidArgument for bad options,
  // Unavailable when an address cannot be bound, store errors as Store::Open.
  static absl::StatusOr<std::unique_ptr<CoordinatorServer>> Start(CoordinatorOptions options);
  // Shuts down (grace 0) if still running.
  ~CoordinatorServer();

  // "host:port" as bound (the listen host with the real port).
  std::string address() const;
  int port() const;
  // 0 when no metrics endpoint was asked for.
  int metrics_port() const;

  // Stops accepting calls, ends WatchPlans streams (UNAVAILABLE, so watchers
  // reconnect elsewhere and resume), lets unary calls finish for up to `grace`,
  // then closes the store. Every acknowledged write was durable before its
  // acknowledgement, so nothing depends on this running (kill -9 loses nothing).
  void Shutdown(absl::Duration grace);

 private:
  struct Impl;
  explicit CoordinatorServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvplan::server

#endif  // KVPLAN_SERVER_COORDINATOR_SERVER_H_
