#include "server/coordinator_config.h"

#include <map>
#include <string_view>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/file_io.h"

namespace kvplan::server {
namespace {

// Token, PEM and config files are small; a path that points at something
// large is a mistake, refused before it is read.
constexpr size_t kMaxSettingsFileBytes = size_t{1} << 20;

struct FlagSpec {
  const char* name;
  const char* value_name;  // Empty: a boolean, "--name" alone means true.
  const char* default_value;
  const char* help;
  bool repeatable = false;
};

// The one list of settings: the parser, the config file and --help use it.
constexpr FlagSpec kFlags[] = {
    {"config", "FILE", "", "read settings from FILE (name = value lines); flags override it"},
    {"listen", "ADDR", "127.0.0.1:0", "gRPC address, host:port; port 0 picks a free port"},
    {"data-dir", "DIR", "", "RocksDB store directory, created when missing (required)"},
    {"metrics-listen", "ADDR", "",
     "serve Prometheus /metrics on host:port (port 0: any free port)"},
    {"auth-token-file", "F", "",
     "a call carrying \"authorization: Bearer <token in F>\" may write"},
    {"tls-cert", "F", "", "PEM certificate chain; with --tls-key serves TLS instead of plaintext"},
    {"tls-key", "F", "", "PEM private key"},
    {"tls-client-ca", "F", "",
     "PEM CA certificates: ask clients for a certificate and verify it against F; a verified "
     "one may write (mTLS; needs --tls-cert)"},
    {"tls-allowed-client-cn", "NAME", "",
     "only client certificates with this CN may write; repeat or comma-separate "
     "(default: any that --tls-client-ca verifies)",
     /*repeatable=*/true},
    {"authenticate-reads", "", "false",
     "reads need the same token or certificate as writes (default: reads are open)"},
    {"max-message-mib", "N", "64", "largest request accepted, MiB, in [1, 1024]"},
    {"validation-min-win-fraction", "F", "0.75",
     "a plan validation passes when the plan's mean kernel MAE is below uniform TQ-MSE's and it "
     "wins at least this fraction of the layers, in (0, 1]"},
    {"log-format", "json|text", "json",
     "stderr log lines: one JSON object each, or text for a terminal"},
    {"log-level", "LEVEL", "info",
     "debug (adds one line per RPC), info (state changes), warn or error"},
};

const FlagSpec* FindFlag(std::string_view name) {
  for (const FlagSpec& flag : kFlags) {
    if (name == flag.name) return &flag;
  }
  return nullptr;
}

std::string FlagNames() {
  std::vector<std::string> names;
  for (const FlagSpec& flag : kFlags) names.push_back(flag.name);
  return absl::StrJoin(names, ", ");
}

// One value of a setting and where it came from, for error messages:
// "--listen" or "/etc/kvplan/coordinator.conf:3: listen".
struct Value {
  std::string text;
  std::string origin;
};
using Settings = std::map<std::string, std::vector<Value>, std::less<>>;

absl::StatusOr<Settings> ParseCommandLine(const std::vector<std::string>& args) {
  Settings settings;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    const size_t eq = arg.find('=');
    const std::string name = arg.starts_with("--") ? arg.substr(2, eq - 2) : "";
    const FlagSpec* flag = FindFlag(name);
    if (flag == nullptr) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "unknown argument '%s' (kvplan-coordinator --help lists the flags)", arg));
    }
    Value value{.text = "", .origin = "--" + name};
    if (eq != std::string::npos) {
      value.text = arg.substr(eq + 1);
    } else if (*flag->value_name == '\0') {
      value.text = "true";
    } else if (i + 1 < args.size()) {
      value.text = args[++i];
    } else {
      return absl::InvalidArgumentError(
          absl::StrFormat("--%s needs a value (%s)", name, flag->value_name));
    }
    std::vector<Value>& values = settings[name];
    if (!flag->repeatable) values.clear();  // The last one wins.
    values.push_back(std::move(value));
  }
  return settings;
}

