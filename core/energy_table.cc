#include "core/energy_table.h"

#include <charconv>
#include <cmath>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"

namespace kvplan {
namespace {

using nlohmann::json;

// Parses "<layer>.<kv_head>" with both parts non-negative decimal integers.
absl::StatusOr<std::pair<int, int>> ParseHeadKey(const std::string& key) {
  const size_t dot = key.find('.');
  auto parse = [](std::string_view s, int* out) {
    if (s.empty()) return false;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
    return ec == std::errc() && ptr == s.data() + s.size() && *out >= 0;
  };
  std::pair<int, int> head;
  if (dot == std::string::npos || !parse(std::string_view(key).substr(0, dot), &head.first) ||
      !parse(std::string_view(key).substr(dot + 1), &head.second)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "key '", key, "' is not '<layer>.<kv_head>' (two non-negative integers, e.g. \"3.1\")"));
  }
  return head;
}

absl::StatusOr<std::vector<double>> ParseValues(const json& list, const std::string& where) {
  if (!list.is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(where, " must be a list of numbers"));
  }
  if (list.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, " is an empty list; give one value per RoPE block"));
  }
  std::vector<double> values;
  values.reserve(list.size());
  for (size_t i = 0; i < list.size(); ++i) {
    if (!list[i].is_number()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s[%d] is %s, not a number (NaN and Infinity are not allowed)", where, i,
                          list[i].dump()));
    }
    const double v = list[i].get<double>();
    if (!std::isfinite(v) || v < 0.0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s[%d] is %g; energies and scores must be finite and >= 0", where, i, v));
    }
    values.push_back(v);
  }
  return values;
}

const json* FindEither(const json& obj, const char* a, const char* b) {
  if (auto it = obj.find(a); it != obj.end()) return &*it;
  if (auto it = obj.find(b); it != obj.end()) return &*it;
  return nullptr;
}

}  // namespace

absl::StatusOr<std::vector<double>> EnergyTable::Scores(int layer, int kv_head,
                                                        ScoreKind kind) const {
  if (layer < 0 || layer >= num_layers_ || kv_head < 0 || kv_head >= num_kv_heads_) {
    return absl::NotFoundError(
        absl::StrFormat("no statistics for (layer %d, kv_head %d)", layer, kv_head));
  }
  if (!has_energies_) {
    if (kind != ScoreKind::kSum) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "the input holds ready scores, so score '%s' cannot be computed; pass per-block "
          "{\"q\": [...], \"k\": [...]} energies instead",
          ScoreKindName(kind)));
    }
    return scores_[Index(layer, kv_head)];
  }
  return BlockScores(q_[Index(layer, kv_head)], k_[Index(layer, kv_head)], kind);
}

