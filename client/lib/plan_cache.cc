#include "client/lib/plan_cache.h"

#include <system_error>

#include "absl/strings/str_format.h"
#include "core/digest.h"
#include "core/file_io.h"
#include "nlohmann/json.hpp"

namespace kvplan::client {
namespace {

constexpr std::string_view kHeader = "kvplan-plan-cache 1\n";
constexpr std::string_view kChecksumPrefix = "\nsha256 ";
constexpr size_t kHashChars = 64;
// Plans are kilobytes to a few megabytes; anything far larger is not a cache file.
constexpr size_t kMaxCacheBytes = size_t{256} << 20;

absl::Status Bad(const std::filesystem::path& path, std::string_view what) {
  return absl::DataLossError(
      absl::StrFormat("plan cache file %s is unusable: %s", path.string(), std::string(what)));
}

}  // namespace

std::filesystem::path PlanCachePath(const std::filesystem::path& dir,
                                    std::string_view model_fingerprint, std::string_view channel) {
  return dir / absl::StrFormat("%s.%s.plan", std::string(channel),
                               Sha256Hex(model_fingerprint).substr(0, 16));
}

absl::Status WritePlanCache(const std::filesystem::path& path, const CachedPlan& plan) {
  std::error_code error;
  std::filesystem::create_directories(path.parent_path(), error);
  if (error) {
    return absl::InternalError(absl::StrFormat("cannot create plan cache directory %s: %s",
                                               path.parent_path().string(), error.message()));
  }
  const nlohmann::json meta = {{"model_fingerprint", plan.model_fingerprint},
                               {"model_id", plan.model_id},
                               {"channel", plan.channel},
                               {"plan_id", plan.plan_id},
                               {"plan_name", plan.plan_name},
                               {"version", plan.version}};
  std::string out(kHeader);
  out += meta.dump();  // No indent: one line, newlines inside strings escaped.
  out += "\n";
  out += plan.plan_json;
  const std::string checksum = Sha256Hex(out);
  out += kChecksumPrefix;
  out += checksum;
  out += "\n";
  return WriteFileAtomically(path, out);
}

absl::StatusOr<CachedPlan> ReadPlanCache(const std::filesystem::path& path) {
  absl::StatusOr<std::string> bytes = ReadFile(path, kMaxCacheBytes);
  if (!bytes.ok()) return bytes.status();
  const std::string_view text = *bytes;
  if (!text.starts_with(kHeader)) return Bad(path, "no 'kvplan-plan-cache 1' header");
  const size_t trailer = kChecksumPrefix.size() + kHashChars + 1;
  if (text.size() < kHeader.size() + trailer || !text.ends_with("\n") ||
      text.substr(text.size() - trailer, kChecksumPrefix.size()) != kChecksumPrefix) {
    return Bad(path, "no checksum line at the end (truncated)");
  }
  const std::string_view body = text.substr(0, text.size() - trailer);
  const std::string_view checksum = text.substr(text.size() - kHashChars - 1, kHashChars);
  if (Sha256Hex(body) != checksum) return Bad(path, "checksum mismatch (corrupt or altered)");

  const std::string_view rest = body.substr(kHeader.size());
  const size_t newline = rest.find('\n');
  if (newline == std::string_view::npos) return Bad(path, "no metadata line");
  const nlohmann::json meta = nlohmann::json::parse(rest.substr(0, newline), nullptr, false);
  if (!meta.is_object()) return Bad(path, "metadata is not a JSON object");
  CachedPlan out;
  for (auto [key, field] : {std::pair{"model_fingerprint", &out.model_fingerprint},
                            {"model_id", &out.model_id},
                            {"channel", &out.channel},
                            {"plan_id", &out.plan_id},
                            {"plan_name", &out.plan_name}}) {
    if (!meta.contains(key) || !meta[key].is_string()) {
      return Bad(path, absl::StrFormat("metadata has no string '%s'", key));
    }
    *field = meta[key].get<std::string>();
  }
  if (!meta.contains("version") || !meta["version"].is_number_unsigned()) {
    return Bad(path, "metadata has no unsigned 'version'");
  }
  out.version = meta["version"].get<uint64_t>();
  out.plan_json = std::string(rest.substr(newline + 1));
  return out;
}

}  // namespace kvplan::client
