// libkvplan-client: the bit plan a serving node runs, kept current.
//
// A serving node opens one PlanClient for the model it runs (by fingerprint)
// and a channel. The client fetches the plan the channel points at, verifies it
// (content digest against the id the coordinator named, format version, model
// fingerprint), writes it to an on-disk cache, and follows the channel over the
// coordinator's WatchPlans stream: each move is fetched, verified, cached,
// swapped in and announced to subscribers. Readers take snapshots with
// Current(); a swap never waits for them and never changes a snapshot a reader
// holds. When the coordinator is away at Open, the client starts from its cached
// plan and reconnects in the background with exponential backoff and jitter.
//
// A plan that fails verification is never served: Open fails with a message
// naming what differs, and a pushed plan is refused while the current one stays
// (last_error() and the log say why). Only this header is public; it pulls in no
// gRPC or protobuf.
//
// Example:
//   absl::StatusOr<std::unique_ptr<kvplan::PlanClient>> client = kvplan::PlanClient::Open({
//       .coordinator = "kvplan-coordinator:7070",
//       .model_fingerprint = fingerprint,  // kvplan-worker fingerprint --model DIR
//       .channel = "stable",
//       .cache_dir = "/var/cache/kvplan"});
//   if (!client.ok()) return client.status();  // Neither coordinator nor cache had a plan.
//   (*client)->Subscribe([&](const std::shared_ptr<const kvplan::ServedPlan>& p) {
//     cache_manager.Repack(p->plan);           // Runs on the client's thread.
//   });
//   std::shared_ptr<const kvplan::ServedPlan> plan = (*client)->Current();  // Never null.
//   absl::StatusOr<kvplan::GroupLayout> layout = plan->plan.KLayout(/*layer=*/0, /*kv_head=*/0);
#ifndef KVPLAN_CLIENT_INCLUDE_KVPLAN_PLAN_CLIENT_H_
#define KVPLAN_CLIENT_INCLUDE_KVPLAN_PLAN_CLIENT_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/plan.h"

namespace kvplan {

struct PlanClientOptions {
  // host:port of kvplan-coordinator. Required.
  std::string coordinator;
  // Fingerprint of the model this node runs (`kvplan-worker fingerprint`).
  // Required: a plan bound to any other fingerprint is refused.
  std::string model_fingerprint;
  // The coordinator's id of the model. Default: empty, looked up by the
  // fingerprint (exactly one registered model must carry it).
  std::string model_id;
  // Channel to follow, [A-Za-z0-9._-], 1 to 64 characters. Default: "stable".
  std::string channel = "stable";
  // Directory of the on-disk plan cache, created when missing. Default: empty,
  // no cache (the node then cannot start while the coordinator is away).
  std::string cache_dir;
  // File whose contents are sent as the bearer token. Reads need none unless
  // the coordinator is configured so. Default: empty.
  std::string token_file;
  // PEM roots to verify a TLS coordinator against. Default: empty, plaintext.
  std::string tls_ca_file;
  // PEM client certificate and key for a coordinator that asks for them
  // (mTLS); both or neither, with tls_ca_file. Default: empty.
  std::string tls_cert_file;
  std::string tls_key_file;
  // Deadline of each unary call to the coordinator. Default: 5 s.
  std::chrono::milliseconds rpc_timeout{5000};
  // Waits between reconnect attempts: attempt n waits uniformly in [c/2, c]
  // with c = min(max, min·2ⁿ); a successful resync starts over. Default: 100 ms
  // to 30 s.
  std::chrono::milliseconds reconnect_backoff_min{100};
  std::chrono::milliseconds reconnect_backoff_max{30000};
  // A quiet watch stream is reopened (from the last sequence seen, no resync)
  // after this long, so a coordinator that vanished without closing the
  // connection is noticed. Default: 5 min.
  std::chrono::milliseconds watch_refresh{300000};
  // Receives one line per event an operator should see: cached plan ignored or
  // served, plan refused, coordinator lost or back. Called on the client's
  // threads; like a subscriber it must not call Close(). Default: none.
  std::function<void(std::string_view line)> log;
};

// Where a served plan came from.
enum class PlanSource {
  kCoordinator,  // Fetched (and cached) while connected.
  kCache,        // Read back from the cache directory at Open.
};

// A verified plan and what the channel said about it. Immutable once served.
struct ServedPlan {
  KvPlan plan;
  std::string digest;  // PlanDigest(plan), the coordinator's plan id.
  std::string model_id;
  std::string channel;
  std::string plan_name;  // Name and version the channel points at.
  uint64_t version = 0;
  PlanSource source = PlanSource::kCoordinator;
};

std::string_view PlanSourceName(PlanSource source);

// Thread-safe: every method may be called from any thread.
class PlanClient {
 public:
  // Called with each newly served plan, in order, on the client's watch thread.
  // A subscriber may call Current(), Subscribe() and Unsubscribe(), but not
  // Close() or the destructor (they wait for this thread); a slow one delays the
  // next plan's announcement, not its readers.
  using Subscriber = std::function<void(const std::shared_ptr<const ServedPlan>& plan)>;

  // Connects, fetches and verifies the channel's plan, caches it and starts
  // following the channel. With the coordinator unreachable (UNAVAILABLE or
  // DEADLINE_EXCEEDED) it serves the cached plan instead, verified the same way
  // (a corrupt or foreign cache file is ignored and logged), and keeps
  // reconnecting. Errors:
  //   InvalidArgument  bad options (names the field);
  //   FailedPrecondition / InvalidArgument / DataLoss  the served plan failed
  //                    verification (names what differs: "plan <id> is for model
  //                    <fp>, this node runs <fp>");
  //   NotFound         no model with this fingerprint, or nothing on the channel;
  //   Unavailable      neither the coordinator nor the cache gave a plan (names both causes);
  //   others as the coordinator answered (e.g. PermissionDenied).
  static absl::StatusOr<std::unique_ptr<PlanClient>> Open(PlanClientOptions options);

  // Close()s.
  ~PlanClient();
  PlanClient(const PlanClient&) = delete;
  PlanClient& operator=(const PlanClient&) = delete;

  // The plan to serve now; never null. Cheap (a shared_ptr copy under a lock
  // held only for that copy; a swap holds it only for a pointer exchange); the
  // snapshot stays valid however long it is held.
  std::shared_ptr<const ServedPlan> Current() const;

  // Registers `subscriber` for plans served from now on (call Current() for the
  // present one); returns its id.
  uint64_t Subscribe(Subscriber subscriber);
  // Once it returns, the subscriber is not running and will not run again
  // (called from inside a subscriber, the running call finishes first). Unknown
  // ids are ignored.
  void Unsubscribe(uint64_t id);

  // Whether the last exchange with the coordinator succeeded.
  bool connected() const;
  // The most recent failure (connection lost, plan refused, cache unwritable);
  // OK when there has been none since Open.
  absl::Status last_error() const;

  // Stops following the channel and waits for the watch thread (at most one
  // RPC deadline). Current() keeps returning the last plan. Idempotent.
  void Close();

 private:
  class Impl;
  explicit PlanClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvplan

#endif  // KVPLAN_CLIENT_INCLUDE_KVPLAN_PLAN_CLIENT_H_
