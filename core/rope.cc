#include "core/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"

namespace kvplan {
namespace {

using nlohmann::json;

// Reads a number field if present; InvalidArgument if it has the wrong type.
absl::Status ReadNumber(const json& obj, const char* key, double* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_number()) {
    return absl::InvalidArgumentError(
        absl::StrCat("config field '", key, "' must be a number, got ", it->dump()));
  }
  *out = it->get<double>();
  return absl::OkStatus();
}

absl::Status ReadInt(const json& obj, const char* key, int* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_number_integer()) {
    return absl::InvalidArgumentError(
        absl::StrCat("config field '", key, "' must be an integer, got ", it->dump()));
  }
  *out = it->get<int>();
  return absl::OkStatus();
}

// A string field, or "" when absent or not a string (callers name the problem).
std::string StringField(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : "";
}

// YaRN's attention scale for a context extension `scale` (Hugging Face get_mscale).
double YarnMscale(double scale, double mscale) {
  return scale <= 1.0 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0;
}

// Fractional dimension index at which a frequency completes `rotations` turns
// over `context` positions.
double YarnCorrectionDim(double rotations, int dim, double base, int context) {
  return dim * std::log(context / (rotations * 2.0 * std::numbers::pi)) / (2.0 * std::log(base));
}

void ApplyLlama3(const RopeScaling& s, std::vector<double>& inv_freq) {
  const double old_context = s.original_max_position_embeddings;
  const double low_freq_wavelen = old_context / s.low_freq_factor;
  const double high_freq_wavelen = old_context / s.high_freq_factor;
  for (double& f : inv_freq) {
    const double wavelen = 2.0 * std::numbers::pi / f;
    if (wavelen < high_freq_wavelen) continue;  // High frequency: unchanged.
    if (wavelen > low_freq_wavelen) {           // Low frequency: interpolated.
      f /= s.factor;
      continue;
    }
    const double smooth =
        (old_context / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
    f = (1.0 - smooth) * f / s.factor + smooth * f;
  }
}

void ApplyYarn(const RopeScaling& s, int rotary_dim, double base, std::vector<double>& inv_freq) {
  double low = YarnCorrectionDim(s.beta_fast, rotary_dim, base, s.original_max_position_embeddings);
  double high =
      YarnCorrectionDim(s.beta_slow, rotary_dim, base, s.original_max_position_embeddings);
  if (s.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, static_cast<double>(rotary_dim - 1));
  if (low == high) high += 0.001;  // Avoid a zero-width ramp.
  for (size_t i = 0; i < inv_freq.size(); ++i) {
    const double ramp = std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0);
    const double extrapolation_weight = 1.0 - ramp;
    const double extrapolated = inv_freq[i];
    const double interpolated = inv_freq[i] / s.factor;
    inv_freq[i] = interpolated * (1.0 - extrapolation_weight) + extrapolated * extrapolation_weight;
  }
}

