// The structured logger: JSON and text lines, levels, fields, escaping.
#include "server/logger.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace kvplan::server {
namespace {

class LoggerTest : public ::testing::Test {
 protected:
  Logger Make(LogFormat format, LogLevel min_level = LogLevel::kInfo) {
    return Logger({.format = format,
                   .min_level = min_level,
                   .component = "coordinator",
                   .sink = [this](std::string_view line) { lines_.emplace_back(line); },
                   .now = [] { return absl::FromUnixMillis(1795000000123); }});
  }
  std::vector<std::string> lines_;
};

TEST_F(LoggerTest, JsonLinesCarryTimeLevelComponentMessageAndFields) {
  Logger log = Make(LogFormat::kJson);
  log.Info("plan created", {{"plan_id", "abc"},
                            {"version", uint64_t{3}},
                            {"shard", -1},
                            {"latency_ms", 1.5},
                            {"tls", true}});
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_EQ(lines_[0],
            "{\"time\":\"2026-11-18T11:06:40.123Z\",\"level\":\"info\",\"component\":"
            "\"coordinator\",\"message\":\"plan created\",\"plan_id\":\"abc\",\"version\":3,"
            "\"shard\":-1,\"latency_ms\":1.5,\"tls\":true}\n");
}

TEST_F(LoggerTest, LinesBelowTheLevelAreDropped) {
  Logger log = Make(LogFormat::kJson, LogLevel::kWarn);
  EXPECT_FALSE(log.enabled(LogLevel::kInfo));
  EXPECT_TRUE(log.enabled(LogLevel::kError));
  log.Debug("d");
  log.Info("i");
  log.Warn("w");
  log.Error("e");
  ASSERT_EQ(lines_.size(), 2u);
  EXPECT_EQ(nlohmann::json::parse(lines_[0])["level"], "warn");
  EXPECT_EQ(nlohmann::json::parse(lines_[1])["level"], "error");
}

TEST_F(LoggerTest, ADefaultLoggerDiscardsEverything) {
  Logger log;
  EXPECT_FALSE(log.enabled(LogLevel::kError));
  log.Error("nowhere");  // Must not crash.
}

TEST_F(LoggerTest, HostileStringsStayOneParseableLine) {
  Logger log = Make(LogFormat::kJson);
  const std::string nasty = "a\"b\\c\nd\x01 \xff\xfe";
  log.Warn(nasty, {{"peer", nasty}, {"message", "shadow"}});
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_EQ(lines_[0].find('\n'), lines_[0].size() - 1);
  const nlohmann::json j = nlohmann::json::parse(lines_[0]);
  EXPECT_EQ(j["message"].get<std::string>().substr(0, 9), "a\"b\\c\nd\x01 ");
  EXPECT_EQ(j["field_message"], "shadow") << "a field cannot hide the line's own keys";
}

TEST_F(LoggerTest, TextLinesQuoteValuesThatWouldSplit) {
  Logger log = Make(LogFormat::kText);
  log.WithComponent("grpc").Info("handshake\nfailed",
                                 {{"peer", "ipv4:127.0.0.1:5"}, {"error", "bad cert"}, {"n", 2}});
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_EQ(lines_[0],
            "2026-11-18T11:06:40.123Z info  grpc: handshake\\nfailed peer=ipv4:127.0.0.1:5 "
            "error=\"bad cert\" n=2\n");
}

TEST(LogLevelTest, NamesParseBackAndBadOnesSayWhatIsAccepted) {
  for (LogLevel level : {LogLevel::kDebug, LogLevel::kInfo, LogLevel::kWarn, LogLevel::kError}) {
    EXPECT_EQ(*ParseLogLevel(LogLevelName(level)), level);
  }
  EXPECT_EQ(*ParseLogLevel("warning"), LogLevel::kWarn);
  absl::StatusOr<LogLevel> bad = ParseLogLevel("loud");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("debug, info, warn, error"), std::string::npos);
  EXPECT_EQ(*ParseLogFormat("text"), LogFormat::kText);
  EXPECT_FALSE(ParseLogFormat("xml").ok());
}

}  // namespace
}  // namespace kvplan::server
