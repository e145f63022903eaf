#include "client/lib/plan_tracker.h"

#include <utility>

#include "absl/strings/str_format.h"
#include "client/lib/plan_cache.h"
#include "client/lib/plan_verify.h"

namespace kvplan::client {
namespace {

struct VerifiedOffer {
  PlanOffer offer;
  KvPlan plan;
};

// The cache file's plan, checked as a plan from the coordinator is and bound to
// this fingerprint and channel; otherwise why it is unusable.
absl::StatusOr<VerifiedOffer> ReadVerifiedCache(const PlanTracker::Options& options) {
  absl::StatusOr<CachedPlan> cached = ReadPlanCache(options.cache_path);
  if (!cached.ok()) return cached.status();
  if (cached->channel != options.channel ||
      cached->model_fingerprint != options.model_fingerprint) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "plan cache file %s holds channel %s of model %s, wanted channel %s of model %s",
        options.cache_path.string(), cached->channel, cached->model_fingerprint, options.channel,
        options.model_fingerprint));
  }
  VerifiedOffer out{.offer = {.plan_json = std::move(cached->plan_json),
                              .plan_id = cached->plan_id,
                              .model_id = cached->model_id,
                              .plan_name = cached->plan_name,
                              .version = cached->version},
                    .plan = {}};
  absl::StatusOr<KvPlan> plan =
      VerifyPlan(out.offer.plan_json, out.offer.plan_id, options.model_fingerprint);
  if (!plan.ok()) {
    return absl::Status(plan.status().code(),
                        absl::StrFormat("plan cache file %s: %s", options.cache_path.string(),
                                        plan.status().message()));
  }
  out.plan = *std::move(plan);
  return out;
}

}  // namespace

PlanTracker::PlanTracker(Options options) : options_(std::move(options)) {}

std::string PlanTracker::current_digest() const {
  std::shared_ptr<const ServedPlan> current = publisher_.Current();
  return current ? current->digest : std::string();
}

void PlanTracker::Serve(KvPlan plan, const PlanOffer& offer, PlanSource source) {
  auto served = std::make_shared<ServedPlan>();
  served->plan = std::move(plan);
  served->digest = offer.plan_id;
  served->model_id = offer.model_id;
  served->channel = options_.channel;
  served->plan_name = offer.plan_name;
  served->version = offer.version;
  served->source = source;
  publisher_.Publish(std::move(served));
}

absl::StatusOr<bool> PlanTracker::Accept(const PlanOffer& offer) {
  std::lock_guard<std::mutex> lock(accept_mu_);
  if (offer.plan_id == current_digest()) return false;
  absl::StatusOr<KvPlan> verified =
      VerifyPlan(offer.plan_json, offer.plan_id, options_.model_fingerprint);
  if (!verified.ok()) {
    Log(absl::StrFormat("refused the plan of channel %s (serving %s instead): %s", options_.channel,
                        current_digest().empty() ? "nothing" : current_digest(),
                        verified.status().message()));
    RecordError(verified.status());
    return verified.status();
  }
  if (!options_.cache_path.empty()) {
    absl::Status written =
        WritePlanCache(options_.cache_path, {.model_fingerprint = options_.model_fingerprint,
                                             .model_id = offer.model_id,
                                             .channel = options_.channel,
                                             .plan_id = offer.plan_id,
                                             .plan_name = offer.plan_name,
                                             .version = offer.version,
                                             .plan_json = offer.plan_json});
    if (!written.ok()) {
      Log(absl::StrFormat("serving plan %s without caching it: %s", offer.plan_id,
                          written.message()));
      RecordError(written);
    }
  }
  Serve(*std::move(verified), offer, PlanSource::kCoordinator);
  return true;
}

absl::StatusOr<std::string> PlanTracker::LoadCache() {
  std::lock_guard<std::mutex> lock(accept_mu_);
  if (options_.cache_path.empty()) return absl::NotFoundError("no cache directory configured");
  absl::StatusOr<VerifiedOffer> cached = ReadVerifiedCache(options_);
  if (!cached.ok()) {
    if (!absl::IsNotFound(cached.status())) {
      Log(absl::StrFormat("ignoring the cached plan: %s", cached.status().message()));
    }
    return cached.status();
  }
  const PlanOffer& offer = cached->offer;
  Log(absl::StrFormat("serving cached plan %s (%s/%s v%d) of channel %s", offer.plan_id,
                      offer.model_id, offer.plan_name, offer.version, options_.channel));
  Serve(std::move(cached->plan), offer, PlanSource::kCache);
  return offer.model_id;
}

void PlanTracker::RecordError(absl::Status status) {
  std::lock_guard<std::mutex> lock(error_mu_);
  last_error_ = std::move(status);
}

absl::Status PlanTracker::last_error() const {
  std::lock_guard<std::mutex> lock(error_mu_);
  return last_error_;
}

void PlanTracker::Log(std::string_view line) const {
  if (options_.log) options_.log(line);
}

}  // namespace kvplan::client
