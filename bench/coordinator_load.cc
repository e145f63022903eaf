// coordinator_load: drives a running kvplan-coordinator over loopback from its
// own process and prints latency and throughput (BENCHMARKS.md, "Coordinator
// over loopback"; bench/run_coordinator_load.sh starts the coordinator).
//
//   coordinator_load --target 127.0.0.1:PORT [--clients 64] [--rate 2000]
//                    [--seconds 10] [--closed-seconds 5] [--whatif-calls 200]
//                    [--create-runs 5] [--repetitions 3]
//
// Setup: registers a synthetic 80-layer × 8-KV-head × hd-128 model (64 RoPE
// blocks per head, GQA group 8), uploads synthetic BlockStats with uneven
// energies, times CreatePlan (K3V3) `--create-runs` times under fresh plan
// names (each run allocates and writes a new version), promotes the first to
// channel "stable". Then, `--repetitions` times:
//   - GetPlan by channel, open loop: `--clients` threads send at a fixed
//     aggregate `--rate` for `--seconds`; latency runs from each call's
//     scheduled send time, so a stalled server cannot hide queueing
//     (no coordinated omission);
//   - GetPlan by channel, closed loop: every client calls back to back
//     (maximum throughput);
//   - GetModel, closed loop: the baseline (same clients, a small read);
//   - WhatIf at 8 K budgets (1.5 … 6 b/dim, V3), one client, sequential.
// Each run prints a line; the last lines are medians over the repetitions.
//
// Clients: one thread per client, each with its own gRPC channel on its own TCP
// connection (a local subchannel pool), as 64 serving nodes would have; calls
// are synchronous, so each client has at most one call in flight.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "core/block_stats.h"
#include "grpcpp/grpcpp.h"
#include "kvplan/v1/channel_service.grpc.pb.h"
#include "kvplan/v1/model_service.grpc.pb.h"
#include "kvplan/v1/plan_service.grpc.pb.h"
#include "kvplan/v1/whatif_service.grpc.pb.h"

namespace {

namespace v1 = ::kvplan::v1;
using Clock = std::chrono::steady_clock;

constexpr char kModelId[] = "bench-80x8x128";
constexpr char kChannel[] = "stable";
constexpr int kLayers = 80, kKvHeads = 8, kQHeads = 64, kHeadDim = 128;

struct Flags {
  std::string target;
  int clients = 64;
  double rate = 2000;
  double seconds = 10;
  double closed_seconds = 5;
  int whatif_calls = 200;
  int create_runs = 5;
  int repetitions = 3;
};

[[noreturn]] void Die(const std::string& message) {
  std::cerr << "coordinator_load: " << message << "\n";
  std::exit(2);
}

Flags ParseFlags(int argc, char** argv) {
  Flags f;
  std::map<std::string, std::function<bool(const std::string&)>> setters = {
      {"target",
       [&](const std::string& v) {
         f.target = v;
         return true;
       }},
      {"clients", [&](const std::string& v) { return absl::SimpleAtoi(v, &f.clients); }},
      {"rate", [&](const std::string& v) { return absl::SimpleAtod(v, &f.rate); }},
      {"seconds", [&](const std::string& v) { return absl::SimpleAtod(v, &f.seconds); }},
      {"closed-seconds",
       [&](const std::string& v) { return absl::SimpleAtod(v, &f.closed_seconds); }},
      {"whatif-calls", [&](const std::string& v) { return absl::SimpleAtoi(v, &f.whatif_calls); }},
      {"create-runs", [&](const std::string& v) { return absl::SimpleAtoi(v, &f.create_runs); }},
      {"repetitions", [&](const std::string& v) { return absl::SimpleAtoi(v, &f.repetitions); }},
  };
  for (int i = 1; i < argc; i += 2) {
    const std::string name = std::string(argv[i]).substr(2);
    if (!std::string(argv[i]).starts_with("--") || !setters.contains(name) || i + 1 >= argc) {
      Die(
          absl::StrFormat("bad argument '%s' (flags: --target --clients --rate --seconds "
                          "--closed-seconds --whatif-calls --create-runs --repetitions)",
                          argv[i]));
    }
    if (!setters[name](argv[i + 1]))
      Die(absl::StrFormat("--%s: bad value '%s'", name, argv[i + 1]));
  }
  // Loopback only: this program is a load generator and must not point at anything else.
  if (!f.target.starts_with("127.0.0.1:")) Die("--target must be 127.0.0.1:PORT");
  if (f.clients < 1 || f.clients > 1024 || f.rate <= 0 || f.seconds <= 0 || f.seconds > 120 ||
      f.closed_seconds <= 0 || f.closed_seconds > 120 || f.whatif_calls < 1 || f.create_runs < 1 ||
      f.repetitions < 1 || f.repetitions > 20) {
    Die("a flag is out of range (clients 1..1024, seconds <= 120, repetitions 1..20)");
  }
  return f;
}

void Check(const grpc::Status& status, const std::string& what) {
  if (!status.ok()) {
    Die(absl::StrFormat("%s: code %d: %s", what, static_cast<int>(status.error_code()),
                        status.error_message()));
  }
}

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// Nearest-rank percentile of sorted values; 0 when empty.
double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const size_t rank =
      static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2] * 0.5 + v[(v.size() - 1) / 2] * 0.5;
}

