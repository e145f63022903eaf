// kvplan-coordinator's flags and config file: precedence, and errors that
// name the flag or the file, line and key.
#include "server/coordinator_config.h"

#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/server/server_test_util.h"

namespace kvplan::server {
namespace {

using ::kvplan::testing::TempDir;

class CoordinatorConfigTest : public ::testing::Test {
 protected:
  std::string File(const std::string& name, const std::string& text) {
    const std::string path = dir_.Path(name);
    std::ofstream(path) << text;
    return path;
  }
  // The error message of loading `args`, "" if it loaded.
  std::string Error(const std::vector<std::string>& args) {
    absl::StatusOr<CoordinatorConfig> config = LoadCoordinatorConfig(args);
    return config.ok() ? "" : std::string(config.status().message());
  }
  TempDir dir_;
};

TEST_F(CoordinatorConfigTest, DefaultsNeedOnlyADataDir) {
  absl::StatusOr<CoordinatorConfig> config = LoadCoordinatorConfig({"--data-dir", "/d"});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->server.listen, "127.0.0.1:0");
  EXPECT_EQ(config->server.data_dir, "/d");
  EXPECT_EQ(config->server.max_receive_message_bytes, 64 << 20);
  EXPECT_EQ(config->log_format, LogFormat::kJson);
  EXPECT_EQ(config->log_level, LogLevel::kInfo);
  EXPECT_FALSE(config->server.authenticate_reads);
  EXPECT_TRUE(config->config_file.empty());
  EXPECT_NE(Error({}).find("--data-dir is required"), std::string::npos);
}

TEST_F(CoordinatorConfigTest, TheCommandLineOverridesTheFileWhichOverridesDefaults) {
  const std::string token = File("token", "  t0ken\n");
  const std::string conf = File("c.conf",
                                "# the coordinator\n"
                                "\n"
                                "listen = 0.0.0.0:7400\n"
                                "  data-dir=/var/lib/kvplan#1  \n"
                                "log-level = debug\n"
                                "log-format = text\n"
                                "max-message-mib = 8\n"
                                "auth-token-file = " +
                                    token + "\n");
  absl::StatusOr<CoordinatorConfig> config =
      LoadCoordinatorConfig({"--config", conf, "--log-level=warn", "--max-message-mib", "16"});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->config_file, conf);
  EXPECT_EQ(config->server.listen, "0.0.0.0:7400");               // File over default.
  EXPECT_EQ(config->server.data_dir, "/var/lib/kvplan#1");        // '#' inside a value is kept.
  EXPECT_EQ(config->log_format, LogFormat::kText);                // File over default.
  EXPECT_EQ(config->log_level, LogLevel::kWarn);                  // Flag over file.
  EXPECT_EQ(config->server.max_receive_message_bytes, 16 << 20);  // Flag over file.
  EXPECT_EQ(config->server.auth_token, "t0ken");
  // The flag may come before --config: position does not matter, the source does.
  config = LoadCoordinatorConfig({"--listen", "127.0.0.1:9", "--config", conf});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->server.listen, "127.0.0.1:9");
}

TEST_F(CoordinatorConfigTest, AllowedClientCnsAddUpWithinASourceAndFlagsReplaceTheFile) {
  File("ca.pem", "ca");
  File("cert.pem", "cert");
  File("key.pem", "key");
  const std::string tls = "tls-cert = " + dir_.Path("cert.pem") +
                          "\ntls-key = " + dir_.Path("key.pem") +
                          "\ntls-client-ca = " + dir_.Path("ca.pem") + "\ndata-dir = /d\n";
  const std::string conf = File("c.conf", tls +
                                              "tls-allowed-client-cn = worker-1, worker-2\n"
                                              "tls-allowed-client-cn = admin\n"
                                              "authenticate-reads = true\n");
  absl::StatusOr<CoordinatorConfig> config = LoadCoordinatorConfig({"--config", conf});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->server.tls_allowed_client_cns,
            (std::vector<std::string>{"worker-1", "worker-2", "admin"}));
  EXPECT_EQ(config->server.tls_client_ca_pem, "ca");
  EXPECT_TRUE(config->server.authenticate_reads);
  config = LoadCoordinatorConfig({"--config", conf, "--tls-allowed-client-cn", "a,b",
                                  "--tls-allowed-client-cn=c", "--authenticate-reads=false"});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->server.tls_allowed_client_cns, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_FALSE(config->server.authenticate_reads);
}

