#include "worker/serve/serve_loop.h"

#include <memory>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "worker/serve/lease_heartbeat.h"
#include "worker/tokenizer/prompt_file.h"

namespace kvplan::serve {
namespace {

// What became of one leased shard.
enum class ShardOutcome { kCommitted, kJobDone, kLeaseLost };

absl::StatusOr<ShardOutcome> RunShard(JobClient& client, const LoadedModel& model,
                                      const ShardLease& lease,
                                      const CalibrationSettings& calibration, std::ostream& log) {
  const std::string source = absl::StrFormat("job %s shard %d", lease.job_id, lease.shard);
  absl::StatusOr<std::vector<Prompt>> prompts = ParsePrompts(lease.prompts_jsonl, source);
  if (!prompts.ok()) return prompts.status();
  CalibrationSettings settings = calibration;
  settings.max_tokens = lease.tokens_per_shard;
  absl::StatusOr<std::vector<std::vector<int32_t>>> sequences =
      CalibrationSequences(*prompts, *model.tokenizer, model.lm.config(), settings, source);
  if (!sequences.ok()) return sequences.status();

  absl::StatusOr<CalibrationResult> pass;
  {
    LeaseHeartbeat heartbeat(client, lease);
    pass = RunCalibrationPass(model.lm, *std::move(sequences), settings.batch,
                              [&] { return heartbeat.status(); });
  }
  if (!pass.ok()) {
    if (IsLeaseLost(pass.status())) {
      log << absl::StrFormat("%s: lease lost (%s); dropping the shard\n", source,
                             pass.status().ToString());
      return ShardOutcome::kLeaseLost;
    }
    return pass.status();
  }
  // Upload and commit are quick; a lease that dies meanwhile is refused by the
  // coordinator, which is the check that matters, so no heartbeat is needed.
  absl::Status uploaded = client.Upload(lease.lease_id, pass->stats.Serialize());
  absl::StatusOr<bool> done =
      uploaded.ok() ? client.Commit(lease.lease_id) : absl::StatusOr<bool>(uploaded);
  if (!done.ok()) {
    if (IsLeaseLost(done.status())) {
      log << absl::StrFormat("%s: lease lost (%s); dropping the shard\n", source,
                             done.status().ToString());
      return ShardOutcome::kLeaseLost;
    }
    return done.status();
  }
  log << absl::StrFormat("committed %s (attempt %d): %d tokens in %d sequences, %.2f s%s\n", source,
                         lease.attempt, pass->tokens, pass->sequences, pass->seconds,
                         *done ? "; job done" : "");
  return *done ? ShardOutcome::kJobDone : ShardOutcome::kCommitted;
}

}  // namespace

absl::Status Serve(const ServeOptions& options, std::ostream& log) {
  absl::StatusOr<std::unique_ptr<JobClient>> client = JobClient::Connect(options.client);
  if (!client.ok()) return client.status();
  ModelCache models(options.models);
  for (;;) {
    absl::StatusOr<std::optional<ShardLease>> lease =
        (*client)->Lease(options.worker_id, options.job_id);
    if (!lease.ok()) return lease.status();
    if (!lease->has_value()) {
      if (options.once) {
        absl::StatusOr<bool> more = (*client)->WorkMayRemain(options.job_id);
        if (!more.ok()) return more.status();
        if (!*more) {
          log << "no work left\n";
          return absl::OkStatus();
        }
      }
      std::this_thread::sleep_for(options.poll_interval);
      continue;
    }
    const ShardLease& l = **lease;
    log << absl::StrFormat("leased job %s shard %d (attempt %d)\n", l.job_id, l.shard, l.attempt)
        << std::flush;
    absl::StatusOr<std::string> fingerprint = (*client)->ModelFingerprint(l.model_id);
    if (!fingerprint.ok()) return fingerprint.status();
    absl::StatusOr<const LoadedModel*> model = models.Get(l.model_id, *fingerprint);
    if (!model.ok()) return model.status();
    absl::StatusOr<ShardOutcome> outcome = RunShard(**client, **model, l, options.calibration, log);
    if (!outcome.ok()) return outcome.status();
    log << std::flush;
  }
}

}  // namespace kvplan::serve
