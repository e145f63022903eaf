#include "server/plan_registry.h"

#include <cmath>

#include "absl/strings/str_format.h"
#include "core/calibration_file.h"
#include "core/digest.h"
#include "core/energy_table.h"
#include "core/plan_sidecar.h"
#include "core/rotation.h"
#include "core/whatif.h"
#include "nlohmann/json.hpp"
#include "proto/wire_convert.h"
#include "server/job_registry.h"
#include "server/plan_versions.h"
#include "server/validation_registry.h"

namespace kvplan::server {

using ::kvplan::wire::PlanOptionsFromProto;
using ::kvplan::wire::PlanOptionsToProto;
using ::kvplan::wire::RopeSpecFromProto;
using ::kvplan::wire::ValidateName;
namespace {

constexpr char kDefaultPlanName[] = "default";

absl::Status AsInvalidArgument(const absl::Status& st, std::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrFormat("%s: %s", std::string(what), std::string(st.message())));
}

StatsShape ModelShape(const v1::ModelArchitecture& a) {
  return {.num_layers = a.num_layers(),
          .num_kv_heads = a.num_kv_heads(),
          .num_blocks = a.head_dim() / 2,
          .group_size = a.num_q_heads() / a.num_kv_heads()};
}

}  // namespace

absl::StatusOr<UploadedStats> ParseUploadedStats(const v1::Model& model, std::string_view bytes) {
  if (bytes.empty()) return absl::InvalidArgumentError("stats: no statistics were uploaded");
  absl::StatusOr<BlockStats> stats = absl::InternalError("unset");
  if (LooksLikeCalibrationFile(bytes)) {
    absl::StatusOr<CalibrationFile> file = ParseCalibrationFile(bytes);
    if (!file.ok()) return AsInvalidArgument(file.status(), "stats (calibration file)");
    if (file->model_fingerprint != model.fingerprint()) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "stats: the calibration file is for model fingerprint %s, but model '%s' has "
          "fingerprint %s",
          file->model_fingerprint, model.model_id(), model.fingerprint()));
    }
    absl::StatusOr<RopeSpec> rope = RopeSpecFromProto(model.architecture().rope());
    if (!rope.ok()) return rope.status();
    if (RopeSpecToJson(file->rope) != RopeSpecToJson(*rope)) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "stats: the calibration file's RoPE layout %s differs from model '%s': %s",
          RopeSpecToJson(file->rope).dump(), model.model_id(), RopeSpecToJson(*rope).dump()));
    }
    stats = std::move(file->stats);
  } else {
    stats = BlockStats::Deserialize(bytes);
    if (!stats.ok()) return AsInvalidArgument(stats.status(), "stats");
  }
  const StatsShape want = ModelShape(model.architecture());
  if (stats->shape() != want) {
    return absl::InvalidArgumentError(
        absl::StrFormat("stats: shape %s does not match model '%s' (%s)",
                        ShapeString(stats->shape()), model.model_id(), ShapeString(want)));
  }
  UploadedStats out{.stats = *std::move(stats)};
  out.digest = Sha256Hex(out.stats.Serialize());
  return out;
}