TEST_F(CoordinatorConfigTest, FileErrorsNameTheFileLineAndKey) {
  const std::string unknown = File("u.conf", "data-dir = /d\n# ok\nlisten_addr = x:1\n");
  EXPECT_NE(Error({"--config", unknown}).find(unknown + ":3: unknown setting 'listen_addr'"),
            std::string::npos)
      << Error({"--config", unknown});
  const std::string bad = File("b.conf", "data-dir = /d\n\nmax-message-mib = lots\n");
  EXPECT_EQ(Error({"--config", bad}),
            bad + ":3: max-message-mib: must be a whole number in [1, 1024], got 'lots'");
  const std::string level = File("l.conf", "data-dir = /d\nlog-level = loud\n");
  EXPECT_EQ(Error({"--config", level}),
            level + ":2: log-level: must be debug, info, warn or error, got 'loud'");
  const std::string twice = File("t.conf", "data-dir = /d\nlisten = a:1\nlisten = b:2\n");
  EXPECT_NE(Error({"--config", twice}).find(twice + ":3: 'listen' is set again (first on line 2)"),
            std::string::npos);
  const std::string no_eq = File("n.conf", "data-dir /d\n");
  EXPECT_NE(Error({"--config", no_eq}).find(no_eq + ":1: expected 'name = value'"),
            std::string::npos);
  const std::string nested = File("x.conf", "config = other.conf\n");
  EXPECT_NE(Error({"--config", nested}).find(":1: 'config' cannot be set"), std::string::npos);
  const std::string boolean = File("r.conf", "data-dir = /d\nauthenticate-reads = yes\n");
  EXPECT_NE(Error({"--config", boolean}).find(":2: authenticate-reads: must be true or false"),
            std::string::npos);
  // A bad value in the file is fine when the command line replaces it.
  EXPECT_EQ(Error({"--config", bad, "--max-message-mib", "4"}), "");
}

TEST_F(CoordinatorConfigTest, CommandLineErrorsNameTheFlag) {
  EXPECT_NE(Error({"--data-dir", "/d", "--bogus", "1"}).find("unknown argument '--bogus'"),
            std::string::npos);
  EXPECT_EQ(Error({"--data-dir", "/d", "--log-format", "xml"}),
            "--log-format: must be json or text, got 'xml'");
  EXPECT_NE(Error({"--data-dir"}).find("--data-dir needs a value"), std::string::npos);
  const std::string missing = dir_.Path("nope.conf");
  absl::StatusOr<CoordinatorConfig> config = LoadCoordinatorConfig({"--config", missing});
  EXPECT_EQ(config.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(config.status().message().find("--config: "), std::string::npos);
  EXPECT_NE(config.status().message().find(missing), std::string::npos);
  EXPECT_NE(Error({"--data-dir", "/d", "--auth-token-file", dir_.Path("none")})
                .find("--auth-token-file: "),
            std::string::npos);
}

TEST_F(CoordinatorConfigTest, ContradictorySettingsAreRefused) {
  File("ca.pem", "ca");
  EXPECT_NE(Error({"--data-dir", "/d", "--tls-client-ca", dir_.Path("ca.pem")})
                .find("--tls-client-ca needs --tls-cert"),
            std::string::npos);
  EXPECT_NE(
      Error({"--data-dir", "/d", "--tls-allowed-client-cn", "w"}).find("needs --tls-client-ca"),
      std::string::npos);
  EXPECT_NE(Error({"--data-dir", "/d", "--authenticate-reads"}).find("--authenticate-reads needs"),
            std::string::npos);
  EXPECT_NE(Error({"--data-dir", "/d", "--tls-cert", "c"}).find("go together"), std::string::npos);
}

TEST_F(CoordinatorConfigTest, UsageListsEverySettingAndHelpIsFound) {
  const std::string usage = CoordinatorUsage();
  for (const char* flag : {"--config", "--log-format", "--log-level", "--tls-client-ca",
                           "--tls-allowed-client-cn", "--authenticate-reads"}) {
    EXPECT_NE(usage.find(flag), std::string::npos) << flag;
  }
  EXPECT_TRUE(WantsHelp({"--data-dir", "/d", "--help"}));
  EXPECT_FALSE(WantsHelp({"--data-dir", "/d"}));
}

}  // namespace
}  // namespace kvplan::server
