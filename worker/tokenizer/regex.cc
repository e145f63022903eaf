#include "worker/tokenizer/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "worker/tokenizer/absl_view.h"
#include "worker/tokenizer/utf8.h"

namespace kvplan::tokenizer_internal {
namespace {

std::string Pcre2ErrorMessage(int error_code) {
  PCRE2_UCHAR buffer[256];
  const int n = pcre2_get_error_message(error_code, buffer, sizeof(buffer));
  if (n < 0) return absl::StrCat("PCRE2 error ", error_code);
  return std::string(reinterpret_cast<const char*>(buffer), static_cast<size_t>(n));
}

struct MatchDataDeleter {
  void operator()(pcre2_match_data* data) const { pcre2_match_data_free(data); }
};

}  // namespace

struct Regex::Code {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Code() { pcre2_code_free(code); }
};

Regex::Regex(std::string pattern, std::unique_ptr<Code> code)
    : pattern_(std::move(pattern)), code_(std::move(code)) {}
Regex::Regex(Regex&&) noexcept = default;
Regex& Regex::operator=(Regex&&) noexcept = default;
Regex::~Regex() = default;

absl::StatusOr<Regex> Regex::Compile(std::string_view pattern, bool literal) {
  // PCRE2 refuses UCP with LITERAL; a literal has no classes for it to affect.
  const uint32_t options = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  auto code = std::make_unique<Code>();
  code->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), options,
                             &error_code, &error_offset, nullptr);
  if (code->code == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("cannot compile regex /", AbslView(pattern),
                                                   "/ at offset ", error_offset, ": ",
                                                   Pcre2ErrorMessage(error_code)));
  }
  // JIT is an optimization only: a platform without it still matches, slower.
  code->jit = pcre2_jit_compile(code->code, PCRE2_JIT_COMPLETE) == 0;
  return Regex(std::string(pattern), std::move(code));
}

absl::Status Regex::FindAll(std::string_view subject, std::vector<Match>* matches) const {
  matches->clear();
  std::unique_ptr<pcre2_match_data, MatchDataDeleter> data(
      pcre2_match_data_create_from_pattern(code_->code, nullptr));
  if (data == nullptr) return absl::ResourceExhaustedError("cannot allocate PCRE2 match data");
  const auto* begin = reinterpret_cast<PCRE2_SPTR>(subject.data());
  uint32_t match_options = PCRE2_NO_UTF_CHECK;
  size_t offset = 0;
  while (offset < subject.size()) {
    int rc =
        pcre2_match(code_->code, begin, subject.size(), offset, match_options, data.get(), nullptr);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
      // The JIT's default 32 KiB stack overflows on very long runs that the
      // pattern backtracks over (e.g. `\s+(?!\S)` on 100k spaces); the
      // interpreter keeps its backtracking state on the heap instead.
      match_options |= PCRE2_NO_JIT;
      continue;
    }
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      return absl::ResourceExhaustedError(absl::StrCat("regex /", pattern_, "/ failed at byte ",
                                                       offset, ": ", Pcre2ErrorMessage(rc)));
    }
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data.get());
    const size_t match_begin = ovector[0];
    const size_t match_end = ovector[1];
    if (match_end > match_begin) {
      matches->push_back({match_begin, match_end});
      offset = match_end;
    } else {
      // An empty match splits nothing; step over one code point so the scan ends.
      if (match_begin >= subject.size()) break;
      offset = match_begin + Utf8SequenceLength(subject[match_begin]);
    }
  }
  return absl::OkStatus();
}

}  // namespace kvplan::tokenizer_internal