// Per-block energies shaped like real RoPE models: low-frequency blocks (high
// index, split-half layout) carry far more energy, a few outlier blocks per
// head carry much more still, and every layer and head has its own scale.
std::string SyntheticStats() {
  constexpr int kBlocks = kHeadDim / 2, kGroup = kQHeads / kKvHeads;
  constexpr uint64_t kTokens = 1 << 20;
  absl::StatusOr<kvplan::BlockStats> stats = kvplan::BlockStats::Create({.num_layers = kLayers,
                                                                         .num_kv_heads = kKvHeads,
                                                                         .num_blocks = kBlocks,
                                                                         .group_size = kGroup});
  if (!stats.ok()) Die(std::string(stats.status().message()));
  std::mt19937_64 rng(20261129);
  std::lognormal_distribution<double> noise(0.0, 0.5), scale(0.0, 0.8);
  std::uniform_int_distribution<int> outlier(0, kBlocks - 1);
  for (int layer = 0; layer < kLayers; ++layer) {
    for (int head = 0; head < kKvHeads; ++head) {
      const double head_scale = scale(rng);
      std::vector<double> q(kBlocks), k(kBlocks);
      for (int i = 0; i < kBlocks; ++i) {
        const double x = static_cast<double>(i) / (kBlocks - 1);
        const double profile = 0.05 + 4.0 * x * x * x;
        q[i] = head_scale * profile * noise(rng) * static_cast<double>(kGroup * kTokens);
        k[i] = head_scale * profile * noise(rng) * static_cast<double>(kTokens);
      }
      for (int n = 0; n < 2; ++n) k[outlier(rng)] *= 20;  // key outlier blocks
      absl::Status st = stats->Add(layer, head, q, kGroup * kTokens, k, kTokens);
      if (!st.ok()) Die(std::string(st.message()));
    }
  }
  return stats->Serialize();
}

// Registers the model, uploads statistics through CreatePlan (timed), promotes.
void Setup(const std::shared_ptr<grpc::Channel>& channel, const Flags& flags) {
  auto models = v1::ModelService::NewStub(channel);
  auto plans = v1::PlanService::NewStub(channel);
  auto channels = v1::ChannelService::NewStub(channel);

  v1::RegisterModelRequest reg;
  reg.set_model_id(kModelId);
  reg.set_fingerprint("synthetic-80x8x128-v1");
  v1::ModelArchitecture* arch = reg.mutable_architecture();
  arch->set_num_layers(kLayers);
  arch->set_num_q_heads(kQHeads);
  arch->set_num_kv_heads(kKvHeads);
  arch->set_head_dim(kHeadDim);
  arch->set_architecture("synthetic");
  arch->mutable_rope()->set_style(v1::RopeSpec::SPLIT_HALF);
  arch->mutable_rope()->set_head_dim(kHeadDim);
  arch->mutable_rope()->set_theta(500000);
  v1::RegisterModelResponse reg_response;
  grpc::ClientContext reg_context;
  Check(models->RegisterModel(&reg_context, reg, &reg_response), "RegisterModel");

  v1::CreatePlanRequest create;
  create.set_model_id(kModelId);
  create.set_stats(SyntheticStats());
  create.set_source("coordinator_load");
  create.mutable_options()->set_k_bits(3);
  create.mutable_options()->set_v_bits(3);
  std::vector<double> create_ms;
  size_t plan_bytes = 0;
  int created = 0;
  for (int run = 1; run <= flags.create_runs; ++run) {
    create.set_name(absl::StrFormat("k3v3-run%d", run));
    v1::CreatePlanResponse response;
    grpc::ClientContext context;
    const Clock::time_point start = Clock::now();
    Check(plans->CreatePlan(&context, create, &response), "CreatePlan");
    create_ms.push_back(Ms(Clock::now() - start));
    plan_bytes = response.plan_json().size();
    created += response.created() ? 1 : 0;
  }
  std::sort(create_ms.begin(), create_ms.end());
  std::cout << absl::StrFormat(
      "CreatePlan K3V3 (%d x %d x hd %d, %zu-byte stats upload, %zu-byte plan JSON): "
      "median %.1f ms, min %.1f, max %.1f over %d runs (%d created new versions)\n",
      kLayers, kKvHeads, kHeadDim, create.stats().size(), plan_bytes, Median(create_ms),
      create_ms.front(), create_ms.back(), flags.create_runs, created);

  v1::PromoteRequest promote;
  promote.set_model_id(kModelId);
  promote.set_channel(kChannel);
  promote.set_plan_name("k3v3-run1");
  v1::ChannelMove move;
  grpc::ClientContext promote_context;
  Check(channels->Promote(&promote_context, promote, &move), "Promote");
}

