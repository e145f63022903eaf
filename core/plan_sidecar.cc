#include "core/plan_sidecar.h"

#include <cstring>

#include "absl/strings/str_format.h"
#include "core/byte_io.h"
#include "core/digest.h"

namespace kvplan {
namespace {

constexpr char kMagic[4] = {'K', 'V', 'P', 'B'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHashBytes = 64;

absl::Status Truncated(const char* part) {
  return absl::DataLossError(absl::StrFormat("plan sidecar truncated in %s", part));
}

}  // namespace

std::string PlanToSidecar(const KvPlan& plan) {
  std::string out(kMagic, sizeof(kMagic));
  AppendLittleEndian(out, kVersion, 4);
  out += PlanDigest(plan);
  AppendLittleEndian(out, plan.model_fingerprint.size(), 2);
  out += plan.model_fingerprint;
  AppendLittleEndian(out, static_cast<uint64_t>(plan.num_layers), 2);
  AppendLittleEndian(out, static_cast<uint64_t>(plan.num_kv_heads), 2);
  AppendLittleEndian(out, static_cast<uint64_t>(plan.head_dim), 2);
  AppendLittleEndian(out, static_cast<uint64_t>(plan.options.v_bits), 1);
  AppendLittleEndian(out, plan.options.k_scheme == KScheme::kUniform ? 1 : 0, 1);
  for (const std::vector<int>& head : plan.k_block_bits) {
    for (int bits : head) AppendLittleEndian(out, static_cast<uint64_t>(bits), 1);
  }
  AppendLittleEndian(out, plan.rotation_hashes.size(), 2);
  for (const auto& [dim, hash] : plan.rotation_hashes) {
    AppendLittleEndian(out, static_cast<uint64_t>(dim), 2);
    out += hash;
  }
  out += Sha256Hex(out);
  return out;
}

absl::StatusOr<PlanSidecar> ParsePlanSidecar(std::string_view bytes) {
  if (bytes.size() < sizeof(kMagic) + 4 + kHashBytes ||
      std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0) {
    return absl::DataLossError("not a kvplan plan sidecar (no 'KVPB' header)");
  }
  const std::string_view body = bytes.substr(0, bytes.size() - kHashBytes);
  if (Sha256Hex(body) != bytes.substr(bytes.size() - kHashBytes)) {
    return absl::DataLossError("plan sidecar checksum mismatch: truncated or corrupt");
  }
  ByteReader r(body.substr(sizeof(kMagic)));
  uint64_t version = 0, fp_len = 0, layers = 0, heads = 0, head_dim = 0, v_bits = 0, scheme = 0;
  if (!r.LittleEndian(4, &version)) return Truncated("version");
  if (version != kVersion) {
    return absl::DataLossError(absl::StrFormat(
        "plan sidecar version %d is not supported (this build reads %d)", version, kVersion));
  }
  PlanSidecar out;
  std::string_view text;
  if (!r.Take(kHashBytes, &text)) return Truncated("digest");
  out.digest = std::string(text);
  if (!r.LittleEndian(2, &fp_len) || !r.Take(fp_len, &text)) return Truncated("fingerprint");
  out.model_fingerprint = std::string(text);
  if (!r.LittleEndian(2, &layers) || !r.LittleEndian(2, &heads) || !r.LittleEndian(2, &head_dim) ||
      !r.LittleEndian(1, &v_bits) || !r.LittleEndian(1, &scheme)) {
    return Truncated("shape");
  }
  if (head_dim % 2 != 0 || scheme > 1) {
    return absl::DataLossError(absl::StrFormat(
        "plan sidecar shape is invalid (head_dim %d, k_scheme %d)", head_dim, scheme));
  }
  out.num_layers = static_cast<int>(layers);
  out.num_kv_heads = static_cast<int>(heads);
  out.head_dim = static_cast<int>(head_dim);
  out.v_bits = static_cast<int>(v_bits);
  out.k_scheme = scheme == 1 ? KScheme::kUniform : KScheme::kBlockGtq;
  out.k_block_bits.resize(layers * heads);
  for (std::vector<int>& head : out.k_block_bits) {
    head.resize(head_dim / 2);
    for (int& bits : head) {
      uint64_t b = 0;
      if (!r.LittleEndian(1, &b)) return Truncated("block bits");
      bits = static_cast<int>(b);
    }
  }
  uint64_t rotations = 0;
  if (!r.LittleEndian(2, &rotations)) return Truncated("rotation count");
  for (uint64_t i = 0; i < rotations; ++i) {
    uint64_t dim = 0;
    if (!r.LittleEndian(2, &dim) || !r.Take(kHashBytes, &text)) return Truncated("rotations");
    out.rotation_hashes[static_cast<int>(dim)] = std::string(text);
  }
  if (!r.done()) return absl::DataLossError("plan sidecar has trailing bytes before its checksum");
  return out;
}

}  // namespace kvplan
