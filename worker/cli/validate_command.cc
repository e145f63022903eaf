// kvplan-worker validate: the paper's fidelity diagnostic of one stored plan
// against uniform TQ-MSE at the same K budget, on this machine's copy of the
// plan's model, attached to the plan on the coordinator
// (PlanService.AttachValidation), whose verdict promotion can require.
// Built only with the wire API (KVPLAN_BUILD_SERVER).
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "client/cli/flags.h"
#include "client/lib/coordinator_connection.h"
#include "core/digest.h"
#include "core/fidelity.h"
#include "core/file_io.h"
#include "core/plan.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/grpcpp.h"
#include "kvplan/v1/plan_service.grpc.pb.h"
#include "proto/validation_format.h"
#include "worker/cli/commands.h"
#include "worker/cli/coordinator_flags.h"
#include "worker/cli/diagnostic_input.h"
#include "worker/cli/runtime_flags.h"
#include "worker/eval/fidelity_diagnostic.h"
#include "worker/model/checkpoint.h"
#include "worker/model/fingerprint.h"
#include "worker/model/transformer.h"
#include "worker/serve/backoff.h"
#include "worker/tokenizer/tokenizer.h"

namespace kvplan::worker_cli {
namespace {

constexpr auto kCallTimeout = std::chrono::seconds(30);

// A coordinator's connection and the calls `validate` makes; each retried on
// UNAVAILABLE / DEADLINE_EXCEEDED (AttachValidation is safe to repeat: the
// coordinator stores an identical result once).
class PlanServiceCalls {
 public:
  PlanServiceCalls(client::CoordinatorConnection connection, std::ostream& err)
      : connection_(std::move(connection)),
        log_([&err](const std::string& line) { err << line << std::flush; }),
        stub_(v1::PlanService::NewStub(connection_.channel())) {}

  absl::StatusOr<v1::GetPlanResponse> GetPlan(const v1::GetPlanRequest& request) {
    v1::GetPlanResponse response;
    absl::Status st = Call(
        "GetPlan", [&](grpc::ClientContext* c) { return stub_->GetPlan(c, request, &response); });
    if (!st.ok()) return st;
    return response;
  }

  absl::StatusOr<v1::AttachValidationResponse> Attach(const v1::PlanValidation& validation) {
    v1::AttachValidationRequest request;
    *request.mutable_validation() = validation;
    v1::AttachValidationResponse response;
    absl::Status st = Call("AttachValidation", [&](grpc::ClientContext* c) {
      return stub_->AttachValidation(c, request, &response);
    });
    if (!st.ok()) return st;
    return response;
  }

 private:
  absl::Status Call(const char* method,
                    const std::function<grpc::Status(grpc::ClientContext*)>& rpc) {
    return serve::RetryTransient(
        {}, method,
        [&]() -> absl::Status {
          // One context per attempt (gRPC forbids reuse), with token and deadline.
          std::unique_ptr<grpc::ClientContext> context = connection_.NewContext(kCallTimeout);
          grpc::Status st = rpc(context.get());
          if (st.ok()) return absl::OkStatus();
          return absl::Status(static_cast<absl::StatusCode>(st.error_code()),
                              absl::StrFormat("%s: %s", method, st.error_message()));
        },
        log_);
  }

