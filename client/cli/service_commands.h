// The service nouns of `kvplan`, which talk to a coordinator: models, jobs,
// plans, channels, whatif and artifacts. This header pulls in no gRPC; the verbs that do live
// behind it (coordinator_connection.h is private to them).
//
// Example:
//   CoordinatorFlags coordinator{.address = "127.0.0.1:7070"};
//   int code = RunServiceNoun(coordinator, "plans", {"list", "--model", "llama"}, out, err);
#ifndef KVPLAN_CLIENT_CLI_SERVICE_COMMANDS_H_
#define KVPLAN_CLIENT_CLI_SERVICE_COMMANDS_H_

#include <ostream>
#include <string>
#include <vector>

namespace kvplan::cli {

struct CoordinatorFlags {
  // --coordinator host:port.
  std::string address;
  // --token-file: the bearer token sent with every call (writes need it when the
  // coordinator has --auth-token-file). Default: none.
  std::string token_file;
  // --tls-ca: PEM roots to verify a TLS coordinator; empty means plaintext.
  std::string tls_ca_file;
  // --tls-cert / --tls-key: a PEM client certificate and key for a coordinator
  // with --tls-client-ca (mTLS). Default: none.
  std::string tls_cert_file;
  std::string tls_key_file;
};

// True for the nouns RunServiceNoun handles.
bool IsServiceNoun(const std::string& noun);

// Runs `kvplan --coordinator ADDR NOUN VERB args...`; returns the exit code
// (0 success, 2 bad arguments or input refused by the coordinator, 1 other).
int RunServiceNoun(const CoordinatorFlags& coordinator, const std::string& noun,
                   const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace kvplan::cli

#endif  // KVPLAN_CLIENT_CLI_SERVICE_COMMANDS_H_
