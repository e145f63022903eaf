// A benchmark's command line from a table of flags, each bound to a member of
// the program's options struct: a switch sets a bool member, any other flag
// takes the next argument as its member's type. An unknown flag, a missing
// value (the end of the line, or another flag where the value should be) and a
// malformed number are errors naming the flag, so that a typo never turns into
// a default; checks of values and combinations stay with each program.
//
// Example:
//   struct Options { bool check = true; int iters = 50; };
//   const FlagSpec<Options> kFlags[] = {{"--no-check", &Options::check, false},
//                                       {"--iters", &Options::iters}};
//   Options options;
//   absl::Status s = ParseFlags(argc, argv, kFlags, "see the file's header", options);
#ifndef KVPLAN_BENCH_KERNELS_FLAG_PARSER_H_
#define KVPLAN_BENCH_KERNELS_FLAG_PARSER_H_

#include <cstdint>
#include <string>
#include <variant>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace kvplan::bench {

template <typename Options>
struct FlagSpec {
  using Member = std::variant<bool Options::*, int Options::*, int64_t Options::*,
                              double Options::*, std::string Options::*>;
  absl::string_view name;
  Member member;
  bool value = true;  // what a switch stores
};

// argv[1 .. argc - 1] into `options`; `doc` says where the flags are listed.
template <typename Options>
absl::Status ParseFlags(int argc, const char* const* argv,
                        absl::Span<const FlagSpec<Options>> flags, absl::string_view doc,
                        Options& options) {
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    const FlagSpec<Options>* flag = nullptr;
    for (const FlagSpec<Options>& f : flags) {
      if (f.name == arg) flag = &f;
    }
    if (flag == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag '", arg, "': ", doc));
    }
    if (const auto* switch_member = std::get_if<bool Options::*>(&flag->member)) {
      options.*(*switch_member) = flag->value;
      continue;
    }
    // A value that is itself a flag means the value was left out.
    if (i + 1 == argc || absl::string_view(argv[i + 1]).substr(0, 2) == "--") {
      return absl::InvalidArgumentError(absl::StrCat(arg, " needs a value: ", doc));
    }
    const absl::string_view text = argv[++i];
    bool ok = true;
    const char* kind = "a number";
    if (const auto* int_member = std::get_if<int Options::*>(&flag->member)) {
      ok = absl::SimpleAtoi(text, &(options.*(*int_member)));
      kind = "an integer";
    } else if (const auto* int64_member = std::get_if<int64_t Options::*>(&flag->member)) {
      ok = absl::SimpleAtoi(text, &(options.*(*int64_member)));
      kind = "an integer";
    } else if (const auto* double_member = std::get_if<double Options::*>(&flag->member)) {
      ok = absl::SimpleAtod(text, &(options.*(*double_member)));
    } else {
      options.*std::get<std::string Options::*>(flag->member) = std::string(text);
    }
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrCat(arg, " takes ", kind, ", not '", text, "'"));
    }
  }
  return absl::OkStatus();
}

}  // namespace kvplan::bench

#endif  // KVPLAN_BENCH_KERNELS_FLAG_PARSER_H_
