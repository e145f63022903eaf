// kvplan: the command-line face of kvplan.
//
// Offline verbs work on files alone; later versions add the service verbs that
// talk to a coordinator.
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "client/cli/commands.h"

namespace {

constexpr std::string_view kUsage = R"(usage: kvplan VERB [flags]

Offline verbs (no coordinator needed):
  allocate   Block-GTQ bit allocation for every (layer, KV head).
             --energy-json FILE  energies {"<l>.<h>": {"q": [...], "k": [...]}}, ready scores
                                 {"<l>.<h>": [...]}, either wrapped in {"block_energy_calib": ...},
                                 or a statistics file from kvplan-worker calibrate
             --bits B            average K bits per dimension, fractional allowed (e.g. 2.5)
             --score S           sum (paper, default) | product | q | k  (energies only)
             --min-bits N        fewest bits per block (default 1)
             --max-bits N        most bits per block (default 8)
             --json              print {"<l>.<h>": [bits per block, ...]} instead of a table
  whatif     What K/V budgets cost and buy: bytes per token, compression, memory, distortion.
             --energy-json FILE  as for allocate
             --k-bits LIST       K budgets, e.g. 2,2.5,3,4
             --v-bits LIST       V budgets (whole bits), e.g. 2,3,4
             --score, --min-bits, --max-bits as for allocate
             --context N         tokens per sequence for the memory figure (default 131072)
             --batch N           sequences (default 1)
             --memory-gib G      also report the longest context that fits G GiB
             --per-layer         also print each layer's bit histogram and entropy
             --json              machine-readable output
  plan build A versioned, content-addressed K/V bit plan (JSON) from calibration statistics.
             --stats FILE        a calibration file from kvplan-worker calibrate (it carries the
                                 model's RoPE layout and fingerprint), or any --energy-json input
                                 together with --model-config
             --model-config F    the model's Hugging Face config.json (for non-calibration input)
             --k-bits B          average K bits per dimension (fractional allowed)
             --v-bits B          V bits per dimension (whole)
             --score, --min-bits, --max-bits as for allocate
             --uniform           uniform TQ-MSE K (the baseline) instead of Block-GTQ
             --rotation-seed N   seed of the plan's Haar rotations (default fixed)
             --out FILE          where to write plan.json (atomically)
  help       this text

Exit status: 0 success, 2 bad arguments or input, 1 other failures.
)";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << kUsage;
    return 2;
  }
  const std::string verb = argv[1];
  const std::vector<std::string> args(argv + 2, argv + argc);
  if (verb == "allocate") return kvplan::cli::RunAllocate(args, std::cout, std::cerr);
  if (verb == "plan") return kvplan::cli::RunPlan(args, std::cout, std::cerr);
  if (verb == "whatif") return kvplan::cli::RunWhatIf(args, std::cout, std::cerr);
  if (verb == "help" || verb == "--help" || verb == "-h") {
    std::cout << kUsage;
    return 0;
  }
  std::cerr << "kvplan: unknown verb '" << verb << "'\n\n" << kUsage;
  return 2;
}
