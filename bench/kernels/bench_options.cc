#include "bench/kernels/bench_options.h"

#include <utility>
#include <variant>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace kvplan::bench {
namespace {

// A flag is a switch (a bool member set to `value`) or takes the next argument
// as its member's type.
using Member = std::variant<bool BenchOptions::*, int BenchOptions::*, int64_t BenchOptions::*,
                            double BenchOptions::*, std::string BenchOptions::*>;
struct Flag {
  absl::string_view name;
  Member member;
  bool value = true;  // switches only
};

constexpr absl::string_view kFlagsDoc =
    "the flags are listed at the top of bench/kernels/packed_decode_bench.cc and in "
    "kernels/README.md";

const Flag* FindFlag(absl::string_view name) {
  static const Flag kFlags[] = {
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
  for (const Flag& flag : kFlags) {
    if (flag.name == name) return &flag;
  }
  return nullptr;
}

// Stores `text` into the flag's member; an error names the flag and the type.
absl::Status SetValue(const Flag& flag, absl::string_view text, BenchOptions& options) {
  const auto bad = [&](absl::string_view kind) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag.name, " takes ", kind, ", not '", text, "'"));
  };
  if (const auto* m = std::get_if<int BenchOptions::*>(&flag.member)) {
    return absl::SimpleAtoi(text, &(options.*(*m))) ? absl::OkStatus() : bad("an integer");
  }
  if (const auto* m = std::get_if<int64_t BenchOptions::*>(&flag.member)) {
    return absl::SimpleAtoi(text, &(options.*(*m))) ? absl::OkStatus() : bad("an integer");
  }
  if (const auto* m = std::get_if<double BenchOptions::*>(&flag.member)) {
    return absl::SimpleAtod(text, &(options.*(*m))) ? absl::OkStatus() : bad("a number");
  }
  options.*std::get<std::string BenchOptions::*>(flag.member) = std::string(text);
  return absl::OkStatus();
}

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
  if (!(o.settle_ms >= 0.0 && o.settle_ms <= 60000.0)) {
    return error(
        "--settle-ms takes 0 to 60000 (milliseconds of untimed runs before each timing), "
        "not ",
        o.settle_ms);
  }
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

absl::StatusOr<BenchOptions> ParseBenchOptions(int argc, const char* const* argv) {
  BenchOptions options;
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    const Flag* flag = FindFlag(arg);
    if (flag == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag '", arg, "': ", kFlagsDoc));
    }
    if (const auto* m = std::get_if<bool BenchOptions::*>(&flag->member)) {
      options.*(*m) = flag->value;
      continue;
    }
    // A value that is itself a flag means the value was left out.
    if (i + 1 == argc || absl::string_view(argv[i + 1]).substr(0, 2) == "--") {
      return absl::InvalidArgumentError(absl::StrCat(arg, " needs a value: ", kFlagsDoc));
    }
    if (absl::Status s = SetValue(*flag, argv[++i], options); !s.ok()) return s;
  }
  if (absl::Status s = CheckOptions(options); !s.ok()) return s;
  return options;
}

}  // namespace kvplan::bench
