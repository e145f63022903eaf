#include "server/coordinator_server.h"

#include <vector>

#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "server/service_impl.h"
#include "server/store.h"

namespace kvplan::server {

struct CoordinatorServer::Impl {
  std::string host;
  int port = 0;
  // Declaration order is destruction order reversed: the server goes first,
  // then the services, registries and store it calls into.
  std::unique_ptr<Store> store;
  std::unique_ptr<ModelRegistry> models;
  std::unique_ptr<ChannelRegistry> channels;
  std::unique_ptr<PlanRegistry> plans;
  std::unique_ptr<WhatIfRunner> whatif;
  std::unique_ptr<JobRegistry> jobs;
  std::unique_ptr<ValidationRegistry> validations;
  std::unique_ptr<Metrics> metrics;
  std::vector<std::unique_ptr<grpc::Service>> services;
  std::unique_ptr<grpc::Server> server;
  absl::Mutex mu;
  bool shut_down ABSL_GUARDED_BY(mu) = false;
};

CoordinatorServer::CoordinatorServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

CoordinatorServer::~CoordinatorServer() { Shutdown(absl::ZeroDuration()); }

absl::StatusOr<std::unique_ptr<CoordinatorServer>> CoordinatorServer::Start(
    CoordinatorOptions options) {
  if (options.data_dir.empty()) return absl::InvalidArgumentError("--data-dir is required");
  const size_t colon = options.listen.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrFormat("listen address '%s' is not host:port", options.listen));
  }
  if (options.tls_cert_pem.empty() != options.tls_key_pem.empty()) {
    return absl::InvalidArgumentError("TLS needs both a certificate and a key");
  }
  if (options.max_receive_message_bytes <= 0) {
    return absl::InvalidArgumentError("max_receive_message_bytes must be positive");
  }
  if (!options.tls_client_ca_pem.empty() && options.tls_cert_pem.empty()) {
    return absl::InvalidArgumentError(
        "client certificates (a client CA) need TLS: give a server certificate and key too");
  }
  if (!options.tls_allowed_client_cns.empty() && options.tls_client_ca_pem.empty()) {
    return absl::InvalidArgumentError("allowed client CNs need a client CA to verify them");
  }
  if (options.authenticate_reads && options.auth_token.empty() &&
      options.tls_client_ca_pem.empty()) {
    return absl::InvalidArgumentError(
        "authenticating reads needs a bearer token or a client CA to check them against");
  }
  if (absl::Status st = CheckValidationRule(options.validation_rule); !st.ok()) return st;
  auto impl = std::make_unique<Impl>();
  impl->host = options.listen.substr(0, colon);
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open({.path = options.data_dir});
  if (!store.ok()) return store.status();
  impl->store = *std::move(store);
  Store* raw_store = impl->store.get();
  impl->models = std::make_unique<ModelRegistry>(raw_store, options.clock);
  impl->channels = std::make_unique<ChannelRegistry>(raw_store, impl->models.get(), options.clock);
  if (absl::Status st = impl->channels->Init(); !st.ok()) return st;
  impl->plans = std::make_unique<PlanRegistry>(raw_store, impl->models.get(), impl->channels.get(),
                                               options.clock);
  impl->whatif = std::make_unique<WhatIfRunner>(raw_store, impl->models.get());
  impl->jobs = std::make_unique<JobRegistry>(raw_store, impl->models.get(), options.clock);
  impl->validations =
      std::make_unique<ValidationRegistry>(raw_store, options.validation_rule, options.clock);
  absl::StatusOr<std::unique_ptr<Metrics>> metrics =
      Metrics::Start({.listen = options.metrics_listen,
                      .store_size_bytes = [raw_store] { return raw_store->ApproximateSizeBytes(); },
                      .plan_reads_from_memory =
                          [plans = impl->plans.get()] { return plans->read_counts().memory; },
                      .plan_reads_from_store =
                          [plans = impl->plans.get()] { return plans->read_counts().store; }});
  if (!metrics.ok()) return metrics.status();
  impl->metrics = *std::move(metrics);

  internal::AuthPolicy auth{.bearer_token = options.auth_token,
                            .client_certificates = !options.tls_client_ca_pem.empty(),
                            .allowed_client_cns = options.tls_allowed_client_cns,
                            .authenticate_reads = options.authenticate_reads};
  const internal::ServiceDeps deps{.models = impl->models.get(),
                                   .plans = impl->plans.get(),
                                   .channels = impl->channels.get(),
                                   .whatif = impl->whatif.get(),
                                   .jobs = impl->jobs.get(),
                                   .validations = impl->validations.get(),
                                   .metrics = impl->metrics.get(),
                                   .auth = std::move(auth),
                                   .logger = options.logger};
  impl->services.push_back(internal::NewModelService(deps));
  impl->services.push_back(internal::NewPlanService(deps));
  impl->services.push_back(internal::NewChannelService(deps));
  impl->services.push_back(internal::NewWhatIfService(deps));
  impl->services.push_back(internal::NewArtifactService(deps));
  impl->services.push_back(internal::NewJobService(deps));

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  if (!options.tls_cert_pem.empty()) {
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({options.tls_key_pem, options.tls_cert_pem});
    if (!options.tls_client_ca_pem.empty()) {
      // Requested, not required: a client with no certificate still gets
      // through the handshake and can authorize writes with the token (and
      // read). One it sends must verify, or the handshake fails; rpc_auth.cc
      // relies on that to trust any certificate it finds.
      ssl.pem_root_certs = options.tls_client_ca_pem;
      ssl.client_certificate_request = GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY;
    }
    credentials = grpc::SslServerCredentials(ssl);
  }
  builder.AddListeningPort(options.listen, credentials, &impl->port);
  builder.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  for (const std::unique_ptr<grpc::Service>& service : impl->services) {
    builder.RegisterService(service.get());
  }
  impl->server = builder.BuildAndStart();
  if (impl->server == nullptr || impl->port == 0) {
    return absl::UnavailableError(
        absl::StrFormat("cannot listen on %s (address in use or not local?)", options.listen));
  }
  return std::unique_ptr<CoordinatorServer>(new CoordinatorServer(std::move(impl)));
}

std::string CoordinatorServer::address() const {
  return absl::StrFormat("%s:%d", impl_->host, impl_->port);
}

int CoordinatorServer::port() const { return impl_->port; }

int CoordinatorServer::metrics_port() const { return impl_->metrics->port(); }

void CoordinatorServer::Shutdown(absl::Duration grace) {
  {
    absl::MutexLock lock(&impl_->mu);
    if (impl_->shut_down) return;
    impl_->shut_down = true;
  }
  // Watchers first: they would otherwise hold the server's drain until the deadline.
  impl_->channels->Close();
  impl_->server->Shutdown(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(grace));
  impl_->server->Wait();
}

}  // namespace kvplan::server
