#include "core/plan_sidecar.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "absl/strings/str_format.h"
#include "core/byte_io.h"
#include "core/digest.h"

namespace kvplan {
namespace {

constexpr char kMagic[4] = {'K', 'V', 'P', 'B'};
// 3 added the exempt layers; 2 is refused (see the header).
constexpr uint32_t kVersion = 3;
constexpr size_t kHashBytes = 64;

absl::Status Truncated(const char* part) {
  return absl::DataLossError(absl::StrFormat("plan sidecar truncated in %s", part));
}

void AppendDouble(std::string& out, double value) {
  AppendLittleEndian(out, std::bit_cast<uint64_t>(value), 8);
}

bool ReadDouble(ByteReader& r, double* value) {
  uint64_t bits = 0;
  if (!r.LittleEndian(8, &bits)) return false;
  *value = std::bit_cast<double>(bits);
  return true;
}

// The grammar's `rope` (the enum codes are the sidecar's own, not the C++ enums',
// so reordering an enum cannot change the format).
void AppendRope(std::string& out, const RopeSpec& rope) {
  AppendLittleEndian(out, rope.style == RopeStyle::kInterleaved ? 1 : 0, 1);
  AppendLittleEndian(out, static_cast<uint64_t>(rope.rotary_dim), 2);
  AppendDouble(out, rope.theta);
  const RopeScaling& s = rope.scaling;
  int type = 0;
  switch (s.type) {
    case RopeScalingType::kNone:
      type = 0;
      break;
    case RopeScalingType::kLinear:
      type = 1;
      break;
    case RopeScalingType::kLlama3:
      type = 2;
      break;
    case RopeScalingType::kYarn:
      type = 3;
      break;
  }
  AppendLittleEndian(out, static_cast<uint64_t>(type), 1);
  AppendDouble(out, s.factor);
  AppendDouble(out, s.low_freq_factor);
  AppendDouble(out, s.high_freq_factor);
  AppendLittleEndian(out, static_cast<uint64_t>(s.original_max_position_embeddings), 4);
  AppendDouble(out, s.beta_fast);
  AppendDouble(out, s.beta_slow);
  AppendLittleEndian(out, s.truncate ? 1 : 0, 1);
  AppendDouble(out, s.attention_factor);
}

absl::StatusOr<RopeSpec> ReadRope(ByteReader& r, int head_dim) {
  uint64_t style = 0, rotary_dim = 0, type = 0, original = 0, truncate = 0;
  RopeSpec rope;
  RopeScaling& s = rope.scaling;
  if (!r.LittleEndian(1, &style) || !r.LittleEndian(2, &rotary_dim) ||
      !ReadDouble(r, &rope.theta) || !r.LittleEndian(1, &type) || !ReadDouble(r, &s.factor) ||
      !ReadDouble(r, &s.low_freq_factor) || !ReadDouble(r, &s.high_freq_factor) ||
      !r.LittleEndian(4, &original) || !ReadDouble(r, &s.beta_fast) ||
      !ReadDouble(r, &s.beta_slow) || !r.LittleEndian(1, &truncate) ||
      !ReadDouble(r, &s.attention_factor)) {
    return Truncated("rope");
  }
  if (style > 1 || type > 3 || truncate > 1) {
    return absl::DataLossError(
        absl::StrFormat("plan sidecar rope has unknown codes (style %d, scaling %d, truncate %d)",
                        style, type, truncate));
  }
  constexpr RopeScalingType kTypes[] = {RopeScalingType::kNone, RopeScalingType::kLinear,
                                        RopeScalingType::kLlama3, RopeScalingType::kYarn};
  rope.style = style == 1 ? RopeStyle::kInterleaved : RopeStyle::kSplitHalf;
  rope.head_dim = head_dim;
  rope.rotary_dim = static_cast<int>(rotary_dim);
  s.type = kTypes[type];
  s.original_max_position_embeddings = static_cast<int>(original);
  s.truncate = truncate == 1;
  if (absl::Status st = rope.Validate(); !st.ok()) {
    return absl::DataLossError(absl::StrFormat("plan sidecar rope is invalid: %s", st.message()));
  }
  return rope;
}

// A map of small keys (dimension, width) to content hashes:
// u16:count (u16:key 64 ASCII bytes)*.
void AppendHashes(std::string& out, const std::map<int, std::string>& hashes) {
  AppendLittleEndian(out, hashes.size(), 2);
  for (const auto& [key, hash] : hashes) {
    AppendLittleEndian(out, static_cast<uint64_t>(key), 2);
    out += hash;
  }
}

absl::Status ReadHashes(ByteReader& r, const char* part, std::map<int, std::string>& hashes) {
  uint64_t count = 0;
  if (!r.LittleEndian(2, &count)) return Truncated(part);
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t key = 0;
    std::string_view text;
    if (!r.LittleEndian(2, &key) || !r.Take(kHashBytes, &text)) return Truncated(part);
    hashes[static_cast<int>(key)] = std::string(text);
  }
  return absl::OkStatus();
}

}  // namespace

