// kvplan-coordinator's settings: command-line flags and, optionally, a config
// file that holds the same settings under the same names, resolved into
// CoordinatorOptions and the logger's format and level.
//
// Precedence: built-in default < config file < command line. A setting given
// on the command line replaces the file's value entirely (for the repeatable
// tls-allowed-client-cn too). On the command line a flag given twice keeps the
// last value, except tls-allowed-client-cn, whose values add up.
//
// Config file grammar (UTF-8 text, one setting per line):
//   file    := line*
//   line    := blank | comment | setting
//   blank   := ws*
//   comment := ws* '#' any*
//   setting := ws* name ws* '=' ws* value ws*
//   name    := a flag name without its "--" (listen, data-dir, log-level, ...)
//   value   := the rest of the line, surrounding whitespace removed; no quoting
//              ('#' inside a value is part of it)
// A name may appear once, except tls-allowed-client-cn (one line per name, or
// comma-separated). `config` itself cannot be set in a file.
//
// Example file:
//   # /etc/kvplan/coordinator.conf
//   listen = 0.0.0.0:7400
//   data-dir = /var/lib/kvplan
//   auth-token-file = /etc/kvplan/token
//   log-level = info
//
// Errors name where the bad value came from: "--max-message-mib: ..." or
// "/etc/kvplan/coordinator.conf:3: max-message-mib: ...".
#ifndef KVPLAN_SERVER_COORDINATOR_CONFIG_H_
#define KVPLAN_SERVER_COORDINATOR_CONFIG_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/coordinator_server.h"
#include "server/logger.h"

namespace kvplan::server {

struct CoordinatorConfig {
  // Everything but the logger, which the caller builds from the two fields below.
  CoordinatorOptions server;
  LogFormat log_format = LogFormat::kJson;
  LogLevel log_level = LogLevel::kInfo;
  // The --config file read; empty when none.
  std::string config_file;
};

// The --help text: every setting, its value, default and meaning.
std::string CoordinatorUsage();

// Whether `args` asks for help ("help", "--help" or "-h" anywhere).
bool WantsHelp(const std::vector<std::string>& args);

// Parses `args` (argv without the program name), reads the --config file if
// one is named, and reads the files the settings name (token, PEM files).
// InvalidArgument for an unknown flag or key, a missing or malformed value,
// or settings that contradict each other; the message names the flag, or the
// file, line and key. File read errors keep their codes and name the setting.
absl::StatusOr<CoordinatorConfig> LoadCoordinatorConfig(const std::vector<std::string>& args);

}  // namespace kvplan::server

#endif  // KVPLAN_SERVER_COORDINATOR_CONFIG_H_
