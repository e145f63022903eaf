#include "client/cli/flags.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace kvplan::cli {
namespace {

std::string Choices(const FlagSpec& spec) {
  std::vector<std::string> all;
  for (const std::string& v : spec.values) all.push_back("--" + v);
  for (const std::string& s : spec.switches) all.push_back("--" + s);
  std::sort(all.begin(), all.end());
  return absl::StrJoin(all, " ");
}

absl::StatusOr<double> ParseDouble(const std::string& name, std::string_view text) {
  double value = 0.0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size() ||
      !std::isfinite(value)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--%s: '%s' is not a finite number", name, text));
  }
  return value;
}

}  // namespace

absl::StatusOr<Flags> Flags::Parse(const std::vector<std::string>& args, const FlagSpec& spec) {
  Flags flags;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg.size() < 3 || arg.compare(0, 2, "--") != 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("unexpected argument '%s'; flags look like --name VALUE", arg));
    }
    std::string name = arg.substr(2);
    std::optional<std::string> value;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
    }
    if (spec.switches.contains(name)) {
      if (value.has_value()) {
        return absl::InvalidArgumentError(absl::StrFormat("--%s takes no value", name));
      }
      value = "";
    } else if (spec.values.contains(name)) {
      if (!value.has_value()) {
        if (i + 1 >= args.size()) {
          return absl::InvalidArgumentError(absl::StrFormat("--%s needs a value", name));
        }
        value = args[++i];
      }
    } else {
      return absl::InvalidArgumentError(
          absl::StrFormat("unknown flag --%s; this command takes: %s", name, Choices(spec)));
    }
    if (!flags.given_.emplace(name, *value).second) {
      return absl::InvalidArgumentError(absl::StrFormat("--%s is given twice", name));
    }
  }
  return flags;
}

std::optional<std::string> Flags::Get(const std::string& name) const {
  auto it = given_.find(name);
  if (it == given_.end()) return std::nullopt;
  return it->second;
}

absl::StatusOr<std::string> Flags::String(const std::string& name) const {
  std::optional<std::string> value = Get(name);
  if (!value.has_value() || value->empty()) {
    return absl::InvalidArgumentError(absl::StrFormat("--%s is required", name));
  }
  return *value;
}

absl::StatusOr<double> Flags::Double(const std::string& name) const {
  absl::StatusOr<std::string> text = String(name);
  if (!text.ok()) return text.status();
  return ParseDouble(name, *text);
}

absl::StatusOr<double> Flags::Double(const std::string& name, double fallback) const {
  if (!Has(name)) return fallback;
  return Double(name);
}

absl::StatusOr<int64_t> Flags::Int(const std::string& name, int64_t fallback) const {
  std::optional<std::string> text = Get(name);
  if (!text.has_value()) return fallback;
  int64_t value = 0;
  auto [ptr, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
  if (text->empty() || ec != std::errc() || ptr != text->data() + text->size()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--%s: '%s' is not a whole number", name, *text));
  }
  return value;
}

absl::StatusOr<std::vector<double>> Flags::DoubleList(const std::string& name) const {
  absl::StatusOr<std::string> text = String(name);
  if (!text.ok()) return text.status();
  std::vector<double> values;
  for (absl::string_view part : absl::StrSplit(*text, ',')) {
    absl::StatusOr<double> v = ParseDouble(name, std::string_view(part.data(), part.size()));
    if (!v.ok()) return v.status();
    values.push_back(*v);
  }
  return values;
}

}  // namespace kvplan::cli
