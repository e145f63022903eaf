#include "client/cli/command_util.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace kvplan::cli {

int ReportStatus(const absl::Status& status, std::string_view verb, std::ostream& err) {
  if (status.ok()) return 0;
  err << absl::StrFormat("kvplan %s: %s\n", verb, std::string(status.message()));
  const bool usage = status.code() == absl::StatusCode::kInvalidArgument ||
                     status.code() == absl::StatusCode::kOutOfRange;
  return usage ? 2 : 1;
}

absl::Status AnnotateWithPath(const absl::Status& status, const std::string& path) {
  return absl::Status(status.code(),
                      absl::StrFormat("%s: %s", path, std::string(status.message())));
}

absl::StatusOr<ScoreKind> ScoreFlag(const Flags& flags) {
  return ParseScoreKind(flags.Get("score").value_or("sum"));
}

absl::StatusOr<AllocationOptions> BitRangeFlags(const Flags& flags) {
  AllocationOptions options;
  absl::StatusOr<int64_t> min_bits = flags.Int("min-bits", options.min_bits);
  if (!min_bits.ok()) return min_bits.status();
  absl::StatusOr<int64_t> max_bits = flags.Int("max-bits", options.max_bits);
  if (!max_bits.ok()) return max_bits.status();
  if (*min_bits < kMinSupportedBits || *max_bits > kMaxSupportedBits || *min_bits > *max_bits) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--min-bits %d / --max-bits %d: need %d <= min <= max <= %d", *min_bits,
                        *max_bits, kMinSupportedBits, kMaxSupportedBits));
  }
  options.min_bits = static_cast<int>(*min_bits);
  options.max_bits = static_cast<int>(*max_bits);
  return options;
}

absl::StatusOr<ExemptLayers> ExemptLayerFlags(const Flags& flags) {
  ExemptLayers exempt;
  if (!flags.Has("exempt-layers")) {
    if (flags.Has("exempt-bits")) {
      return absl::InvalidArgumentError(
          "--exempt-bits sets the width of exempt layers; name them with --exempt-layers 0,31");
    }
    return exempt;
  }
  const std::string text = *flags.Get("exempt-layers");
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    int layer = 0;
    if (!absl::SimpleAtoi(part, &layer)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "--exempt-layers '%s': '%s' is not a layer index; give whole numbers like 0,31", text,
          std::string(part)));
    }
    exempt.layers.push_back(layer);
  }
  absl::StatusOr<int64_t> bits = flags.Int("exempt-bits", exempt.bits);
  if (!bits.ok()) return bits.status();
  if (*bits < kMinSupportedBits || *bits > kMaxSupportedBits) {
    return absl::OutOfRangeError(absl::StrFormat("--exempt-bits %d is outside [%d, %d]", *bits,
                                                 kMinSupportedBits, kMaxSupportedBits));
  }
  exempt.bits = static_cast<int>(*bits);
  return exempt;
}

absl::StatusOr<int> KGroupAlignFlag(const Flags& flags) {
  absl::StatusOr<int64_t> align = flags.Int("k-group-align", 0);
  if (!align.ok()) return align.status();
  // Only the int range here: core names the values that fit the model.
  if (*align != static_cast<int32_t>(*align)) {
    return absl::OutOfRangeError(absl::StrFormat(
        "--k-group-align %d is not a dim count; use 0 (off) or an even divisor of head_dim, "
        "e.g. 16",
        *align));
  }
  return static_cast<int>(*align);
}

}  // namespace kvplan::cli
