#include "client/lib/coordinator_connection.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"
#include "core/file_io.h"

namespace kvplan::client {
namespace {

// Room for the largest statistics upload the coordinator accepts by default.
constexpr int kMaxMessageBytes = 256 << 20;

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "invalid argument";
    case grpc::StatusCode::NOT_FOUND:
      return "not found";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "already exists";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "permission denied";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "unauthenticated";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "resource exhausted";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "failed precondition";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "out of range";
    case grpc::StatusCode::UNAVAILABLE:
      return "coordinator unavailable";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "deadline exceeded";
    default:
      return "error";
  }
}

}  // namespace

absl::Status FromGrpc(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(
      static_cast<absl::StatusCode>(status.error_code()),
      absl::StrFormat("%s: %s", CodeName(status.error_code()), status.error_message()));
}

absl::StatusOr<CoordinatorConnection> CoordinatorConnection::Open(
    const CoordinatorEndpoint& endpoint) {
  if (endpoint.address.empty()) {
    return absl::InvalidArgumentError("no coordinator address: pass --coordinator host:port");
  }
  CoordinatorConnection c;
  c.endpoint_ = endpoint;
  if (!endpoint.token_file.empty()) {
    absl::StatusOr<std::string> token = ReadFile(endpoint.token_file, 1 << 20);
    if (!token.ok()) return token.status();
    c.token_ = std::string(absl::StripAsciiWhitespace(*token));
  }
  if (endpoint.tls_cert_file.empty() != endpoint.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "a client certificate needs both --tls-cert and --tls-key (PEM files)");
  }
  if (!endpoint.tls_cert_file.empty() && endpoint.tls_ca_file.empty()) {
    return absl::InvalidArgumentError(
        "a client certificate is only sent over TLS: add --tls-ca with the coordinator's CA");
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (!endpoint.tls_ca_file.empty()) {
    grpc::SslCredentialsOptions ssl;
    for (auto [file, pem] : {std::pair{&endpoint.tls_ca_file, &ssl.pem_root_certs},
                             std::pair{&endpoint.tls_cert_file, &ssl.pem_cert_chain},
                             std::pair{&endpoint.tls_key_file, &ssl.pem_private_key}}) {
      if (file->empty()) continue;
      absl::StatusOr<std::string> contents = ReadFile(*file, 1 << 20);
      if (!contents.ok()) return contents.status();
      *pem = *std::move(contents);
    }
    credentials = grpc::SslCredentials(ssl);
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  // Not GRPC_ARG_MIN_RECONNECT_BACKOFF_MS: gRPC uses it as the deadline of a
  // connection attempt, and a short one aborts healthy handshakes.
  if (endpoint.reconnect_backoff_min.count() > 0) {
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
                static_cast<int>(endpoint.reconnect_backoff_min.count()));
  }
  if (endpoint.reconnect_backoff_max.count() > 0) {
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
                static_cast<int>(endpoint.reconnect_backoff_max.count()));
  }
  // Channels do not share connections, so a client that replaces its channel
  // to reconnect really gets a new connection.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  c.channel_ = grpc::CreateCustomChannel(endpoint.address, credentials, args);
  return c;
}

std::unique_ptr<grpc::ClientContext> CoordinatorConnection::NewContext(
    std::chrono::milliseconds timeout) const {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + timeout);
  if (!token_.empty()) context->AddMetadata("authorization", "Bearer " + token_);
  return context;
}

}  // namespace kvplan::client
