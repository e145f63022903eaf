#include "worker/model/checkpoint.h"

#include <algorithm>
#include <map>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/file_io.h"
#include "nlohmann/json.hpp"

namespace kvplan {
namespace {

using nlohmann::json;

constexpr char kConfigFile[] = "config.json";
constexpr char kSingleFile[] = "model.safetensors";
constexpr char kIndexFile[] = "model.safetensors.index.json";

absl::StatusOr<json> ReadJsonObject(const std::filesystem::path& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return text.status();
  json parsed = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    return absl::InvalidArgumentError(absl::StrCat(path.string(), " is not valid JSON"));
  }
  if (!parsed.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path.string(), " is not a JSON object"));
  }
  return parsed;
}

// The shard files of an index, in first-mention order, with the tensors each holds.
absl::StatusOr<std::vector<std::pair<std::string, std::vector<std::string>>>> ReadIndex(
    const std::filesystem::path& index_path) {
  absl::StatusOr<json> index = ReadJsonObject(index_path);
  if (!index.ok()) return index.status();
  auto map_it = index->find("weight_map");
  if (map_it == index->end() || !map_it->is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(index_path.string(), " has no \"weight_map\" object"));
  }
  std::vector<std::pair<std::string, std::vector<std::string>>> shards;
  std::map<std::string, size_t> shard_of_file;
  for (const auto& [tensor, file] : map_it->items()) {
    if (!file.is_string()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: weight_map entry for '%s' is not a file name", index_path.string(), tensor));
    }
    const std::string name = file.get<std::string>();
    // Shards are siblings of the index; anything else is a malformed (or hostile) index.
    const std::filesystem::path as_path(name);
    if (name.empty() || as_path.has_parent_path() || as_path.is_absolute() || name == "." ||
        name == "..") {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: weight_map places '%s' in '%s', which is not a file in the "
                          "checkpoint directory",
                          index_path.string(), tensor, name));
    }
    auto [it, inserted] = shard_of_file.emplace(name, shards.size());
    if (inserted) shards.push_back({name, {}});
    shards[it->second].second.push_back(tensor);
  }
  if (shards.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(index_path.string(), " has an empty weight_map"));
  }
  return shards;
}

}  // namespace

Checkpoint::Checkpoint(std::filesystem::path dir, std::unique_ptr<json> config,
                       std::vector<SafetensorsFile> shards)
    : dir_(std::move(dir)), config_(std::move(config)), shards_(std::move(shards)) {}

Checkpoint::Checkpoint(Checkpoint&&) noexcept = default;
Checkpoint& Checkpoint::operator=(Checkpoint&&) noexcept = default;
Checkpoint::~Checkpoint() = default;

absl::StatusOr<Checkpoint> Checkpoint::Open(const std::filesystem::path& dir) {
  std::error_code error;
  if (!std::filesystem::is_directory(dir, error)) {
    return absl::NotFoundError(
        absl::StrCat("checkpoint directory ", dir.string(), " does not exist"));
  }
  absl::StatusOr<json> config = ReadJsonObject(dir / kConfigFile);
  if (!config.ok()) return config.status();

  std::vector<SafetensorsFile> shards;
  // Which tensors each shard must hold (the index's promise); empty for a single file.
  std::vector<std::vector<std::string>> promised;
  const std::filesystem::path index_path = dir / kIndexFile;
  if (std::filesystem::exists(index_path, error)) {
    auto index = ReadIndex(index_path);
    if (!index.ok()) return index.status();
    for (auto& [file, tensors] : *index) {
      absl::StatusOr<SafetensorsFile> shard = SafetensorsFile::Open(dir / file);
      if (!shard.ok()) {
        if (absl::IsNotFound(shard.status())) {
          return absl::NotFoundError(absl::StrFormat("shard %s named by %s: %s", file,
                                                     index_path.string(),
                                                     std::string(shard.status().message())));
        }
        return shard.status();
      }
      shards.push_back(*std::move(shard));
      promised.push_back(std::move(tensors));
    }
  } else if (std::filesystem::exists(dir / kSingleFile, error)) {
    absl::StatusOr<SafetensorsFile> single = SafetensorsFile::Open(dir / kSingleFile);
    if (!single.ok()) return single.status();
    shards.push_back(*std::move(single));
  } else {
    return absl::NotFoundError(absl::StrFormat("checkpoint directory %s has neither %s nor %s",
                                               dir.string(), kSingleFile, kIndexFile));
  }

  Checkpoint checkpoint(dir, std::make_unique<json>(*std::move(config)), std::move(shards));
  for (size_t s = 0; s < checkpoint.shards_.size(); ++s) {
    const SafetensorsFile& shard = checkpoint.shards_[s];
    if (promised.empty()) {
      for (size_t t = 0; t < shard.tensors().size(); ++t) {
        checkpoint.index_.emplace(shard.tensors()[t].name, std::make_pair(s, t));
      }
      continue;
    }
    for (const std::string& name : promised[s]) {
      const TensorView* view = shard.Find(name);
      if (view == nullptr) {
        return absl::DataLossError(
            absl::StrFormat("%s places tensor '%s' in %s, which does not hold it",
                            index_path.string(), name, shard.path().filename().string()));
      }
      checkpoint.index_.emplace(
          name, std::make_pair(s, static_cast<size_t>(view - shard.tensors().data())));
    }
  }
  return checkpoint;
}

const TensorView* Checkpoint::Find(std::string_view name) const {
  auto it = index_.find(std::string(name));
  if (it == index_.end()) return nullptr;
  return &shards_[it->second.first].tensors()[it->second.second];
}

std::vector<std::string> Checkpoint::TensorNames() const {
  std::vector<std::string> names;
  names.reserve(index_.size());
  for (const auto& [name, where] : index_) names.push_back(name);
  std::sort(names.begin(), names.end());
  return names;
}

uint64_t Checkpoint::total_bytes() const {
  uint64_t total = 0;
  for (const auto& [name, where] : index_) {
    total += shards_[where.first].tensors()[where.second].bytes.size();
  }
  return total;
}

}  // namespace kvplan
