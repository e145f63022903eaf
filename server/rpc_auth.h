// Private to server/: the one place that decides whether a call may proceed.
// A call is authorized by a bearer token or by a verified client certificate
// (mTLS), whichever it presents; RunRpc (service_impl.h) asks before any
// handler runs.
//
// Example:
//   AuthPolicy policy{.bearer_token = "s3cret", .client_certificates = true,
//                     .allowed_client_cns = {"worker"}};
//   absl::StatusOr<std::string> who = Authorize(*context, policy, /*write=*/true);
//   // "bearer-token", "cn=worker", or UNAUTHENTICATED / PERMISSION_DENIED.
#ifndef KVPLAN_SERVER_RPC_AUTH_H_
#define KVPLAN_SERVER_RPC_AUTH_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "grpcpp/server_context.h"

namespace kvplan::server::internal {

struct AuthPolicy {
  // Token a call may carry as "authorization: Bearer <token>"; empty accepts
  // no token. Default: empty.
  std::string bearer_token;
  // Whether a client certificate that the TLS handshake verified against the
  // client CA authorizes the call. Only true when the server is built with
  // GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY, so a certificate in the
  // auth context has been verified. Default: false.
  bool client_certificates = false;
  // Common names of the client certificates that may call; empty: any
  // verified certificate. Default: empty.
  std::vector<std::string> allowed_client_cns;
  // Whether reads need the same credentials as writes. Default: false (reads
  // are open to the fleet).
  bool authenticate_reads = false;
};

// Who the caller is, for the logs: "bearer-token", "cn=<common name>", or ""
// when the call needs no credentials (no token and no client CA configured,
// or a read with reads open).
//
// UNAUTHENTICATED when the call presents no credential; PERMISSION_DENIED when
// what it presents is refused (a wrong token, a certificate whose CN is not
// allowed) and nothing else it presents is accepted. The messages say what
// the coordinator accepts instead.
absl::StatusOr<std::string> Authorize(const grpc::ServerContext& context, const AuthPolicy& policy,
                                      bool write);

}  // namespace kvplan::server::internal

#endif  // KVPLAN_SERVER_RPC_AUTH_H_
