// Flag parsing for the verbs of the `kvplan` tool.
//
// Each verb declares the flags it takes; anything else is refused by name, so a
// typo such as `--k-bit` fails loudly instead of silently using a default.
//
// Example:
//   absl::StatusOr<Flags> flags = Flags::Parse(args, {.values = {"bits", "score"},
//                                                     .switches = {"json"}});
//   absl::StatusOr<double> bits = flags->Double("bits");       // required
//   absl::StatusOr<int> min = flags->Int("min-bits", 1);        // default 1
//   bool json = flags->Has("json");
#ifndef KVPLAN_CLIENT_CLI_FLAGS_H_
#define KVPLAN_CLIENT_CLI_FLAGS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kvplan::cli {

struct FlagSpec {
  // Flags that take a value: `--name VALUE` or `--name=VALUE`.
  std::set<std::string> values;
  // Flags that take none: `--name`.
  std::set<std::string> switches;
};

class Flags {
 public:
  // InvalidArgument for unknown flags, a value flag without a value, a switch
  // given a value, a repeated flag, or a bare positional argument.
  static absl::StatusOr<Flags> Parse(const std::vector<std::string>& args, const FlagSpec& spec);

  bool Has(const std::string& name) const { return given_.contains(name); }
  std::optional<std::string> Get(const std::string& name) const;

  // Required forms fail naming the missing flag; the defaulted forms return the
  // default when the flag is absent. Malformed numbers fail naming flag and value.
  absl::StatusOr<std::string> String(const std::string& name) const;
  absl::StatusOr<double> Double(const std::string& name) const;
  absl::StatusOr<double> Double(const std::string& name, double fallback) const;
  absl::StatusOr<int64_t> Int(const std::string& name, int64_t fallback) const;
  // Comma-separated numbers: "2,2.5,3".
  absl::StatusOr<std::vector<double>> DoubleList(const std::string& name) const;

 private:
  std::map<std::string, std::string> given_;
};

}  // namespace kvplan::cli

#endif  // KVPLAN_CLIENT_CLI_FLAGS_H_
