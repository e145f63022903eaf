// The deployment files in deploy/ against the real binaries, so that they
// cannot drift: the Prometheus config and rules pass promtool, every kvplan_
// metric the rules use is in a real coordinator's scrape, the coordinator
// config file shipped in the ConfigMap is accepted by a real coordinator, and
// every flag the compose file, the Kubernetes manifests and the Dockerfile
// pass to kvplan-coordinator or kvplan-worker is one that binary takes.
// Paths are relative to the project root, where ctest runs the tests.
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "core/file_io.h"
#include "gtest/gtest.h"
#include "tests/client/cli_runner.h"
#include "tests/common/child_process.h"
#include "tests/server/coordinator_process.h"
#include "tests/server/server_test_util.h"

namespace kvplan {
namespace {

using ::kvplan::testing::BinaryPath;
using ::kvplan::testing::ChildProcess;
using ::kvplan::testing::CoordinatorProcess;
using ::kvplan::testing::HavePromtool;
using ::kvplan::testing::HttpGet;
using ::kvplan::testing::kPromtoolMissing;
using ::kvplan::testing::RunKvplan;
using ::kvplan::testing::RunResult;
using ::kvplan::testing::RunShell;
using ::kvplan::testing::TempDir;

constexpr char kCoordinatorConf[] = "deploy/k8s/coordinator.conf";
constexpr char kConfigMap[] = "deploy/k8s/coordinator-config.yaml";
constexpr char kPrometheusConfig[] = "deploy/prometheus/prometheus.yml";
constexpr char kAlerts[] = "deploy/prometheus/alerts.yml";

std::string Contents(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  EXPECT_TRUE(text.ok()) << path << ": " << text.status();
  return text.ok() ? *text : "";
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST(DeployFilesTest, PrometheusConfigAndRulesPassPromtool) {
  if (!HavePromtool()) GTEST_SKIP() << kPromtoolMissing;
  RunResult r = RunShell(std::string("promtool check config ") + kPrometheusConfig);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("1 rule files found"), std::string::npos)
      << "alerts.yml is loaded: " << r.out;
  r = RunShell(std::string("promtool check rules ") + kAlerts);
  EXPECT_EQ(r.exit_code, 0) << r.out;
}

// The names of the samples a /metrics exposition holds (histograms' _bucket,
// _sum and _count included).
std::set<std::string> SampleNames(const std::string& exposition) {
  std::set<std::string> names;
  for (const std::string& line : Lines(exposition)) {
    if (line.empty() || line[0] == '#') continue;
    names.insert(line.substr(0, line.find_first_of("{ ")));
  }
  return names;
}

TEST(DeployFilesTest, EveryMetricTheAlertsUseIsInARealScrape) {
  TempDir dir;
  CoordinatorProcess c({"--listen", "127.0.0.1:0", "--data-dir", dir.Path("db"), "--metrics-listen",
                        "127.0.0.1:0", "--log-level", "warn"});
  ASSERT_TRUE(c.ok()) << c.output();
  // kvplan_rpc_total and kvplan_rpc_duration_seconds have a sample once an RPC has finished.
  const RunResult r = RunKvplan("--coordinator " + c.address() + " models list");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const std::set<std::string> scraped = SampleNames(HttpGet(c.metrics_address(), "/metrics"));

  const std::string alerts = Contents(kAlerts);
  const std::regex metric(R"(\bkvplan_[a-z0-9_]+)");
  std::set<std::string> used;
  for (auto it = std::sregex_iterator(alerts.begin(), alerts.end(), metric);
       it != std::sregex_iterator(); ++it) {
    used.insert(it->str());
  }
  EXPECT_GE(used.size(), 4u) << "the rules use the coordinator's metrics";
  for (const std::string& name : used) {
    EXPECT_TRUE(scraped.contains(name))
        << kAlerts << " uses " << name << ", which a real coordinator does not export";
  }
  EXPECT_TRUE(alerts.find("up{job=\"kvplan-coordinator\"}") != std::string::npos &&
              Contents(kPrometheusConfig).find("job_name: kvplan-coordinator") != std::string::npos)
      << "the coordinator-down rule names prometheus.yml's scrape job";
}

TEST(DeployFilesTest, TheConfigMapShipsTheConfigFileARealCoordinatorAccepts) {
  // The ConfigMap's `coordinator.conf: |` block, de-indented, is the file.
  const std::vector<std::string> lines = Lines(Contents(kConfigMap));
  std::string embedded;
  bool in_block = false;
  for (const std::string& line : lines) {
    if (line == "  coordinator.conf: |") {
      in_block = true;
    } else if (in_block) {
      if (!line.starts_with("    ")) break;
      embedded += line.substr(4) + "\n";
    }
  }
  const std::string conf = Contents(kCoordinatorConf);
  ASSERT_FALSE(conf.empty());
  EXPECT_EQ(embedded, conf) << kConfigMap << " must embed " << kCoordinatorConf << " verbatim";

  // Its paths and addresses are the container's; the flags put them in temp
  // dirs and on loopback (flags override the file), everything else comes from it.
  TempDir dir;
  ASSERT_TRUE(WriteFileAtomically(dir.Path("token"), "secret-token\n").ok());
  CoordinatorProcess c({"--config", kCoordinatorConf, "--listen", "127.0.0.1:0", "--data-dir",
                        dir.Path("db"), "--metrics-listen", "127.0.0.1:0", "--auth-token-file",
                        dir.Path("token")});
  ASSERT_TRUE(c.ok()) << c.output();
  EXPECT_NE(HttpGet(c.metrics_address(), "/metrics").find("kvplan_store_size_bytes"),
            std::string::npos);
  // The file turns the token on: a write without it is refused.
  const RunResult r = RunKvplan("--coordinator " + c.address() +
                                " channels promote --model nope --channel stable --version 1");
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("unauthenticated"), std::string::npos) << r.out;
  EXPECT_EQ(c.Stop(SIGTERM), 0) << c.output();
}

// The `--name` flags a binary's own text lists.
std::set<std::string> FlagsIn(const std::string& text) {
  std::set<std::string> flags;
  const std::regex flag(R"((?:^|\s)--([a-z][a-z0-9-]*))");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), flag); it != std::sregex_iterator();
       ++it) {
    flags.insert((*it)[1].str());
  }
  return flags;
}

