#include "client/cli/coordinator_connection.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"
#include "core/file_io.h"
#include "google/protobuf/util/json_util.h"

namespace kvplan::cli {
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

absl::StatusOr<CoordinatorConnection> CoordinatorConnection::Open(const CoordinatorFlags& flags) {
  if (flags.address.empty()) return absl::InvalidArgumentError("--coordinator ADDR is required");
  CoordinatorConnection c;
  if (!flags.token_file.empty()) {
    absl::StatusOr<std::string> token = ReadFile(flags.token_file, 1 << 20);
    if (!token.ok()) return token.status();
    c.token_ = std::string(absl::StripAsciiWhitespace(*token));
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (!flags.tls_ca_file.empty()) {
    absl::StatusOr<std::string> roots = ReadFile(flags.tls_ca_file, 1 << 20);
    if (!roots.ok()) return roots.status();
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = *roots;
    credentials = grpc::SslCredentials(ssl);
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  c.channel_ = grpc::CreateCustomChannel(flags.address, credentials, args);
  return c;
}

std::string MessageToJson(const google::protobuf::Message& message) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  const auto status = google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!status.ok()) return absl::StrFormat("{\"error\": \"%s\"}\n", status.ToString());
  return json;
}

std::unique_ptr<grpc::ClientContext> CoordinatorConnection::NewContext(
    std::chrono::milliseconds timeout) const {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + timeout);
  if (!token_.empty()) context->AddMetadata("authorization", "Bearer " + token_);
  return context;
}

}  // namespace kvplan::cli
