// packed_decode_bench's command line: every flag, its default and the checks
// that need no device. A flag the benchmark does not know, a missing or
// malformed value, or a combination that would time something other than what
// was asked is an error that names the flag and the fix: a device call's
// minutes are scarce, and a silently ignored typo (`--settle 2000`) would
// return a table in the wrong protocol.
//
// Example:
//   absl::StatusOr<BenchOptions> options = ParseBenchOptions(argc, argv);
//   if (!options.ok()) { /* print options.status().message(), exit 1 */ }
#ifndef KVPLAN_BENCH_KERNELS_BENCH_OPTIONS_H_
#define KVPLAN_BENCH_KERNELS_BENCH_OPTIONS_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace kvplan::bench {

// What each flag means: packed_decode_bench.cc's header comment.
struct BenchOptions {
  // Switches.
  bool quick = false;
  bool encode = true;  // --no-encode clears it
  bool fragment = false;
  bool graph = false;
  bool parts = false;
  bool append = false;
  bool ragged = false;
  bool scatter = false;
  bool shuffle_pages = false;
  bool fragment_step_only = false;
  bool fragment_encode_only = false;
  bool balanced = false;
  bool fit_splits = false;
  bool no_wgmma = false;
  bool prefill = false;
  // Row filters (0 or empty: every row).
  std::string only_model;
  int only_kbits = 0, only_batch = 0, only_ctx = 0;
  // Shapes and timing.
  int iters = 20;
  int k_align = 0;
  int encode_slabs = 0;     // 0: the launcher's choice
  int splits = 0;           // 0: SplitsFor
  int fragment_splits = 0;  // 0: FragmentDecodeProgram::SplitsFor
  int fragment_ctas = 0;    // 0: CtasPerKvHead
  int table_ctx = 0;        // 0: tables as long as the sequences
  int64_t wgmma_min = -1;   // -1: EncodePackParams' default
  int64_t few_token_max = -1;
  std::string merge_heads;  // "", "one" or "group"
  double settle_ms = 0.0;
};

// argv[1 .. argc - 1]; argv[0] is the program.
absl::StatusOr<BenchOptions> ParseBenchOptions(int argc, const char* const* argv);

// --settle-ms's range, 0 to 60000 ms (NaN refused), for every bench that takes
// the flag (event_median.h's SettleClocks).
absl::Status CheckSettleMs(double settle_ms);

}  // namespace kvplan::bench

#endif  // KVPLAN_BENCH_KERNELS_BENCH_OPTIONS_H_
