// kvplan --coordinator ADDR jobs create|get|list|cancel.
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "client/cli/command_util.h"
#include "client/cli/coordinator_connection.h"
#include "client/cli/flags.h"
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

}  // namespace

absl::Status RunJobsNoun(const CoordinatorConnection& c, const std::vector<std::string>& args,
                         std::ostream& out) {
  const std::string verb = args.empty() ? "" : args[0];
  const std::vector<std::string> rest(args.empty() ? args.end() : args.begin() + 1, args.end());
  if (verb == "create") return Create(c, rest, out);
  if (verb == "get") return GetOrCancel(c, rest, /*cancel=*/false, out);
  if (verb == "list") return List(c, rest, out);
  if (verb == "cancel") return GetOrCancel(c, rest, /*cancel=*/true, out);
  return absl::InvalidArgumentError("jobs: expected create, get, list or cancel (see kvplan help)");
}

}  // namespace kvplan::cli
