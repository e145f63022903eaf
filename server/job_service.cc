// kvplan.v1.JobService over the job registry.
#include "absl/strings/numbers.h"
#include "kvplan/v1/job_service.grpc.pb.h"
#include "server/service_impl.h"

namespace kvplan::server::internal {
namespace {

// The shard a lease id names ("<job>:<shard>:<attempt>", job_registry.h; job
// ids have no ':'), for the logs; -1 for anything else.
int ShardOfLease(const std::string& lease_id) {
  const size_t last = lease_id.rfind(':');
  const size_t first =
      last == std::string::npos || last == 0 ? std::string::npos : lease_id.rfind(':', last - 1);
  int shard = -1;
  if (first == std::string::npos ||
      !absl::SimpleAtoi(lease_id.substr(first + 1, last - first - 1), &shard)) {
    return -1;
  }
  return shard;
}

class JobServiceImpl final : public v1::JobService::Service {
 public:
  explicit JobServiceImpl(const ServiceDeps& deps) : deps_(deps) {}

  grpc::Status CreateJob(grpc::ServerContext* context, const v1::CreateJobRequest* request,
                         v1::CreateJobResponse* response) override {
    return RunRpc(deps_, "CreateJob", RpcKind::kWrite, context, [&]() -> absl::Status {
      absl::StatusOr<v1::CreateJobResponse> r = deps_.jobs->Create(*request);
      if (!r.ok()) return r.status();
      if (r->created()) {
        deps_.metrics->JobCreated();
        deps_.logger.Info("job created", {{"job_id", r->job().job_id()},
                                          {"model_id", r->job().model_id()},
                                          {"shards", r->job().shard_count()}});
      }
      *response = *std::move(r);
      return absl::OkStatus();
    });
  }

  grpc::Status GetJob(grpc::ServerContext* context, const v1::GetJobRequest* request,
                      v1::Job* response) override {
    return RunRpc(deps_, "GetJob", RpcKind::kRead, context, [&]() -> absl::Status {
      absl::StatusOr<v1::Job> r = deps_.jobs->Get(request->job_id());
      if (r.ok()) *response = *std::move(r);
      return r.status();
    });
  }

  grpc::Status ListJobs(grpc::ServerContext* context, const v1::ListJobsRequest* request,
                        v1::ListJobsResponse* response) override {
    return RunRpc(deps_, "ListJobs", RpcKind::kRead, context, [&]() -> absl::Status {
      absl::StatusOr<v1::ListJobsResponse> r = deps_.jobs->List(*request);
      if (r.ok()) *response = *std::move(r);
      return r.status();
    });
  }

  grpc::Status CancelJob(grpc::ServerContext* context, const v1::CancelJobRequest* request,
                         v1::Job* response) override {
    return RunRpc(deps_, "CancelJob", RpcKind::kWrite, context, [&]() -> absl::Status {
      absl::StatusOr<v1::Job> r = deps_.jobs->Cancel(request->job_id());
      if (!r.ok()) return r.status();
      deps_.logger.Info("job cancelled", {{"job_id", r->job_id()}});
      *response = *std::move(r);
      return absl::OkStatus();
    });
  }

  grpc::Status LeaseShard(grpc::ServerContext* context, const v1::LeaseShardRequest* request,
                          v1::LeaseShardResponse* response) override {
    return RunRpc(deps_, "LeaseShard", RpcKind::kWrite, context, [&]() -> absl::Status {
      absl::StatusOr<v1::LeaseShardResponse> r = deps_.jobs->Lease(*request);
      if (!r.ok()) return r.status();
      if (r->has_lease()) {
        const v1::ShardLease& lease = r->lease();
        deps_.metrics->ShardLeased(lease.attempt() > 1);
        // Expiry is noticed here, lazily: a later attempt means the last lease
        // ran out and the shard now goes to this caller.
        if (lease.attempt() > 1) {
          deps_.logger.Info("lease expired; shard reassigned", {{"job_id", lease.job_id()},
                                                                {"shard", lease.shard()},
                                                                {"attempt", lease.attempt()},
                                                                {"lease_id", lease.lease_id()},
                                                                {"peer", context->peer()}});
        }
      }
      *response = *std::move(r);
      return absl::OkStatus();
    });
  }

  grpc::Status Heartbeat(grpc::ServerContext* context, const v1::HeartbeatRequest* request,
                         v1::HeartbeatResponse* response) override {
    return RunRpc(deps_, "Heartbeat", RpcKind::kWrite, context, [&]() -> absl::Status {
      absl::StatusOr<v1::HeartbeatResponse> r = deps_.jobs->Heartbeat(request->lease_id());
      if (r.ok()) *response = *std::move(r);
      return r.status();
    });
  }

  grpc::Status UploadShardStatistics(grpc::ServerContext* context,
                                     const v1::UploadShardStatisticsRequest* request,
                                     v1::UploadShardStatisticsResponse* response) override {
    return RunRpc(deps_, "UploadShardStatistics", RpcKind::kWrite, context, [&]() -> absl::Status {
      absl::StatusOr<v1::UploadShardStatisticsResponse> r = deps_.jobs->Upload(*request);
      if (r.ok()) *response = *std::move(r);
      return r.status();
    });
  }

  grpc::Status CommitShard(grpc::ServerContext* context, const v1::CommitShardRequest* request,
                           v1::CommitShardResponse* response) override {
    return RunRpc(deps_, "CommitShard", RpcKind::kWrite, context, [&]() -> absl::Status {
      absl::StatusOr<v1::CommitShardResponse> r = deps_.jobs->Commit(request->lease_id());
      if (!r.ok()) return r.status();
      // Repeats of an acknowledged commit are not counted again.
      if (r->committed()) {
        deps_.metrics->ShardCommitted(r->job_done());
        deps_.logger.Info("shard committed", {{"job_id", r->job().job_id()},
                                              {"shard", ShardOfLease(request->lease_id())},
                                              {"lease_id", request->lease_id()},
                                              {"shards_done", r->job().progress().shards_done()},
                                              {"peer", context->peer()}});
        if (r->job_done()) {
          deps_.logger.Info("job completed", {{"job_id", r->job().job_id()},
                                              {"model_id", r->job().model_id()},
                                              {"shards", r->job().shard_count()}});
        }
      }
      *response = *std::move(r);
      return absl::OkStatus();
    });
  }

 private:
  ServiceDeps deps_;
};

}  // namespace

std::unique_ptr<grpc::Service> NewJobService(const ServiceDeps& deps) {
  return std::make_unique<JobServiceImpl>(deps);
}

}  // namespace kvplan::server::internal
