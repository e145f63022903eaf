#include "worker/serve/job_client.h"

#include <utility>

#include "absl/strings/str_format.h"
#include "client/lib/coordinator_connection.h"
#include "grpcpp/grpcpp.h"
#include "kvplan/v1/job_service.grpc.pb.h"
#include "kvplan/v1/model_service.grpc.pb.h"

namespace kvplan::serve {
namespace {

absl::Status FromGrpc(const grpc::Status& status, const char* method) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrFormat("%s: %s", method, status.error_message()));
}

}  // namespace

struct JobClient::Stubs {
  client::CoordinatorConnection connection;
  std::unique_ptr<v1::JobService::Stub> jobs;
  std::unique_ptr<v1::ModelService::Stub> models;
};

namespace {

// One RPC, retried; each attempt needs a fresh context (gRPC forbids reuse),
// which carries the token and the deadline.
template <typename Stub, typename Request, typename Response>
absl::Status Call(const JobClientOptions& options, const client::CoordinatorConnection& connection,
                  Stub& stub,
                  grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
                  const char* name, const Request& request, Response& response) {
  return RetryTransient(
      options.backoff, name,
      [&] {
        std::unique_ptr<grpc::ClientContext> context = connection.NewContext(options.call_timeout);
        return FromGrpc((stub.*method)(context.get(), request, &response), name);
      },
      options.log);
}

}  // namespace

JobClient::JobClient(JobClientOptions options, std::unique_ptr<Stubs> stubs)
    : options_(std::move(options)), stubs_(std::move(stubs)) {}
JobClient::~JobClient() = default;

absl::StatusOr<std::unique_ptr<JobClient>> JobClient::Connect(JobClientOptions options) {
  client::CoordinatorEndpoint endpoint = options.endpoint;
  // Reconnect quickly once a restarted coordinator listens again (gRPC's
  // default reconnect backoff grows to two minutes).
  if (endpoint.reconnect_backoff_max.count() == 0) {
    endpoint.reconnect_backoff_max = std::chrono::milliseconds(2000);
  }
  absl::StatusOr<client::CoordinatorConnection> connection =
      client::CoordinatorConnection::Open(endpoint);
  if (!connection.ok()) return connection.status();
  auto stubs = std::make_unique<Stubs>(Stubs{.connection = *std::move(connection)});
  stubs->jobs = v1::JobService::NewStub(stubs->connection.channel());
  stubs->models = v1::ModelService::NewStub(stubs->connection.channel());
  return std::unique_ptr<JobClient>(new JobClient(std::move(options), std::move(stubs)));
}

absl::StatusOr<std::optional<ShardLease>> JobClient::Lease(const std::string& worker_id,
                                                           const std::string& job_id) {
  v1::LeaseShardRequest request;
  request.set_worker_id(worker_id);
  request.set_job_id(job_id);
  v1::LeaseShardResponse response;
  if (absl::Status st = Call(options_, stubs_->connection, *stubs_->jobs,
                             &v1::JobService::Stub::LeaseShard, "LeaseShard", request, response);
      !st.ok())
    return st;
  if (!response.has_lease()) return std::nullopt;
  const v1::ShardLease& l = response.lease();
  return ShardLease{.lease_id = l.lease_id(),
                    .job_id = l.job_id(),
                    .model_id = l.model_id(),
                    .shard = l.shard(),
                    .prompts_jsonl = l.prompts_jsonl(),
                    .tokens_per_shard = l.tokens_per_shard(),
                    .expires_unix = l.expires_unix(),
                    .attempt = l.attempt()};
}

absl::StatusOr<int64_t> JobClient::Heartbeat(const std::string& lease_id) {
  v1::HeartbeatRequest request;
  request.set_lease_id(lease_id);
  v1::HeartbeatResponse response;
  if (absl::Status st = Call(options_, stubs_->connection, *stubs_->jobs,
                             &v1::JobService::Stub::Heartbeat, "Heartbeat", request, response);
      !st.ok())
    return st;
  return response.expires_unix();
}

absl::Status JobClient::Upload(const std::string& lease_id, const std::string& stats_bytes) {
  v1::UploadShardStatisticsRequest request;
  request.set_lease_id(lease_id);
  request.set_stats(stats_bytes);
  v1::UploadShardStatisticsResponse response;
  return Call(options_, stubs_->connection, *stubs_->jobs,
              &v1::JobService::Stub::UploadShardStatistics, "UploadShardStatistics", request,
              response);
}

absl::StatusOr<bool> JobClient::Commit(const std::string& lease_id) {
  v1::CommitShardRequest request;
  request.set_lease_id(lease_id);
  v1::CommitShardResponse response;
  if (absl::Status st = Call(options_, stubs_->connection, *stubs_->jobs,
                             &v1::JobService::Stub::CommitShard, "CommitShard", request, response);
      !st.ok())
    return st;
  return response.job_done();
}

absl::StatusOr<std::string> JobClient::ModelFingerprint(const std::string& model_id) {
  v1::GetModelRequest request;
  request.set_model_id(model_id);
  v1::Model response;
  if (absl::Status st = Call(options_, stubs_->connection, *stubs_->models,
                             &v1::ModelService::Stub::GetModel, "GetModel", request, response);
      !st.ok())
    return st;
  return response.fingerprint();
}

absl::StatusOr<bool> JobClient::WorkMayRemain(const std::string& job_id) {
  if (!job_id.empty()) {
    v1::GetJobRequest request;
    request.set_job_id(job_id);
    v1::Job response;
    if (absl::Status st = Call(options_, stubs_->connection, *stubs_->jobs,
                               &v1::JobService::Stub::GetJob, "GetJob", request, response);
        !st.ok())
      return st;
    return response.state() == v1::Job::RUNNING;
  }
  v1::ListJobsRequest request;
  v1::ListJobsResponse response;
  if (absl::Status st = Call(options_, stubs_->connection, *stubs_->jobs,
                             &v1::JobService::Stub::ListJobs, "ListJobs", request, response);
      !st.ok())
    return st;
  for (const v1::Job& job : response.jobs()) {
    if (job.state() == v1::Job::RUNNING) return true;
  }
  return false;
}

bool IsLeaseLost(const absl::Status& status) {
  return status.code() == absl::StatusCode::kFailedPrecondition ||
         status.code() == absl::StatusCode::kNotFound;
}

}  // namespace kvplan::serve