int PlanSidecar::VBits(int layer) const {
  return std::binary_search(exempt_layers.begin(), exempt_layers.end(), layer) ? exempt_bits
                                                                               : v_bits;
}

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
  AppendRope(out, plan.rope);
  for (const std::vector<int>& head : plan.k_block_bits) {
    for (int bits : head) AppendLittleEndian(out, static_cast<uint64_t>(bits), 1);
  }
  AppendLittleEndian(out, static_cast<uint64_t>(plan.options.exempt_bits), 1);
  AppendLittleEndian(out, plan.options.exempt_layers.size(), 2);
  for (int layer : plan.options.exempt_layers) {
    AppendLittleEndian(out, static_cast<uint64_t>(layer), 2);
  }
  AppendHashes(out, plan.rotation_hashes);
  AppendHashes(out, plan.codebook_hashes);
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
        "plan sidecar version %d is not supported (this build reads %d); export the plan again "
        "with this build's coordinator (kvplan plans export --sidecar)",
        version, kVersion));
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
  absl::StatusOr<RopeSpec> rope = ReadRope(r, out.head_dim);
  if (!rope.ok()) return rope.status();
  out.rope = *rope;
  out.k_block_bits.resize(layers * heads);
  for (std::vector<int>& head : out.k_block_bits) {
    head.resize(head_dim / 2);
    for (int& bits : head) {
      uint64_t b = 0;
      if (!r.LittleEndian(1, &b)) return Truncated("block bits");
      bits = static_cast<int>(b);
    }
  }
  uint64_t exempt_bits = 0, exempt_count = 0;
  if (!r.LittleEndian(1, &exempt_bits) || !r.LittleEndian(2, &exempt_count)) {
    return Truncated("exempt layers");
  }
  out.exempt_bits = static_cast<int>(exempt_bits);
  for (uint64_t i = 0; i < exempt_count; ++i) {
    uint64_t layer = 0;
    if (!r.LittleEndian(2, &layer)) return Truncated("exempt layers");
    out.exempt_layers.push_back(static_cast<int>(layer));
  }
  PlanOptions exempt{.exempt_layers = out.exempt_layers, .exempt_bits = out.exempt_bits};
  if (absl::Status st = ValidateExemptLayers(exempt, out.num_layers); !st.ok()) {
    return absl::DataLossError(
        absl::StrFormat("plan sidecar exempt layers are invalid: %s", st.message()));
  }
  if (absl::Status st = ReadHashes(r, "rotations", out.rotation_hashes); !st.ok()) return st;
  if (absl::Status st = ReadHashes(r, "codebooks", out.codebook_hashes); !st.ok()) return st;
  if (!r.done()) return absl::DataLossError("plan sidecar has trailing bytes before its checksum");
  return out;
}

}  // namespace kvplan
