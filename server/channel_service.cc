// kvplan.v1.ChannelService over the channel registry, WatchPlans included.
#include "kvplan/v1/channel_service.grpc.pb.h"
#include "server/service_impl.h"

namespace kvplan::server::internal {
namespace {

// How long a watcher sleeps between checks for cancellation when nothing moves.
constexpr absl::Duration kWatchPoll = absl::Milliseconds(200);
constexpr size_t kWatchPage = 256;

class ChannelServiceImpl final : public v1::ChannelService::Service {
 public:
  explicit ChannelServiceImpl(const ServiceDeps& deps) : deps_(deps) {}

  grpc::Status Promote(grpc::ServerContext* context, const v1::PromoteRequest* request,
                       v1::ChannelMove* response) override {
    return RunRpc(deps_, "Promote", RpcKind::kWrite, context, [&]() -> absl::Status {
      absl::StatusOr<v1::ChannelMove> r = deps_.channels->Promote(*request);
      if (!r.ok()) return r.status();
      LogMove(*r);
      *response = *std::move(r);
      return absl::OkStatus();
    });
  }

  grpc::Status Rollback(grpc::ServerContext* context, const v1::RollbackRequest* request,
                        v1::ChannelMove* response) override {
    return RunRpc(deps_, "Rollback", RpcKind::kWrite, context, [&]() -> absl::Status {
      absl::StatusOr<v1::ChannelMove> r = deps_.channels->Rollback(*request);
      if (!r.ok()) return r.status();
      LogMove(*r);
      *response = *std::move(r);
      return absl::OkStatus();
    });
  }

  grpc::Status SetChannelPolicy(grpc::ServerContext* context, const v1::ChannelPolicy* request,
                                v1::ChannelPolicy* response) override {
    return RunRpc(deps_, "SetChannelPolicy", RpcKind::kWrite, context, [&]() -> absl::Status {
      absl::StatusOr<v1::ChannelPolicy> r = deps_.channels->SetPolicy(*request);
      if (r.ok()) *response = *std::move(r);
      return r.status();
    });
  }

  grpc::Status GetChannelPolicy(grpc::ServerContext* context,
                                const v1::GetChannelPolicyRequest* request,
                                v1::ChannelPolicy* response) override {
    return RunRpc(deps_, "GetChannelPolicy", RpcKind::kRead, context, [&]() -> absl::Status {
      absl::StatusOr<v1::ChannelPolicy> r =
          deps_.channels->GetPolicy(request->model_id(), request->channel());
      if (r.ok()) *response = *std::move(r);
      return r.status();
    });
  }

  grpc::Status History(grpc::ServerContext* context, const v1::HistoryRequest* request,
                       v1::HistoryResponse* response) override {
    return RunRpc(deps_, "History", RpcKind::kRead, context, [&]() -> absl::Status {
      absl::StatusOr<v1::HistoryResponse> r =
          deps_.channels->History(request->model_id(), request->channel());
      if (r.ok()) *response = *std::move(r);
      return r.status();
    });
  }

  // The sync API gives each watcher a thread; it blocks only in bounded waits
  // so cancellation and shutdown are noticed within kWatchPoll.
  grpc::Status WatchPlans(grpc::ServerContext* context, const v1::WatchPlansRequest* request,
                          grpc::ServerWriter<v1::ChannelMove>* writer) override {
    return RunRpc(deps_, "WatchPlans", RpcKind::kRead, context, [&]() -> absl::Status {
      if (!request->model_id().empty()) {
        absl::StatusOr<v1::Model> m = deps_.models->Get(request->model_id());
        if (!m.ok()) return m.status();
      }
      uint64_t seen = request->after_sequence();
      while (true) {
        absl::StatusOr<MovesPage> page =
            deps_.channels->MovesAfter(seen, request->model_id(), request->channel(), kWatchPage);
        if (!page.ok()) return page.status();
        for (const v1::ChannelMove& move : page->moves) {
          if (!writer->Write(move)) return absl::CancelledError("watcher went away");
        }
        seen = page->scanned_to;
        if (page->moves.size() == kWatchPage) continue;  // More history to replay.
        if (deps_.channels->closed()) {
          return absl::UnavailableError("coordinator shutting down; reconnect and resume");
        }
        while (!deps_.channels->WaitForMoveAfter(seen, kWatchPoll)) {
          if (context->IsCancelled()) return absl::CancelledError("watcher cancelled");
          if (deps_.channels->closed()) {
            return absl::UnavailableError("coordinator shutting down; reconnect and resume");
          }
        }
      }
    });
  }

 private:
  void LogMove(const v1::ChannelMove& move) const {
    deps_.logger.Info("channel moved",
                      {{"model_id", move.model_id()},
                       {"channel", move.channel()},
                       {"kind", move.kind() == v1::ChannelMove::ROLLBACK ? "rollback" : "promote"},
                       {"sequence", move.sequence()},
                       {"plan_id", move.to().plan_id()},
                       {"version", move.to().version()},
                       {"from_version", move.from().version()}});
  }

  ServiceDeps deps_;
};

}  // namespace

std::unique_ptr<grpc::Service> NewChannelService(const ServiceDeps& deps) {
  return std::make_unique<ChannelServiceImpl>(deps);
}

}  // namespace kvplan::server::internal
