#include "server/rpc_auth.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <string_view>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "grpc/grpc_security_constants.h"
#include "grpcpp/security/auth_context.h"

namespace kvplan::server::internal {
namespace {

constexpr std::string_view kBearer = "Bearer ";

// Constant time, so response timing does not reveal how much of a guess was right.
bool TokenMatches(std::string_view given, const std::string& token) {
  return given.size() == token.size() &&
         CRYPTO_memcmp(given.data(), token.data(), token.size()) == 0;
}

}  // namespace

absl::StatusOr<std::string> Authorize(const grpc::ServerContext& context, const AuthPolicy& policy,
                                      bool write) {
  const bool configured = !policy.bearer_token.empty() || policy.client_certificates;
  if (!configured || (!write && !policy.authenticate_reads)) return std::string();

  // Each credential the call presents is judged on its own; one accepted is
  // enough. A refused one is remembered so the error says why.
  std::string refused;
  const auto& metadata = context.client_metadata();
  if (auto it = metadata.find("authorization"); it != metadata.end()) {
    const std::string_view value(it->second.data(), it->second.size());
    if (policy.bearer_token.empty()) {
      refused = "this coordinator accepts no bearer tokens, only client certificates";
    } else if (value.starts_with(kBearer) &&
               TokenMatches(value.substr(kBearer.size()), policy.bearer_token)) {
      return std::string("bearer-token");
    } else {
      refused = "the bearer token is not accepted";
    }
  }
  if (policy.client_certificates) {
    std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
    if (auth != nullptr && auth->IsPeerAuthenticated()) {
      const std::vector<grpc::string_ref> cns =
          auth->FindPropertyValues(GRPC_X509_CN_PROPERTY_NAME);
      const std::string cn = cns.empty() ? "" : std::string(cns.front().data(), cns.front().size());
      const std::vector<std::string>& allowed = policy.allowed_client_cns;
      if (allowed.empty() || std::find(allowed.begin(), allowed.end(), cn) != allowed.end()) {
        return "cn=" + cn;
      }
      if (!refused.empty()) refused += "; ";
      refused +=
          absl::StrFormat("client certificate CN '%s' is not allowed (--tls-allowed-client-cn: %s)",
                          cn, absl::StrJoin(allowed, ", "));
    }
  }
  const char* kind = write ? "write" : "read";
  if (!refused.empty()) {
    return absl::PermissionDeniedError(absl::StrFormat("%s refused: %s", kind, refused));
  }
  std::string accepted;
  if (!policy.bearer_token.empty()) accepted = "a bearer token (kvplan --token-file)";
  if (policy.client_certificates) {
    if (!accepted.empty()) accepted += " or ";
    accepted += "a client certificate signed by the coordinator's client CA";
  }
  return absl::UnauthenticatedError(absl::StrFormat(
      "this coordinator requires %s for %ss, and the call carried none", accepted, kind));
}

}  // namespace kvplan::server::internal