absl::StatusOr<v1::CreatePlanResponse> PlanRegistry::Create(const v1::CreatePlanRequest& request) {
  const std::string name = request.name().empty() ? kDefaultPlanName : request.name();
  if (absl::Status st = ValidateName(name, "plan name"); !st.ok()) return st;
  absl::StatusOr<PlanOptions> options = PlanOptionsFromProto(request.options());
  if (!options.ok()) return options.status();
  options->exempt_layers.assign(request.exempt_layers().begin(), request.exempt_layers().end());
  if (request.exempt_bits() != 0) options->exempt_bits = request.exempt_bits();
  options->k_group_align = request.k_group_align();
  absl::StatusOr<v1::Model> model = models_->Get(request.model_id());
  if (!model.ok()) return model.status();
  // Before the statistics are loaded: a bad layer or alignment is the
  // request's fault, whatever the statistics hold.
  if (absl::Status st = ValidateExemptLayers(*options, model->architecture().num_layers());
      !st.ok()) {
    return st;
  }
  if (absl::Status st = ValidateKGroupAlign(*options, model->architecture().head_dim()); !st.ok()) {
    return st;
  }
  std::string job_stats;
  if (!request.job_id().empty()) {
    if (!request.stats().empty()) {
      return absl::InvalidArgumentError("give either stats or job_id, not both");
    }
    absl::StatusOr<std::string> bytes = LoadJobStats(*store_, model->model_id(), request.job_id());
    if (!bytes.ok()) return bytes.status();
    job_stats = *std::move(bytes);
  }
  absl::StatusOr<UploadedStats> uploaded =
      ParseUploadedStats(*model, request.job_id().empty() ? request.stats() : job_stats);
  if (!uploaded.ok()) return uploaded.status();
  absl::StatusOr<EnergyTable> table = EnergyTableFromStats(uploaded->stats);
  if (!table.ok()) return table.status();
  absl::StatusOr<RopeSpec> rope = RopeSpecFromProto(model->architecture().rope());
  if (!rope.ok()) return rope.status();
  absl::StatusOr<KvPlan> plan = BuildPlan(*table, *rope, *options);
  if (!plan.ok()) return plan.status();
  plan->model_fingerprint = model->fingerprint();
  plan->provenance = {.tokens = uploaded->stats.tokens(),
                      .stats_digest = uploaded->digest,
                      .created_unix = clock_(),
                      .source = request.source().empty() && !request.job_id().empty()
                                    ? absl::StrFormat("job:%s", request.job_id())
                                    : request.source()};
  const std::string digest = PlanDigest(*plan);

  absl::MutexLock lock(&write_mu_);
  v1::CreatePlanResponse response;
  absl::StatusOr<v1::PlanVersion> last = LookupPlanVersion(*store_, model->model_id(), name, 0);
  if (!last.ok() && !absl::IsNotFound(last.status())) return last.status();
  if (last.ok() && last->plan_id() == digest) {
    // A retry of an acknowledged request (or the same inputs again): no new version.
    absl::StatusOr<std::shared_ptr<const std::string>> json = PlanJson(digest);
    if (!json.ok()) return json.status();
    *response.mutable_version() = *last;
    response.set_plan_json(**json);
    response.set_created(false);
    return response;
  }
  v1::PlanVersion* version = response.mutable_version();
  version->set_model_id(model->model_id());
  version->set_name(name);
  version->set_version(last.ok() ? last->version() + 1 : 1);
  version->set_plan_id(digest);
  version->set_stats_digest(uploaded->digest);
  version->set_tokens(uploaded->stats.tokens());
  *version->mutable_options() = PlanOptionsToProto(*options);
  version->set_created_unix(plan->provenance.created_unix);

  Store::Batch batch;
  const std::string stats_key = absl::StrFormat("%s/%s", model->model_id(), uploaded->digest);
  absl::StatusOr<std::optional<std::string>> have_stats = store_->Get(Family::kStats, stats_key);
  if (!have_stats.ok()) return have_stats.status();
  if (!have_stats->has_value()) batch.Put(Family::kStats, stats_key, uploaded->stats.Serialize());
  absl::StatusOr<std::optional<std::string>> have_plan = store_->Get(Family::kPlans, digest);
  if (!have_plan.ok()) return have_plan.status();
  std::string json = have_plan->has_value() ? **have_plan : PlanToJson(*plan);
  if (!have_plan->has_value()) {
    batch.Put(Family::kPlans, digest, json);
    for (const auto& [dim, hash] : plan->rotation_hashes) {
      batch.Put(Family::kMeta, "rotation/" + hash, digest);
    }
  }
  batch.Put(Family::kPlanVersions, PlanVersionKey(model->model_id(), name, version->version()),
            version->SerializeAsString());
  if (model->latest_stats_digest() != uploaded->digest) {
    model->set_latest_stats_digest(uploaded->digest);
    batch.Put(Family::kModels, model->model_id(), model->SerializeAsString());
  }
  if (absl::Status st = store_->Commit(batch); !st.ok()) return st;
  response.set_plan_json(std::move(json));
  response.set_created(true);
  return response;
}

