// kvplan allocate: Block-GTQ bit allocation for every head of a model, offline.
#include <array>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/cli/command_util.h"
#include "client/cli/commands.h"
#include "client/cli/inputs.h"
#include "nlohmann/json.hpp"

namespace kvplan::cli {
namespace {

absl::Status Allocate(const std::vector<std::string>& args, std::ostream& out) {
  absl::StatusOr<Flags> flags = Flags::Parse(
      args,
      {.values = {"energy-json", "bits", "score", "min-bits", "max-bits"}, .switches = {"json"}});
  if (!flags.ok()) return flags.status();
  absl::StatusOr<std::string> path = flags->String("energy-json");
  if (!path.ok()) return path.status();
  absl::StatusOr<double> bits = flags->Double("bits");
  if (!bits.ok()) return bits.status();
  absl::StatusOr<ScoreKind> score = ScoreFlag(*flags);
  if (!score.ok()) return score.status();
  absl::StatusOr<AllocationOptions> options = BitRangeFlags(*flags);
  if (!options.ok()) return options.status();
  options->avg_bits = *bits;
  if (absl::Status st = ValidateAllocationOptions(*options, 1); !st.ok()) return st;

  absl::StatusOr<EnergyTable> table = ReadEnergyTable(*path);
  if (!table.ok()) return table.status();
  if (!table->has_energies() && flags->Has("score") && *score != ScoreKind::kSum) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s holds ready scores; --score %s needs {\"q\": [...], \"k\": [...]} energies", *path,
        ScoreKindName(*score)));
  }

  nlohmann::ordered_json result = nlohmann::ordered_json::object();
  for (int l = 0; l < table->num_layers(); ++l) {
    for (int h = 0; h < table->num_kv_heads(); ++h) {
      absl::StatusOr<std::vector<double>> scores = table->Scores(l, h, *score);
      if (!scores.ok()) return scores.status();
      absl::StatusOr<std::vector<int>> alloc = GreedyAllocate(*scores, *options);
      if (!alloc.ok()) return alloc.status();
      const std::string key = absl::StrFormat("%d.%d", l, h);
      if (flags->Has("json")) {
        result[key] = *alloc;
        continue;
      }
      std::array<int, 9> histogram{};
      for (int b : *alloc) ++histogram[b];
      std::string widths;
      for (int w = 1; w <= 8; ++w) {
        if (histogram[w] > 0) absl::StrAppendFormat(&widths, " %dx%db", histogram[w], w);
      }
      out << absl::StrFormat("%-6s%-24s %s\n", key, widths, absl::StrJoin(*alloc, " "));
    }
  }
  if (flags->Has("json")) out << result.dump() << "\n";
  return absl::OkStatus();
}

}  // namespace

int RunAllocate(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  return ReportStatus(Allocate(args, out), "allocate", err);
}

}  // namespace kvplan::cli
