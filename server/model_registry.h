// Registered models: the architectures and fingerprints plans are bound to.
//
// Domain logic only (no gRPC): validates, stores in the `models` family, and
// answers reads. Registration is idempotent: registering the same id with the
// same fingerprint and architecture returns the stored model.
//
// Example:
//   ModelRegistry models(store.get(), clock);
//   absl::StatusOr<v1::RegisterModelResponse> r = models.Register(request);
//   absl::StatusOr<v1::Model> m = models.Get("doc-llama");  // NotFound if unknown
//
// Thread safety: thread-safe.
#ifndef KVPLAN_SERVER_MODEL_REGISTRY_H_
#define KVPLAN_SERVER_MODEL_REGISTRY_H_

#include <string_view>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "kvplan/v1/model_service.pb.h"
#include "server/clock.h"
#include "server/store.h"

namespace kvplan::server {

class ModelRegistry {
 public:
  // `store` must outlive the registry.
  ModelRegistry(Store* store, Clock clock) : store_(store), clock_(std::move(clock)) {}

  // InvalidArgument naming a bad field; AlreadyExists when the id names a
  // different model.
  absl::StatusOr<v1::RegisterModelResponse> Register(const v1::RegisterModelRequest& request);
  // NotFound naming the id.
  absl::StatusOr<v1::Model> Get(std::string_view model_id) const;
  absl::StatusOr<v1::ListModelsResponse> List() const;

 private:
  Store* store_;
  Clock clock_;
  // Serializes the check-then-write of a registration (it guards the models
  // family's contents, not a member).
  absl::Mutex mu_;
};

}  // namespace kvplan::server

#endif  // KVPLAN_SERVER_MODEL_REGISTRY_H_
