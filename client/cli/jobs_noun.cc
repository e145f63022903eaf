// kvplan --coordinator ADDR jobs create|get|list|cancel|watch.
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "client/cli/command_util.h"
#include "client/cli/coordinator_connection.h"
#include "client/cli/flags.h"
#include "client/cli/job_progress.h"
#include "client/lib/reconnect_backoff.h"
#include "core/digest.h"
#include "core/file_io.h"
#include "kvplan/v1/job_service.grpc.pb.h"

namespace kvplan::cli {
namespace {

// "RUNNING  shards 3/8 (2 leased)  tokens 12345  41.2 tok/s  ETA 30s": what a
// person watching a job wants on one line.
void PrintJob(const v1::Job& job, std::ostream& out) {
  const v1::JobProgress& p = job.progress();
  const std::string eta =
      p.eta_seconds() < 0 ? "ETA ?" : absl::StrFormat("ETA %ds", p.eta_seconds());
  out << absl::StrFormat("%-20s %-10s %-10s shards %d/%d (%d leased)  tokens %d  %.1f tok/s  %s",
                         job.job_id(), job.model_id(), v1::Job::State_Name(job.state()),
                         p.shards_done(), p.shards_total(), p.shards_leased(), p.tokens(),
                         p.tokens_per_second(), eta);
  if (!job.merged_stats_digest().empty()) {
    out << absl::StrFormat("  stats %s", job.merged_stats_digest().substr(0, 16));
  }
  out << "\n";
}

// Cuts the non-empty lines of a JSONL prompt file into `shards` contiguous,
// near-equal runs, in file order.
absl::StatusOr<std::vector<std::string>> ShardPrompts(const std::string& text, int64_t shards,
                                                      const std::string& path) {
  std::vector<std::string> lines;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!line.empty()) lines.emplace_back(line);
  }
  if (shards < 1 || shards > static_cast<int64_t>(lines.size())) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--shards %d: %s has %d prompts; want 1 to that many shards", shards, path, lines.size()));
  }
  std::vector<std::string> out(static_cast<size_t>(shards));
  for (size_t i = 0; i < lines.size(); ++i) {
    std::string& shard = out[i * static_cast<size_t>(shards) / lines.size()];
    shard += lines[i];
    shard += '\n';
  }
  return out;
}

absl::Status Create(const CoordinatorConnection& c, const std::vector<std::string>& args,
                    std::ostream& out) {
  absl::StatusOr<Flags> flags =
      Flags::Parse(args, {.values = {"model", "prompts", "shards", "tokens-per-shard",
                                     "lease-seconds", "name", "prompt-set-hash"},
                          .switches = {"json"}});
  if (!flags.ok()) return flags.status();
  absl::StatusOr<std::string> model = flags->String("model");
  if (!model.ok()) return model.status();
  absl::StatusOr<std::string> path = flags->String("prompts");
  if (!path.ok()) return path.status();
  absl::StatusOr<int64_t> shards = flags->Int("shards", 1);
  if (!shards.ok()) return shards.status();
  absl::StatusOr<int64_t> tokens = flags->Int("tokens-per-shard", 0);
  if (!tokens.ok()) return tokens.status();
  absl::StatusOr<int64_t> lease = flags->Int("lease-seconds", 0);
  if (!lease.ok()) return lease.status();
  absl::StatusOr<std::string> text = ReadFile(*path);
  if (!text.ok()) return text.status();
  absl::StatusOr<std::vector<std::string>> prompts = ShardPrompts(*text, *shards, *path);
  if (!prompts.ok()) return prompts.status();

  v1::CreateJobRequest request;
  request.set_job_id(flags->Get("name").value_or(""));
  request.set_model_id(*model);
  request.set_prompt_set_hash(
      flags->Get("prompt-set-hash").value_or(absl::StrFormat("sha256:%s", Sha256Hex(*text))));
  for (std::string& shard : *prompts) request.add_shard_prompts(std::move(shard));
  request.set_tokens_per_shard(*tokens);
  request.set_lease_seconds(static_cast<int32_t>(*lease));
  v1::CreateJobResponse response;
  auto stub = v1::JobService::NewStub(c.channel());
  if (absl::Status st = FromGrpc(stub->CreateJob(c.NewContext().get(), request, &response));
      !st.ok()) {
    return st;
  }
  if (flags->Has("json")) {
    out << MessageToJson(response);
    return absl::OkStatus();
  }
  out << (response.created() ? "created " : "already exists ");
  PrintJob(response.job(), out);
  return absl::OkStatus();
}

