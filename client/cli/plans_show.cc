#include "client/cli/plans_show.h"

#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "client/cli/flags.h"
#include "core/plan.h"
#include "kvplan/v1/plan_service.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "proto/validation_format.h"

namespace kvplan::cli {
namespace {

absl::StatusOr<v1::GetPlanRequest> Selector(const Flags& flags) {
  v1::GetPlanRequest request;
  if (flags.Has("id")) {
    request.set_plan_id(*flags.Get("id"));
    return request;
  }
  if (!flags.Has("model")) {
    return absl::InvalidArgumentError(
        "pass --id DIGEST, --model M --channel C, or --model M [--name N] [--version V]");
  }
  if (flags.Has("channel")) {
    request.mutable_channel()->set_model_id(*flags.Get("model"));
    request.mutable_channel()->set_channel(*flags.Get("channel"));
    return request;
  }
  absl::StatusOr<int64_t> version = flags.Int("version", 0);
  if (!version.ok()) return version.status();
  if (*version < 0) {
    return absl::InvalidArgumentError("--version must be >= 1 (0 or absent: latest)");
  }
  request.mutable_version()->set_model_id(*flags.Get("model"));
  request.mutable_version()->set_name(flags.Get("name").value_or(""));
  request.mutable_version()->set_version(static_cast<uint64_t>(*version));
  return request;
}

std::string Summary(const v1::PlanValidation& v) {
  return absl::StrFormat(
      "#%d by %s at %s, %d tokens of prompts %s: %s", v.sequence(), v.worker_id(),
      absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(v.created_unix()),
                       absl::UTCTimeZone()),
      v.tokens(), v.prompt_set_sha256().substr(0, 12), v.verdict());
}

}  // namespace

absl::Status ShowPlan(const CoordinatorConnection& c, const std::vector<std::string>& args,
                      std::ostream& out) {
  absl::StatusOr<Flags> flags = Flags::Parse(
      args, {.values = {"id", "model", "name", "version", "channel"}, .switches = {"json"}});
  if (!flags.ok()) return flags.status();
  absl::StatusOr<v1::GetPlanRequest> request = Selector(*flags);
  if (!request.ok()) return request.status();
  auto stub = v1::PlanService::NewStub(c.channel());
  v1::GetPlanResponse plan;
  if (absl::Status st = FromGrpc(stub->GetPlan(c.NewContext().get(), *request, &plan)); !st.ok()) {
    return st;
  }
  v1::ListValidationsRequest list;
  list.set_plan_id(plan.version().plan_id());
  v1::ListValidationsResponse validations;
  if (absl::Status st = FromGrpc(stub->ListValidations(c.NewContext().get(), list, &validations));
      !st.ok()) {
    return st;
  }
  if (flags->Has("json")) {
    nlohmann::ordered_json json = {
        {"version", nlohmann::ordered_json::parse(MessageToJson(plan.version()))},
        {"validations", nlohmann::ordered_json::array()}};
    for (const v1::PlanValidation& r : validations.validations()) {
      json["validations"].push_back(nlohmann::ordered_json::parse(MessageToJson(r)));
    }
    out << json.dump(2) << "\n";
    return absl::OkStatus();
  }
  const v1::PlanVersion& v = plan.version();
  if (v.model_id().empty()) {
    out << absl::StrFormat("plan %s\n", v.plan_id());
  } else {
    // The plan's own label names what the version record does not carry (exempt
    // layers, K alignment); the record's budget stands in for a plan this build
    // cannot read (another build's codebooks).
    absl::StatusOr<KvPlan> parsed = PlanFromJson(plan.plan_json());
    const std::string budget =
        parsed.ok()
            ? PlanLabel(*parsed)
            : absl::StrFormat(
                  "%s K%gV%d",
                  v.options().k_scheme() == v1::BudgetOptions::UNIFORM ? "uniform" : "block-gtq",
                  v.options().k_bits(), v.options().v_bits());
    out << absl::StrFormat("plan %s: %s/%s v%d, %s, %d calibration tokens\n", v.plan_id(),
                           v.model_id(), v.name(), v.version(), budget, v.tokens());
  }
  if (validations.validations().empty()) {
    out << "no validation results (kvplan-worker validate attaches one)\n";
    return absl::OkStatus();
  }
  out << absl::StrFormat("validations (%d, the latest counts for promotion):\n",
                         validations.validations_size());
  for (const v1::PlanValidation& r : validations.validations()) out << "  " << Summary(r) << "\n";
  out << wire::ValidationLayerTable(*validations.validations().rbegin(), "  ");
  return absl::OkStatus();
}

}  // namespace kvplan::cli