absl::StatusOr<RopeScaling> ParseScaling(const json& params, const json& config) {
  RopeScaling scaling;
  std::string type = "default";
  for (const char* key : {"rope_type", "type"}) {
    auto it = params.find(key);
    if (it != params.end() && it->is_string()) {
      type = it->get<std::string>();
      break;
    }
  }
  if (type == "default") return scaling;
  if (type == "linear") {
    scaling.type = RopeScalingType::kLinear;
  } else if (type == "llama3") {
    scaling.type = RopeScalingType::kLlama3;
  } else if (type == "yarn") {
    scaling.type = RopeScalingType::kYarn;
  } else {
    return absl::UnimplementedError(
        absl::StrCat("RoPE scaling type '", type,
                     "' is not supported; supported: default, linear, llama3, yarn"));
  }
  absl::Status st = ReadNumber(params, "factor", &scaling.factor);
  if (st.ok()) st = ReadNumber(params, "low_freq_factor", &scaling.low_freq_factor);
  if (st.ok()) st = ReadNumber(params, "high_freq_factor", &scaling.high_freq_factor);
  if (st.ok()) st = ReadNumber(params, "beta_fast", &scaling.beta_fast);
  if (st.ok()) st = ReadNumber(params, "beta_slow", &scaling.beta_slow);
  if (st.ok()) {
    st = ReadInt(config, "max_position_embeddings", &scaling.original_max_position_embeddings);
  }
  if (st.ok()) {
    st = ReadInt(params, "original_max_position_embeddings",
                 &scaling.original_max_position_embeddings);
  }
  if (!st.ok()) return st;
  if (auto it = params.find("truncate"); it != params.end() && it->is_boolean()) {
    scaling.truncate = it->get<bool>();
  }
  if (scaling.type == RopeScalingType::kYarn) {
    double attention_factor = 0.0, mscale = 0.0, mscale_all_dim = 0.0;
    st = ReadNumber(params, "attention_factor", &attention_factor);
    if (st.ok()) st = ReadNumber(params, "mscale", &mscale);
    if (st.ok()) st = ReadNumber(params, "mscale_all_dim", &mscale_all_dim);
    if (!st.ok()) return st;
    if (attention_factor > 0.0) {
      scaling.attention_factor = attention_factor;
    } else if (mscale > 0.0 && mscale_all_dim > 0.0) {
      scaling.attention_factor =
          YarnMscale(scaling.factor, mscale) / YarnMscale(scaling.factor, mscale_all_dim);
    } else {
      scaling.attention_factor = YarnMscale(scaling.factor, 1.0);
    }
  }
  return scaling;
}

}  // namespace

std::array<int, 2> RopeSpec::BlockDims(int block) const {
  const int rotary_blocks = num_rotary_blocks();
  if (block >= rotary_blocks) {  // Static pairs follow the rotary dims in order.
    const int first = rotary_dim + 2 * (block - rotary_blocks);
    return {first, first + 1};
  }
  if (style == RopeStyle::kInterleaved) return {2 * block, 2 * block + 1};
  return {block, block + rotary_blocks};
}

std::vector<std::array<int, 2>> RopeSpec::AllBlockDims() const {
  std::vector<std::array<int, 2>> dims(num_blocks());
  for (int i = 0; i < num_blocks(); ++i) dims[i] = BlockDims(i);
  return dims;
}

std::vector<double> RopeSpec::InvFrequencies() const {
  std::vector<double> inv_freq(num_rotary_blocks());
  for (int i = 0; i < num_rotary_blocks(); ++i) {
    inv_freq[i] = 1.0 / std::pow(theta, 2.0 * i / rotary_dim);
  }
  switch (scaling.type) {
    case RopeScalingType::kNone:
      break;
    case RopeScalingType::kLinear:
      for (double& f : inv_freq) f /= scaling.factor;
      break;
    case RopeScalingType::kLlama3:
      ApplyLlama3(scaling, inv_freq);
      break;
    case RopeScalingType::kYarn:
      ApplyYarn(scaling, rotary_dim, theta, inv_freq);
      break;
  }
  inv_freq.resize(num_blocks(), 0.0);
  return inv_freq;
}

absl::Status RopeSpec::Validate() const {
  if (head_dim <= 0 || head_dim % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("head_dim must be a positive even number, got ", head_dim));
  }
  if (rotary_dim < 2 || rotary_dim > head_dim || rotary_dim % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "rotary_dim must be even and in [2, head_dim=", head_dim, "], got ", rotary_dim));
  }
  if (!(theta > 1.0) || !std::isfinite(theta)) {
    return absl::InvalidArgumentError(absl::StrCat("rope theta must be > 1, got ", theta));
  }
  if (scaling.type != RopeScalingType::kNone) {
    if (!(scaling.factor > 0.0) || !std::isfinite(scaling.factor)) {
      return absl::InvalidArgumentError(
          absl::StrCat("rope scaling factor must be > 0, got ", scaling.factor));
    }
  }
  if (scaling.type == RopeScalingType::kLlama3 || scaling.type == RopeScalingType::kYarn) {
    if (scaling.original_max_position_embeddings <= 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s scaling needs original_max_position_embeddings > 0",
                          RopeScalingTypeName(scaling.type)));
    }
  }
  if (scaling.type == RopeScalingType::kLlama3 &&
      !(scaling.high_freq_factor > scaling.low_freq_factor)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("llama3 scaling needs high_freq_factor (%g) > low_freq_factor (%g)",
                        scaling.high_freq_factor, scaling.low_freq_factor));
  }
  return absl::OkStatus();
}

