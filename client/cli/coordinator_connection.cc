#include "client/cli/coordinator_connection.h"

#include "absl/strings/str_format.h"
#include "google/protobuf/util/json_util.h"

namespace kvplan::cli {

absl::StatusOr<CoordinatorConnection> OpenCoordinator(const CoordinatorFlags& flags) {
  if (flags.address.empty()) return absl::InvalidArgumentError("--coordinator ADDR is required");
  return CoordinatorConnection::Open({.address = flags.address,
                                      .token_file = flags.token_file,
                                      .tls_ca_file = flags.tls_ca_file,
                                      .tls_cert_file = flags.tls_cert_file,
                                      .tls_key_file = flags.tls_key_file});
}

std::string MessageToJson(const google::protobuf::Message& message) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  const auto status = google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!status.ok()) return absl::StrFormat("{\"error\": \"%s\"}\n", status.ToString());
  return json;
}

}  // namespace kvplan::cli
