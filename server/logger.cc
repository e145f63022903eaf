#include "server/logger.h"

#include <unistd.h>

#include <cerrno>
#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"

namespace kvplan::server {
namespace {

constexpr std::string_view kReservedKeys[] = {"time", "level", "component", "message"};

std::string FieldKey(const std::string& key) {
  for (std::string_view reserved : kReservedKeys) {
    if (key == reserved) return "field_" + key;
  }
  return key;
}

std::string Timestamp(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone());
}

// Text values stay bare when they are one plain token, and are quoted and
// C-escaped otherwise, so a line still splits on spaces and stays one line.
std::string TextValue(std::string_view s) {
  bool plain = !s.empty();
  for (char c : s) {
    if (!absl::ascii_isgraph(static_cast<unsigned char>(c)) || c == '"' || c == '=') plain = false;
  }
  return plain ? std::string(s) : absl::StrFormat("\"%s\"", absl::CHexEscape(std::string(s)));
}

std::string TextValue(const LogField::Value& value) {
  return std::visit(
      [](const auto& v) -> std::string {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::string>) {
          return TextValue(std::string_view(v));
        } else if constexpr (std::is_same_v<T, bool>) {
          return v ? "true" : "false";
        } else {
          return nlohmann::json(v).dump();  // The same number text as the JSON format.
        }
      },
      value);
}

}  // namespace

const char* LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

absl::StatusOr<LogLevel> ParseLogLevel(std::string_view name) {
  for (LogLevel level : {LogLevel::kDebug, LogLevel::kInfo, LogLevel::kWarn, LogLevel::kError}) {
    if (name == LogLevelName(level)) return level;
  }
  if (name == "warning") return LogLevel::kWarn;
  return absl::InvalidArgumentError(
      absl::StrFormat("log level '%s' is not one of debug, info, warn, error", std::string(name)));
}

absl::StatusOr<LogFormat> ParseLogFormat(std::string_view name) {
  if (name == "json") return LogFormat::kJson;
  if (name == "text") return LogFormat::kText;
  return absl::InvalidArgumentError(
      absl::StrFormat("log format '%s' is not json or text", std::string(name)));
}

LogSink StderrSink() {
  auto mu = std::make_shared<std::mutex>();
  return [mu](std::string_view line) {
    std::lock_guard<std::mutex> lock(*mu);
    while (!line.empty()) {
      const ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
      if (n < 0 && errno == EINTR) continue;
      // Nowhere left to report a failing stderr; the line is dropped.
      if (n <= 0) return;
      line.remove_prefix(static_cast<size_t>(n));
    }
  };
}

Logger::Logger(LoggerOptions options) : component_(options.component) {
  if (!options.now) options.now = [] { return absl::Now(); };
  options_ = std::make_shared<const LoggerOptions>(std::move(options));
}

bool Logger::enabled(LogLevel level) const {
  return options_ != nullptr && options_->sink && level >= options_->min_level;
}

void Logger::Log(LogLevel level, std::string_view message,
                 absl::Span<const LogField> fields) const {
  if (!enabled(level)) return;
  options_->sink(FormatLine(level, message, fields));
}

Logger Logger::WithComponent(std::string component) const {
  Logger child = *this;
  child.component_ = std::move(component);
  return child;
}

std::string Logger::FormatLine(LogLevel level, std::string_view message,
                               absl::Span<const LogField> fields) const {
  const absl::Time now = options_ != nullptr ? options_->now() : absl::Now();
  if (options_ == nullptr || options_->format == LogFormat::kJson) {
    nlohmann::ordered_json line;
    line["time"] = Timestamp(now);
    line["level"] = LogLevelName(level);
    line["component"] = component_;
    line["message"] = std::string(message);
    for (const LogField& field : fields) {
      std::visit([&](const auto& v) { line[FieldKey(field.key())] = v; }, field.value());
    }
    // Replacing invalid UTF-8 (a peer's bytes in an error message) keeps
    // every line parseable instead of throwing.
    return line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  }
  std::string line =
      absl::StrFormat("%s %-5s %s: ", Timestamp(now), LogLevelName(level), component_);
  // The message is free text; only characters that would break the line are escaped.
  for (char c : message) {
    if (absl::ascii_iscntrl(static_cast<unsigned char>(c))) {
      line += absl::CHexEscape(std::string(1, c));
    } else {
      line += c;
    }
  }
  for (const LogField& field : fields) {
    absl::StrAppendFormat(&line, " %s=%s", FieldKey(field.key()), TextValue(field.value()));
  }
  line += "\n";
  return line;
}

}  // namespace kvplan::server
