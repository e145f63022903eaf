// kvplan-worker: runs a Hugging Face checkpoint in LibTorch to generate text
// and to measure the per-RoPE-block query/key energies that kvplan allocates
// bits by.
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "worker/cli/commands.h"

namespace {

constexpr std::string_view kUsage = R"(usage: kvplan-worker VERB [flags]

Verbs:
  generate   Greedy continuation of one prompt (checks a checkpoint runs as it should).
             --model DIR            Hugging Face checkpoint directory: config.json, model.safetensors
                                    or model.safetensors.index.json + shards, tokenizer.json or
                                    tokenizer.bin
             --prompt TEXT          text to continue; BOS is added if the tokenizer's own pipeline
                                    adds it
             --prompt-ids LIST      or: token ids to continue, e.g. 1,403,407 (used as given)
             --no-bos               do not add BOS to --prompt
             --max-new-tokens N     tokens to generate at most (default 32); stops early at EOS
             --device D             cpu (default), cuda or cuda:N
             --dtype T              compute dtype: fp32 (default), bf16 or fp16
             --json                 print {"prompt_ids": [...], "output_ids": [prompt + generated],
                                    "output_text": "..."} instead of the text
  calibrate  Per-(layer, KV head, RoPE block) q/k energy statistics over a prompt set, taken at the
             RoPE input, written as a statistics file for `kvplan allocate` / `kvplan plan build`.
             --model DIR            as for generate
             --prompts FILE         JSON Lines, one prompt per line: {"text": "..."} or {"ids": [...]}
             --out FILE             statistics file to write (replaced atomically)
             --max-tokens N         stop after N tokens in all (default: every token of every prompt)
             --seq-len N            split prompts into windows of at most N tokens, each run from
                                    position 0 (default: no splitting; a prompt longer than the
                                    model's context is an error)
             --batch N              sequences per forward pass (default 8)
             --bos                  put BOS in front of text prompts (default: none, as in the
                                    paper's protocol)
             --device D, --dtype T  as for generate
  eval       The paper's fidelity diagnostic: calibrate on the first --tokens tokens of one text,
             then quantize K of the first --tokens tokens of another with uniform TQ-MSE and
             Block-GTQ (sum and product scores) and report, per layer, the kernel MAE over 50
             offsets in [-1024, 1024] (pre-RoPE q, k), softmax KL and top-10 overlap of causal
             attention inside each chunk (queries from position 16), wins and mean MAE reduction.
             --model DIR            as for generate
             --calib-text FILE      calibration text (its first --tokens tokens, no BOS)
             --test-text FILE       test text, disjoint from the calibration text
             --bits LIST            K budgets, whole bits (default 2,3,4)
             --tokens N             tokens of each text (default 2048)
             --chunk N              tokens per independent forward, positions from 0 (default 256)
             --json OUT             write {"bits": {"<b>": {"layers": [...], "wins": n,
                                    "mae_reduction_mean": x, "mae_reduction_mean_product": x}}}
                                    to OUT instead of printing a table
             --device D, --dtype T  as for generate
  ppl        Teacher-forced perplexity with every layer's K/V written to and read from the packed
             KV cache (core/packed_kv_cache.h; prefill and decode both attend over it), next to
             the same path with K/V kept in fp16, so the two differ by quantization alone.
             --model DIR            as for generate
             --text FILE            a .jsonl prompt file (prompts joined with the tokenizer's EOS)
                                    or plain text, tokenized without BOS and cut into windows of
                                    --context tokens (the incomplete tail is dropped); each window
                                    is one sequence from position 0
             --plan FILE            a plan from `kvplan plan build` for this model (its fingerprint
                                    must match), or
             --uniform-k-bits B     uniform TQ-MSE K at B bits/dim, with
             --v-bits B             V bits/dim (whole)
             --context N            tokens per window (default 256)
             --prefill N            tokens of each window run as one prefill chunk; the rest are
                                    decode steps, one token each (default context/2)
             --max-windows N        score at most N windows (default: all)
             --sinks N              first N tokens kept fp16, never packed (default 0)
             --recent N             newest N tokens read from fp16 copies (default 0)
             --skip-fp16            do not run the fp16 baseline
             --json                 print {"plan": {...}, "runs": [{"name": "fp16" | "packed",
                                    "tokens_scored", "mean_nll", "perplexity",
                                    "k_bytes_per_token_head", "v_bytes_per_token_head"}],
                                    "delta_ppl": x, ...} instead of a table
             --device D, --dtype T  as for generate
  serve      Work for a kvplan-coordinator: lease calibration shards, compute their statistics
             exactly as calibrate does, upload and commit them; retries with backoff through
             coordinator restarts. (Only in builds with the wire API.)
             --coordinator ADDR     host:port of kvplan-coordinator
             --model DIR            the checkpoint for every job's model, or
             --model-cache DIR      checkpoints as DIR/<model id>/; either way its fingerprint
                                    must equal the coordinator's model's
             --token-file F         bearer token for the coordinator's write RPCs
             --tls-ca F             PEM roots: reach a TLS coordinator (plaintext without)
             --tls-cert F --tls-key F
                                    client certificate for a coordinator with --tls-client-ca
             --worker-id ID         name in leases and logs (default HOST-PID)
             --job ID               only serve this job (default: any running job)
             --seq-len N, --batch N, --bos
                                    as for calibrate (each shard's token budget is its job's)
             --once                 exit 0 once no running job is left (default: poll forever)
             --device D, --dtype T  as for generate
  validate   Run the fidelity diagnostic (as eval) for one stored plan against uniform TQ-MSE at
             the same K budget and rotation seed, and attach the result to the plan on the
             coordinator, which judges it (promotion can require a pass). (Only in builds with
             the wire API.)
             --coordinator ADDR     host:port of kvplan-coordinator
             --plan-id DIGEST       the plan, or
             --model-id ID          the coordinator's model, with --channel C (the plan it points
                                    at) or [--plan-name N] [--version V] (default: default, latest)
             --model DIR            the plan's checkpoint (its fingerprint must be the plan's)
             --prompts FILE         test text: a .jsonl prompt file (prompts joined with EOS) or
                                    plain text; its first --tokens tokens are scored
             --tokens N             test tokens (default 2048), a multiple of
             --chunk N              tokens per independent forward (default 256)
             --token-file F         bearer token for AttachValidation
             --tls-ca, --tls-cert, --tls-key  as for serve
             --worker-id ID         recorded with the result (default HOST-PID)
             --json                 print the stored result as JSON instead of a table
             --device D, --dtype T  as for generate
  fingerprint  Print the model's fingerprint: SHA-256 of its architecture, RoPE layout and the
             tensors that produce q and k; what `kvplan models register --fingerprint` takes and
             what plans are bound to.
             --model DIR            as for generate
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
  if (verb == "generate") return kvplan::worker_cli::RunGenerate(args, std::cout, std::cerr);
  if (verb == "calibrate") return kvplan::worker_cli::RunCalibrate(args, std::cout, std::cerr);
  if (verb == "eval") return kvplan::worker_cli::RunEval(args, std::cout, std::cerr);
  if (verb == "ppl") return kvplan::worker_cli::RunPpl(args, std::cout, std::cerr);
  if (verb == "fingerprint") {
    return kvplan::worker_cli::RunFingerprint(args, std::cout, std::cerr);
  }
#ifdef KVPLAN_WORKER_HAS_SERVE
  if (verb == "serve") return kvplan::worker_cli::RunServe(args, std::cout, std::cerr);
  if (verb == "validate") return kvplan::worker_cli::RunValidate(args, std::cout, std::cerr);
#endif
  if (verb == "help" || verb == "--help" || verb == "-h") {
    std::cout << kUsage;
    return 0;
  }
  std::cerr << "kvplan-worker: unknown verb '" << verb << "'\n\n" << kUsage;
  return 2;
}
