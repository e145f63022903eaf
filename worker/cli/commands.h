// The verbs of `kvplan-worker`. Each takes the arguments after the verb,
// writes results to `out` and diagnostics to `err`, and returns the exit code
// (0 success, 1 failure, 2 bad usage or input).
#ifndef KVPLAN_WORKER_CLI_COMMANDS_H_
#define KVPLAN_WORKER_CLI_COMMANDS_H_

#include <ostream>
#include <string>
#include <vector>

namespace kvplan::worker_cli {

// kvplan-worker generate --model DIR (--prompt TEXT | --prompt-ids LIST)
//     [--max-new-tokens 32] [--device cpu] [--dtype fp32] [--no-bos] [--json]
int RunGenerate(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// kvplan-worker calibrate --model DIR --prompts FILE --out FILE [--max-tokens N]
//     [--seq-len N] [--batch 8] [--device cpu] [--dtype fp32] [--bos]
int RunCalibrate(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// kvplan-worker eval --model DIR --calib-text FILE --test-text FILE [--bits 2,3,4]
//                    [--tokens 2048] [--chunk 256] [--device cpu] [--dtype fp32] [--json OUT]
int RunEval(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// kvplan-worker ppl --model DIR --text FILE (--plan FILE | --uniform-k-bits B --v-bits B)
//     [--context 256] [--prefill N] [--max-windows N] [--sinks N] [--recent N] [--skip-fp16]
//     [--device cpu] [--dtype fp32] [--json]
int RunPpl(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// kvplan-worker fingerprint --model DIR: prints the model's fingerprint
// (worker/model/fingerprint.h), the identity `kvplan models register --fingerprint` and plans are
// bound to.
int RunFingerprint(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// kvplan-worker serve --coordinator ADDR (--model DIR | --model-cache DIR) [--device cpu]
//     [--dtype fp32] [--token-file F] [--worker-id ID] [--job ID] [--seq-len N] [--batch 8]
//     [--bos] [--once]
// Only in builds with the wire API (KVPLAN_WORKER_HAS_SERVE).
int RunServe(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// kvplan-worker validate --coordinator ADDR (--plan-id ID | --model-id ID (--channel C |
//     [--plan-name N] [--version V])) --model DIR --prompts FILE [--tokens 2048] [--chunk 256]
//     [--token-file F] [--worker-id ID] [--device cpu] [--dtype fp32] [--json]
// Only in builds with the wire API (KVPLAN_WORKER_HAS_SERVE).
int RunValidate(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace kvplan::worker_cli

#endif  // KVPLAN_WORKER_CLI_COMMANDS_H_
