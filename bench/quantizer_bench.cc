// Throughput of the CPU reference quantizer (grouped_quantizer.h) at hd 128:
// uniform TQ-MSE K3, a realistic Block-GTQ K3 layout (16 blocks at 4 bits, 32 at
// 3, 16 at 2: groups of 32/64/32 dims) and V3 (uniform, the V quantizer). Items
// are vectors (one token of one KV head). Single-token calls and batches of
// kBatch tokens; plus the one-off costs (codebook solve, rotation generation).
//
//   build/bin/quantizer_bench --benchmark_filter=Encode
#include <benchmark/benchmark.h>

#include <array>
#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "core/codebook.h"
#include "core/group_layout.h"
#include "core/grouped_quantizer.h"
#include "core/random.h"
#include "core/rotation.h"

namespace kvplan {
namespace {

constexpr int kHeadDim = 128;
constexpr int kBatch = 1024;

enum LayoutKind { kUniformK3 = 0, kBlockGtqK3 = 1, kV3 = 2 };

GroupLayout MakeLayout(LayoutKind kind) {
  if (kind != kBlockGtqK3) return *UniformLayout(kHeadDim, 3);
  std::vector<int> bits(kHeadDim / 2);
  std::vector<std::array<int, 2>> dims(kHeadDim / 2);
  for (int i = 0; i < kHeadDim / 2; ++i) {
    bits[i] = i < 16 ? 4 : (i < 48 ? 3 : 2);  // high-energy low-index blocks get more
    dims[i] = {i, i + kHeadDim / 2};          // split-half
  }
  return *BuildGroupLayout(bits, dims);
}

GroupedQuantizer MakeQuantizer(LayoutKind kind) {
  GroupLayout layout = MakeLayout(kind);
  std::vector<Rotation> rotations;
  for (size_t g = 0; g < layout.groups.size(); ++g) {
    rotations.push_back(HaarRotation(layout.groups[g].size, 100 + g));
  }
  return *GroupedQuantizer::Create(std::move(layout), rotations);
}

std::vector<float> Vectors(int count) {
  DeterministicRng rng(7);
  std::vector<float> x(static_cast<size_t>(count) * kHeadDim);
  for (float& v : x) v = static_cast<float>(rng.NextGaussian());
  return x;
}

void SetLabel(benchmark::State& state, LayoutKind kind, const GroupedQuantizer& q) {
  static constexpr const char* kNames[] = {"uniform K3", "Block-GTQ K3 (2/3/4)", "V3"};
  state.SetLabel(std::string(kNames[kind]) + ", " + std::to_string(q.PackedBytes()) + " B/token");
}

void BM_Encode(benchmark::State& state) {
  const auto kind = static_cast<LayoutKind>(state.range(0));
  const GroupedQuantizer q = MakeQuantizer(kind);
  const std::vector<float> x = Vectors(kBatch);
  std::vector<uint8_t> out(q.PackedBytes());
  size_t t = 0;
  for (auto _ : state) {
    q.Encode(absl::MakeConstSpan(x.data() + t * kHeadDim, kHeadDim), absl::MakeSpan(out));
    benchmark::DoNotOptimize(out.data());
    t = (t + 1) % kBatch;
  }
  state.SetItemsProcessed(state.iterations());
  SetLabel(state, kind, q);
}

void BM_Decode(benchmark::State& state) {
  const auto kind = static_cast<LayoutKind>(state.range(0));
  const GroupedQuantizer q = MakeQuantizer(kind);
  const std::vector<float> x = Vectors(kBatch);
  std::vector<uint8_t> records(kBatch * q.PackedBytes());
  q.EncodeBatch(x, absl::MakeSpan(records));
  std::vector<float> out(kHeadDim);
  size_t t = 0;
  for (auto _ : state) {
    q.Decode(absl::MakeConstSpan(records.data() + t * q.PackedBytes(), q.PackedBytes()),
             absl::MakeSpan(out));
    benchmark::DoNotOptimize(out.data());
    t = (t + 1) % kBatch;
  }
  state.SetItemsProcessed(state.iterations());
  SetLabel(state, kind, q);
}

void BM_EncodeBatch(benchmark::State& state) {
  const auto kind = static_cast<LayoutKind>(state.range(0));
  const GroupedQuantizer q = MakeQuantizer(kind);
  const std::vector<float> x = Vectors(kBatch);
  std::vector<uint8_t> out(kBatch * q.PackedBytes());
  for (auto _ : state) {
    q.EncodeBatch(x, absl::MakeSpan(out));
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  SetLabel(state, kind, q);
}

void BM_DecodeBatch(benchmark::State& state) {
  const auto kind = static_cast<LayoutKind>(state.range(0));
  const GroupedQuantizer q = MakeQuantizer(kind);
  const std::vector<float> x = Vectors(kBatch);
  std::vector<uint8_t> records(kBatch * q.PackedBytes());
  q.EncodeBatch(x, absl::MakeSpan(records));
  std::vector<float> out(x.size());
  for (auto _ : state) {
    q.DecodeBatch(records, absl::MakeSpan(out));
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  SetLabel(state, kind, q);
}

void BM_DecodeRotated(benchmark::State& state) {
  const GroupedQuantizer q = MakeQuantizer(kBlockGtqK3);
  const std::vector<float> x = Vectors(kBatch);
  std::vector<uint8_t> records(kBatch * q.PackedBytes());
  q.EncodeBatch(x, absl::MakeSpan(records));
  std::vector<float> out(kHeadDim);
  size_t t = 0;
  for (auto _ : state) {
    q.DecodeRotated(absl::MakeConstSpan(records.data() + t * q.PackedBytes(), q.PackedBytes()),
                    absl::MakeSpan(out));
    benchmark::DoNotOptimize(out.data());
    t = (t + 1) % kBatch;
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_SolveLloydMax(benchmark::State& state) {
  const int bits = static_cast<int>(state.range(0));
  for (auto _ : state) benchmark::DoNotOptimize(SolveLloydMaxGaussian(bits));
}

void BM_HaarRotation(benchmark::State& state) {
  const int dim = static_cast<int>(state.range(0));
  uint64_t seed = 0;
  for (auto _ : state) benchmark::DoNotOptimize(HaarRotation(dim, ++seed));
}

BENCHMARK(BM_Encode)->Arg(kUniformK3)->Arg(kBlockGtqK3)->Arg(kV3);
BENCHMARK(BM_Decode)->Arg(kUniformK3)->Arg(kBlockGtqK3)->Arg(kV3);
BENCHMARK(BM_EncodeBatch)->Arg(kUniformK3)->Arg(kBlockGtqK3)->Arg(kV3);
BENCHMARK(BM_DecodeBatch)->Arg(kUniformK3)->Arg(kBlockGtqK3)->Arg(kV3);
BENCHMARK(BM_DecodeRotated);
BENCHMARK(BM_SolveLloydMax)->DenseRange(1, 8);
BENCHMARK(BM_HaarRotation)->Arg(32)->Arg(128);

}  // namespace
}  // namespace kvplan

BENCHMARK_MAIN();
