// Calibration throughput of kvplan-worker: forward passes with and without the
// per-block energy capture, so the capture's overhead is measured in the same run.
//
//   build/bin/worker_forward_bench                         # doc-llama-h64 on the CPU, fp32
//   build/bin/worker_forward_bench --device=cuda --dtype=bf16 --shape=llama-3.1-8b
//
// --model=DIR loads a checkpoint (default ../shared/models/doc-llama-h64);
// --shape=llama-3.1-8b instead builds random weights of that shape on the device
// (32 layers, 32/8 heads, head_dim 128, hidden 4096, MLP 14336, vocab 128256).
// --batch and --seq set the forward's shape (defaults 8 x 256).
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>

#include "benchmark/benchmark.h"
#include "worker/model/transformer.h"

namespace kvplan {
namespace {

struct BenchSettings {
  std::string model = "../shared/models/doc-llama-h64";
  std::string shape;
  std::string device = "cpu";
  std::string dtype = "fp32";
  int batch = 8;
  int seq = 256;
};

ModelConfig Llama31_8B() {
  ModelConfig c;
  c.architecture = Architecture::kLlama;
  c.num_layers = 32;
  c.num_heads = 32;
  c.num_kv_heads = 8;
  c.head_dim = 128;
  c.hidden_size = 4096;
  c.intermediate_size = 14336;
  c.vocab_size = 128256;
  c.max_position_embeddings = 131072;
  c.rms_norm_eps = 1e-5;
  c.rope.head_dim = c.rope.rotary_dim = 128;
  c.rope.theta = 500000.0;
  c.rope.scaling = {.type = RopeScalingType::kLlama3,
                    .factor = 8.0,
                    .low_freq_factor = 1.0,
                    .high_freq_factor = 4.0,
                    .original_max_position_embeddings = 8192};
  return c;
}

void Forward(benchmark::State& state, const CausalLm* lm, const BenchSettings* settings,
             bool capture) {
  std::vector<std::vector<int32_t>> batch(settings->batch, std::vector<int32_t>(settings->seq));
  for (int b = 0; b < settings->batch; ++b) {
    for (int t = 0; t < settings->seq; ++t) {
      batch[b][t] = (b * 7919 + t * 104729) % lm->config().vocab_size;
    }
  }
  absl::StatusOr<BlockStats> stats = BlockStats::Create(lm->config().stats_shape());
  for (auto _ : state) {
    ForwardOptions options;
    if (capture) options.capture = &*stats;
    absl::StatusOr<ForwardResult> result = lm->Forward(batch, options);
    if (!result.ok()) {
      state.SkipWithError(std::string(result.status().message()).c_str());
      return;
    }
  }
  state.SetItemsProcessed(state.iterations() * settings->batch * settings->seq);
  state.counters["tokens_per_s"] =
      benchmark::Counter(static_cast<double>(settings->batch) * settings->seq,
                         benchmark::Counter::kIsIterationInvariantRate);
}

bool TakeFlag(const char* arg, const char* name, std::string* value) {
  const size_t n = std::strlen(name);
  if (std::strncmp(arg, name, n) != 0 || arg[n] != '=') return false;
  *value = arg + n + 1;
  return true;
}

}  // namespace
}  // namespace kvplan

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  kvplan::BenchSettings settings;
  for (int i = 1; i < argc; ++i) {
    std::string batch, seq;
    if (kvplan::TakeFlag(argv[i], "--model", &settings.model) ||
        kvplan::TakeFlag(argv[i], "--shape", &settings.shape) ||
        kvplan::TakeFlag(argv[i], "--device", &settings.device) ||
        kvplan::TakeFlag(argv[i], "--dtype", &settings.dtype)) {
      continue;
    }
    if (kvplan::TakeFlag(argv[i], "--batch", &batch)) {
      settings.batch = std::stoi(batch);
    } else if (kvplan::TakeFlag(argv[i], "--seq", &seq)) {
      settings.seq = std::stoi(seq);
    } else {
      std::fprintf(stderr, "unknown flag %s\n", argv[i]);
      return 2;
    }
  }
  absl::StatusOr<kvplan::ComputeDType> dtype = kvplan::ParseComputeDType(settings.dtype);
  if (!dtype.ok()) {
    std::fprintf(stderr, "%s\n", std::string(dtype.status().message()).c_str());
    return 2;
  }
  const kvplan::RuntimeOptions runtime{.device = settings.device, .dtype = *dtype};
  absl::StatusOr<kvplan::CausalLm> lm =
      settings.shape == "llama-3.1-8b"
          ? kvplan::CausalLm::CreateRandom(kvplan::Llama31_8B(), runtime)
          : kvplan::CausalLm::Load(settings.model, runtime);
  if (!lm.ok()) {
    std::fprintf(stderr, "cannot load the model: %s\n", std::string(lm.status().message()).c_str());
    return 1;
  }
  const std::string name = (settings.shape.empty() ? std::string("checkpoint") : settings.shape) +
                           "/" + settings.device + "/" + settings.dtype + "/" +
                           std::to_string(settings.batch) + "x" + std::to_string(settings.seq);
  benchmark::RegisterBenchmark(("Forward/" + name + "/no_capture").c_str(), kvplan::Forward, &*lm,
                               &settings, false)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  benchmark::RegisterBenchmark(("Forward/" + name + "/capture").c_str(), kvplan::Forward, &*lm,
                               &settings, true)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
