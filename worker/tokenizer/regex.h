// A compiled PCRE2 pattern that lists every match in a UTF-8 text: what the
// Hugging Face `Split` pre-tokenizer runs (Rust/Oniguruma syntax such as
// \p{L}, (?i:...) and (?!\S) is PCRE syntax too).
//
// Example:
//   absl::StatusOr<Regex> re = Regex::Compile(R"(\p{N}{1,3})");
//   std::vector<Regex::Match> m;
//   absl::Status s = re->FindAll("ab 12345", &m);  // m == {{3, 6}, {6, 8}}
#ifndef KVPLAN_WORKER_TOKENIZER_REGEX_H_
#define KVPLAN_WORKER_TOKENIZER_REGEX_H_

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace kvplan::tokenizer_internal {

class Regex {
 public:
  // A match as byte offsets [begin, end) into the subject.
  struct Match {
    size_t begin;
    size_t end;
    friend bool operator==(const Match&, const Match&) = default;
  };

  // Compiles `pattern` in UTF mode with Unicode properties for \s, \w, \d
  // (PCRE2_UCP), JIT-compiled where the platform allows. With `literal`, the
  // pattern is a plain string to look for. Errors: InvalidArgument naming the
  // offset and PCRE2's reason.
  static absl::StatusOr<Regex> Compile(std::string_view pattern, bool literal = false);

  Regex(Regex&&) noexcept;
  Regex& operator=(Regex&&) noexcept;
  ~Regex();

  // Replaces `*matches` with the leftmost-first, non-overlapping, non-empty
  // matches in `subject`, which must be well-formed UTF-8 (checked by the
  // caller: PCRE2's own check would rescan the text at every match).
  // Thread-safe. Errors: ResourceExhausted when PCRE2 gives up (match limit).
  absl::Status FindAll(std::string_view subject, std::vector<Match>* matches) const;

  const std::string& pattern() const { return pattern_; }

 private:
  struct Code;
  Regex(std::string pattern, std::unique_ptr<Code> code);

  std::string pattern_;
  std::unique_ptr<Code> code_;
};

}  // namespace kvplan::tokenizer_internal

#endif  // KVPLAN_WORKER_TOKENIZER_REGEX_H_