absl::Status GetOrCancel(const CoordinatorConnection& c, const std::vector<std::string>& args,
                         bool cancel, std::ostream& out) {
  absl::StatusOr<Flags> flags = Flags::Parse(args, {.values = {"job"}, .switches = {"json"}});
  if (!flags.ok()) return flags.status();
  absl::StatusOr<std::string> id = flags->String("job");
  if (!id.ok()) return id.status();
  auto stub = v1::JobService::NewStub(c.channel());
  v1::Job job;
  grpc::Status status;
  if (cancel) {
    v1::CancelJobRequest request;
    request.set_job_id(*id);
    status = stub->CancelJob(c.NewContext().get(), request, &job);
  } else {
    v1::GetJobRequest request;
    request.set_job_id(*id);
    status = stub->GetJob(c.NewContext().get(), request, &job);
  }
  if (absl::Status st = FromGrpc(status); !st.ok()) return st;
  if (flags->Has("json")) {
    out << MessageToJson(job);
  } else {
    PrintJob(job, out);
  }
  return absl::OkStatus();
}

absl::Status List(const CoordinatorConnection& c, const std::vector<std::string>& args,
                  std::ostream& out) {
  absl::StatusOr<Flags> flags = Flags::Parse(args, {.values = {"model"}, .switches = {"json"}});
  if (!flags.ok()) return flags.status();
  v1::ListJobsRequest request;
  request.set_model_id(flags->Get("model").value_or(""));
  v1::ListJobsResponse response;
  auto stub = v1::JobService::NewStub(c.channel());
  if (absl::Status st = FromGrpc(stub->ListJobs(c.NewContext().get(), request, &response));
      !st.ok()) {
    return st;
  }
  if (flags->Has("json")) {
    out << MessageToJson(response);
    return absl::OkStatus();
  }
  for (const v1::Job& job : response.jobs()) PrintJob(job, out);
  return absl::OkStatus();
}

// The job id of `watch JOB_ID [flags]` or `watch --job JOB_ID [flags]`, and
// the remaining flags.
absl::StatusOr<std::pair<std::string, Flags>> WatchArgs(std::vector<std::string> args) {
  std::optional<std::string> positional;
  if (!args.empty() && !args[0].starts_with("-")) {
    positional = args[0];
    args.erase(args.begin());
  }
  absl::StatusOr<Flags> flags =
      Flags::Parse(args, {.values = {"job", "interval-ms", "give-up-after-s"}});
  if (!flags.ok()) return flags.status();
  if (positional.has_value() == flags->Has("job")) {
    return absl::InvalidArgumentError("watch: give the job id once, as JOB_ID or --job JOB_ID");
  }
  return std::pair{positional.value_or(flags->Get("job").value_or("")), *std::move(flags)};
}