// One client: a thread's own channel (own TCP connection) and stubs.
struct Client {
  explicit Client(const std::string& target) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    channel = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
    plans = v1::PlanService::NewStub(channel);
    models = v1::ModelService::NewStub(channel);
  }
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::PlanService::Stub> plans;
  std::unique_ptr<v1::ModelService::Stub> models;
};

// One call of the measured kind; returns whether it succeeded.
using Call = std::function<bool(Client&)>;

bool GetPlanByChannel(Client& c) {
  v1::GetPlanRequest request;
  request.mutable_channel()->set_model_id(kModelId);
  request.mutable_channel()->set_channel(kChannel);
  v1::GetPlanResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  return c.plans->GetPlan(&context, request, &response).ok() && !response.plan_json().empty();
}

bool GetModel(Client& c) {
  v1::GetModelRequest request;
  request.set_model_id(kModelId);
  v1::Model response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  return c.models->GetModel(&context, request, &response).ok();
}

struct LoadResult {
  double throughput = 0;                       // successful calls per second
  double p50 = 0, p99 = 0, p999 = 0, max = 0;  // ms
  long errors = 0;
};

// Runs `call` from every client for `seconds`. rate > 0: open loop, client i
// sends its k-th call at start + (k·clients + i)/rate and latency counts from
// that scheduled time; rate 0: closed loop, back to back.
LoadResult RunLoad(std::vector<Client>& clients, const Call& call, double rate, double seconds) {
  const int n = static_cast<int>(clients.size());
  std::vector<std::vector<double>> latencies(n);
  std::atomic<long> errors = 0;
  std::atomic<Clock::rep> last_done = 0;  // ticks after start of the latest answer
  const Clock::time_point start = Clock::now() + std::chrono::milliseconds(100);
  const Clock::time_point end =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      std::this_thread::sleep_until(start);
      for (long k = 0;; ++k) {
        Clock::time_point scheduled = Clock::now();
        if (rate > 0) {
          scheduled = start + std::chrono::duration_cast<Clock::duration>(
                                  std::chrono::duration<double>((k * n + i) / rate));
          if (scheduled >= end) break;
          std::this_thread::sleep_until(scheduled);
        } else if (scheduled >= end) {
          break;
        }
        const bool ok = call(clients[i]);
        const Clock::time_point done = Clock::now();
        if (ok) {
          latencies[i].push_back(Ms(done - scheduled));
        } else {
          errors.fetch_add(1);
        }
        const Clock::rep ticks = (done - start).count();
        Clock::rep seen = last_done.load();
        while (ticks > seen && !last_done.compare_exchange_weak(seen, ticks)) {
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  std::vector<double> all;
  for (const std::vector<double>& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  LoadResult r;
  // Over the time until the last answer, so a backlog that drains late lowers throughput.
  const double elapsed =
      std::max(seconds, std::chrono::duration<double>(Clock::duration(last_done.load())).count());
  r.throughput = static_cast<double>(all.size()) / elapsed;
  r.p50 = Percentile(all, 50);
  r.p99 = Percentile(all, 99);
  r.p999 = Percentile(all, 99.9);
  r.max = all.empty() ? 0 : all.back();
  r.errors = errors.load();
  return r;
}

// Sequential WhatIf calls at 8 K budgets and V3; latencies in ms.
LoadResult RunWhatIf(const std::shared_ptr<grpc::Channel>& channel, int calls) {
  auto stub = v1::WhatIfService::NewStub(channel);
  v1::WhatIfRequest request;
  request.set_model_id(kModelId);
  for (double k : {1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0}) request.add_k_bits(k);
  request.add_v_bits(3);
  std::vector<double> ms;
  LoadResult r;
  const Clock::time_point start = Clock::now();
  for (int i = 0; i < calls; ++i) {
    v1::WhatIfResponse response;
    grpc::ClientContext context;
    const Clock::time_point t = Clock::now();
    if (stub->WhatIf(&context, request, &response).ok() && response.rows_size() == 8) {
      ms.push_back(Ms(Clock::now() - t));
    } else {
      ++r.errors;
    }
  }
  r.throughput = static_cast<double>(ms.size()) / (Ms(Clock::now() - start) / 1000);
  std::sort(ms.begin(), ms.end());
  r.p50 = Percentile(ms, 50);
  r.p99 = Percentile(ms, 99);
  r.p999 = Percentile(ms, 99.9);
  r.max = ms.empty() ? 0 : ms.back();
  return r;
}

void Print(const std::string& label, const LoadResult& r) {
  std::cout << absl::StrFormat(
      "%-34s %9.0f/s  p50 %7.3f ms  p99 %7.3f ms  p99.9 %7.3f ms  "
      "max %7.3f ms  errors %ld\n",
      label, r.throughput, r.p50, r.p99, r.p999, r.max, r.errors);
}

LoadResult MedianOf(const std::vector<LoadResult>& runs) {
  auto median = [&](double LoadResult::*field) {
    std::vector<double> v;
    for (const LoadResult& r : runs) v.push_back(r.*field);
    return Median(v);
  };
  LoadResult m{.throughput = median(&LoadResult::throughput),
               .p50 = median(&LoadResult::p50),
               .p99 = median(&LoadResult::p99),
               .p999 = median(&LoadResult::p999),
               .max = median(&LoadResult::max)};
  for (const LoadResult& r : runs) m.errors += r.errors;  // total, not median
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  const Flags flags = ParseFlags(argc, argv);
  std::cout << std::unitbuf;  // each line as it comes, also into a pipe or file
  std::shared_ptr<grpc::Channel> control =
      grpc::CreateChannel(flags.target, grpc::InsecureChannelCredentials());
  if (!control->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
    Die("cannot connect to " + flags.target);
  }
  Setup(control, flags);

  std::vector<Client> clients;
  clients.reserve(flags.clients);
  for (int i = 0; i < flags.clients; ++i) clients.emplace_back(flags.target);
  for (Client& c : clients) {  // connect and warm every connection before measuring
    if (!GetPlanByChannel(c)) Die("warm-up GetPlan failed");
  }

  const std::string open_label =
      absl::StrFormat("GetPlan channel open %.0f/s x%d", flags.rate, flags.clients);
  const std::string closed_label = absl::StrFormat("GetPlan channel closed x%d", flags.clients);
  const std::string baseline_label = absl::StrFormat("GetModel closed x%d (base)", flags.clients);
  std::vector<LoadResult> open, closed, baseline, whatif;
  for (int rep = 1; rep <= flags.repetitions; ++rep) {
    std::cout << absl::StrFormat("-- run %d of %d\n", rep, flags.repetitions);
    open.push_back(RunLoad(clients, GetPlanByChannel, flags.rate, flags.seconds));
    Print(open_label, open.back());
    closed.push_back(RunLoad(clients, GetPlanByChannel, 0, flags.closed_seconds));
    Print(closed_label, closed.back());
    baseline.push_back(RunLoad(clients, GetModel, 0, flags.closed_seconds));
    Print(baseline_label, baseline.back());
    whatif.push_back(RunWhatIf(control, flags.whatif_calls));
    Print("WhatIf 8 budgets x1 sequential", whatif.back());
  }
  std::cout << absl::StrFormat("-- median of %d runs (errors: total)\n", flags.repetitions);
  const LoadResult m_open = MedianOf(open), m_closed = MedianOf(closed);
  const LoadResult m_base = MedianOf(baseline), m_whatif = MedianOf(whatif);
  Print(open_label, m_open);
  Print(closed_label, m_closed);
  Print(baseline_label, m_base);
  Print("WhatIf 8 budgets x1 sequential", m_whatif);
  std::cout << absl::StrFormat(
      "GetPlan closed-loop throughput / GetModel baseline: %.2fx\n"
      "target GetPlan p99 < 5 ms at %.0f req/s: %s (achieved %.0f/s, p99 %.3f ms)\n"
      "target WhatIf p99 < 20 ms: %s (p99 %.3f ms)\n",
      m_closed.throughput / m_base.throughput, flags.rate,
      m_open.p99 < 5 && m_open.throughput >= 0.99 * flags.rate ? "met" : "MISSED",
      m_open.throughput, m_open.p99, m_whatif.p99 < 20 ? "met" : "MISSED", m_whatif.p99);
  return 0;
}