absl::StatusOr<Settings> ParseConfigFile(const std::string& path, const std::string& text) {
  Settings settings;
  std::map<std::string, int, std::less<>> first_line;
  int line_number = 0;
  // absl::string_view: Debian's Abseil is built without std::string_view.
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line.front() == '#') continue;
    const std::string where = absl::StrFormat("%s:%d", path, line_number);
    const size_t eq = line.find('=');
    if (eq == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: expected 'name = value', got '%s'", where, std::string(line)));
    }
    const std::string name(absl::StripAsciiWhitespace(line.substr(0, eq)));
    const std::string value(absl::StripAsciiWhitespace(line.substr(eq + 1)));
    const FlagSpec* flag = FindFlag(name);
    if (flag == nullptr) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: unknown setting '%s' (the settings are: %s)", where, name, FlagNames()));
    }
    if (name == "config") {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: 'config' cannot be set in a config file (no nesting)", where));
    }
    if (auto [it, inserted] = first_line.try_emplace(name, line_number);
        !inserted && !flag->repeatable) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: '%s' is set again (first on line %d); set it once", where, name, it->second));
    }
    settings[name].push_back({.text = value, .origin = absl::StrFormat("%s: %s", where, name)});
  }
  return settings;
}

// The resolved settings, with typed accessors that name the origin of a bad value.
class Resolved {
 public:
  explicit Resolved(Settings settings) : settings_(std::move(settings)) {}

  const Value& Get(std::string_view name) const { return settings_.find(name)->second.back(); }
  const std::vector<Value>& GetAll(std::string_view name) const {
    return settings_.find(name)->second;
  }
  bool IsSet(std::string_view name) const { return !Get(name).text.empty(); }

  static absl::Status Bad(const Value& v, std::string_view problem) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: %s, got '%s'", v.origin, std::string(problem), v.text));
  }

  absl::Status Bool(std::string_view name, bool* out) const {
    const Value& v = Get(name);
    if (v.text == "true") {
      *out = true;
    } else if (v.text == "false") {
      *out = false;
    } else {
      return Bad(v, "must be true or false");
    }
    return absl::OkStatus();
  }

  // The contents of the file the setting names; "" when it is unset.
  absl::Status File(std::string_view name, std::string* out) const {
    const Value& v = Get(name);
    if (v.text.empty()) return absl::OkStatus();
    absl::StatusOr<std::string> text = ReadFile(v.text, kMaxSettingsFileBytes);
    if (!text.ok()) {
      return absl::Status(text.status().code(),
                          absl::StrFormat("%s: %s", v.origin, text.status().message()));
    }
    *out = *std::move(text);
    return absl::OkStatus();
  }

 private:
  Settings settings_;
};

absl::Status Apply(const Resolved& s, CoordinatorConfig& config) {
  CoordinatorOptions& o = config.server;
  o.listen = s.Get("listen").text;
  if (o.listen.rfind(':') == std::string::npos) return s.Bad(s.Get("listen"), "must be host:port");
  o.data_dir = s.Get("data-dir").text;
  if (o.data_dir.empty()) {
    return absl::InvalidArgumentError(
        "--data-dir is required (on the command line or as data-dir in the --config file)");
  }
  o.metrics_listen = s.Get("metrics-listen").text;

  int mib = 0;
  if (!absl::SimpleAtoi(s.Get("max-message-mib").text, &mib) || mib < 1 || mib > 1024) {
    return s.Bad(s.Get("max-message-mib"), "must be a whole number in [1, 1024]");
  }
  o.max_receive_message_bytes = mib << 20;
  if (!absl::SimpleAtod(s.Get("validation-min-win-fraction").text,
                        &o.validation_rule.min_win_fraction) ||
      !CheckValidationRule(o.validation_rule).ok()) {
    return s.Bad(s.Get("validation-min-win-fraction"), "must be a number in (0, 1]");
  }

  absl::StatusOr<LogFormat> format = ParseLogFormat(s.Get("log-format").text);
  if (!format.ok()) return s.Bad(s.Get("log-format"), "must be json or text");
  config.log_format = *format;
  absl::StatusOr<LogLevel> level = ParseLogLevel(s.Get("log-level").text);
  if (!level.ok()) return s.Bad(s.Get("log-level"), "must be debug, info, warn or error");
  config.log_level = *level;

  if (absl::Status st = s.File("auth-token-file", &o.auth_token); !st.ok()) return st;
  o.auth_token = std::string(absl::StripAsciiWhitespace(o.auth_token));
  if (s.IsSet("auth-token-file") && o.auth_token.empty()) {
    return s.Bad(s.Get("auth-token-file"), "the file holds an empty token");
  }
  if (s.IsSet("tls-cert") != s.IsSet("tls-key")) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together; give both or neither");
  }
  if (absl::Status st = s.File("tls-cert", &o.tls_cert_pem); !st.ok()) return st;
  if (absl::Status st = s.File("tls-key", &o.tls_key_pem); !st.ok()) return st;
  if (s.IsSet("tls-client-ca") && !s.IsSet("tls-cert")) {
    return absl::InvalidArgumentError(
        "--tls-client-ca needs --tls-cert and --tls-key: client certificates are checked in the "
        "TLS handshake");
  }
  if (absl::Status st = s.File("tls-client-ca", &o.tls_client_ca_pem); !st.ok()) return st;
  for (const Value& v : s.GetAll("tls-allowed-client-cn")) {
    for (absl::string_view cn : absl::StrSplit(v.text, ',', absl::SkipWhitespace())) {
      o.tls_allowed_client_cns.emplace_back(absl::StripAsciiWhitespace(cn));
    }
  }
  if (!o.tls_allowed_client_cns.empty() && !s.IsSet("tls-client-ca")) {
    return absl::InvalidArgumentError(
        "--tls-allowed-client-cn needs --tls-client-ca (the CA that signs those certificates)");
  }
  if (absl::Status st = s.Bool("authenticate-reads", &o.authenticate_reads); !st.ok()) return st;
  if (o.authenticate_reads && o.auth_token.empty() && o.tls_client_ca_pem.empty()) {
    return absl::InvalidArgumentError(
        "--authenticate-reads needs --auth-token-file or --tls-client-ca (credentials to check)");
  }
  return absl::OkStatus();
}

}  // namespace

