// Where a kvplan-coordinator is and how to reach it: the address and the
// files (bearer token, TLS CA, client certificate) that CoordinatorConnection
// (coordinator_connection.h) turns into a channel. gRPC-free, so the headers of
// components that are configured with one stay free of gRPC too.
#ifndef KVPLAN_CLIENT_LIB_COORDINATOR_ENDPOINT_H_
#define KVPLAN_CLIENT_LIB_COORDINATOR_ENDPOINT_H_

#include <chrono>
#include <string>

namespace kvplan::client {

struct CoordinatorEndpoint {
  // host:port of kvplan-coordinator. Required.
  std::string address;
  // File whose contents (surrounding whitespace stripped) are sent as
  // `authorization: Bearer <token>`. Default: empty, no token.
  std::string token_file;
  // PEM roots to verify a TLS coordinator against. Default: empty, plaintext.
  std::string tls_ca_file;
  // PEM client certificate chain and its private key, presented to a
  // coordinator with --tls-client-ca (mTLS: a verified certificate authorizes
  // writes without a token). Both or neither; they need tls_ca_file.
  // Default: empty, no client certificate.
  std::string tls_cert_file;
  std::string tls_key_file;
  // gRPC's own reconnect backoff for the channel's connection. Zero keeps
  // gRPC's defaults (1 s doubling to 120 s), too slow for a serving node that
  // wants its coordinator back as soon as it is. Default: 0.
  std::chrono::milliseconds reconnect_backoff_min{0};
  std::chrono::milliseconds reconnect_backoff_max{0};
};

}  // namespace kvplan::client

#endif  // KVPLAN_CLIENT_LIB_COORDINATOR_ENDPOINT_H_
