// Client certificates (mTLS) against an in-process coordinator over real TLS
// on 127.0.0.1: a verified certificate authorizes writes without a token, the
// token still works without one, a certificate from another CA fails the
// handshake, a CN outside the allowed list is refused. The certificates are
// made at test time with the openssl command-line tool (Debian package
// 'openssl'; deploy/install-deps.sh installs it).
#include <mutex>
#include <sstream>

#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "kvplan/v1/model_service.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "server/coordinator_server.h"
#include "tests/common/test_pki.h"
#include "tests/server/server_test_util.h"

namespace kvplan::server {
namespace {

using ::kvplan::testing::TempDir;
using ::kvplan::testing::TestModelRequest;
using ::kvplan::testing::TestPki;

constexpr char kToken[] = "mtls-test-token";

class MtlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!pki_.MakeStandardSet()) GTEST_SKIP() << TestPki::kMissing;
  }

  void Start(std::vector<std::string> allowed_cns = {}, bool authenticate_reads = false) {
    absl::StatusOr<std::unique_ptr<CoordinatorServer>> server = CoordinatorServer::Start({
        .listen = "127.0.0.1:0",
        .data_dir = dir_.Path("db"),
        .auth_token = kToken,
        .tls_cert_pem = pki_.Pem(pki_.Cert("server")),
        .tls_key_pem = pki_.Pem(pki_.Key("server")),
        .tls_client_ca_pem = pki_.Pem(pki_.Cert("ca")),
        .tls_allowed_client_cns = std::move(allowed_cns),
        .authenticate_reads = authenticate_reads,
        .logger = Logger({.min_level = LogLevel::kDebug,
                          .sink =
                              [this](std::string_view line) {
                                std::lock_guard<std::mutex> lock(log_mu_);
                                log_.append(line);
                              }}),
    });
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  // A stub over TLS that trusts the test CA and presents client certificate
  // `client` ("" for none). This is all a client needs for mTLS:
  // SslCredentialsOptions with pem_root_certs, pem_private_key and pem_cert_chain.
  std::unique_ptr<v1::ModelService::Stub> Client(const std::string& client) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = pki_.Pem(pki_.Cert("ca"));
    if (!client.empty()) {
      ssl.pem_private_key = pki_.Pem(pki_.Key(client));
      ssl.pem_cert_chain = pki_.Pem(pki_.Cert(client));
    }
    return v1::ModelService::NewStub(
        grpc::CreateChannel(server_->address(), grpc::SslCredentials(ssl)));
  }

  static std::unique_ptr<grpc::ClientContext> Context(const std::string& token = "") {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (!token.empty()) context->AddMetadata("authorization", "Bearer " + token);
    return context;
  }

  static grpc::Status Register(v1::ModelService::Stub& stub, const std::string& id,
                               const std::string& token = "") {
    v1::RegisterModelResponse response;
    return stub.RegisterModel(Context(token).get(), TestModelRequest(id), &response);
  }

  int ModelCount() {
    v1::ListModelsResponse list;
    grpc::Status st = Client("worker")->ListModels(Context().get(), {}, &list);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return list.models_size();
  }

  // The "rpc finished" log lines of `method`, parsed.
  std::vector<nlohmann::json> RpcLines(const std::string& method) {
    std::lock_guard<std::mutex> lock(log_mu_);
    std::vector<nlohmann::json> lines;
    std::istringstream in(log_);
    for (std::string line; std::getline(in, line);) {
      nlohmann::json j = nlohmann::json::parse(line);
      if (j["message"] == "rpc finished" && j["method"] == method) lines.push_back(j);
    }
    return lines;
  }

  TempDir dir_;
  TestPki pki_{dir_.Path("pki")};
  std::unique_ptr<CoordinatorServer> server_;
  std::mutex log_mu_;
  std::string log_;
};

TEST_F(MtlsTest, AVerifiedClientCertificateWritesWithoutAToken) {
  Start();
  grpc::Status st = Register(*Client("worker"), "tiny");
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(ModelCount(), 1);
  std::vector<nlohmann::json> lines = RpcLines("RegisterModel");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["principal"], "cn=worker-1");
  EXPECT_EQ(lines[0]["code"], "OK");
}

TEST_F(MtlsTest, WithoutACertificateTheTokenStillWorksAndNothingElseDoes) {
  Start();
  std::unique_ptr<v1::ModelService::Stub> anonymous = Client("");
  grpc::Status st = Register(*anonymous, "tiny");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED) << st.error_message();
  EXPECT_NE(st.error_message().find("client certificate"), std::string::npos)
      << "says what would work: " << st.error_message();
  st = Register(*anonymous, "tiny", "wrong-token");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED) << st.error_message();
  EXPECT_EQ(ModelCount(), 0);  // Reads are open; the refused writes stored nothing.
  st = Register(*anonymous, "tiny", kToken);
  EXPECT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(ModelCount(), 1);
}

TEST_F(MtlsTest, ACertificateFromAnotherCaFailsTheHandshake) {
  Start();
  grpc::Status st = Register(*Client("stranger"), "tiny", kToken);
  // No TLS connection, so no call: even the right token does not get through.
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
  EXPECT_EQ(ModelCount(), 0);
}

TEST_F(MtlsTest, ACertificateWhoseCnIsNotAllowedIsRefused) {
  Start({"worker-1", "worker-2"});
  grpc::Status st = Register(*Client("intruder"), "tiny");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED) << st.error_message();
  EXPECT_NE(st.error_message().find("CN 'intruder' is not allowed"), std::string::npos)
      << st.error_message();
  EXPECT_EQ(ModelCount(), 0);
  // The token is another credential: either one is enough.
  EXPECT_TRUE(Register(*Client("intruder"), "tiny", kToken).ok());
  EXPECT_TRUE(Register(*Client("worker"), "tiny2").ok());
  EXPECT_EQ(ModelCount(), 2);
  std::vector<nlohmann::json> lines = RpcLines("RegisterModel");
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0]["level"], "warn") << "refused credentials are logged above debug";
  EXPECT_EQ(lines[0]["code"], "PERMISSION_DENIED");
  EXPECT_EQ(lines[1]["principal"], "bearer-token");
  EXPECT_EQ(lines[2]["principal"], "cn=worker-1");
}

TEST_F(MtlsTest, ReadsCanBeClosedToo) {
  Start({}, /*authenticate_reads=*/true);
  v1::ListModelsResponse list;
  grpc::Status st = Client("")->ListModels(Context().get(), {}, &list);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED) << st.error_message();
  EXPECT_TRUE(Client("")->ListModels(Context(kToken).get(), {}, &list).ok());
  EXPECT_TRUE(Client("worker")->ListModels(Context().get(), {}, &list).ok());
}

TEST(MtlsOptionsTest, ClientCertificatesNeedTls) {
  TempDir dir;
  absl::StatusOr<std::unique_ptr<CoordinatorServer>> server = CoordinatorServer::Start(
      {.data_dir = dir.Path("db"), .tls_client_ca_pem = "-----BEGIN CERTIFICATE-----"});
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  server = CoordinatorServer::Start({.data_dir = dir.Path("db"), .tls_allowed_client_cns = {"x"}});
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  server = CoordinatorServer::Start({.data_dir = dir.Path("db"), .authenticate_reads = true});
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kvplan::server