RopeRotator::RopeRotator(const RopeSpec& spec)
    : dims_(spec.AllBlockDims()),
      inv_freq_(spec.InvFrequencies()),
      scale_(spec.scaling.type == RopeScalingType::kYarn ? spec.scaling.attention_factor : 1.0) {}

void RopeRotator::Apply(int64_t position, absl::Span<float> head) const {
  for (size_t i = 0; i < dims_.size(); ++i) {
    const double angle = static_cast<double>(position) * inv_freq_[i];
    const double c = std::cos(angle) * scale_, s = std::sin(angle) * scale_;
    const double a = head[dims_[i][0]], b = head[dims_[i][1]];
    head[dims_[i][0]] = static_cast<float>(a * c - b * s);
    head[dims_[i][1]] = static_cast<float>(a * s + b * c);
  }
}

std::string_view RopeStyleName(RopeStyle style) {
  return style == RopeStyle::kInterleaved ? "interleaved" : "split-half";
}

std::string_view RopeScalingTypeName(RopeScalingType type) {
  switch (type) {
    case RopeScalingType::kNone:
      return "default";
    case RopeScalingType::kLinear:
      return "linear";
    case RopeScalingType::kLlama3:
      return "llama3";
    case RopeScalingType::kYarn:
      return "yarn";
  }
  return "unknown";
}

json RopeSpecToJson(const RopeSpec& spec) {
  const RopeScaling& s = spec.scaling;
  return {{"style", std::string(RopeStyleName(spec.style))},
          {"head_dim", spec.head_dim},
          {"rotary_dim", spec.rotary_dim},
          {"theta", spec.theta},
          {"scaling",
           {{"type", std::string(RopeScalingTypeName(s.type))},
            {"factor", s.factor},
            {"low_freq_factor", s.low_freq_factor},
            {"high_freq_factor", s.high_freq_factor},
            {"original_max_position_embeddings", s.original_max_position_embeddings},
            {"beta_fast", s.beta_fast},
            {"beta_slow", s.beta_slow},
            {"truncate", s.truncate},
            {"attention_factor", s.attention_factor}}}};
}