absl::StatusOr<EnergyTable> EnergyTableFromJson(const json& input) {
  if (!input.is_object()) {
    return absl::InvalidArgumentError(
        "energy JSON must be an object keyed by \"<layer>.<kv_head>\"");
  }
  const json* heads = &input;
  for (const char* wrapper : {"block_energy_calib", "block_energy"}) {
    if (auto it = input.find(wrapper); it != input.end()) {
      heads = &*it;
      break;
    }
  }
  if (!heads->is_object() || heads->empty()) {
    return absl::InvalidArgumentError(
        "energy JSON has no heads; expected {\"<layer>.<kv_head>\": ...} entries");
  }

  struct Entry {
    std::vector<double> q, k, scores;
  };
  std::map<std::pair<int, int>, Entry> entries;
  std::optional<bool> energies;
  size_t num_blocks = 0;
  for (const auto& [key, value] : heads->items()) {
    absl::StatusOr<std::pair<int, int>> head = ParseHeadKey(key);
    if (!head.ok()) return head.status();
    Entry entry;
    const bool is_energy = value.is_object();
    if (energies.has_value() && *energies != is_energy) {
      return absl::InvalidArgumentError(absl::StrCat(
          "head '", key, "' mixes forms: all heads must be energy objects or all score lists"));
    }
    energies = is_energy;
    if (is_energy) {
      const json* q = FindEither(value, "q", "q_energy");
      const json* k = FindEither(value, "k", "k_energy");
      if (q == nullptr || k == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat("head '", key, "' needs both \"q\" and \"k\" energy lists"));
      }
      absl::StatusOr<std::vector<double>> qv = ParseValues(*q, absl::StrCat("'", key, "'.q"));
      if (!qv.ok()) return qv.status();
      absl::StatusOr<std::vector<double>> kv = ParseValues(*k, absl::StrCat("'", key, "'.k"));
      if (!kv.ok()) return kv.status();
      if (qv->size() != kv->size()) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "head '%s' has %d q energies but %d k energies", key, qv->size(), kv->size()));
      }
      entry.q = *std::move(qv);
      entry.k = *std::move(kv);
    } else {
      absl::StatusOr<std::vector<double>> s = ParseValues(value, absl::StrCat("'", key, "'"));
      if (!s.ok()) return s.status();
      entry.scores = *std::move(s);
    }
    const size_t blocks = is_energy ? entry.q.size() : entry.scores.size();
    if (num_blocks != 0 && blocks != num_blocks) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "head '%s' has %d blocks but earlier heads have %d; every head needs head_dim/2 values",
          key, blocks, num_blocks));
    }
    num_blocks = blocks;
    if (!entries.emplace(*head, std::move(entry)).second) {
      return absl::InvalidArgumentError(absl::StrCat("head '", key, "' appears twice"));
    }
  }

  EnergyTable table;
  table.num_layers_ = entries.rbegin()->first.first + 1;
  for (const auto& [head, entry] : entries) {
    table.num_kv_heads_ = std::max(table.num_kv_heads_, head.second + 1);
  }
  table.num_blocks_ = static_cast<int>(num_blocks);
  table.has_energies_ = *energies;
  const size_t total = static_cast<size_t>(table.num_layers_) * table.num_kv_heads_;
  if (entries.size() != total) {
    for (int l = 0; l < table.num_layers_; ++l) {
      for (int h = 0; h < table.num_kv_heads_; ++h) {
        if (!entries.contains({l, h})) {
          return absl::InvalidArgumentError(absl::StrFormat(
              "head '%d.%d' is missing; the input must cover every (layer, kv_head) of a %d x %d "
              "grid",
              l, h, table.num_layers_, table.num_kv_heads_));
        }
      }
    }
  }
  table.q_.resize(total);
  table.k_.resize(total);
  table.scores_.resize(total);
  for (auto& [head, entry] : entries) {
    const size_t i = table.Index(head.first, head.second);
    table.q_[i] = std::move(entry.q);
    table.k_[i] = std::move(entry.k);
    table.scores_[i] = std::move(entry.scores);
  }
  return table;
}

absl::StatusOr<EnergyTable> EnergyTableFromStats(const BlockStats& stats) {
  if (absl::Status st = stats.CheckComplete(); !st.ok()) return st;
  EnergyTable table;
  table.num_layers_ = stats.shape().num_layers;
  table.num_kv_heads_ = stats.shape().num_kv_heads;
  table.num_blocks_ = stats.shape().num_blocks;
  table.has_energies_ = true;
  const size_t total = static_cast<size_t>(table.num_layers_) * table.num_kv_heads_;
  table.q_.resize(total);
  table.k_.resize(total);
  table.scores_.resize(total);
  for (int l = 0; l < table.num_layers_; ++l) {
    for (int h = 0; h < table.num_kv_heads_; ++h) {
      table.q_[table.Index(l, h)] = stats.MeanQ(l, h);
      table.k_[table.Index(l, h)] = stats.MeanK(l, h);
    }
  }
  return table;
}

}  // namespace kvplan
