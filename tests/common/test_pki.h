// Certificates for the TLS and mTLS tests, made at test time with the openssl
// command-line tool (Debian package 'openssl'; deploy/install-deps.sh installs
// it): CAs, a server certificate for 127.0.0.1 and client certificates.
//
// Example:
//   TestPki pki(dir.Path("pki"));  // a directory it creates
//   if (!pki.MakeStandardSet()) GTEST_SKIP() << TestPki::kMissing;
//   options.tls_client_ca_pem = pki.Pem(pki.Cert("ca"));
#ifndef KVPLAN_TESTS_COMMON_TEST_PKI_H_
#define KVPLAN_TESTS_COMMON_TEST_PKI_H_

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>

#include "core/file_io.h"

namespace kvplan::testing {

class TestPki {
 public:
  static constexpr char kMissing[] =
      "openssl could not make the test certificates (Debian package 'openssl')";

  // Keeps its files in `dir`, created if missing.
  explicit TestPki(std::string dir) : dir_(std::move(dir)) {
    std::filesystem::create_directories(dir_);
  }

  // CA "ca" signs "server" (CN localhost, SAN 127.0.0.1), "worker" (CN
  // worker-1) and "intruder" (CN intruder); CA "other" signs "stranger" (CN
  // worker-1). False when openssl is missing or fails.
  bool MakeStandardSet() {
    return MakeCa("ca") && MakeLeaf("server", "localhost", "ca", true) &&
           MakeLeaf("worker", "worker-1", "ca", false) &&
           MakeLeaf("intruder", "intruder", "ca", false) && MakeCa("other") &&
           MakeLeaf("stranger", "worker-1", "other", false);
  }

  // Makes a self-signed CA named `name`; false when openssl is missing or fails.
  bool MakeCa(const std::string& name) {
    return Run("openssl req -x509 " + std::string(kNewKey) + " -days 1 -subj /CN=kvplan-test-" +
               name + " -keyout " + Key(name) + " -out " + Cert(name));
  }
  // Makes a certificate with common name `cn`, signed by CA `ca`, for a
  // server (SAN 127.0.0.1) or a client.
  bool MakeLeaf(const std::string& name, const std::string& cn, const std::string& ca,
                bool server) {
    const std::string ext = Path(name + ".ext");
    std::ofstream(ext) << (server ? "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                    "extendedKeyUsage=serverAuth\n"
                                  : "extendedKeyUsage=clientAuth\n");
    return Run("openssl req -new " + std::string(kNewKey) + " -subj /CN=" + cn + " -keyout " +
               Key(name) + " -out " + Path(name + ".csr")) &&
           Run("openssl x509 -req -in " + Path(name + ".csr") + " -CA " + Cert(ca) + " -CAkey " +
               Key(ca) + " -CAcreateserial -days 1 -extfile " + ext + " -out " + Cert(name));
  }
  std::string Key(const std::string& name) const { return Path(name + ".key"); }
  std::string Cert(const std::string& name) const { return Path(name + ".pem"); }
  std::string Pem(const std::string& path) const { return *ReadFile(path); }

 private:
  static constexpr char kNewKey[] = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  static bool Run(const std::string& command) {
    return std::system((command + " > /dev/null 2>&1").c_str()) == 0;
  }
  std::string Path(const std::string& file) const { return dir_ + "/" + file; }

  std::string dir_;
};

}  // namespace kvplan::testing

#endif  // KVPLAN_TESTS_COMMON_TEST_PKI_H_