  client::CoordinatorConnection connection_;
  std::function<void(const std::string&)> log_;
  std::unique_ptr<v1::PlanService::Stub> stub_;
};

// --plan-id, or --model-id with --channel, or --model-id [--plan-name] [--version].
absl::StatusOr<v1::GetPlanRequest> PlanSelector(const cli::Flags& flags) {
  v1::GetPlanRequest request;
  if (flags.Has("plan-id") == flags.Has("model-id")) {
    return absl::InvalidArgumentError(
        "pass --plan-id DIGEST, or --model-id ID with --channel C or [--plan-name N] "
        "[--version V]");
  }
  if (flags.Has("plan-id")) {
    request.set_plan_id(*flags.Get("plan-id"));
    return request;
  }
  if (flags.Has("channel")) {
    if (flags.Has("plan-name") || flags.Has("version")) {
      return absl::InvalidArgumentError("--channel selects a plan; drop --plan-name/--version");
    }
    request.mutable_channel()->set_model_id(*flags.Get("model-id"));
    request.mutable_channel()->set_channel(*flags.Get("channel"));
    return request;
  }
  absl::StatusOr<int64_t> version = flags.Int("version", 0);
  if (!version.ok()) return version.status();
  if (*version < 0) return absl::InvalidArgumentError("--version must be >= 1 (absent: latest)");
  request.mutable_version()->set_model_id(*flags.Get("model-id"));
  request.mutable_version()->set_name(flags.Get("plan-name").value_or("default"));
  request.mutable_version()->set_version(static_cast<uint64_t>(*version));
  return request;
}

// The stored plan, checked: its content hashes to the id the coordinator
// announced and it is for the checkpoint in `model_dir`.
absl::StatusOr<KvPlan> FetchPlan(PlanServiceCalls& calls, const v1::GetPlanRequest& request,
                                 const std::string& model_dir) {
  absl::StatusOr<v1::GetPlanResponse> response = calls.GetPlan(request);
  if (!response.ok()) return response.status();
  absl::StatusOr<KvPlan> plan = PlanFromJson(response->plan_json());
  if (!plan.ok()) return plan.status();
  if (PlanDigest(*plan) != response->version().plan_id()) {
    return absl::DataLossError(absl::StrFormat("the coordinator sent plan %s for id %s",
                                               PlanDigest(*plan), response->version().plan_id()));
  }
  absl::StatusOr<Checkpoint> checkpoint = Checkpoint::Open(model_dir);
  if (!checkpoint.ok()) return checkpoint.status();
  absl::StatusOr<std::string> fingerprint = ModelFingerprint(*checkpoint);
  if (!fingerprint.ok()) return fingerprint.status();
  if (*fingerprint != plan->model_fingerprint) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "plan %s is for the model with fingerprint %s, but %s has fingerprint %s; pass the "
        "plan's checkpoint",
        response->version().plan_id(), plan->model_fingerprint, model_dir, *fingerprint));
  }
  return plan;
}

v1::PlanValidation ToValidation(const KvPlan& plan, const BudgetFidelity& report,
                                const DiagnosticOptions& options, uint64_t tokens) {
  v1::PlanValidation v;
  v.set_plan_id(PlanDigest(plan));
  v.set_model_fingerprint(plan.model_fingerprint);
  v.set_tokens(tokens);
  v.set_chunk_tokens(options.chunk_tokens);
  v.set_offsets(static_cast<int>(options.offsets.size()));
  v.set_uniform_k_bits(plan.options.k_bits);
  constexpr int kPlan = static_cast<int>(KMethod::kBlockGtq);
  constexpr int kUniform = static_cast<int>(KMethod::kTqMse);
  for (const LayerFidelity& l : report.layers) {
    v1::LayerValidation* layer = v.add_layers();
    layer->set_layer(l.layer);
    layer->set_plan_mae(l.mae[kPlan]);
    layer->set_uniform_mae(l.mae[kUniform]);
    layer->set_plan_kl(l.kl[kPlan]);
    layer->set_uniform_kl(l.kl[kUniform]);
    layer->set_plan_top10(l.top_k[kPlan]);
    layer->set_uniform_top10(l.top_k[kUniform]);
  }
  return v;
}

void PrintTable(const v1::AttachValidationResponse& response, std::ostream& out) {
  const v1::PlanValidation& v = response.validation();
  out << absl::StrFormat("plan %s, K %g b/dim vs uniform TQ-MSE, %d tokens\n", v.plan_id(),
                         v.uniform_k_bits(), v.tokens());
  out << wire::ValidationLayerTable(v, "");
  out << absl::StrFormat("validation #%d %s: %s\n", v.sequence(),
                         response.created() ? "attached" : "already attached", v.verdict());
}