absl::StatusOr<RopeSpec> RopeSpecFromJson(const json& in) {
  if (!in.is_object() || !in.contains("scaling") || !in["scaling"].is_object()) {
    return absl::InvalidArgumentError("rope must be an object with a 'scaling' object");
  }
  RopeSpec spec;
  const json& sc = in["scaling"];
  absl::Status st = ReadInt(in, "head_dim", &spec.head_dim);
  if (st.ok()) st = ReadInt(in, "rotary_dim", &spec.rotary_dim);
  if (st.ok()) st = ReadNumber(in, "theta", &spec.theta);
  if (st.ok()) st = ReadNumber(sc, "factor", &spec.scaling.factor);
  if (st.ok()) st = ReadNumber(sc, "low_freq_factor", &spec.scaling.low_freq_factor);
  if (st.ok()) st = ReadNumber(sc, "high_freq_factor", &spec.scaling.high_freq_factor);
  if (st.ok()) {
    st = ReadInt(sc, "original_max_position_embeddings",
                 &spec.scaling.original_max_position_embeddings);
  }
  if (st.ok()) st = ReadNumber(sc, "beta_fast", &spec.scaling.beta_fast);
  if (st.ok()) st = ReadNumber(sc, "beta_slow", &spec.scaling.beta_slow);
  if (st.ok()) st = ReadNumber(sc, "attention_factor", &spec.scaling.attention_factor);
  if (!st.ok()) return st;
  if (auto it = sc.find("truncate"); it != sc.end() && it->is_boolean()) {
    spec.scaling.truncate = it->get<bool>();
  }
  const std::string style = StringField(in, "style");
  if (style == "split-half") {
    spec.style = RopeStyle::kSplitHalf;
  } else if (style == "interleaved") {
    spec.style = RopeStyle::kInterleaved;
  } else {
    return absl::InvalidArgumentError(absl::StrFormat(
        "rope style '%s' is unknown; expected 'split-half' or 'interleaved'", style));
  }
  const std::string type = StringField(sc, "type");
  bool known = false;
  for (RopeScalingType t : {RopeScalingType::kNone, RopeScalingType::kLinear,
                            RopeScalingType::kLlama3, RopeScalingType::kYarn}) {
    if (type == RopeScalingTypeName(t)) {
      spec.scaling.type = t;
      known = true;
    }
  }
  if (!known) {
    return absl::InvalidArgumentError(absl::StrFormat("rope scaling type '%s' is unknown", type));
  }
  if (st = spec.Validate(); !st.ok()) return st;
  return spec;
}

absl::StatusOr<RopeSpec> RopeSpecFromHfConfig(const json& config) {
  if (!config.is_object()) {
    return absl::InvalidArgumentError("model config must be a JSON object");
  }
  RopeSpec spec;
  int hidden = 0, heads = 0;
  absl::Status st = ReadInt(config, "head_dim", &spec.head_dim);
  if (st.ok()) st = ReadInt(config, "hidden_size", &hidden);
  if (st.ok()) st = ReadInt(config, "num_attention_heads", &heads);
  if (!st.ok()) return st;
  if (spec.head_dim == 0) {
    if (hidden <= 0 || heads <= 0 || hidden % heads != 0) {
      return absl::InvalidArgumentError(
          "config has no 'head_dim' and hidden_size / num_attention_heads does not give one");
    }
    spec.head_dim = hidden / heads;
  }

  // transformers 5 keeps theta and scaling in `rope_parameters`; older configs use
  // `rope_theta` and `rope_scaling`.
  const json empty = json::object();
  const json* params = &empty;
  for (const char* key : {"rope_parameters", "rope_scaling"}) {
    auto it = config.find(key);
    if (it != config.end() && it->is_object()) {
      params = &*it;
      break;
    }
  }
  st = ReadNumber(config, "rope_theta", &spec.theta);
  if (st.ok()) st = ReadNumber(*params, "rope_theta", &spec.theta);
  if (!st.ok()) return st;
  absl::StatusOr<RopeScaling> scaling = ParseScaling(*params, config);
  if (!scaling.ok()) return scaling.status();
  spec.scaling = *scaling;

  spec.rotary_dim = spec.head_dim;
  double partial = 1.0;
  st = ReadNumber(config, "partial_rotary_factor", &partial);
  if (st.ok()) st = ReadNumber(*params, "partial_rotary_factor", &partial);
  if (!st.ok()) return st;
  if (partial != 1.0) spec.rotary_dim = static_cast<int>(spec.head_dim * partial);
  st = ReadInt(config, "rotary_dim", &spec.rotary_dim);
  if (!st.ok()) return st;

  if (auto it = config.find("model_type"); it != config.end() && it->is_string()) {
    const std::string type = it->get<std::string>();
    if (type == "gptj" || type == "chatglm" || type == "glm") spec.style = RopeStyle::kInterleaved;
  }
  if (st = spec.Validate(); !st.ok()) return st;
  return spec;
}

}  // namespace kvplan
