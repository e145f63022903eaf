// kvplan --coordinator ADDR plans create|get|show|fetch|list|diff|export.
#include "absl/strings/str_format.h"
#include "client/cli/command_util.h"
#include "client/cli/coordinator_connection.h"
#include "client/cli/plans_show.h"
#include "core/file_io.h"
#include "kvplan/plan_client.h"
#include "kvplan/v1/plan_service.grpc.pb.h"
#include "proto/wire_convert.h"

namespace kvplan::cli {
namespace {

std::string Describe(const v1::PlanVersion& v) {
  const v1::BudgetOptions& o = v.options();
  return absl::StrFormat("%s/%s v%d  %s K%gV%d  id %s", v.model_id(), v.name(), v.version(),
                         o.k_scheme() == v1::BudgetOptions::UNIFORM ? "uniform" : "block-gtq",
                         o.k_bits(), o.v_bits(), v.plan_id());
}

absl::StatusOr<uint64_t> VersionFlag(const Flags& flags) {
  absl::StatusOr<int64_t> v = flags.Int("version", 0);
  if (!v.ok()) return v.status();
  if (*v < 0) return absl::InvalidArgumentError("--version must be >= 1 (0 or absent: latest)");
  return static_cast<uint64_t>(*v);
}

absl::Status Create(const CoordinatorConnection& c, const std::vector<std::string>& args,
                    std::ostream& out) {
  absl::StatusOr<Flags> flags = Flags::Parse(
      args,
      {.values = {"model", "stats", "job", "k-bits", "v-bits", "score", "min-bits", "max-bits",
                  "rotation-seed", "name", "exempt-layers", "exempt-bits", "k-group-align"},
       .switches = {"uniform"}});
  if (!flags.ok()) return flags.status();
  v1::CreatePlanRequest request;
  absl::StatusOr<std::string> model = flags->String("model");
  if (!model.ok()) return model.status();
  request.set_model_id(*model);
  request.set_name(flags->Get("name").value_or(""));
  if (flags->Has("stats") == flags->Has("job")) {
    return absl::InvalidArgumentError(
        "pass exactly one of --stats FILE or --job ID (a succeeded calibration job)");
  }
  absl::StatusOr<double> k_bits = flags->Double("k-bits");
  if (!k_bits.ok()) return k_bits.status();
  absl::StatusOr<double> v_bits = flags->Double("v-bits");
  if (!v_bits.ok()) return v_bits.status();
  if (*v_bits != static_cast<int>(*v_bits)) {
    return absl::InvalidArgumentError("--v-bits must be a whole number (V is uniform TQ-MSE)");
  }
  absl::StatusOr<ScoreKind> score = ScoreFlag(*flags);
  if (!score.ok()) return score.status();
  absl::StatusOr<AllocationOptions> range = BitRangeFlags(*flags);
  if (!range.ok()) return range.status();
  absl::StatusOr<int64_t> seed = flags->Int("rotation-seed", 0);
  if (!seed.ok()) return seed.status();
  absl::StatusOr<ExemptLayers> exempt = ExemptLayerFlags(*flags);
  if (!exempt.ok()) return exempt.status();
  request.mutable_exempt_layers()->Add(exempt->layers.begin(), exempt->layers.end());
  if (!exempt->layers.empty()) request.set_exempt_bits(exempt->bits);
  absl::StatusOr<int> align = KGroupAlignFlag(*flags);
  if (!align.ok()) return align.status();
  request.set_k_group_align(*align);
  v1::BudgetOptions* o = request.mutable_options();
  o->set_k_scheme(flags->Has("uniform") ? v1::BudgetOptions::UNIFORM
                                        : v1::BudgetOptions::BLOCK_GTQ);
  o->set_k_bits(*k_bits);
  o->set_v_bits(static_cast<int>(*v_bits));
  o->set_score(wire::ScoreToProto(*score));
  o->set_min_bits(range->min_bits);
  o->set_max_bits(range->max_bits);
  o->set_rotation_seed(static_cast<uint64_t>(*seed));
  if (flags->Has("job")) {
    request.set_job_id(*flags->Get("job"));
  } else {
    const std::string stats_path = *flags->Get("stats");
    absl::StatusOr<std::string> bytes = ReadFile(stats_path);
    if (!bytes.ok()) return bytes.status();
    request.set_stats(*std::move(bytes));
    request.set_source(stats_path);
  }
  v1::CreatePlanResponse response;
  auto stub = v1::PlanService::NewStub(c.channel());
  if (absl::Status st = FromGrpc(stub->CreatePlan(c.NewContext().get(), request, &response));
      !st.ok()) {
    return st;
  }
  out << (response.created() ? "created " : "unchanged (same content as the latest) ")
      << Describe(response.version()) << "\n";
  return absl::OkStatus();
}

absl::Status Get(const CoordinatorConnection& c, const std::vector<std::string>& args,
                 std::ostream& out) {
  absl::StatusOr<Flags> flags =
      Flags::Parse(args, {.values = {"id", "model", "name", "version", "channel", "out"}});
  if (!flags.ok()) return flags.status();
  v1::GetPlanRequest request;
  if (flags->Has("id")) {
    request.set_plan_id(*flags->Get("id"));
  } else {
    absl::StatusOr<std::string> model = flags->String("model");
    if (!model.ok()) {
      return absl::InvalidArgumentError(
          "pass --id DIGEST, --model M --channel C, or --model M [--name N] [--version V]");
    }
    if (flags->Has("channel")) {
      request.mutable_channel()->set_model_id(*model);
      request.mutable_channel()->set_channel(*flags->Get("channel"));
    } else {
      absl::StatusOr<uint64_t> version = VersionFlag(*flags);
      if (!version.ok()) return version.status();
      request.mutable_version()->set_model_id(*model);
      request.mutable_version()->set_name(flags->Get("name").value_or(""));
      request.mutable_version()->set_version(*version);
    }
  }
  v1::GetPlanResponse response;
  auto stub = v1::PlanService::NewStub(c.channel());
  if (absl::Status st = FromGrpc(stub->GetPlan(c.NewContext().get(), request, &response));
      !st.ok()) {
    return st;
  }
  if (flags->Has("out")) {
    if (absl::Status st = WriteFileAtomically(*flags->Get("out"), response.plan_json()); !st.ok()) {
      return st;
    }
    out << absl::StrFormat("wrote %s: plan %s\n", *flags->Get("out"), response.version().plan_id());
  } else {
    out << response.plan_json() << "\n";
  }
  return absl::OkStatus();
}

// What a serving node does at start, through the same library (libkvplan-client):
// the channel's plan verified against the node's fingerprint and cached, or the
// cached plan when the coordinator is unreachable.
absl::Status Fetch(const CoordinatorConnection& c, const std::vector<std::string>& args,
                   std::ostream& out) {
  absl::StatusOr<Flags> flags = Flags::Parse(
      args, {.values = {"fingerprint", "model", "channel", "cache-dir", "out", "timeout-ms"}});
  if (!flags.ok()) return flags.status();
  absl::StatusOr<std::string> fingerprint = flags->String("fingerprint");
  if (!fingerprint.ok()) return fingerprint.status();
  absl::StatusOr<int64_t> timeout_ms = flags->Int("timeout-ms", 5000);
  if (!timeout_ms.ok()) return timeout_ms.status();
  if (*timeout_ms <= 0) return absl::InvalidArgumentError("--timeout-ms must be positive");
  const client::CoordinatorEndpoint& endpoint = c.endpoint();
  absl::StatusOr<std::unique_ptr<PlanClient>> plan_client =
      PlanClient::Open({.coordinator = endpoint.address,
                        .model_fingerprint = *fingerprint,
                        .model_id = flags->Get("model").value_or(""),
                        .channel = flags->Get("channel").value_or("stable"),
                        .cache_dir = flags->Get("cache-dir").value_or(""),
                        .token_file = endpoint.token_file,
                        .tls_ca_file = endpoint.tls_ca_file,
                        .tls_cert_file = endpoint.tls_cert_file,
                        .tls_key_file = endpoint.tls_key_file,
                        .rpc_timeout = std::chrono::milliseconds(*timeout_ms),
                        .log = [&out](std::string_view line) { out << "note: " << line << "\n"; }});
  if (!plan_client.ok()) return plan_client.status();
  (*plan_client)->Close();
  const std::shared_ptr<const ServedPlan> served = (*plan_client)->Current();
  const std::string summary = absl::StrFormat(
      "plan %s (%s/%s v%d, channel %s) from %s", served->digest, served->model_id,
      served->plan_name, served->version, served->channel, PlanSourceName(served->source));
  if (flags->Has("out")) {
    if (absl::Status st = WriteFileAtomically(*flags->Get("out"), PlanToJson(served->plan));
        !st.ok()) {
      return st;
    }
    out << absl::StrFormat("wrote %s: %s\n", *flags->Get("out"), summary);
  } else {
    out << summary << "\n";
  }
  return absl::OkStatus();
}

absl::Status List(const CoordinatorConnection& c, const std::vector<std::string>& args,
                  std::ostream& out) {
  absl::StatusOr<Flags> flags =
      Flags::Parse(args, {.values = {"model", "name"}, .switches = {"json"}});
  if (!flags.ok()) return flags.status();
  absl::StatusOr<std::string> model = flags->String("model");
  if (!model.ok()) return model.status();
  v1::ListPlansRequest request;
  request.set_model_id(*model);
  request.set_name(flags->Get("name").value_or(""));
  v1::ListPlansResponse response;
  auto stub = v1::PlanService::NewStub(c.channel());
  if (absl::Status st = FromGrpc(stub->ListPlans(c.NewContext().get(), request, &response));
      !st.ok()) {
    return st;
  }
  if (flags->Has("json")) {
    out << MessageToJson(response);
    return absl::OkStatus();
  }
  for (const v1::PlanVersion& v : response.versions()) out << Describe(v) << "\n";
  return absl::OkStatus();
}

absl::Status Diff(const CoordinatorConnection& c, const std::vector<std::string>& args,
                  std::ostream& out) {
  absl::StatusOr<Flags> flags =
      Flags::Parse(args, {.values = {"from", "to"}, .switches = {"json"}});
  if (!flags.ok()) return flags.status();
  absl::StatusOr<std::string> from = flags->String("from");
  if (!from.ok()) return from.status();
  absl::StatusOr<std::string> to = flags->String("to");
  if (!to.ok()) return to.status();
  v1::DiffPlansRequest request;
  request.set_from_plan_id(*from);
  request.set_to_plan_id(*to);
  v1::DiffPlansResponse response;
  auto stub = v1::PlanService::NewStub(c.channel());
  if (absl::Status st = FromGrpc(stub->DiffPlans(c.NewContext().get(), request, &response));
      !st.ok()) {
    return st;
  }
  if (flags->Has("json")) {
    out << MessageToJson(response);
    return absl::OkStatus();
  }
  out << absl::StrFormat(
      "%d of %d blocks change width; V %d -> %d bits; %.2f -> %.2f bytes/token\n",
      response.blocks_changed(), response.total_blocks(), response.from_v_bits(),
      response.to_v_bits(), response.from_bytes_per_token(), response.to_bytes_per_token());
  for (const v1::HeadDiff& h : response.heads()) {
    std::string from_bits, to_bits;
    for (int b : h.from_k_bits()) absl::StrAppendFormat(&from_bits, "%d", b);
    for (int b : h.to_k_bits()) absl::StrAppendFormat(&to_bits, "%d", b);
    out << absl::StrFormat("  %d.%d  %s -> %s  (%d blocks)\n", h.layer(), h.kv_head(), from_bits,
                           to_bits, h.blocks_changed());
  }
  return absl::OkStatus();
}

absl::Status Export(const CoordinatorConnection& c, const std::vector<std::string>& args,
                    std::ostream& out) {
  absl::StatusOr<Flags> flags = Flags::Parse(args, {.values = {"id", "out", "sidecar"}});
  if (!flags.ok()) return flags.status();
  absl::StatusOr<std::string> id = flags->String("id");
  if (!id.ok()) return id.status();
  absl::StatusOr<std::string> out_path = flags->String("out");
  if (!out_path.ok()) return out_path.status();
  v1::ExportPlanRequest request;
  request.set_plan_id(*id);
  v1::ExportPlanResponse response;
  auto stub = v1::PlanService::NewStub(c.channel());
  if (absl::Status st = FromGrpc(stub->ExportPlan(c.NewContext().get(), request, &response));
      !st.ok()) {
    return st;
  }
  if (absl::Status st = WriteFileAtomically(*out_path, response.plan_json()); !st.ok()) return st;
  out << absl::StrFormat("wrote %s\n", *out_path);
  if (flags->Has("sidecar")) {
    if (absl::Status st = WriteFileAtomically(*flags->Get("sidecar"), response.sidecar());
        !st.ok()) {
      return st;
    }
    out << absl::StrFormat("wrote %s (%d bytes)\n", *flags->Get("sidecar"),
                           response.sidecar().size());
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RunPlansNoun(const CoordinatorConnection& c, const std::vector<std::string>& args,
                          std::ostream& out) {
  const std::string verb = args.empty() ? "" : args[0];
  const std::vector<std::string> rest(args.empty() ? args.end() : args.begin() + 1, args.end());
  if (verb == "create") return Create(c, rest, out);
  if (verb == "get") return Get(c, rest, out);
  if (verb == "show") return ShowPlan(c, rest, out);
  if (verb == "fetch") return Fetch(c, rest, out);
  if (verb == "list") return List(c, rest, out);
  if (verb == "diff") return Diff(c, rest, out);
  if (verb == "export") return Export(c, rest, out);
  return absl::InvalidArgumentError(
      "plans: expected create, get, show, fetch, list, diff or export (see kvplan help)");
}

}  // namespace kvplan::cli
