#include "server/job_registry.h"

#include <algorithm>
#include <optional>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "core/block_stats.h"
#include "core/digest.h"
#include "proto/wire_convert.h"
#include "server/plan_registry.h"
#include "server/records.pb.h"

namespace kvplan::server {

using ::kvplan::wire::ValidateName;
using records::ShardState;
namespace {

constexpr int kMaxShards = 4096;
constexpr int64_t kMaxTokensPerShard = int64_t{1} << 40;
constexpr int kMaxLeaseSeconds = 86400;
constexpr size_t kMaxTextField = 128;

std::string ShardKey(std::string_view job_id, int shard) {
  return absl::StrFormat("%s/%s", job_id, EncodeBe64(static_cast<uint64_t>(shard)));
}

std::string LeaseId(std::string_view job_id, int shard, int attempt) {
  return absl::StrFormat("%s:%d:%d", job_id, shard, attempt);
}

// A lease id split into its parts; the parts are not checked against the store.
struct LeaseRef {
  std::string job_id;
  int shard = 0;
  int attempt = 0;
};

absl::StatusOr<LeaseRef> ParseLeaseId(std::string_view lease_id) {
  // Abseil's string_view is not std::string_view in this build.
  const absl::string_view id(lease_id.data(), lease_id.size());
  std::vector<absl::string_view> parts = absl::StrSplit(id, ':');
  LeaseRef ref;
  if (parts.size() != 3 || parts[0].empty() || !absl::SimpleAtoi(parts[1], &ref.shard) ||
      !absl::SimpleAtoi(parts[2], &ref.attempt) || ref.shard < 0 || ref.attempt < 1) {
    return absl::NotFoundError(absl::StrFormat("no lease has id '%s'", lease_id));
  }
  ref.job_id = std::string(parts[0]);
  return ref;
}

absl::Status CheckText(std::string_view value, std::string_view what) {
  if (value.empty() || value.size() > kMaxTextField) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s must be 1 to %d characters", what, kMaxTextField));
  }
  for (char c : value) {
    if (c < 0x20 || c > 0x7e) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s has a character that is not printable ASCII", what));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<v1::Job>> ReadJob(const Store& store, std::string_view job_id) {
  absl::StatusOr<std::optional<std::string>> bytes = store.Get(Family::kJobs, job_id);
  if (!bytes.ok()) return bytes.status();
  if (!bytes->has_value()) return std::optional<v1::Job>();
  v1::Job job;
  if (!job.ParseFromString(**bytes)) {
    return absl::DataLossError(absl::StrFormat("jobs/%s: stored record does not parse", job_id));
  }
  return std::optional<v1::Job>(std::move(job));
}

absl::StatusOr<v1::Job> MustReadJob(const Store& store, std::string_view job_id) {
  absl::StatusOr<std::optional<v1::Job>> job = ReadJob(store, job_id);
  if (!job.ok()) return job.status();
  if (!job->has_value()) {
    return absl::NotFoundError(absl::StrFormat("no job has id '%s'", job_id));
  }
  return **std::move(job);
}

absl::StatusOr<std::vector<ShardState>> ReadShards(const Store& store, const v1::Job& job) {
  std::vector<ShardState> shards;
  shards.reserve(job.shard_count());
  bool corrupt = false;
  absl::Status st = store.Scan(
      Family::kJobShards, job.job_id() + "/", "", [&](std::string_view, std::string_view value) {
        ShardState& s = shards.emplace_back();
        corrupt = !s.ParseFromArray(value.data(), static_cast<int>(value.size()));
        return !corrupt;
      });
  if (!st.ok()) return st;
  if (corrupt || static_cast<int>(shards.size()) != job.shard_count()) {
    return absl::DataLossError(
        absl::StrFormat("job_shards of job '%s' are corrupt or incomplete", job.job_id()));
  }
  return shards;
}

// Fills the progress fields the store does not hold (they depend on `now`).
void FillProgress(const std::vector<ShardState>& shards, int64_t now, v1::Job& job) {
  v1::JobProgress* p = job.mutable_progress();
  p->set_shards_total(job.shard_count());
  int leased = 0;
  for (const ShardState& s : shards) {
    if (!s.committed() && s.leases() > 0 && now < s.expires_unix()) ++leased;
  }
  p->set_shards_leased(leased);
  const bool finished = job.state() != v1::Job::RUNNING;
  const int64_t elapsed =
      std::max<int64_t>(1, (finished ? job.finished_unix() : now) - job.created_unix());
  p->set_tokens_per_second(static_cast<double>(p->tokens()) / static_cast<double>(elapsed));
  if (finished) {
    p->set_eta_seconds(0);
  } else if (p->shards_done() == 0) {
    p->set_eta_seconds(-1);
  } else {
    const int64_t left = job.shard_count() - p->shards_done();
    p->set_eta_seconds((elapsed * left + p->shards_done() - 1) / p->shards_done());
  }
}

// What the content-derived job id hashes: every field that makes a job itself.
std::string JobContentKey(const v1::CreateJobRequest& r, int lease_seconds) {
  std::string key = absl::StrFormat("%s\n%s\n%d\n%d\n", r.model_id(), r.prompt_set_hash(),
                                    r.tokens_per_shard(), lease_seconds);
  for (const std::string& shard : r.shard_prompts()) {
    absl::StrAppend(&key, absl::StrFormat("%d:%s", shard.size(), shard));
  }
  return key;
}

// A lease's job and shard, read under the registry's lock, with the checks every
// lease operation shares. `state`'s attempt may still differ from ref.attempt.
struct LeasedShard {
  LeaseRef ref;
  v1::Job job;
  ShardState state;
};

absl::StatusOr<LeasedShard> ReadLease(const Store& store, std::string_view lease_id) {
  absl::StatusOr<LeaseRef> ref = ParseLeaseId(lease_id);
  if (!ref.ok()) return ref.status();
  absl::StatusOr<std::optional<v1::Job>> job = ReadJob(store, ref->job_id);
  if (!job.ok()) return job.status();
  absl::StatusOr<std::optional<std::string>> bytes =
      job->has_value() && ref->shard < (*job)->shard_count()
          ? store.Get(Family::kJobShards, ShardKey(ref->job_id, ref->shard))
          : absl::StatusOr<std::optional<std::string>>(std::nullopt);
  if (!bytes.ok()) return bytes.status();
  LeasedShard out{.ref = *std::move(ref)};
  if (!bytes->has_value() || !out.state.ParseFromString(**bytes) ||
      out.ref.attempt > out.state.leases()) {
    return absl::NotFoundError(absl::StrFormat("no lease has id '%s'", lease_id));
  }
  out.job = **std::move(job);
  return out;
}

// FailedPrecondition unless `l` is its shard's current, live, uncommitted lease
// of a running job.
absl::Status CheckLive(const LeasedShard& l, int64_t now, std::string_view lease_id) {
  if (l.job.state() != v1::Job::RUNNING) {
    return absl::FailedPreconditionError(absl::StrFormat("lease '%s': job '%s' is %s", lease_id,
                                                         l.job.job_id(),
                                                         v1::Job::State_Name(l.job.state())));
  }
  if (l.ref.attempt != l.state.leases()) {
    return absl::FailedPreconditionError(
        absl::StrFormat("lease '%s' was replaced: shard %d is now under attempt %d; lease it again",
                        lease_id, l.ref.shard, l.state.leases()));
  }
  if (l.state.committed()) {
    return absl::FailedPreconditionError(
        absl::StrFormat("lease '%s': shard %d is already committed", lease_id, l.ref.shard));
  }
  if (now >= l.state.expires_unix()) {
    return absl::FailedPreconditionError(
        absl::StrFormat("lease '%s' expired at %d (now %d); lease the shard again", lease_id,
                        l.state.expires_unix(), now));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> LoadJobStats(const Store& store, std::string_view model_id,
                                         std::string_view job_id) {
  absl::StatusOr<v1::Job> job = MustReadJob(store, job_id);
  if (!job.ok()) return job.status();
  if (job->model_id() != model_id) {
    return absl::FailedPreconditionError(absl::StrFormat("job '%s' calibrated model '%s', not '%s'",
                                                         job_id, job->model_id(), model_id));
  }
  if (job->state() != v1::Job::SUCCEEDED) {
    return absl::FailedPreconditionError(
        absl::StrFormat("job '%s' is %s; its statistics exist once it succeeds", job_id,
                        v1::Job::State_Name(job->state())));
  }
  absl::StatusOr<std::optional<std::string>> bytes = store.Get(
      Family::kStats, absl::StrFormat("%s/%s", job->model_id(), job->merged_stats_digest()));
  if (!bytes.ok()) return bytes.status();
  if (!bytes->has_value()) {
    return absl::DataLossError(absl::StrFormat("job '%s': merged statistics %s are missing", job_id,
                                               job->merged_stats_digest()));
  }
  return **std::move(bytes);
}

absl::StatusOr<v1::CreateJobResponse> JobRegistry::Create(const v1::CreateJobRequest& request) {
  absl::StatusOr<v1::Model> model = models_->Get(request.model_id());
  if (!model.ok()) return model.status();
  if (absl::Status st = CheckText(request.prompt_set_hash(), "prompt_set_hash"); !st.ok()) {
    return st;
  }
  const int shard_count = request.shard_prompts_size();
  if (shard_count < 1 || shard_count > kMaxShards) {
    return absl::InvalidArgumentError(
        absl::StrFormat("shard_prompts has %d shards; a job has 1 to %d", shard_count, kMaxShards));
  }
  for (int i = 0; i < shard_count; ++i) {
    if (request.shard_prompts(i).empty()) {
      return absl::InvalidArgumentError(absl::StrFormat("shard_prompts[%d] is empty", i));
    }
  }
  if (request.tokens_per_shard() < 1 || request.tokens_per_shard() > kMaxTokensPerShard) {
    return absl::InvalidArgumentError(
        absl::StrFormat("tokens_per_shard %d is outside [1, 2^40]", request.tokens_per_shard()));
  }
  if (request.lease_seconds() < 0 || request.lease_seconds() > kMaxLeaseSeconds) {
    return absl::InvalidArgumentError(absl::StrFormat("lease_seconds %d is outside [0, %d]",
                                                      request.lease_seconds(), kMaxLeaseSeconds));
  }
  const int lease_seconds =
      request.lease_seconds() == 0 ? kDefaultLeaseSeconds : request.lease_seconds();
  const std::string job_id = request.job_id().empty()
                                 ? Sha256Hex(JobContentKey(request, lease_seconds)).substr(0, 16)
                                 : request.job_id();
  if (absl::Status st = ValidateName(job_id, "job_id"); !st.ok()) return st;

  absl::MutexLock lock(&mu_);
  const int64_t now = clock_();
  absl::StatusOr<std::optional<v1::Job>> existing = ReadJob(*store_, job_id);
  if (!existing.ok()) return existing.status();
  v1::CreateJobResponse response;
  if (existing->has_value()) {
    const v1::Job& job = **existing;
    bool same = job.model_id() == request.model_id() &&
                job.prompt_set_hash() == request.prompt_set_hash() &&
                job.shard_count() == shard_count &&
                job.tokens_per_shard() == request.tokens_per_shard() &&
                job.lease_seconds() == lease_seconds;
    for (int i = 0; same && i < shard_count; ++i) {
      absl::StatusOr<std::optional<std::string>> prompts =
          store_->Get(Family::kShardPrompts, ShardKey(job_id, i));
      if (!prompts.ok()) return prompts.status();
      same = prompts->has_value() && **prompts == request.shard_prompts(i);
    }
    if (!same) {
      return absl::AlreadyExistsError(
          absl::StrFormat("job '%s' already exists with other inputs; pick another id", job_id));
    }
    absl::StatusOr<v1::Job> got = Get(job_id);
    if (!got.ok()) return got.status();
    *response.mutable_job() = *std::move(got);
    response.set_created(false);
    return response;
  }
  v1::Job job;
  job.set_job_id(job_id);
  job.set_model_id(request.model_id());
  job.set_prompt_set_hash(request.prompt_set_hash());
  job.set_shard_count(shard_count);
  job.set_tokens_per_shard(request.tokens_per_shard());
  job.set_lease_seconds(lease_seconds);
  job.set_state(v1::Job::RUNNING);
  job.set_created_unix(now);
  job.mutable_progress();
  Store::Batch batch;
  batch.Put(Family::kJobs, job_id, job.SerializeAsString());
  const std::string empty_state = ShardState().SerializeAsString();
  for (int i = 0; i < shard_count; ++i) {
    batch.Put(Family::kJobShards, ShardKey(job_id, i), empty_state);
    batch.Put(Family::kShardPrompts, ShardKey(job_id, i), request.shard_prompts(i));
  }
  if (absl::Status st = store_->Commit(batch); !st.ok()) return st;
  FillProgress(std::vector<ShardState>(shard_count), now, job);
  *response.mutable_job() = std::move(job);
  response.set_created(true);
  return response;
}

absl::StatusOr<v1::Job> JobRegistry::Get(std::string_view job_id) const {
  absl::StatusOr<v1::Job> job = MustReadJob(*store_, job_id);
  if (!job.ok()) return job.status();
  absl::StatusOr<std::vector<ShardState>> shards = ReadShards(*store_, *job);
  if (!shards.ok()) return shards.status();
  FillProgress(*shards, clock_(), *job);
  return job;
}

absl::StatusOr<v1::ListJobsResponse> JobRegistry::List(const v1::ListJobsRequest& request) const {
  std::vector<std::string> ids;
  absl::Status st =
      store_->Scan(Family::kJobs, "", "", [&](std::string_view key, std::string_view) {
        ids.emplace_back(key);
        return true;
      });
  if (!st.ok()) return st;
  v1::ListJobsResponse response;
  for (const std::string& id : ids) {
    absl::StatusOr<v1::Job> job = Get(id);
    if (!job.ok()) return job.status();
    if (!request.model_id().empty() && job->model_id() != request.model_id()) continue;
    *response.add_jobs() = *std::move(job);
  }
  return response;
}

absl::StatusOr<v1::Job> JobRegistry::Cancel(std::string_view job_id) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<v1::Job> job = MustReadJob(*store_, job_id);
  if (!job.ok()) return job.status();
  if (job->state() == v1::Job::SUCCEEDED) {
    return absl::FailedPreconditionError(
        absl::StrFormat("job '%s' already succeeded; there is nothing to cancel", job_id));
  }
  if (job->state() == v1::Job::RUNNING) {
    job->set_state(v1::Job::CANCELLED);
    job->set_finished_unix(clock_());
    Store::Batch batch;
    batch.Put(Family::kJobs, job->job_id(), job->SerializeAsString());
    if (absl::Status st = store_->Commit(batch); !st.ok()) return st;
  }
  return Get(job_id);
}

absl::StatusOr<v1::LeaseShardResponse> JobRegistry::Lease(const v1::LeaseShardRequest& request) {
  if (absl::Status st = CheckText(request.worker_id(), "worker_id"); !st.ok()) return st;
  absl::MutexLock lock(&mu_);
  const int64_t now = clock_();
  std::vector<v1::Job> candidates;
  if (!request.job_id().empty()) {
    absl::StatusOr<v1::Job> job = MustReadJob(*store_, request.job_id());
    if (!job.ok()) return job.status();
    if (job->state() != v1::Job::RUNNING) {
      return absl::FailedPreconditionError(
          absl::StrFormat("job '%s' is %s; it has no shards to lease", job->job_id(),
                          v1::Job::State_Name(job->state())));
    }
    candidates.push_back(*std::move(job));
  } else {
    absl::Status st = store_->ScanRecords(
        Family::kJobs, "", "",
        [&](std::string_view, std::string_view value) -> absl::StatusOr<bool> {
          v1::Job job;
          if (!job.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
            return absl::DataLossError("a record in the jobs family does not parse");
          }
          if (job.state() == v1::Job::RUNNING) candidates.push_back(std::move(job));
          return true;
        });
    if (!st.ok()) return st;
  }
  v1::LeaseShardResponse response;
  for (const v1::Job& job : candidates) {
    absl::StatusOr<std::vector<ShardState>> shards = ReadShards(*store_, job);
    if (!shards.ok()) return shards.status();
    for (int i = 0; i < job.shard_count(); ++i) {
      ShardState& s = (*shards)[i];
      if (s.committed() || (s.leases() > 0 && now < s.expires_unix())) continue;
      s.set_leases(s.leases() + 1);
      s.set_worker_id(request.worker_id());
      s.set_expires_unix(now + job.lease_seconds());
      absl::StatusOr<std::optional<std::string>> prompts =
          store_->Get(Family::kShardPrompts, ShardKey(job.job_id(), i));
      if (!prompts.ok()) return prompts.status();
      if (!prompts->has_value()) {
        return absl::DataLossError(
            absl::StrFormat("shard_prompts of job '%s' shard %d are missing", job.job_id(), i));
      }
      Store::Batch batch;
      batch.Put(Family::kJobShards, ShardKey(job.job_id(), i), s.SerializeAsString());
      if (absl::Status st = store_->Commit(batch); !st.ok()) return st;
      v1::ShardLease* lease = response.mutable_lease();
      lease->set_lease_id(LeaseId(job.job_id(), i, s.leases()));
      lease->set_job_id(job.job_id());
      lease->set_model_id(job.model_id());
      lease->set_shard(i);
      lease->set_prompts_jsonl(**std::move(prompts));
      lease->set_tokens_per_shard(job.tokens_per_shard());
      lease->set_expires_unix(s.expires_unix());
      lease->set_attempt(s.leases());
      return response;
    }
  }
  return response;
}

absl::StatusOr<v1::HeartbeatResponse> JobRegistry::Heartbeat(std::string_view lease_id) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<LeasedShard> l = ReadLease(*store_, lease_id);
  if (!l.ok()) return l.status();
  const int64_t now = clock_();
  if (absl::Status st = CheckLive(*l, now, lease_id); !st.ok()) return st;
  l->state.set_expires_unix(now + l->job.lease_seconds());
  Store::Batch batch;
  batch.Put(Family::kJobShards, ShardKey(l->ref.job_id, l->ref.shard),
            l->state.SerializeAsString());
  if (absl::Status st = store_->Commit(batch); !st.ok()) return st;
  v1::HeartbeatResponse response;
  response.set_expires_unix(l->state.expires_unix());
  return response;
}

absl::StatusOr<v1::UploadShardStatisticsResponse> JobRegistry::Upload(
    const v1::UploadShardStatisticsRequest& request) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<LeasedShard> l = ReadLease(*store_, request.lease_id());
  if (!l.ok()) return l.status();
  absl::StatusOr<v1::Model> model = models_->Get(l->job.model_id());
  if (!model.ok()) return model.status();
  absl::StatusOr<UploadedStats> stats = ParseUploadedStats(*model, request.stats());
  if (!stats.ok()) return stats.status();
  v1::UploadShardStatisticsResponse response;
  response.set_stats_digest(stats->digest);
  if (l->state.committed() && l->state.uploaded_attempt() == l->ref.attempt &&
      l->state.uploaded_digest() == stats->digest) {
    return response;  // A retry of the upload this lease committed.
  }
  if (absl::Status st = CheckLive(*l, clock_(), request.lease_id()); !st.ok()) return st;
  l->state.set_uploaded_attempt(l->ref.attempt);
  l->state.set_uploaded_digest(stats->digest);
  l->state.set_tokens(static_cast<int64_t>(stats->stats.tokens()));
  const std::string key = ShardKey(l->ref.job_id, l->ref.shard);
  Store::Batch batch;
  batch.Put(Family::kShardStats, key, stats->stats.Serialize());
  batch.Put(Family::kJobShards, key, l->state.SerializeAsString());
  if (absl::Status st = store_->Commit(batch); !st.ok()) return st;
  return response;
}

absl::StatusOr<v1::CommitShardResponse> JobRegistry::Commit(std::string_view lease_id) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<LeasedShard> l = ReadLease(*store_, lease_id);
  if (!l.ok()) return l.status();
  const int64_t now = clock_();
  v1::CommitShardResponse response;
  if (l->state.committed() && l->state.uploaded_attempt() == l->ref.attempt) {
    // A retry of an acknowledged commit: nothing changes.
    absl::StatusOr<v1::Job> job = Get(l->ref.job_id);
    if (!job.ok()) return job.status();
    response.set_committed(false);
    response.set_job_done(job->state() == v1::Job::SUCCEEDED);
    *response.mutable_job() = *std::move(job);
    return response;
  }
  if (absl::Status st = CheckLive(*l, now, lease_id); !st.ok()) return st;
  if (l->state.uploaded_attempt() != l->ref.attempt) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "lease '%s' has uploaded no statistics; call UploadShardStatistics first", lease_id));
  }
  l->state.set_committed(true);
  v1::Job& job = l->job;
  v1::JobProgress* progress = job.mutable_progress();
  progress->set_shards_done(progress->shards_done() + 1);
  progress->set_tokens(progress->tokens() + l->state.tokens());
  Store::Batch batch;
  batch.Put(Family::kJobShards, ShardKey(job.job_id(), l->ref.shard), l->state.SerializeAsString());
  if (progress->shards_done() == job.shard_count()) {
    absl::StatusOr<v1::Model> model = models_->Get(job.model_id());
    if (!model.ok()) return model.status();
    std::optional<BlockStats> merged;
    for (int i = 0; i < job.shard_count(); ++i) {
      absl::StatusOr<std::optional<std::string>> bytes =
          store_->Get(Family::kShardStats, ShardKey(job.job_id(), i));
      if (!bytes.ok()) return bytes.status();
      absl::StatusOr<BlockStats> shard =
          bytes->has_value() ? BlockStats::Deserialize(**bytes) : absl::DataLossError("missing");
      if (!shard.ok()) {
        return absl::DataLossError(absl::StrFormat("shard_stats of job '%s' shard %d: %s",
                                                   job.job_id(), i, shard.status().message()));
      }
      if (!merged.has_value()) {
        merged = *std::move(shard);
      } else if (absl::Status st = merged->Merge(*shard); !st.ok()) {
        return st;
      }
    }
    const std::string bytes = merged->Serialize();
    job.set_merged_stats_digest(Sha256Hex(bytes));
    job.set_state(v1::Job::SUCCEEDED);
    job.set_finished_unix(now);
    batch.Put(Family::kStats, absl::StrFormat("%s/%s", job.model_id(), job.merged_stats_digest()),
              bytes);
  }
  batch.Put(Family::kJobs, job.job_id(), job.SerializeAsString());
  if (absl::Status st = store_->Commit(batch); !st.ok()) return st;
  absl::StatusOr<v1::Job> fresh = Get(job.job_id());
  if (!fresh.ok()) return fresh.status();
  response.set_committed(true);
  response.set_job_done(fresh->state() == v1::Job::SUCCEEDED);
  *response.mutable_job() = *std::move(fresh);
  return response;
}

}  // namespace kvplan::server
