// kvplan --coordinator ADDR models register|get|list.
#include "absl/strings/str_format.h"
#include "client/cli/command_util.h"
#include "client/cli/coordinator_connection.h"
#include "core/calibration_file.h"
#include "core/file_io.h"
#include "kvplan/v1/model_service.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "proto/wire_convert.h"

namespace kvplan::cli {
namespace {

int JsonInt(const nlohmann::json& config, const char* key, int fallback) {
  auto it = config.find(key);
  return it != config.end() && it->is_number_integer() ? it->get<int>() : fallback;
}

// The architecture from a Hugging Face config.json.
absl::StatusOr<v1::ModelArchitecture> ArchitectureFromConfig(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return text.status();
  const nlohmann::json config = nlohmann::json::parse(*text, nullptr, false);
  if (config.is_discarded() || !config.is_object()) {
    return absl::InvalidArgumentError(absl::StrFormat("%s is not a JSON object", path));
  }
  absl::StatusOr<RopeSpec> rope = RopeSpecFromHfConfig(config);
  if (!rope.ok()) return AnnotateWithPath(rope.status(), path);
  v1::ModelArchitecture arch;
  arch.set_num_layers(JsonInt(config, "num_hidden_layers", 0));
  arch.set_num_q_heads(JsonInt(config, "num_attention_heads", 0));
  arch.set_num_kv_heads(JsonInt(config, "num_key_value_heads", arch.num_q_heads()));
  arch.set_head_dim(rope->head_dim);
  *arch.mutable_rope() = wire::RopeSpecToProto(*rope);
  auto archs = config.find("architectures");
  if (archs != config.end() && archs->is_array() && !archs->empty() && (*archs)[0].is_string()) {
    arch.set_architecture((*archs)[0].get<std::string>());
  }
  return arch;
}

// The architecture and fingerprint a calibration file carries.
absl::Status FromCalibrationFile(const std::string& path, v1::RegisterModelRequest* request) {
  absl::StatusOr<std::string> bytes = ReadFile(path);
  if (!bytes.ok()) return bytes.status();
  absl::StatusOr<CalibrationFile> file = ParseCalibrationFile(*bytes);
  if (!file.ok()) return AnnotateWithPath(file.status(), path);
  v1::ModelArchitecture* arch = request->mutable_architecture();
  arch->set_num_layers(file->stats.shape().num_layers);
  arch->set_num_kv_heads(file->stats.shape().num_kv_heads);
  arch->set_num_q_heads(file->num_q_heads);
  arch->set_head_dim(file->rope.head_dim);
  arch->set_architecture(file->architecture);
  *arch->mutable_rope() = wire::RopeSpecToProto(file->rope);
  if (request->fingerprint().empty()) request->set_fingerprint(file->model_fingerprint);
  return absl::OkStatus();
}

void PrintModel(const v1::Model& m, std::ostream& out) {
  const v1::ModelArchitecture& a = m.architecture();
  out << absl::StrFormat("%-24s %-18s %3d layers  %3d q / %3d kv heads  hd %4d  %s\n", m.model_id(),
                         m.fingerprint().substr(0, 16), a.num_layers(), a.num_q_heads(),
                         a.num_kv_heads(), a.head_dim(), a.architecture());
}

absl::Status Register(const CoordinatorConnection& c, const std::vector<std::string>& args,
                      std::ostream& out) {
  absl::StatusOr<Flags> flags =
      Flags::Parse(args, {.values = {"model-config", "calibration", "fingerprint", "name"}});
  if (!flags.ok()) return flags.status();
  v1::RegisterModelRequest request;
  request.set_model_id(flags->Get("name").value_or(""));
  request.set_fingerprint(flags->Get("fingerprint").value_or(""));
  if (flags->Has("calibration") == flags->Has("model-config")) {
    return absl::InvalidArgumentError(
        "pass exactly one of --model-config config.json (with --fingerprint) or --calibration "
        "FILE");
  }
  if (flags->Has("calibration")) {
    if (absl::Status st = FromCalibrationFile(*flags->Get("calibration"), &request); !st.ok()) {
      return st;
    }
  } else {
    if (request.fingerprint().empty()) {
      return absl::InvalidArgumentError(
          "--fingerprint is required with --model-config (kvplan-worker prints it)");
    }
    absl::StatusOr<v1::ModelArchitecture> arch =
        ArchitectureFromConfig(*flags->Get("model-config"));
    if (!arch.ok()) return arch.status();
    *request.mutable_architecture() = *std::move(arch);
  }
  v1::RegisterModelResponse response;
  auto stub = v1::ModelService::NewStub(c.channel());
  if (absl::Status st = FromGrpc(stub->RegisterModel(c.NewContext().get(), request, &response));
      !st.ok()) {
    return st;
  }
  out << (response.created() ? "registered " : "already registered ");
  PrintModel(response.model(), out);
  return absl::OkStatus();
}

absl::Status List(const CoordinatorConnection& c, const std::vector<std::string>& args,
                  std::ostream& out) {
  absl::StatusOr<Flags> flags = Flags::Parse(args, {.switches = {"json"}});
  if (!flags.ok()) return flags.status();
  v1::ListModelsResponse response;
  auto stub = v1::ModelService::NewStub(c.channel());
  if (absl::Status st =
          FromGrpc(stub->ListModels(c.NewContext().get(), v1::ListModelsRequest(), &response));
      !st.ok()) {
    return st;
  }
  if (flags->Has("json")) {
    out << MessageToJson(response);
    return absl::OkStatus();
  }
  for (const v1::Model& m : response.models()) PrintModel(m, out);
  return absl::OkStatus();
}

absl::Status Get(const CoordinatorConnection& c, const std::vector<std::string>& args,
                 std::ostream& out) {
  absl::StatusOr<Flags> flags = Flags::Parse(args, {.values = {"model"}});
  if (!flags.ok()) return flags.status();
  absl::StatusOr<std::string> id = flags->String("model");
  if (!id.ok()) return id.status();
  v1::GetModelRequest request;
  request.set_model_id(*id);
  v1::Model model;
  auto stub = v1::ModelService::NewStub(c.channel());
  if (absl::Status st = FromGrpc(stub->GetModel(c.NewContext().get(), request, &model)); !st.ok()) {
    return st;
  }
  out << MessageToJson(model);
  return absl::OkStatus();
}

}  // namespace

absl::Status RunModelsNoun(const CoordinatorConnection& c, const std::vector<std::string>& args,
                           std::ostream& out) {
  const std::string verb = args.empty() ? "" : args[0];
  const std::vector<std::string> rest(args.empty() ? args.end() : args.begin() + 1, args.end());
  if (verb == "register") return Register(c, rest, out);
  if (verb == "list") return List(c, rest, out);
  if (verb == "get") return Get(c, rest, out);
  return absl::InvalidArgumentError("models: expected register, get or list (see kvplan help)");
}

}  // namespace kvplan::cli
