#include "bench/kernels/bench_options.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "bench/kernels/flag_parser.h"

namespace kvplan::bench {
namespace {

constexpr absl::string_view kFlagsDoc =
    "the flags are listed at the top of bench/kernels/packed_decode_bench.cc and in "
    "kernels/README.md";

using Flag = FlagSpec<BenchOptions>;
constexpr Flag kFlags[] = {
    {"--quick", &BenchOptions::quick},
    {"--no-encode", &BenchOptions::encode, false},
    {"--fragment", &BenchOptions::fragment},
    {"--graph", &BenchOptions::graph},
    {"--parts", &BenchOptions::parts},
    {"--append", &BenchOptions::append},
    {"--ragged", &BenchOptions::ragged},
    {"--scatter", &BenchOptions::scatter},
    {"--shuffle-pages", &BenchOptions::shuffle_pages},
    {"--fragment-step-only", &BenchOptions::fragment_step_only},
    {"--fragment-encode-only", &BenchOptions::fragment_encode_only},
    {"--balanced", &BenchOptions::balanced},
    {"--fit-splits", &BenchOptions::fit_splits},
    {"--no-wgmma", &BenchOptions::no_wgmma},
    {"--prefill", &BenchOptions::prefill},
    {"--model", &BenchOptions::only_model},
    {"--kbits", &BenchOptions::only_kbits},
    {"--batch", &BenchOptions::only_batch},
    {"--ctx", &BenchOptions::only_ctx},
    {"--iters", &BenchOptions::iters},
    {"--k-align", &BenchOptions::k_align},
    {"--encode-slabs", &BenchOptions::encode_slabs},
    {"--splits", &BenchOptions::splits},
    {"--fragment-splits", &BenchOptions::fragment_splits},
    {"--fragment-ctas", &BenchOptions::fragment_ctas},
    {"--table-ctx", &BenchOptions::table_ctx},
    {"--wgmma-min", &BenchOptions::wgmma_min},
    {"--few-token-max", &BenchOptions::few_token_max},
    {"--merge-heads", &BenchOptions::merge_heads},
    {"--settle-ms", &BenchOptions::settle_ms},
};

// Values and combinations that would measure something other than what was
// asked, or nothing at all.
absl::Status CheckOptions(const BenchOptions& o) {
  const auto error = [](auto&&... parts) {
    return absl::InvalidArgumentError(absl::StrCat(parts...));
  };
  if (o.iters < 1) return error("--iters takes a count of samples >= 1, not ", o.iters);
  if (o.only_kbits != 0 && o.only_kbits != 2 && o.only_kbits != 3) {
    return error("--kbits takes 2 or 3 (the K2V2 and K3V3 plans), not ", o.only_kbits);
  }
  if (o.only_batch != 0 && o.only_batch != 1 && o.only_batch != 16) {
    return error("--batch takes 1 or 16 (the table's batches), not ", o.only_batch);
  }
  for (const auto& [name, value] : {std::pair<absl::string_view, int>{"--ctx", o.only_ctx},
                                    {"--k-align", o.k_align},
                                    {"--encode-slabs", o.encode_slabs},
                                    {"--splits", o.splits},
                                    {"--fragment-splits", o.fragment_splits},
                                    {"--fragment-ctas", o.fragment_ctas},
                                    {"--table-ctx", o.table_ctx}}) {
    if (value < 0) return error(name, " takes a count >= 0 (0: the default), not ", value);
  }
  if (!o.merge_heads.empty() && o.merge_heads != "one" && o.merge_heads != "group") {
    return error("--merge-heads takes one or group, not ", o.merge_heads);
  }
  if (absl::Status s = CheckSettleMs(o.settle_ms); !s.ok()) return s;
  if (o.fragment && o.k_align != 8 && o.k_align != 16) {
    return error(
        "--fragment needs --k-align 8 or 16: fragment pages hold K groups of whole "
        "8-dim halves");
  }
  if (o.fragment_encode_only && !o.fragment) {
    return error(
        "--fragment-encode-only leaves out the version-1 encode column; add --fragment "
        "(with --k-align 8 or 16) for the fragment one");
  }
  if (o.fragment_step_only && !o.fragment) {
    return error(
        "--fragment-step-only times the fragment step alone; add --fragment (with "
        "--k-align 8 or 16)");
  }
  if (o.prefill && !o.encode) {
    return error(
        "--prefill compares the encode with the prefill layer of the same tokens; drop "
        "--no-encode");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckSettleMs(double settle_ms) {
  if (settle_ms >= 0.0 && settle_ms <= 60000.0) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("--settle-ms takes 0 to 60000 (milliseconds of untimed runs before each "
                   "timing), not ",
                   settle_ms));
}

absl::StatusOr<BenchOptions> ParseBenchOptions(int argc, const char* const* argv) {
  BenchOptions options;
  if (absl::Status s = ParseFlags<BenchOptions>(argc, argv, kFlags, kFlagsDoc, options); !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckOptions(options); !s.ok()) return s;
  return options;
}

}  // namespace kvplan::bench
