#include "server/validation_registry.h"

#include <cmath>
#include <limits>
#include <string>

#include "absl/strings/str_format.h"
#include "server/plan_registry.h"

namespace kvplan::server {
namespace {

constexpr size_t kMaxWorkerIdChars = 128;

bool IsSha256Hex(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

absl::Status CheckPlanId(std::string_view plan_id) {
  if (IsSha256Hex(plan_id)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrFormat(
      "plan_id '%s' is not a plan digest (64 lowercase hex characters)", std::string(plan_id)));
}

std::string ValidationPrefix(std::string_view plan_id) {
  return absl::StrFormat("%s/", std::string(plan_id));
}

absl::StatusOr<KvPlan> LoadPlan(const Store& store, std::string_view plan_id) {
  if (absl::Status st = CheckPlanId(plan_id); !st.ok()) return st;
  absl::StatusOr<std::optional<std::string>> json = store.Get(Family::kPlans, plan_id);
  if (!json.ok()) return json.status();
  if (!json->has_value()) {
    return absl::NotFoundError(absl::StrFormat("no plan has id %s", std::string(plan_id)));
  }
  return ParseStoredPlan(plan_id, **json);
}

// A finite number in [0, max], or InvalidArgument naming it.
absl::Status CheckMeasure(double value, int layer, const char* field, double max) {
  if (std::isfinite(value) && value >= 0 && value <= max) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrFormat(
      "layers[%d].%s is %g; it must be a finite number in [0, %g]", layer, field, value, max));
}

absl::Status CheckLayers(const KvPlan& plan, const v1::PlanValidation& v) {
  if (v.layers_size() != plan.num_layers) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "the validation lists %d layers but the plan's model has %d; run the diagnostic on "
        "every layer",
        v.layers_size(), plan.num_layers));
  }
  for (int i = 0; i < v.layers_size(); ++i) {
    const v1::LayerValidation& l = v.layers(i);
    if (l.layer() != i) {
      return absl::InvalidArgumentError(
          absl::StrFormat("layers[%d] is layer %d; list layers 0 to %d once each, in order", i,
                          l.layer(), plan.num_layers - 1));
    }
    struct Measure {
      double value;
      const char* name;
      double max;
    };
    constexpr double kUnbounded = std::numeric_limits<double>::infinity();
    for (const Measure& m : {Measure{l.plan_mae(), "plan_mae", kUnbounded},
                             Measure{l.uniform_mae(), "uniform_mae", kUnbounded},
                             Measure{l.plan_kl(), "plan_kl", kUnbounded},
                             Measure{l.uniform_kl(), "uniform_kl", kUnbounded},
                             Measure{l.plan_top10(), "plan_top10", 1.0},
                             Measure{l.uniform_top10(), "uniform_top10", 1.0}}) {
      if (absl::Status st = CheckMeasure(m.value, i, m.name, m.max); !st.ok()) return st;
    }
  }
  return absl::OkStatus();
}

absl::Status CheckProvenance(const v1::PlanValidation& v) {
  if (v.worker_id().empty() || v.worker_id().size() > kMaxWorkerIdChars) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "worker_id must be 1 to %d characters (got %d)", kMaxWorkerIdChars, v.worker_id().size()));
  }
  for (char c : v.worker_id()) {
    if (c < 0x20 || c > 0x7e) {
      return absl::InvalidArgumentError("worker_id must be printable ASCII");
    }
  }
  if (!IsSha256Hex(v.prompt_set_sha256())) {
    return absl::InvalidArgumentError(
        absl::StrFormat("prompt_set_sha256 '%s' is not a lowercase hex SHA-256 of the prompt file",
                        v.prompt_set_sha256()));
  }
  if (v.tokens() == 0 || v.chunk_tokens() <= 0 || v.offsets() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("tokens (%d), chunk_tokens (%d) and offsets (%d) must all be >= 1",
                        v.tokens(), v.chunk_tokens(), v.offsets()));
  }
  return absl::OkStatus();
}

// Equal measurements and provenance (what a retry resends); the coordinator's
// own fields are recomputed and so compared too.
bool SameResult(v1::PlanValidation a, v1::PlanValidation b) {
  a.clear_created_unix();
  a.clear_sequence();
  b.clear_created_unix();
  b.clear_sequence();
  return a.SerializeAsString() == b.SerializeAsString();
}

}  // namespace

absl::Status CheckValidationRule(const ValidationRule& rule) {
  if (rule.min_win_fraction > 0 && rule.min_win_fraction <= 1) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrFormat(
      "the validation rule's min_win_fraction is %g; it must be in (0, 1]", rule.min_win_fraction));
}

