// kvplan: the command-line face of kvplan.
//
// Offline verbs work on files alone; with --coordinator ADDR the service nouns
// (models, jobs, plans, channels, whatif, artifacts) talk to a kvplan-coordinator.
#include <iostream>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "client/cli/commands.h"
#include "client/cli/service_commands.h"  // No gRPC: the flags exist in every build.

namespace {

constexpr std::string_view kUsage = R"(usage: kvplan VERB [flags]
       kvplan --coordinator ADDR [--token-file F] [--tls-ca F [--tls-cert F --tls-key F]]
              NOUN VERB [flags]

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
             --k-group-align N   allocate K as plan build --k-group-align N would (default 0)
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
             --exempt-layers L,L layers kept at --exempt-bits (default 8) for all of K and V,
                                 e.g. 0,31 (ascending); --k-bits budgets the other layers
             --k-group-align N   every K width group a multiple of N dims (default 0: off),
                                 N even, dividing head_dim, at most 16 groups per head
                                 (e.g. 16 at head_dim 128: decode skips padded slices,
                                 ~1.15x faster, for a few % more distortion); not --uniform
             --out FILE          where to write plan.json (atomically)
  help       this text

Service nouns (need --coordinator host:port; --token-file F sends the bearer token a coordinator
with --auth-token-file wants for writes; --tls-ca F verifies a TLS coordinator against PEM roots;
--tls-cert F --tls-key F present a client certificate to a coordinator with --tls-client-ca):
  models register  register a model: --model-config config.json --fingerprint FP [--name ID], or
                   --calibration FILE (a calibration file carries both) [--name ID]
  models get       --model ID: the stored model as JSON
  models list      [--json]
  jobs create      a calibration job: --model ID --prompts FILE.jsonl [--shards N (default 1)]
                   --tokens-per-shard T [--lease-seconds S (default 300)] [--name ID (default:
                   derived from the inputs)] [--prompt-set-hash H (default sha256 of FILE)]
                   [--json]; FILE's non-empty lines are cut into N contiguous shards
  jobs get         --job ID [--json]: state, shards done/total, tokens, tokens/s, ETA
  jobs list        [--model ID] [--json]
  jobs cancel      --job ID [--json]
  jobs watch       JOB_ID (or --job ID) [--interval-ms N (default 1000)]: a live progress line
                   (shards, tokens, tokens/s over the last 30 s, ETA) until the job ends; exit 0
                   when it succeeds, 1 when it is cancelled or unknown; an unreachable
                   coordinator is retried for --give-up-after-s S (default 300; 0: forever)
  plans create     allocate and store a plan: --model ID, --stats FILE (calibration file or
                   BlockStats) or --job ID (a succeeded job's merged statistics), --k-bits B --v-bits B [--score S] [--min-bits N] [--max-bits N]
                   [--uniform] [--rotation-seed N] [--name N (default "default")]
                   [--exempt-layers L,L [--exempt-bits B (default 8)]]: layers kept at higher
                   precision for K and V; --k-bits budgets the other layers
                   [--k-group-align N (default 0: off)]: K width groups in multiples of N dims,
                   as for plan build
  plans get        --id DIGEST | --model ID --channel C | --model ID [--name N] [--version V]
                   [--out FILE]: the plan JSON (stdout, or FILE written atomically)
  plans show       --id DIGEST | --model ID --channel C | --model ID [--name N] [--version V]
                   [--json]: version, budget and every validation result (kvplan-worker
                   validate), with the per-layer table of the latest, which gating reads
  plans fetch      --fingerprint FP [--model ID] [--channel C (default stable)] [--cache-dir DIR]
                   [--out FILE] [--timeout-ms 5000]: what a serving node loads, through
                   libkvplan-client: the channel's plan verified against FP (digest, format,
                   fingerprint) and cached in DIR, or DIR's cached plan when the coordinator
                   is unreachable; prints where it came from
  plans list       --model ID [--name N] [--json]
  plans diff       --from DIGEST --to DIGEST [--json]: per (layer, KV head) K bit changes
  plans export     --id DIGEST --out plan.json [--sidecar plan.kvpb]: JSON and the binary
                   sidecar serving nodes load (core/plan_sidecar.h)
  channels promote  --model ID --channel C [--plan NAME (default "default")] [--version V]
                   [--require-validation]: refused unless the plan's latest validation
                   passed (also when the channel's policy requires it)
  channels rollback --model ID --channel C: back to the previous promotion
  channels history  --model ID [--channel C] [--json]
  channels policy   --model ID --channel C [--require-validation true|false] [--json]:
                   sets (with the flag) and prints whether promotions to the channel need a
                   passing validation; rollbacks are never gated
  whatif           --model ID --k-bits LIST --v-bits LIST [--stats-digest D] and the offline
                   whatif's --score, --min-bits, --max-bits, --context, --batch, --memory-gib,
                   --k-group-align, --per-layer, --json; over the model's latest uploaded
                   statistics
  artifacts codebook  --bits B | --hash H [--json]: the Lloyd–Max codebook a plan names (its
                   "codebooks"), centroids checked against the hash

Exit status: 0 success, 2 bad arguments or input, 1 other failures.
)";

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  // Global flags before the verb select the coordinator for the service nouns.
  std::string coordinator;
  kvplan::cli::CoordinatorFlags connection;
  const std::map<std::string, std::string*> global_flags = {
      {"--coordinator", &coordinator},
      {"--token-file", &connection.token_file},
      {"--tls-ca", &connection.tls_ca_file},
      {"--tls-cert", &connection.tls_cert_file},
      {"--tls-key", &connection.tls_key_file}};
  while (args.size() >= 2 && global_flags.contains(args[0])) {
    *global_flags.at(args[0]) = args[1];
    args.erase(args.begin(), args.begin() + 2);
  }
  if (args.empty()) {
    std::cerr << kUsage;
    return 2;
  }
  const std::string verb = args[0];
  args.erase(args.begin());
  if (!coordinator.empty()) {
#if KVPLAN_WITH_SERVICE
    if (kvplan::cli::IsServiceNoun(verb)) {
      connection.address = coordinator;
      return kvplan::cli::RunServiceNoun(connection, verb, args, std::cout, std::cerr);
    }
#else
    std::cerr << "kvplan: this build has no service support (KVPLAN_BUILD_SERVER=OFF)\n";
    return 2;
#endif
  }
  if (verb == "allocate") return kvplan::cli::RunAllocate(args, std::cout, std::cerr);
  if (verb == "plan") return kvplan::cli::RunPlan(args, std::cout, std::cerr);
  if (verb == "whatif") return kvplan::cli::RunWhatIf(args, std::cout, std::cerr);
  if (verb == "help" || verb == "--help" || verb == "-h") {
    std::cout << kUsage;
    return 0;
  }
  if (verb == "models" || verb == "plans" || verb == "channels") {
    std::cerr << "kvplan " << verb << ": needs --coordinator host:port before the noun\n";
    return 2;
  }
  std::cerr << "kvplan: unknown verb '" << verb << "'\n\n" << kUsage;
  return 2;
}