absl::StatusOr<std::shared_ptr<const std::string>> PlanRegistry::PlanJson(
    std::string_view plan_id) {
  {
    absl::MutexLock lock(&cache_mu_);
    if (auto it = plan_cache_.find(plan_id); it != plan_cache_.end()) {
      reads_from_memory_.fetch_add(1, std::memory_order_relaxed);
      return it->second;
    }
  }
  absl::StatusOr<std::optional<std::string>> bytes = store_->Get(Family::kPlans, plan_id);
  if (!bytes.ok()) return bytes.status();
  if (!bytes->has_value()) {
    return absl::NotFoundError(absl::StrFormat("no plan has id %s", std::string(plan_id)));
  }
  auto json = std::make_shared<const std::string>(**std::move(bytes));
  reads_from_store_.fetch_add(1, std::memory_order_relaxed);
  absl::MutexLock lock(&cache_mu_);
  plan_cache_.emplace(std::string(plan_id), json);
  return json;
}

absl::StatusOr<KvPlan> ParseStoredPlan(std::string_view plan_id, std::string_view json) {
  absl::StatusOr<KvPlan> plan = PlanFromJson(json);
  if (!plan.ok()) {
    return absl::DataLossError(absl::StrFormat("plans/%s: stored plan does not parse: %s",
                                               std::string(plan_id),
                                               std::string(plan.status().message())));
  }
  return plan;
}

absl::StatusOr<KvPlan> PlanRegistry::LoadPlan(std::string_view plan_id) {
  absl::StatusOr<std::shared_ptr<const std::string>> json = PlanJson(plan_id);
  if (!json.ok()) return json.status();
  return ParseStoredPlan(plan_id, **json);
}

absl::StatusOr<v1::PlanVersion> PlanRegistry::GetVersion(std::string_view model_id,
                                                         std::string_view name,
                                                         uint64_t version) const {
  if (absl::StatusOr<v1::Model> m = models_->Get(model_id); !m.ok()) return m.status();
  return LookupPlanVersion(*store_, model_id, name.empty() ? kDefaultPlanName : name, version);
}

absl::StatusOr<v1::GetPlanResponse> PlanRegistry::Get(const v1::GetPlanRequest& request) {
  v1::GetPlanResponse response;
  switch (request.selector_case()) {
    case v1::GetPlanRequest::kPlanId:
      response.mutable_version()->set_plan_id(request.plan_id());
      break;
    case v1::GetPlanRequest::kVersion: {
      absl::StatusOr<v1::PlanVersion> v = GetVersion(
          request.version().model_id(), request.version().name(), request.version().version());
      if (!v.ok()) return v.status();
      *response.mutable_version() = *std::move(v);
      break;
    }
    case v1::GetPlanRequest::kChannel: {
      if (absl::StatusOr<v1::Model> m = models_->Get(request.channel().model_id()); !m.ok()) {
        return m.status();
      }
      absl::StatusOr<v1::PlanVersion> v =
          channels_->Current(request.channel().model_id(), request.channel().channel());
      if (!v.ok()) return v.status();
      *response.mutable_version() = *std::move(v);
      break;
    }
    default:
      return absl::InvalidArgumentError("GetPlan needs a plan_id, a version or a channel");
  }
  absl::StatusOr<std::shared_ptr<const std::string>> json = PlanJson(response.version().plan_id());
  if (!json.ok()) return json.status();
  response.set_plan_json(**json);
  // Not cached with the plan: validations are added after it is stored.
  absl::StatusOr<std::optional<v1::PlanValidation>> validation =
      LatestValidation(*store_, response.version().plan_id());
  if (!validation.ok()) return validation.status();
  if (validation->has_value()) *response.mutable_validation() = **std::move(validation);
  return response;
}

absl::StatusOr<v1::ListPlansResponse> PlanRegistry::List(
    const v1::ListPlansRequest& request) const {
  if (absl::StatusOr<v1::Model> m = models_->Get(request.model_id()); !m.ok()) return m.status();
  if (!request.name().empty()) {
    if (absl::Status st = ValidateName(request.name(), "plan name"); !st.ok()) return st;
  }
  const std::string prefix = request.name().empty()
                                 ? request.model_id() + "/"
                                 : PlanVersionPrefix(request.model_id(), request.name());
  v1::ListPlansResponse response;
  absl::Status st =
      store_->ScanRecords(Family::kPlanVersions, prefix, "",
                          [&](std::string_view, std::string_view value) -> absl::StatusOr<bool> {
                            if (!response.add_versions()->ParseFromString(std::string(value))) {
                              return absl::DataLossError("plan_versions: stored record is corrupt");
                            }
                            return true;
                          });
  if (!st.ok()) return st;
  return response;
}