absl::Status Validate(const cli::Flags& flags, std::ostream& out, std::ostream& err) {
  absl::StatusOr<CoordinatorFlagValues> coordinator = CoordinatorFlags(flags);
  if (!coordinator.ok()) return coordinator.status();
  absl::StatusOr<v1::GetPlanRequest> selector = PlanSelector(flags);
  if (!selector.ok()) return selector.status();
  absl::StatusOr<std::string> model_dir = flags.String("model");
  if (!model_dir.ok()) return model_dir.status();
  absl::StatusOr<std::string> prompts_path = flags.String("prompts");
  if (!prompts_path.ok()) return prompts_path.status();
  absl::StatusOr<int64_t> tokens = flags.Int("tokens", 2048);
  if (!tokens.ok()) return tokens.status();
  absl::StatusOr<int64_t> chunk = flags.Int("chunk", 256);
  if (!chunk.ok()) return chunk.status();
  DiagnosticOptions options;
  if (*chunk <= options.first_query || *tokens < *chunk || *tokens % *chunk != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--tokens %d must be a positive multiple of --chunk %d, and chunks longer than %d", *tokens,
        *chunk, options.first_query));
  }
  options.chunk_tokens = static_cast<int>(*chunk);
  options.offsets = DiagnosticOffsets();  // The paper's 50 in [-1024, 1024].
  absl::StatusOr<RuntimeOptions> runtime = RuntimeFlags(flags);
  if (!runtime.ok()) return runtime.status();

  absl::StatusOr<client::CoordinatorConnection> connection =
      client::CoordinatorConnection::Open(coordinator->endpoint);
  if (!connection.ok()) return connection.status();
  PlanServiceCalls calls(*std::move(connection), err);
  absl::StatusOr<KvPlan> plan = FetchPlan(calls, *selector, *model_dir);
  if (!plan.ok()) return plan.status();
  absl::StatusOr<std::string> prompt_bytes = ReadFile(*prompts_path);
  if (!prompt_bytes.ok()) return prompt_bytes.status();
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = LoadTokenizer(*model_dir);
  if (!tokenizer.ok()) return tokenizer.status();
  absl::StatusOr<std::vector<std::vector<int32_t>>> chunks =
      DiagnosticChunks(*prompts_path, **tokenizer, *tokens, *chunk);
  if (!chunks.ok()) return chunks.status();
  absl::StatusOr<CausalLm> lm = CausalLm::Load(*model_dir, *runtime);
  if (!lm.ok()) return lm.status();
  absl::StatusOr<FidelityDiagnostic> diagnostic =
      FidelityDiagnostic::CreateForPlan(*plan, lm->config().num_heads, options);
  if (!diagnostic.ok()) return diagnostic.status();
  absl::StatusOr<std::vector<BudgetFidelity>> report = RunDiagnostic(*lm, *diagnostic, *chunks);
  if (!report.ok()) return report.status();

  v1::PlanValidation validation =
      ToValidation(*plan, report->front(), options, static_cast<uint64_t>(*tokens));
  validation.set_worker_id(coordinator->worker_id);
  validation.set_prompt_set_sha256(Sha256Hex(*prompt_bytes));
  absl::StatusOr<v1::AttachValidationResponse> attached = calls.Attach(validation);
  if (!attached.ok()) return attached.status();
  if (flags.Has("json")) {
    google::protobuf::util::JsonPrintOptions json_options;
    json_options.add_whitespace = true;
    json_options.preserve_proto_field_names = true;
    json_options.always_print_primitive_fields = true;
    std::string json;
    if (!google::protobuf::util::MessageToJsonString(*attached, &json, json_options).ok()) {
      return absl::InternalError("cannot print the validation as JSON");
    }
    out << json;
    return absl::OkStatus();
  }
  PrintTable(*attached, out);
  return absl::OkStatus();
}

}  // namespace

int RunValidate(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  absl::StatusOr<cli::Flags> flags = cli::Flags::Parse(
      args, {.values = {"coordinator", "token-file", "tls-ca", "tls-cert", "tls-key", "worker-id",
                        "plan-id", "model-id", "channel", "plan-name", "version", "model",
                        "prompts", "tokens", "chunk", "device", "dtype"},
             .switches = {"json"}});
  if (!flags.ok()) return ReportStatus(flags.status(), "validate", err);
  return ReportStatus(Validate(*flags, out, err), "validate", err);
}

}  // namespace kvplan::worker_cli
