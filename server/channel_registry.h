// Channels ("stable", "canary", ...): named pointers at plan versions, moved
// atomically, with an ordered history that watchers follow.
//
// Every move gets the next global sequence number and is written, together
// with the channel's new state, in one synced WriteBatch; watchers read the
// history from the store after the sequence they last saw, so a watcher that
// reconnects with that sequence misses nothing and sees nothing twice.
//
// Promotion can be gated on validation (validation_registry.h): per call
// (PromoteRequest.require_validation) or per channel (its policy). A gated
// promotion of a plan whose latest validation is missing or failed is refused
// and moves nothing. Rollback is never gated: it returns to a plan that
// already served on the channel, and must stay available in an emergency.
//
// Example:
//   ChannelRegistry channels(store.get(), &models, clock);
//   absl::Status st = channels.Init();
//   absl::StatusOr<v1::ChannelMove> m = channels.Promote(promote_request);
//   MovesPage page = *channels.MovesAfter(/*after=*/0, "", "", 100);
//   channels.WaitForMoveAfter(page.scanned_to, absl::Seconds(1));
//
// Thread safety: thread-safe.
#ifndef KVPLAN_SERVER_CHANNEL_REGISTRY_H_
#define KVPLAN_SERVER_CHANNEL_REGISTRY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "kvplan/v1/channel_service.pb.h"
#include "server/clock.h"
#include "server/model_registry.h"
#include "server/records.pb.h"
#include "server/store.h"

namespace kvplan::server {

struct MovesPage {
  std::vector<v1::ChannelMove> moves;
  // Highest sequence looked at (matching or not); resume after it.
  uint64_t scanned_to = 0;
};

class ChannelRegistry {
 public:
  // The pointers must outlive the registry.
  ChannelRegistry(Store* store, const ModelRegistry* models, Clock clock)
      : store_(store), models_(models), clock_(std::move(clock)) {}

  // Reads the last sequence from the store. Call once before anything else.
  absl::Status Init();

  // Points the channel at a stored version (NotFound if there is none).
  // Promoting what the channel already points at returns its last move and
  // writes nothing, so a retried promotion is harmless. FailedPrecondition
  // naming the plan and what is missing when validation is required and the
  // plan's latest validation is absent or failed.
  absl::StatusOr<v1::ChannelMove> Promote(const v1::PromoteRequest& request);
  // FailedPrecondition when no earlier promotion is in effect.
  absl::StatusOr<v1::ChannelMove> Rollback(const v1::RollbackRequest& request);
  // Replaces the channel's policy (NotFound for an unknown model); the
  // channel need not have been promoted yet.
  absl::StatusOr<v1::ChannelPolicy> SetPolicy(const v1::ChannelPolicy& policy);
  // Defaults for a channel never configured.
  absl::StatusOr<v1::ChannelPolicy> GetPolicy(std::string_view model_id,
                                              std::string_view channel) const;
  // The version a channel points at now; NotFound naming it when unset.
  absl::StatusOr<v1::PlanVersion> Current(std::string_view model_id,
                                          std::string_view channel) const;
  // Moves of the model (and channel, when not empty), oldest first.
  absl::StatusOr<v1::HistoryResponse> History(std::string_view model_id,
                                              std::string_view channel) const;

  // Up to `limit` moves with sequence > after matching the filters (empty matches all).
  absl::StatusOr<MovesPage> MovesAfter(uint64_t after, std::string_view model_id,
                                       std::string_view channel, size_t limit) const;
  // Blocks until a move with sequence > after exists, Close() is called, or
  // `timeout` passes. True when such a move exists.
  bool WaitForMoveAfter(uint64_t after, absl::Duration timeout) const;
  // Wakes every waiter and makes later waits return at once (shutdown).
  void Close();
  bool closed() const;

 private:
  absl::StatusOr<v1::ChannelMove> Commit(std::string_view model_id, std::string_view channel,
                                         v1::ChannelMove move, records::ChannelState state)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);

  Store* store_;
  const ModelRegistry* models_;
  Clock clock_;
  // Serializes moves: sequence assignment and the channel's read-modify-write.
  absl::Mutex write_mu_;
  // Guards what waiters watch; taken after write_mu_ when both are held.
  mutable absl::Mutex seq_mu_;
  uint64_t last_sequence_ ABSL_GUARDED_BY(seq_mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(seq_mu_) = false;
};

}  // namespace kvplan::server

#endif  // KVPLAN_SERVER_CHANNEL_REGISTRY_H_
