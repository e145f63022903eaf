// kvplan --coordinator ADDR channels promote|rollback|history|policy.
#include <optional>

#include "absl/strings/str_format.h"
#include "client/cli/command_util.h"
#include "client/cli/coordinator_connection.h"
#include "kvplan/v1/channel_service.grpc.pb.h"

namespace kvplan::cli {
namespace {

std::string Describe(const v1::ChannelMove& m) {
  auto ref = [](const v1::PlanVersion& v) {
    return v.plan_id().empty()
               ? std::string("(none)")
               : absl::StrFormat("%s v%d (%s)", v.name(), v.version(), v.plan_id().substr(0, 12));
  };
  return absl::StrFormat("#%d %s/%s %s: %s -> %s", m.sequence(), m.model_id(), m.channel(),
                         m.kind() == v1::ChannelMove::ROLLBACK ? "rollback" : "promote",
                         ref(m.from()), ref(m.to()));
}

absl::Status Promote(const CoordinatorConnection& c, const std::vector<std::string>& args,
                     std::ostream& out) {
  absl::StatusOr<Flags> flags = Flags::Parse(
      args,
      {.values = {"model", "channel", "plan", "version"}, .switches = {"require-validation"}});
  if (!flags.ok()) return flags.status();
  v1::PromoteRequest request;
  for (const char* name : {"model", "channel"}) {
    if (absl::StatusOr<std::string> v = flags->String(name); !v.ok()) return v.status();
  }
  request.set_model_id(*flags->Get("model"));
  request.set_channel(*flags->Get("channel"));
  request.set_plan_name(flags->Get("plan").value_or("default"));
  absl::StatusOr<int64_t> version = flags->Int("version", 0);
  if (!version.ok()) return version.status();
  if (*version < 0) return absl::InvalidArgumentError("--version must be >= 1 (absent: latest)");
  request.set_version(static_cast<uint64_t>(*version));
  request.set_require_validation(flags->Has("require-validation"));
  v1::ChannelMove move;
  auto stub = v1::ChannelService::NewStub(c.channel());
  if (absl::Status st = FromGrpc(stub->Promote(c.NewContext().get(), request, &move)); !st.ok()) {
    return st;
  }
  out << Describe(move) << "\n";
  return absl::OkStatus();
}

absl::Status Rollback(const CoordinatorConnection& c, const std::vector<std::string>& args,
                      std::ostream& out) {
  absl::StatusOr<Flags> flags = Flags::Parse(args, {.values = {"model", "channel"}});
  if (!flags.ok()) return flags.status();
  for (const char* name : {"model", "channel"}) {
    if (absl::StatusOr<std::string> v = flags->String(name); !v.ok()) return v.status();
  }
  v1::RollbackRequest request;
  request.set_model_id(*flags->Get("model"));
  request.set_channel(*flags->Get("channel"));
  v1::ChannelMove move;
  auto stub = v1::ChannelService::NewStub(c.channel());
  if (absl::Status st = FromGrpc(stub->Rollback(c.NewContext().get(), request, &move)); !st.ok()) {
    return st;
  }
  out << Describe(move) << "\n";
  return absl::OkStatus();
}

absl::Status History(const CoordinatorConnection& c, const std::vector<std::string>& args,
                     std::ostream& out) {
  absl::StatusOr<Flags> flags =
      Flags::Parse(args, {.values = {"model", "channel"}, .switches = {"json"}});
  if (!flags.ok()) return flags.status();
  absl::StatusOr<std::string> model = flags->String("model");
  if (!model.ok()) return model.status();
  v1::HistoryRequest request;
  request.set_model_id(*model);
  request.set_channel(flags->Get("channel").value_or(""));
  v1::HistoryResponse response;
  auto stub = v1::ChannelService::NewStub(c.channel());
  if (absl::Status st = FromGrpc(stub->History(c.NewContext().get(), request, &response));
      !st.ok()) {
    return st;
  }
  if (flags->Has("json")) {
    out << MessageToJson(response);
    return absl::OkStatus();
  }
  for (const v1::ChannelMove& m : response.moves()) out << Describe(m) << "\n";
  return absl::OkStatus();
}

// Prints the channel's policy; with --require-validation true|false, sets it first.
absl::Status Policy(const CoordinatorConnection& c, const std::vector<std::string>& args,
                    std::ostream& out) {
  absl::StatusOr<Flags> flags = Flags::Parse(
      args, {.values = {"model", "channel", "require-validation"}, .switches = {"json"}});
  if (!flags.ok()) return flags.status();
  for (const char* name : {"model", "channel"}) {
    if (absl::StatusOr<std::string> v = flags->String(name); !v.ok()) return v.status();
  }
  auto stub = v1::ChannelService::NewStub(c.channel());
  v1::ChannelPolicy policy;
  if (std::optional<std::string> require = flags->Get("require-validation")) {
    if (*require != "true" && *require != "false") {
      return absl::InvalidArgumentError(
          absl::StrFormat("--require-validation takes true or false, not '%s'", *require));
    }
    v1::ChannelPolicy request;
    request.set_model_id(*flags->Get("model"));
    request.set_channel(*flags->Get("channel"));
    request.set_require_validation(*require == "true");
    if (absl::Status st = FromGrpc(stub->SetChannelPolicy(c.NewContext().get(), request, &policy));
        !st.ok()) {
      return st;
    }
  } else {
    v1::GetChannelPolicyRequest request;
    request.set_model_id(*flags->Get("model"));
    request.set_channel(*flags->Get("channel"));
    if (absl::Status st = FromGrpc(stub->GetChannelPolicy(c.NewContext().get(), request, &policy));
        !st.ok()) {
      return st;
    }
  }
  if (flags->Has("json")) {
    out << MessageToJson(policy);
    return absl::OkStatus();
  }
  out << absl::StrFormat("%s/%s: promotions %s\n", policy.model_id(), policy.channel(),
                         policy.require_validation() ? "require a passing validation of the plan"
                                                     : "do not require validation");
  return absl::OkStatus();
}

}  // namespace

absl::Status RunChannelsNoun(const CoordinatorConnection& c, const std::vector<std::string>& args,
                             std::ostream& out) {
  const std::string verb = args.empty() ? "" : args[0];
  const std::vector<std::string> rest(args.empty() ? args.end() : args.begin() + 1, args.end());
  if (verb == "promote") return Promote(c, rest, out);
  if (verb == "rollback") return Rollback(c, rest, out);
  if (verb == "history") return History(c, rest, out);
  if (verb == "policy") return Policy(c, rest, out);
  return absl::InvalidArgumentError(
      "channels: expected promote, rollback, history or policy (see kvplan help)");
}

}  // namespace kvplan::cli
