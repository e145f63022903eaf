#include "worker/model/fingerprint.h"

#include <openssl/evp.h>

#include <memory>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "worker/model/model_config.h"
#include "worker/model/tensor_manifest.h"

namespace kvplan {
namespace {

// Tensors between the residual stream and the RoPE input.
bool ProducesQueryOrKey(const std::string& name) {
  for (const char* part : {"input_layernorm", "q_proj", "k_proj", "q_norm", "k_norm"}) {
    if (name.find(part) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

absl::StatusOr<std::string> ModelFingerprint(const Checkpoint& checkpoint) {
  absl::StatusOr<ModelConfig> config = ModelConfigFromHf(checkpoint.config());
  if (!config.ok()) return config.status();
  if (absl::Status st = CheckTensors(*config, checkpoint); !st.ok()) return st;

  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (ctx == nullptr || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    return absl::InternalError("OpenSSL could not start a SHA-256 digest");
  }
  auto update = [&](const void* data, size_t size) {
    return EVP_DigestUpdate(ctx.get(), data, size) == 1;
  };
  const std::string header =
      absl::StrFormat("kvplan-model-fingerprint-v1\n%s\n%d %d %d %d\n%s\n",
                      ArchitectureName(config->architecture), config->num_layers, config->num_heads,
                      config->num_kv_heads, config->head_dim, RopeSpecToJson(config->rope).dump());
  bool ok = update(header.data(), header.size());
  for (const ExpectedTensor& expected : ExpectedTensors(*config)) {
    if (!ok) break;
    if (!ProducesQueryOrKey(expected.name)) continue;
    const TensorView* view = checkpoint.Find(expected.name);  // Present: CheckTensors passed.
    const std::string line = absl::StrFormat("%s %s %s\n", view->name, view->dtype_name,
                                             absl::StrJoin(view->shape, ","));
    ok = update(line.data(), line.size()) && update(view->bytes.data(), view->bytes.size());
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (!ok || EVP_DigestFinal_ex(ctx.get(), digest, &length) != 1) {
    return absl::InternalError("OpenSSL failed while hashing the model");
  }
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) absl::StrAppendFormat(&hex, "%02x", digest[i]);
  return hex;
}

}  // namespace kvplan