absl::Status JudgeValidation(const KvPlan& plan, const ValidationRule& rule,
                             v1::PlanValidation& v) {
  if (absl::Status st = CheckProvenance(v); !st.ok()) return st;
  if (!std::isfinite(v.uniform_k_bits()) || v.uniform_k_bits() != plan.options.k_bits) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "the uniform TQ-MSE baseline ran at %g bits/dim but the plan's K budget is %g; compare "
        "at the same budget",
        v.uniform_k_bits(), plan.options.k_bits));
  }
  if (absl::Status st = CheckLayers(plan, v); !st.ok()) return st;
  if (v.model_fingerprint() != plan.model_fingerprint) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "the diagnostic ran on model fingerprint '%s' but plan %s is for '%s'; validate it on the "
        "plan's checkpoint",
        v.model_fingerprint(), v.plan_id(), plan.model_fingerprint));
  }
  double plan_sum = 0, uniform_sum = 0, reduction_sum = 0;
  int won = 0;
  for (const v1::LayerValidation& l : v.layers()) {
    plan_sum += l.plan_mae();
    uniform_sum += l.uniform_mae();
    reduction_sum += l.uniform_mae() > 0 ? 1.0 - l.plan_mae() / l.uniform_mae() : 0.0;
    won += l.plan_mae() < l.uniform_mae() ? 1 : 0;
  }
  const int layers = v.layers_size();
  const int need = static_cast<int>(std::ceil(rule.min_win_fraction * layers - 1e-9));
  v.set_plan_mae_mean(plan_sum / layers);
  v.set_uniform_mae_mean(uniform_sum / layers);
  v.set_mae_reduction_mean(reduction_sum / layers);
  v.set_layers_won(won);
  v.set_min_win_fraction(rule.min_win_fraction);
  const bool lower_mean = v.plan_mae_mean() < v.uniform_mae_mean();
  v.set_passed(lower_mean && won >= need);
  std::string verdict = absl::StrFormat(
      "%s: mean MAE %.6g vs uniform TQ-MSE %.6g (%.1f%% lower on average per layer), %d/%d "
      "layers won (%d needed)",
      v.passed() ? "pass" : "fail", v.plan_mae_mean(), v.uniform_mae_mean(),
      100 * v.mae_reduction_mean(), won, layers, need);
  if (!lower_mean) verdict += "; the plan's mean MAE is not below uniform's";
  if (won < need) verdict += "; too few layers won";
  v.set_verdict(std::move(verdict));
  return absl::OkStatus();
}

absl::StatusOr<std::optional<v1::PlanValidation>> LatestValidation(const Store& store,
                                                                   std::string_view plan_id) {
  if (!IsSha256Hex(plan_id)) return std::nullopt;
  const std::string prefix = ValidationPrefix(plan_id);
  absl::StatusOr<std::optional<std::string>> key = store.LastKey(Family::kPlanValidations, prefix);
  if (!key.ok()) return key.status();
  if (!key->has_value()) return std::nullopt;
  absl::StatusOr<std::optional<std::string>> bytes = store.Get(Family::kPlanValidations, **key);
  if (!bytes.ok()) return bytes.status();
  v1::PlanValidation v;
  if (!bytes->has_value() || !v.ParseFromString(**bytes)) {
    return absl::DataLossError(absl::StrFormat("plan_validations/%s#%d is missing or corrupt",
                                               std::string(plan_id), DecodeBe64Suffix(**key)));
  }
  return v;
}

absl::StatusOr<v1::AttachValidationResponse> ValidationRegistry::Attach(
    const v1::AttachValidationRequest& request) {
  v1::PlanValidation v = request.validation();
  absl::StatusOr<KvPlan> plan = LoadPlan(*store_, v.plan_id());
  if (!plan.ok()) return plan.status();
  if (absl::Status st = JudgeValidation(*plan, rule_, v); !st.ok()) return st;

  absl::MutexLock lock(&write_mu_);
  absl::StatusOr<std::optional<v1::PlanValidation>> latest = LatestValidation(*store_, v.plan_id());
  if (!latest.ok()) return latest.status();
  v1::AttachValidationResponse response;
  if (latest->has_value() && SameResult(**latest, v)) {
    *response.mutable_validation() = **latest;
    response.set_created(false);
    return response;
  }
  v.set_sequence(latest->has_value() ? (*latest)->sequence() + 1 : 1);
  v.set_created_unix(clock_());
  Store::Batch batch;
  batch.Put(Family::kPlanValidations, ValidationPrefix(v.plan_id()) + EncodeBe64(v.sequence()),
            v.SerializeAsString());
  if (absl::Status st = store_->Commit(batch); !st.ok()) return st;
  *response.mutable_validation() = std::move(v);
  response.set_created(true);
  return response;
}

absl::StatusOr<v1::ListValidationsResponse> ValidationRegistry::List(
    std::string_view plan_id) const {
  if (absl::StatusOr<KvPlan> plan = LoadPlan(*store_, plan_id); !plan.ok()) return plan.status();
  v1::ListValidationsResponse response;
  absl::Status st = store_->ScanRecords(
      Family::kPlanValidations, ValidationPrefix(plan_id), "",
      [&](std::string_view key, std::string_view value) -> absl::StatusOr<bool> {
        if (!response.add_validations()->ParseFromString(std::string(value))) {
          return absl::DataLossError(
              absl::StrFormat("plan_validations/%s#%d: stored record is corrupt",
                              std::string(plan_id), DecodeBe64Suffix(key)));
        }
        return true;
      });
  if (!st.ok()) return st;
  return response;
}

}  // namespace kvplan::server
