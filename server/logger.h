// Structured logs: one line per event, as a JSON object or as text, handed
// whole to a sink (stderr in kvplan-coordinator, a string in tests).
//
// Example:
//   Logger log({.format = LogFormat::kJson, .min_level = LogLevel::kInfo, .sink = StderrSink()});
//   log.Info("plan created", {{"plan_id", id}, {"version", 3}});
//   // {"time":"2026-11-29T07:15:27.123Z","level":"info","component":"coordinator",
//   //  "message":"plan created","plan_id":"9f2c...","version":3}
//   log.WithComponent("grpc").Warn("handshake failed");
//
// A Logger is a small value: copies share the sink and settings, so a component
// takes one by value instead of reaching for a process-wide logger. A
// default-constructed Logger discards everything (library code logs only where
// its owner asked it to).
//
// Thread safety: thread-safe; each line reaches the sink in one call.
#ifndef KVPLAN_SERVER_LOGGER_H_
#define KVPLAN_SERVER_LOGGER_H_

#include <concepts>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <variant>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

namespace kvplan::server {

enum class LogLevel { kDebug, kInfo, kWarn, kError };
enum class LogFormat { kJson, kText };

// "debug", "info", "warn", "error".
const char* LogLevelName(LogLevel level);
// The inverse of LogLevelName ("warning" is accepted too). InvalidArgument
// naming the accepted values otherwise.
absl::StatusOr<LogLevel> ParseLogLevel(std::string_view name);
// "json" or "text"; InvalidArgument naming both otherwise.
absl::StatusOr<LogFormat> ParseLogFormat(std::string_view name);

// One key/value of a log line. Keys are snake_case by convention; a key equal
// to one of the line's own ("time", "level", "component", "message") is
// written with a "field_" prefix so it cannot hide them.
class LogField {
 public:
  using Value = std::variant<std::string, int64_t, uint64_t, double, bool>;

  LogField(std::string key, std::string value) : key_(std::move(key)), value_(std::move(value)) {}
  LogField(std::string key, std::string_view value)
      : LogField(std::move(key), std::string(value)) {}
  // Without this, a string literal would convert to bool.
  LogField(std::string key, const char* value) : LogField(std::move(key), std::string(value)) {}
  LogField(std::string key, bool value) : key_(std::move(key)), value_(value) {}
  LogField(std::string key, double value) : key_(std::move(key)), value_(value) {}
  template <std::signed_integral T>
  LogField(std::string key, T value) : key_(std::move(key)), value_(static_cast<int64_t>(value)) {}
  template <std::unsigned_integral T>
  requires(!std::same_as<T, bool>) LogField(std::string key, T value)
      : key_(std::move(key)), value_(static_cast<uint64_t>(value)) {}

  const std::string& key() const { return key_; }
  const Value& value() const { return value_; }

 private:
  std::string key_;
  Value value_;
};

// Receives one complete line, newline included.
using LogSink = std::function<void(std::string_view line)>;

// Writes each line to file descriptor 2 with write(2), under a lock shared by
// copies of the sink, so concurrent lines never interleave.
LogSink StderrSink();

struct LoggerOptions {
  // JSON for log pipelines (one object per line), text for people at a
  // terminal. Default: JSON.
  LogFormat format = LogFormat::kJson;
  // Lines below this level are dropped before they are formatted. Default: info.
  LogLevel min_level = LogLevel::kInfo;
  // What the "component" key says. Default: "coordinator".
  std::string component = "coordinator";
  // Where lines go; empty discards them. Default: empty.
  LogSink sink;
  // Time of each line, written as RFC 3339 UTC with milliseconds. Default: absl::Now.
  std::function<absl::Time()> now;
};

class Logger {
 public:
  // Discards everything.
  Logger() = default;
  explicit Logger(LoggerOptions options);

  // Whether a line at `level` would be written; check it before computing
  // fields that cost something.
  bool enabled(LogLevel level) const;

  void Log(LogLevel level, std::string_view message, absl::Span<const LogField> fields = {}) const;
  void Debug(std::string_view message, absl::Span<const LogField> fields = {}) const {
    Log(LogLevel::kDebug, message, fields);
  }
  void Info(std::string_view message, absl::Span<const LogField> fields = {}) const {
    Log(LogLevel::kInfo, message, fields);
  }
  void Warn(std::string_view message, absl::Span<const LogField> fields = {}) const {
    Log(LogLevel::kWarn, message, fields);
  }
  void Error(std::string_view message, absl::Span<const LogField> fields = {}) const {
    Log(LogLevel::kError, message, fields);
  }

  // The same sink, format and level under another component name.
  Logger WithComponent(std::string component) const;

  // The line Log would write (newline included), whatever the level and sink.
  std::string FormatLine(LogLevel level, std::string_view message,
                         absl::Span<const LogField> fields) const;

 private:
  std::shared_ptr<const LoggerOptions> options_;
  std::string component_;
};

}  // namespace kvplan::server

#endif  // KVPLAN_SERVER_LOGGER_H_
