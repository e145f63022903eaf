// PlanClient: the transport half (gRPC calls, the watch thread, reconnects)
// over PlanTracker, which verifies, caches and swaps.
//
// Following a channel without missing a move or acting on a stale one:
//   sync  := History(model, channel) -> S = its last sequence;
//            GetPlan(channel) -> offer it;
//            WatchPlans(after_sequence = S)
// History is read before GetPlan, so a move racing the two is both seen by
// GetPlan and replayed by the watch (offering the same plan twice is a no-op);
// reading them the other way round could lose it. A watch that ends by its own
// refresh deadline reopens after the last sequence seen; any other end
// (coordinator gone, restarted, store replaced) resyncs after a backoff.
#include "kvplan/plan_client.h"

#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_format.h"
#include "client/lib/coordinator_connection.h"
#include "client/lib/plan_cache.h"
#include "client/lib/plan_tracker.h"
#include "client/lib/reconnect_backoff.h"
#include "kvplan/v1/channel_service.grpc.pb.h"
#include "kvplan/v1/model_service.grpc.pb.h"
#include "kvplan/v1/plan_service.grpc.pb.h"
#include "proto/wire_convert.h"

namespace kvplan {

std::string_view PlanSourceName(PlanSource source) {
  return source == PlanSource::kCache ? "cache" : "coordinator";
}

namespace {

// A watch stream that lasted this long counts as a working connection.
constexpr std::chrono::seconds kHealthyStream(1);

absl::Status ValidateOptions(const PlanClientOptions& o) {
  if (o.coordinator.empty()) {
    return absl::InvalidArgumentError("PlanClientOptions.coordinator (host:port) is required");
  }
  if (o.model_fingerprint.empty()) {
    return absl::InvalidArgumentError(
        "PlanClientOptions.model_fingerprint is required (kvplan-worker fingerprint --model DIR "
        "prints it)");
  }
  if (absl::Status st = wire::ValidateName(o.channel, "channel"); !st.ok()) return st;
  if (!o.model_id.empty()) {
    if (absl::Status st = wire::ValidateName(o.model_id, "model id"); !st.ok()) return st;
  }
  if (o.rpc_timeout.count() <= 0 || o.watch_refresh.count() <= 0) {
    return absl::InvalidArgumentError("rpc_timeout and watch_refresh must be positive");
  }
  if (o.reconnect_backoff_min.count() <= 0 || o.reconnect_backoff_max < o.reconnect_backoff_min) {
    return absl::InvalidArgumentError(
        absl::StrFormat("reconnect backoff must satisfy 0 < min <= max (min %d ms, max %d ms)",
                        o.reconnect_backoff_min.count(), o.reconnect_backoff_max.count()));
  }
  return absl::OkStatus();
}

}  // namespace

class PlanClient::Impl {
 public:
  Impl(PlanClientOptions options, client::CoordinatorConnection connection)
      : options_(std::move(options)),
        tracker_({.model_fingerprint = options_.model_fingerprint,
                  .channel = options_.channel,
                  .cache_path =
                      options_.cache_dir.empty()
                          ? std::filesystem::path()
                          : client::PlanCachePath(options_.cache_dir, options_.model_fingerprint,
                                                  options_.channel),
                  .log = options_.log}),
        model_id_(options_.model_id),
        backoff_(options_.reconnect_backoff_min, options_.reconnect_backoff_max) {
    Use(std::move(connection));
  }

  ~Impl() { Stop(); }