std::string OutputOf(const std::string& binary, const std::vector<std::string>& args) {
  ChildProcess p(BinaryPath(binary), args);
  p.Wait(std::chrono::seconds(20));
  return p.output();
}

// One command line of a deploy file: the binary (and verb) and its arguments.
struct Command {
  std::string file;
  std::vector<std::string> words;
};

std::string Unquote(std::string word) {
  if (word.size() >= 2 && (word.front() == '"' || word.front() == '\'') &&
      word.back() == word.front()) {
    word = word.substr(1, word.size() - 2);
  }
  return word;
}

// YAML block sequences whose first item is kvplan-coordinator or
// kvplan-worker (the `command:` lists), and Dockerfile CMD/ENTRYPOINT arrays.
std::vector<Command> CommandsIn(const std::string& file) {
  std::vector<Command> commands;
  const std::vector<std::string> lines = Lines(Contents(file));
  const std::regex item(R"(^(\s*)-\s+(.*?)\s*$)");
  const std::regex exec_form(R"(^(CMD|ENTRYPOINT)\s+\[(.*)\]\s*$)");
  const std::regex quoted(R"rx("([^"]*)")rx");
  for (size_t i = 0; i < lines.size(); ++i) {
    std::smatch m;
    if (std::regex_match(lines[i], m, exec_form)) {
      Command c{.file = file, .words = {}};
      const std::string list = m[2].str();
      for (auto it = std::sregex_iterator(list.begin(), list.end(), quoted);
           it != std::sregex_iterator(); ++it) {
        c.words.push_back((*it)[1].str());
      }
      commands.push_back(std::move(c));
      continue;
    }
    if (!std::regex_match(lines[i], m, item)) continue;
    const std::string first = Unquote(m[2].str());
    if (first != "kvplan-coordinator" && first != "kvplan-worker") continue;
    const std::string indent = m[1].str();
    Command c{.file = file, .words = {first}};
    for (size_t j = i + 1; j < lines.size(); ++j) {
      std::smatch n;
      if (!std::regex_match(lines[j], n, item) || n[1].str() != indent) break;
      c.words.push_back(Unquote(n[2].str()));
      i = j;
    }
    commands.push_back(std::move(c));
  }
  return commands;
}

TEST(DeployFilesTest, EveryFlagTheDeployFilesPassIsOneTheBinaryTakes) {
  const std::set<std::string> coordinator_flags =
      FlagsIn(OutputOf("kvplan-coordinator", {"--help"}));
  ASSERT_TRUE(coordinator_flags.contains("config") && coordinator_flags.contains("data-dir"))
      << "kvplan-coordinator --help lists its flags";
  std::set<std::string> worker_flags;
  const bool have_worker = std::filesystem::exists(BinaryPath("kvplan-worker"));
  if (have_worker) {
    // An unknown flag makes `serve` list the ones it takes.
    const std::string out = OutputOf("kvplan-worker", {"serve", "--no-such-flag"});
    const size_t takes = out.find("this command takes:");
    ASSERT_NE(takes, std::string::npos) << out;
    worker_flags = FlagsIn(out.substr(takes));
    worker_flags.erase("no-such-flag");
    ASSERT_TRUE(worker_flags.contains("coordinator") && worker_flags.contains("once")) << out;
  }

  // Each file and the binaries its commands must run.
  const std::vector<std::pair<std::string, std::multiset<std::string>>> files = {
      {"deploy/compose.yaml", {"kvplan-coordinator", "kvplan-worker"}},
      {"deploy/k8s/coordinator.yaml", {"kvplan-coordinator"}},
      {"deploy/k8s/worker-job.yaml", {"kvplan-worker"}},
      {"deploy/docker/Dockerfile", {"kvplan-coordinator"}},
  };
  for (const auto& [file, expected] : files) {
    std::multiset<std::string> found;
    for (const Command& c : CommandsIn(file)) {
      ASSERT_FALSE(c.words.empty()) << file;
      const std::string& binary = c.words[0];
      found.insert(binary);
      size_t first_arg = 1;
      const std::set<std::string>* known = &coordinator_flags;
      if (binary == "kvplan-worker") {
        ASSERT_GE(c.words.size(), 2u) << file;
        EXPECT_EQ(c.words[1], "serve") << file << ": workers run `kvplan-worker serve`";
        first_arg = 2;
        known = &worker_flags;
        if (!have_worker) continue;
      } else {
        ASSERT_EQ(binary, "kvplan-coordinator") << file;
      }
      for (size_t i = first_arg; i < c.words.size(); ++i) {
        const std::string& word = c.words[i];
        if (!word.starts_with("--")) continue;
        const std::string name = word.substr(2, word.find('=') - 2);
        EXPECT_TRUE(known->contains(name)) << file << ": " << binary << " does not take --" << name;
      }
    }
    EXPECT_EQ(found, expected) << file << ": the commands of kvplan binaries found";
  }
  if (!have_worker) {
    GTEST_SKIP() << "kvplan-worker is not built (KVPLAN_BUILD_WORKER=OFF); its flags were not "
                    "checked";
  }
}

}  // namespace
}  // namespace kvplan