absl::StatusOr<v1::DiffPlansResponse> PlanRegistry::Diff(const v1::DiffPlansRequest& request) {
  absl::StatusOr<KvPlan> from = LoadPlan(request.from_plan_id());
  if (!from.ok()) return from.status();
  absl::StatusOr<KvPlan> to = LoadPlan(request.to_plan_id());
  if (!to.ok()) return to.status();
  if (from->num_layers != to->num_layers || from->num_kv_heads != to->num_kv_heads ||
      from->head_dim != to->head_dim) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "plans have different shapes (%d layers x %d KV heads x hd %d vs %d x %d x %d)",
        from->num_layers, from->num_kv_heads, from->head_dim, to->num_layers, to->num_kv_heads,
        to->head_dim));
  }
  v1::DiffPlansResponse response;
  response.set_from_v_bits(from->options.v_bits);
  response.set_to_v_bits(to->options.v_bits);
  for (int l = 0; l < from->num_layers; ++l) {
    for (int h = 0; h < from->num_kv_heads; ++h) {
      const std::vector<int>& a = from->KBlockBits(l, h);
      const std::vector<int>& b = to->KBlockBits(l, h);
      int changed = 0;
      for (size_t i = 0; i < a.size(); ++i) changed += a[i] != b[i] ? 1 : 0;
      response.set_total_blocks(response.total_blocks() + static_cast<int64_t>(a.size()));
      if (changed == 0) continue;
      response.set_blocks_changed(response.blocks_changed() + changed);
      v1::HeadDiff* d = response.add_heads();
      d->set_layer(l);
      d->set_kv_head(h);
      d->mutable_from_k_bits()->Add(a.begin(), a.end());
      d->mutable_to_k_bits()->Add(b.begin(), b.end());
      d->set_blocks_changed(changed);
    }
  }
  response.set_from_bytes_per_token(PlanBytesPerToken(*from).total());
  response.set_to_bytes_per_token(PlanBytesPerToken(*to).total());
  return response;
}

absl::StatusOr<v1::ExportPlanResponse> PlanRegistry::Export(const v1::ExportPlanRequest& request) {
  absl::StatusOr<std::shared_ptr<const std::string>> json = PlanJson(request.plan_id());
  if (!json.ok()) return json.status();
  absl::StatusOr<KvPlan> plan = LoadPlan(request.plan_id());
  if (!plan.ok()) return plan.status();
  v1::ExportPlanResponse response;
  response.set_plan_json(**json);
  response.set_sidecar(PlanToSidecar(*plan));
  return response;
}

absl::StatusOr<v1::GetRotationResponse> PlanRegistry::GetRotation(
    const v1::GetRotationRequest& request) {
  const std::string& hash = request.content_hash();
  v1::GetRotationResponse response;
  {
    absl::MutexLock lock(&cache_mu_);
    if (auto it = rotation_cache_.find(hash); it != rotation_cache_.end()) {
      response.set_dim(static_cast<int>(std::lround(std::sqrt(it->second->size() / 4))));
      response.set_matrix(*it->second);
      return response;
    }
  }
  absl::StatusOr<std::optional<std::string>> plan_id =
      store_->Get(Family::kMeta, "rotation/" + hash);
  if (!plan_id.ok()) return plan_id.status();
  if (!plan_id->has_value()) {
    return absl::NotFoundError(absl::StrFormat("no stored plan names rotation %s", hash));
  }
  absl::StatusOr<KvPlan> plan = LoadPlan(**plan_id);
  if (!plan.ok()) return plan.status();
  // Regenerated from the plan's seed and checked against its hash: identical
  // bytes on every machine (core/rotation.h), so nothing large is stored.
  absl::StatusOr<std::map<int, Rotation>> rotations = PlanRotations(*plan);
  if (!rotations.ok()) return rotations.status();
  for (const auto& [dim, rotation] : *rotations) {
    if (rotation.content_hash != hash) continue;
    auto bytes = std::make_shared<const std::string>(RotationMatrixBytes(rotation.matrix));
    response.set_dim(dim);
    response.set_matrix(*bytes);
    absl::MutexLock lock(&cache_mu_);
    rotation_cache_.emplace(hash, std::move(bytes));
    return response;
  }
  return absl::DataLossError(
      absl::StrFormat("plan %s is indexed as naming rotation %s but does not", **plan_id, hash));
}

}  // namespace kvplan::server