// Polls GetJob every --interval-ms (default 1000) until the job ends. On a
// terminal the progress line is redrawn in place; otherwise (a log, a pipe) a
// line is printed only when the progress changes, so logs stay readable. An
// unreachable coordinator is retried with backoff for --give-up-after-s
// (default 300; 0: forever), one note per attempt.
absl::Status Watch(const CoordinatorConnection& c, const std::vector<std::string>& args,
                   std::ostream& out) {
  absl::StatusOr<std::pair<std::string, Flags>> parsed = WatchArgs(args);
  if (!parsed.ok()) return parsed.status();
  const auto& [id, flags] = *parsed;
  absl::StatusOr<int64_t> interval_ms = flags.Int("interval-ms", 1000);
  if (!interval_ms.ok()) return interval_ms.status();
  if (*interval_ms < 10 || *interval_ms > 3'600'000) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--interval-ms %d is outside [10, 3600000]", *interval_ms));
  }
  absl::StatusOr<int64_t> give_up_after_s = flags.Int("give-up-after-s", 300);
  if (!give_up_after_s.ok()) return give_up_after_s.status();
  if (*give_up_after_s < 0) {
    return absl::InvalidArgumentError("--give-up-after-s must be >= 0 (0: never give up)");
  }
  // Only the process's own stdout can be a terminal; a stream handed in by a
  // caller (tests) gets the log form.
  const bool redraw = &out == &std::cout && isatty(STDOUT_FILENO) == 1;
  auto stub = v1::JobService::NewStub(c.channel());
  const auto start = std::chrono::steady_clock::now();
  JobRateMeter meter;
  std::string last_logged;
  bool drawn = false;
  // A coordinator that restarts or is briefly unreachable is waited out with
  // backoff (the job lives on in its store); only a long outage ends the watch.
  client::ReconnectBackoff backoff(std::chrono::milliseconds(*interval_ms),
                                   std::chrono::seconds(30));
  bool unreachable = false;
  std::chrono::steady_clock::time_point unreachable_since;
  CoordinatorConnection connection = c;
  for (;;) {
    v1::GetJobRequest request;
    request.set_job_id(id);
    v1::Job job;
    absl::Status st = FromGrpc(stub->GetJob(connection.NewContext().get(), request, &job));
    if (client::IsTransient(st)) {
      const auto now = std::chrono::steady_clock::now();
      if (!unreachable) unreachable_since = now;
      unreachable = true;
      const auto outage = std::chrono::duration_cast<std::chrono::seconds>(now - unreachable_since);
      if (*give_up_after_s > 0 && outage.count() >= *give_up_after_s) {
        if (drawn) out << "\n";
        return absl::UnavailableError(absl::StrFormat(
            "the coordinator has been unreachable for %d s (%s); the job goes on without this "
            "watch: run `kvplan jobs watch %s` again once the coordinator is back",
            outage.count(), std::string(st.message()), id));
      }
      const std::chrono::milliseconds wait = backoff.Next();
      if (drawn) out << "\n";
      drawn = false;
      out << absl::StrFormat("coordinator unreachable (%s); retrying in %d ms\n",
                             std::string(st.message()), wait.count())
          << std::flush;
      last_logged.clear();  // Log the next progress line whatever it is.
      std::this_thread::sleep_for(wait);
      // A fresh channel: gRPC's own reconnect backoff on the old one would
      // keep failing for seconds after the coordinator is back.
      if (absl::StatusOr<CoordinatorConnection> fresh = CoordinatorConnection::Open(c.endpoint());
          fresh.ok()) {
        connection = *std::move(fresh);
        stub = v1::JobService::NewStub(connection.channel());
      }
      continue;
    }
    unreachable = false;
    backoff.Reset();
    if (!st.ok()) {
      if (drawn) out << "\n";
      if (absl::IsNotFound(st)) {
        return absl::NotFoundError(absl::StrFormat(
            "%s; `kvplan jobs list` shows the coordinator's jobs", std::string(st.message())));
      }
      return st;
    }
    const v1::JobProgress& p = job.progress();
    meter.Add(
        {.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
         .shards_done = p.shards_done(),
         .tokens = p.tokens()});
    const JobProgressLine line{.job_id = job.job_id(),
                               .state = v1::Job::State_Name(job.state()),
                               .shards_done = p.shards_done(),
                               .shards_total = p.shards_total(),
                               .shards_leased = p.shards_leased(),
                               .tokens = p.tokens(),
                               .token_budget = job.tokens_per_shard() * p.shards_total(),
                               .tokens_per_second = meter.TokensPerSecond(),
                               .eta_seconds = meter.EtaSeconds(p.shards_total())};
    if (redraw) {
      out << "\r" << FormatJobProgress(line) << "\x1b[K" << std::flush;  // Erase to line end.
      drawn = true;
    } else {
      // Rate and ETA move at every poll; the log records changes of progress.
      JobProgressLine progress_only = line;
      progress_only.tokens_per_second.reset();
      progress_only.eta_seconds.reset();
      if (const std::string key = FormatJobProgress(progress_only); key != last_logged) {
        out << FormatJobProgress(line) << "\n" << std::flush;
        last_logged = key;
      }
    }
    switch (job.state()) {
      case v1::Job::RUNNING:
        std::this_thread::sleep_for(std::chrono::milliseconds(*interval_ms));
        continue;
      case v1::Job::SUCCEEDED:
        if (drawn) out << "\n";
        out << absl::StrFormat("job %s succeeded: %d tokens, merged statistics %s\n", id,
                               p.tokens(), job.merged_stats_digest());
        return absl::OkStatus();
      case v1::Job::CANCELLED:
        if (drawn) out << "\n";
        return absl::FailedPreconditionError(absl::StrFormat(
            "job %s was cancelled with %d of %d shards committed; its statistics are incomplete, "
            "so create a new job to finish the calibration",
            id, p.shards_done(), p.shards_total()));
      default:
        if (drawn) out << "\n";
        return absl::UnimplementedError(
            absl::StrFormat("job %s is in state %d, which this kvplan does not know; upgrade it",
                            id, static_cast<int>(job.state())));
    }
  }
}

}  // namespace

absl::Status RunJobsNoun(const CoordinatorConnection& c, const std::vector<std::string>& args,
                         std::ostream& out) {
  const std::string verb = args.empty() ? "" : args[0];
  const std::vector<std::string> rest(args.empty() ? args.end() : args.begin() + 1, args.end());
  if (verb == "create") return Create(c, rest, out);
  if (verb == "get") return GetOrCancel(c, rest, /*cancel=*/false, out);
  if (verb == "list") return List(c, rest, out);
  if (verb == "cancel") return GetOrCancel(c, rest, /*cancel=*/true, out);
  if (verb == "watch") return Watch(c, rest, out);
  return absl::InvalidArgumentError(
      "jobs: expected create, get, list, cancel or watch (see kvplan help)");
}

}  // namespace kvplan::cli