std::string CoordinatorUsage() {
  std::string usage = "usage: kvplan-coordinator --data-dir DIR [flags]\n\n";
  for (const FlagSpec& flag : kFlags) {
    const std::string left = absl::StrFormat("  --%s %s", flag.name, flag.value_name);
    std::string help = flag.help;
    if (*flag.default_value != '\0' && std::string_view(flag.name) != "authenticate-reads") {
      absl::StrAppendFormat(&help, " (default %s)", flag.default_value);
    }
    // Help wrapped into a column from 32 to 100.
    std::vector<std::string> lines(1);
    for (absl::string_view word : absl::StrSplit(help, ' ')) {
      if (!lines.back().empty() && lines.back().size() + 1 + word.size() > 68) lines.emplace_back();
      if (!lines.back().empty()) lines.back() += ' ';
      lines.back().append(word.data(), word.size());
    }
    if (left.size() > 30) lines.insert(lines.begin(), "");
    absl::StrAppendFormat(&usage, "%-32s%s\n", left, lines.front());
    for (size_t i = 1; i < lines.size(); ++i)
      absl::StrAppendFormat(&usage, "%32s%s\n", "", lines[i]);
  }
  usage +=
      "\nA --config file holds the same settings as 'name = value' lines ('#' starts a comment);\n"
      "flags on the command line override it. Prints \"listening on HOST:PORT\" (and \"metrics on\n"
      "HOST:PORT\") on stdout once serving, logs to stderr; SIGTERM or SIGINT drains and exits "
      "0.\n";
  return usage;
}

bool WantsHelp(const std::vector<std::string>& args) {
  for (const std::string& arg : args) {
    if (arg == "help" || arg == "--help" || arg == "-h") return true;
  }
  return false;
}

absl::StatusOr<CoordinatorConfig> LoadCoordinatorConfig(const std::vector<std::string>& args) {
  absl::StatusOr<Settings> command_line = ParseCommandLine(args);
  if (!command_line.ok()) return command_line.status();
  Settings file;
  CoordinatorConfig config;
  if (auto it = command_line->find("config"); it != command_line->end()) {
    config.config_file = it->second.back().text;
    absl::StatusOr<std::string> text = ReadFile(config.config_file, kMaxSettingsFileBytes);
    if (!text.ok()) {
      return absl::Status(text.status().code(),
                          absl::StrFormat("--config: %s", text.status().message()));
    }
    absl::StatusOr<Settings> parsed = ParseConfigFile(config.config_file, *text);
    if (!parsed.ok()) return parsed.status();
    file = *std::move(parsed);
  }
  Settings merged;
  for (const FlagSpec& flag : kFlags) {
    std::vector<Value>& values = merged[flag.name];
    if (auto it = command_line->find(flag.name); it != command_line->end()) {
      values = it->second;
    } else if (auto it2 = file.find(flag.name); it2 != file.end()) {
      values = it2->second;
    } else {
      values.push_back({.text = flag.default_value, .origin = absl::StrFormat("--%s", flag.name)});
    }
  }
  if (absl::Status st = Apply(Resolved(std::move(merged)), config); !st.ok()) return st;
  return config;
}

}  // namespace kvplan::server