  // The first plan, from the coordinator or else the cache; then the watch thread.
  absl::Status Start() {
    absl::Status synced = Sync();
    if (synced.ok()) {
      SetConnected(true);
    } else if (client::IsTransient(synced)) {
      tracker_.RecordError(synced);
      absl::StatusOr<std::string> cached_model = tracker_.LoadCache();
      if (!cached_model.ok()) {
        return absl::UnavailableError(absl::StrFormat(
            "no plan for channel %s of model %s: coordinator %s is unreachable (%s) and there "
            "is no usable cached plan (%s)",
            options_.channel, options_.model_fingerprint, options_.coordinator, synced.message(),
            cached_model.status().message()));
      }
      if (model_id_.empty()) model_id_ = *cached_model;
    } else {
      return synced;
    }
    watcher_ = std::thread([this, synced = synced.ok()] { Follow(synced); });
    return absl::OkStatus();
  }

  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      stopping_ = true;
      for (grpc::ClientContext* context : active_) context->TryCancel();
    }
    wake_.notify_all();
    if (watcher_.joinable()) watcher_.join();
  }

  client::PlanTracker& tracker() { return tracker_; }
  bool connected() const {
    std::lock_guard<std::mutex> lock(mu_);
    return connected_;
  }

 private:
  // A call's context, registered so that Stop() can cancel it.
  class ActiveContext {
   public:
    ActiveContext(Impl* impl, std::unique_ptr<grpc::ClientContext> context)
        : impl_(impl), context_(std::move(context)) {
      std::lock_guard<std::mutex> lock(impl_->mu_);
      if (impl_->stopping_) context_->TryCancel();
      impl_->active_.insert(context_.get());
    }
    ~ActiveContext() {
      std::lock_guard<std::mutex> lock(impl_->mu_);
      impl_->active_.erase(context_.get());
    }
    ActiveContext(const ActiveContext&) = delete;
    ActiveContext& operator=(const ActiveContext&) = delete;
    grpc::ClientContext* get() const { return context_.get(); }

   private:
    Impl* impl_;
    std::unique_ptr<grpc::ClientContext> context_;
  };

  void Use(client::CoordinatorConnection connection) {
    connection_ = std::move(connection);
    plans_ = v1::PlanService::NewStub(connection_.channel());
    channels_ = v1::ChannelService::NewStub(connection_.channel());
    models_ = v1::ModelService::NewStub(connection_.channel());
  }

  // A fresh channel for each reconnect attempt: an old one that saw the
  // coordinator go away can keep failing calls with the stale "connection
  // refused" for seconds after it is back (observed with gRPC 1.51), and our
  // own backoff already paces the attempts. Rereads the token and CA files, so
  // rotated credentials are picked up; if that fails the old channel stays.
  void Reconnect() {
    absl::StatusOr<client::CoordinatorConnection> fresh =
        client::CoordinatorConnection::Open(connection_.endpoint());
    if (fresh.ok()) {
      Use(*std::move(fresh));
    } else {
      Log(absl::StrFormat("reconnecting with the old channel: %s", fresh.status().message()));
    }
  }

  ActiveContext Unary() {
    return ActiveContext(this, connection_.NewContext(options_.rpc_timeout));
  }

  // The one model registered under our fingerprint.
  absl::Status ResolveModelId() {
    v1::ListModelsResponse response;
    ActiveContext context = Unary();
    absl::Status st =
        client::FromGrpc(models_->ListModels(context.get(), v1::ListModelsRequest(), &response));
    if (!st.ok()) return st;
    std::vector<std::string> ids;
    for (const v1::Model& m : response.models()) {
      if (m.fingerprint() == options_.model_fingerprint) ids.push_back(m.model_id());
    }
    if (ids.empty()) {
      return absl::NotFoundError(absl::StrFormat(
          "coordinator %s has no model with fingerprint %s; register the model (kvplan models "
          "register) or check the node's fingerprint",
          options_.coordinator, options_.model_fingerprint));
    }
    if (ids.size() > 1) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "models %s and %s both have fingerprint %s; set PlanClientOptions.model_id", ids[0],
          ids[1], options_.model_fingerprint));
    }
    model_id_ = ids[0];
    return absl::OkStatus();
  }

  absl::StatusOr<uint64_t> LastSequence() {
    v1::HistoryRequest request;
    request.set_model_id(model_id_);
    request.set_channel(options_.channel);
    v1::HistoryResponse response;
    ActiveContext context = Unary();
    absl::Status st = client::FromGrpc(channels_->History(context.get(), request, &response));
    if (!st.ok()) return st;
    return response.moves().empty() ? 0 : response.moves().rbegin()->sequence();
  }

  absl::StatusOr<client::PlanOffer> Fetch(const v1::GetPlanRequest& request) {
    v1::GetPlanResponse response;
    ActiveContext context = Unary();
    absl::Status st = client::FromGrpc(plans_->GetPlan(context.get(), request, &response));
    if (!st.ok()) return st;
    return client::PlanOffer{.plan_json = std::move(*response.mutable_plan_json()),
                             .plan_id = response.version().plan_id(),
                             .model_id = model_id_,
                             .plan_name = response.version().name(),
                             .version = response.version().version()};
  }

  // Catches up with the channel (see the top of the file). A refused plan is
  // returned but still sets the sequence to watch from.
  absl::Status Sync() {
    if (model_id_.empty()) {
      if (absl::Status st = ResolveModelId(); !st.ok()) return st;
    }
    absl::StatusOr<uint64_t> sequence = LastSequence();
    if (!sequence.ok()) return sequence.status();
    v1::GetPlanRequest request;
    request.mutable_channel()->set_model_id(model_id_);
    request.mutable_channel()->set_channel(options_.channel);
    absl::StatusOr<client::PlanOffer> offer = Fetch(request);
    if (!offer.ok()) return offer.status();
    last_sequence_ = *sequence;
    return tracker_.Accept(*offer).status();
  }

  // One watch stream, until it ends; OK only when stopping.
  absl::Status Watch() {
    auto stream_context = connection_.NewContext(options_.watch_refresh);
    ActiveContext context(this, std::move(stream_context));
    v1::WatchPlansRequest request;
    request.set_model_id(model_id_);
    request.set_channel(options_.channel);
    request.set_after_sequence(last_sequence_);
    std::unique_ptr<grpc::ClientReader<v1::ChannelMove>> reader =
        channels_->WatchPlans(context.get(), request);
    v1::ChannelMove move;
    absl::Status fetch_error;
    while (reader->Read(&move)) {
      if (move.to().plan_id() != tracker_.current_digest()) {
        v1::GetPlanRequest get;
        get.set_plan_id(move.to().plan_id());
        absl::StatusOr<client::PlanOffer> offer = Fetch(get);
        if (!offer.ok()) {
          // Not consumed: the resync after reconnecting serves this move.
          fetch_error = offer.status();
          context.get()->TryCancel();
          break;
        }
        offer->plan_name = move.to().name();
        offer->version = move.to().version();
        absl::StatusOr<bool> served = tracker_.Accept(*offer);
        if (served.ok() && *served) {
          Log(absl::StrFormat("channel %s moved to %s (%s v%d, sequence %d)", options_.channel,
                              offer->plan_id, offer->plan_name, offer->version, move.sequence()));
        }
      }
      last_sequence_ = move.sequence();
    }
    absl::Status finished = client::FromGrpc(reader->Finish());
    return fetch_error.ok() ? finished : fetch_error;
  }

  // The watch thread: watch, and on any end but our own refresh deadline,
  // reconnect with backoff and resync.
  void Follow(bool synced) {
    while (!stopping()) {
      if (!synced) {
        Reconnect();
        absl::Status st = Sync();
        if (stopping()) return;
        if (client::IsTransient(st) || absl::IsNotFound(st)) {
          // NotFound: e.g. a coordinator restored without our model yet; keep trying.
          Disconnected(st);
          continue;
        }
        synced = true;
        if (!connected()) Log(absl::StrFormat("connected to coordinator %s", options_.coordinator));
        SetConnected(true);
      }
      const auto watch_started = std::chrono::steady_clock::now();
      const absl::Status st = Watch();
      if (stopping()) return;
      // Only a stream that stayed up resets the backoff: a coordinator that is
      // shutting down still answers the resync's unary calls but ends each new
      // stream at once, and should not be retried at the shortest wait.
      if (std::chrono::steady_clock::now() - watch_started >= kHealthyStream) backoff_.Reset();
      if (st.code() == absl::StatusCode::kDeadlineExceeded) continue;  // Our refresh.
      synced = false;
      Disconnected(st);
    }
  }

  void Disconnected(const absl::Status& cause) {
    tracker_.RecordError(cause);
    const std::chrono::milliseconds wait = backoff_.Next();
    if (connected()) {
      Log(absl::StrFormat("lost coordinator %s (%s); serving plan %s, reconnecting",
                          options_.coordinator, cause.message(), tracker_.current_digest()));
    }
    SetConnected(false);
    std::unique_lock<std::mutex> lock(mu_);
    wake_.wait_for(lock, wait, [this] { return stopping_; });
  }

  bool stopping() const {
    std::lock_guard<std::mutex> lock(mu_);
    return stopping_;
  }
  void SetConnected(bool connected) {
    std::lock_guard<std::mutex> lock(mu_);
    connected_ = connected;
  }
  void Log(std::string_view line) const { tracker_.Log(line); }

  const PlanClientOptions options_;
  client::PlanTracker tracker_;

  // Owned by whichever thread runs Sync/Watch: Open's until the watch thread
  // starts, the watch thread's after.
  client::CoordinatorConnection connection_;
  std::unique_ptr<v1::PlanService::Stub> plans_;
  std::unique_ptr<v1::ChannelService::Stub> channels_;
  std::unique_ptr<v1::ModelService::Stub> models_;
  std::string model_id_;
  uint64_t last_sequence_ = 0;
  client::ReconnectBackoff backoff_;

  mutable std::mutex mu_;
  std::condition_variable wake_;  // Stop() ends a backoff wait early.
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool connected_ ABSL_GUARDED_BY(mu_) = false;
  std::set<grpc::ClientContext*> active_ ABSL_GUARDED_BY(mu_);
  std::thread watcher_;
};

