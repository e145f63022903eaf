#include "server/channel_registry.h"

#include "absl/strings/str_format.h"
#include "proto/wire_convert.h"
#include "server/plan_versions.h"
#include "server/validation_registry.h"

namespace kvplan::server {

using ::kvplan::wire::ValidateName;
namespace {

using records::ChannelState;

absl::StatusOr<ChannelState> LoadState(const Store& store, std::string_view model_id,
                                       std::string_view channel) {
  ChannelState state;
  absl::StatusOr<std::optional<std::string>> bytes =
      store.Get(Family::kChannels, ChannelKey(model_id, channel));
  if (!bytes.ok()) return bytes.status();
  if (bytes->has_value() && !state.ParseFromString(**bytes)) {
    return absl::DataLossError(
        absl::StrFormat("channels/%s: stored record is corrupt", ChannelKey(model_id, channel)));
  }
  return state;
}

bool SameVersion(const v1::PlanVersion& a, const v1::PlanVersion& b) {
  return a.model_id() == b.model_id() && a.name() == b.name() && a.version() == b.version();
}

// OK when the plan's latest validation passed; FailedPrecondition saying what
// is missing otherwise. `why` says who requires it.
absl::Status CheckValidated(const Store& store, const v1::PlanVersion& to, std::string_view channel,
                            std::string_view why) {
  absl::StatusOr<std::optional<v1::PlanValidation>> latest = LatestValidation(store, to.plan_id());
  if (!latest.ok()) return latest.status();
  const std::string plan = absl::StrFormat("plan %s v%d (%s) of model '%s'", to.name(),
                                           to.version(), to.plan_id(), to.model_id());
  if (!latest->has_value()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s has no validation result, and %s requires a passing one to promote to channel '%s'; "
        "run `kvplan-worker validate --plan-id %s` first",
        plan, std::string(why), std::string(channel), to.plan_id()));
  }
  if (!(*latest)->passed()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "the latest validation of %s (#%d, by %s) failed (%s), and %s requires a passing one to "
        "promote to channel '%s'",
        plan, (*latest)->sequence(), (*latest)->worker_id(), (*latest)->verdict(), std::string(why),
        std::string(channel)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ChannelRegistry::Init() {
  absl::StatusOr<std::optional<std::string>> last = store_->LastKey(Family::kChannelHistory, "");
  if (!last.ok()) return last.status();
  absl::MutexLock lock(&seq_mu_);
  last_sequence_ = last->has_value() ? DecodeBe64Suffix(**last) : 0;
  return absl::OkStatus();
}

absl::StatusOr<v1::ChannelMove> ChannelRegistry::Promote(const v1::PromoteRequest& request) {
  if (absl::Status st = ValidateName(request.channel(), "channel"); !st.ok()) return st;
  if (absl::Status st = ValidateName(request.plan_name(), "plan_name"); !st.ok()) return st;
  if (absl::StatusOr<v1::Model> m = models_->Get(request.model_id()); !m.ok()) return m.status();
  absl::StatusOr<v1::PlanVersion> to =
      LookupPlanVersion(*store_, request.model_id(), request.plan_name(), request.version());
  if (!to.ok()) return to.status();

  absl::MutexLock lock(&write_mu_);
  absl::StatusOr<ChannelState> state = LoadState(*store_, request.model_id(), request.channel());
  if (!state.ok()) return state.status();
  // Checked before the no-op case too: a promotion that asks for validation
  // succeeds only for a validated plan, whatever the channel points at.
  if (request.require_validation() || state->require_validation()) {
    if (absl::Status st =
            CheckValidated(*store_, *to, request.channel(),
                           state->require_validation() ? "the channel's policy" : "the request");
        !st.ok()) {
      return st;
    }
  }
  if (state->stack_size() > 0 && SameVersion(state->stack(state->stack_size() - 1), *to)) {
    absl::StatusOr<std::optional<std::string>> last =
        store_->Get(Family::kChannelHistory, EncodeBe64(state->last_sequence()));
    if (!last.ok()) return last.status();
    v1::ChannelMove move;
    if (!last->has_value() || !move.ParseFromString(**last)) {
      return absl::DataLossError(
          absl::StrFormat("channel_history/%d is missing or corrupt", state->last_sequence()));
    }
    return move;
  }
  v1::ChannelMove move;
  move.set_kind(v1::ChannelMove::PROMOTE);
  *move.mutable_to() = *to;
  if (state->stack_size() > 0) *move.mutable_from() = state->stack(state->stack_size() - 1);
  *state->add_stack() = *to;
  return Commit(request.model_id(), request.channel(), std::move(move), *std::move(state));
}

absl::StatusOr<v1::ChannelMove> ChannelRegistry::Rollback(const v1::RollbackRequest& request) {
  if (absl::Status st = ValidateName(request.channel(), "channel"); !st.ok()) return st;
  if (absl::StatusOr<v1::Model> m = models_->Get(request.model_id()); !m.ok()) return m.status();
  absl::MutexLock lock(&write_mu_);
  absl::StatusOr<ChannelState> state = LoadState(*store_, request.model_id(), request.channel());
  if (!state.ok()) return state.status();
  if (state->stack_size() < 2) {
    return absl::FailedPreconditionError(
        absl::StrFormat("channel '%s' of model '%s' has no earlier promotion to roll back to",
                        request.channel(), request.model_id()));
  }
  v1::ChannelMove move;
  move.set_kind(v1::ChannelMove::ROLLBACK);
  *move.mutable_from() = state->stack(state->stack_size() - 1);
  state->mutable_stack()->RemoveLast();
  *move.mutable_to() = state->stack(state->stack_size() - 1);
  return Commit(request.model_id(), request.channel(), std::move(move), *std::move(state));
}

absl::StatusOr<v1::ChannelMove> ChannelRegistry::Commit(std::string_view model_id,
                                                        std::string_view channel,
                                                        v1::ChannelMove move, ChannelState state) {
  uint64_t sequence;
  {
    absl::MutexLock lock(&seq_mu_);
    sequence = last_sequence_ + 1;
  }
  move.set_sequence(sequence);
  move.set_model_id(std::string(model_id));
  move.set_channel(std::string(channel));
  move.set_created_unix(clock_());
  state.set_last_sequence(sequence);
  Store::Batch batch;
  batch.Put(Family::kChannels, ChannelKey(model_id, channel), state.SerializeAsString());
  batch.Put(Family::kChannelHistory, EncodeBe64(sequence), move.SerializeAsString());
  if (absl::Status st = store_->Commit(batch); !st.ok()) return st;
  // Published only once durable, so a watcher never sees a move a crash could undo.
  absl::MutexLock lock(&seq_mu_);
  last_sequence_ = sequence;
  return move;
}

absl::StatusOr<v1::ChannelPolicy> ChannelRegistry::SetPolicy(const v1::ChannelPolicy& policy) {
  if (absl::Status st = ValidateName(policy.channel(), "channel"); !st.ok()) return st;
  if (absl::StatusOr<v1::Model> m = models_->Get(policy.model_id()); !m.ok()) return m.status();
  absl::MutexLock lock(&write_mu_);
  absl::StatusOr<ChannelState> state = LoadState(*store_, policy.model_id(), policy.channel());
  if (!state.ok()) return state.status();
  if (state->require_validation() != policy.require_validation()) {
    state->set_require_validation(policy.require_validation());
    Store::Batch batch;
    batch.Put(Family::kChannels, ChannelKey(policy.model_id(), policy.channel()),
              state->SerializeAsString());
    if (absl::Status st = store_->Commit(batch); !st.ok()) return st;
  }
  return policy;
}

absl::StatusOr<v1::ChannelPolicy> ChannelRegistry::GetPolicy(std::string_view model_id,
                                                             std::string_view channel) const {
  if (absl::Status st = ValidateName(channel, "channel"); !st.ok()) return st;
  if (absl::StatusOr<v1::Model> m = models_->Get(model_id); !m.ok()) return m.status();
  absl::StatusOr<ChannelState> state = LoadState(*store_, model_id, channel);
  if (!state.ok()) return state.status();
  v1::ChannelPolicy policy;
  policy.set_model_id(std::string(model_id));
  policy.set_channel(std::string(channel));
  policy.set_require_validation(state->require_validation());
  return policy;
}

absl::StatusOr<v1::PlanVersion> ChannelRegistry::Current(std::string_view model_id,
                                                         std::string_view channel) const {
  absl::StatusOr<ChannelState> state = LoadState(*store_, model_id, channel);
  if (!state.ok()) return state.status();
  if (state->stack_size() == 0) {
    return absl::NotFoundError(absl::StrFormat("model '%s' has no channel '%s' (promote a plan)",
                                               std::string(model_id), std::string(channel)));
  }
  return state->stack(state->stack_size() - 1);
}

absl::StatusOr<v1::HistoryResponse> ChannelRegistry::History(std::string_view model_id,
                                                             std::string_view channel) const {
  if (absl::StatusOr<v1::Model> m = models_->Get(model_id); !m.ok()) return m.status();
  v1::HistoryResponse response;
  // Channel moves are rare (people promote plans), so a scan is cheap enough.
  for (uint64_t after = 0;;) {
    absl::StatusOr<MovesPage> page = MovesAfter(after, model_id, channel, 1024);
    if (!page.ok()) return page.status();
    for (v1::ChannelMove& m : page->moves) *response.add_moves() = std::move(m);
    if (page->scanned_to == after) break;
    after = page->scanned_to;
  }
  return response;
}

absl::StatusOr<MovesPage> ChannelRegistry::MovesAfter(uint64_t after, std::string_view model_id,
                                                      std::string_view channel,
                                                      size_t limit) const {
  MovesPage page;
  page.scanned_to = after;
  absl::Status st = store_->ScanRecords(
      Family::kChannelHistory, "", EncodeBe64(after + 1),
      [&](std::string_view key, std::string_view value) -> absl::StatusOr<bool> {
        v1::ChannelMove move;
        if (!move.ParseFromString(std::string(value))) {
          return absl::DataLossError(absl::StrFormat("channel_history/%d: stored record is corrupt",
                                                     DecodeBe64Suffix(key)));
        }
        page.scanned_to = move.sequence();
        if ((model_id.empty() || move.model_id() == model_id) &&
            (channel.empty() || move.channel() == channel)) {
          page.moves.push_back(std::move(move));
        }
        return page.moves.size() < limit;
      });
  if (!st.ok()) return st;
  return page;
}

bool ChannelRegistry::WaitForMoveAfter(uint64_t after, absl::Duration timeout) const {
  absl::MutexLock lock(&seq_mu_);
  auto ready = [&]() ABSL_SHARED_LOCKS_REQUIRED(seq_mu_) {
    return last_sequence_ > after || closed_;
  };
  seq_mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  return last_sequence_ > after;
}

void ChannelRegistry::Close() {
  absl::MutexLock lock(&seq_mu_);
  closed_ = true;
}

bool ChannelRegistry::closed() const {
  absl::MutexLock lock(&seq_mu_);
  return closed_;
}

}  // namespace kvplan::server