absl::StatusOr<std::unique_ptr<PlanClient>> PlanClient::Open(PlanClientOptions options) {
  if (absl::Status st = ValidateOptions(options); !st.ok()) return st;
  absl::StatusOr<client::CoordinatorConnection> connection =
      client::CoordinatorConnection::Open({.address = options.coordinator,
                                           .token_file = options.token_file,
                                           .tls_ca_file = options.tls_ca_file,
                                           .tls_cert_file = options.tls_cert_file,
                                           .tls_key_file = options.tls_key_file,
                                           .reconnect_backoff_min = options.reconnect_backoff_min,
                                           .reconnect_backoff_max = options.reconnect_backoff_max});
  if (!connection.ok()) return connection.status();
  auto impl = std::make_unique<Impl>(std::move(options), *std::move(connection));
  if (absl::Status st = impl->Start(); !st.ok()) return st;
  return std::unique_ptr<PlanClient>(new PlanClient(std::move(impl)));
}

PlanClient::PlanClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PlanClient::~PlanClient() { Close(); }

std::shared_ptr<const ServedPlan> PlanClient::Current() const {
  return impl_->tracker().publisher().Current();
}
uint64_t PlanClient::Subscribe(Subscriber subscriber) {
  return impl_->tracker().publisher().Subscribe(std::move(subscriber));
}
void PlanClient::Unsubscribe(uint64_t id) { impl_->tracker().publisher().Unsubscribe(id); }
bool PlanClient::connected() const { return impl_->connected(); }
absl::Status PlanClient::last_error() const { return impl_->tracker().last_error(); }
void PlanClient::Close() { impl_->Stop(); }

}  // namespace kvplan
