// RoPE descriptors: how a model's attention head splits into rotary 2-D blocks.
//
// A post-RoPE logit is a sum over 2-D blocks, q·R_δ k = Σ_i q⁽ⁱ⁾ᵀ R(δθ_i) k⁽ⁱ⁾, so
// everything kvplan allocates is indexed by block. `RopeSpec` says which two head
// dimensions form block i and at which angular frequency θ_i it turns, for the
// layouts and frequency scalings that Hugging Face configs express.
//
// Example:
//   absl::StatusOr<RopeSpec> rope = RopeSpecFromHfConfig(config_json);
//   // Llama (split-half, hd 128): block 3 is dims {3, 67}.
//   std::array<int, 2> dims = rope->BlockDims(3);
//   std::vector<double> theta = rope->InvFrequencies();  // 64 values, θ_0 = 1
#ifndef KVPLAN_CORE_ROPE_H_
#define KVPLAN_CORE_ROPE_H_

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "nlohmann/json_fwd.hpp"

namespace kvplan {

// Which dimensions pair up into a rotary block.
enum class RopeStyle {
  // Hugging Face Llama/Qwen/Mistral (`rotate_half`): block i = dims (i, i + rotary_dim/2).
  kSplitHalf,
  // GPT-J, GLM and Meta/llama2.c originals: block i = dims (2i, 2i + 1).
  kInterleaved,
};

enum class RopeScalingType {
  kNone,
  kLinear,  // Position interpolation: θ_i / factor.
  kLlama3,  // Llama 3.1 wavelength-banded scaling.
  kYarn,    // YaRN ramp between interpolation and extrapolation.
};

// Frequency scaling parameters, named as in Hugging Face `rope_scaling`.
struct RopeScaling {
  RopeScalingType type = RopeScalingType::kNone;
  // Context extension factor. Default: 1 (no scaling).
  double factor = 1.0;
  // llama3: wavelength band edges, as multiples of the original context.
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  // llama3 and YaRN: context length the model was trained at.
  int original_max_position_embeddings = 0;
  // YaRN: rotation counts that bound the interpolation ramp.
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  // YaRN: round the ramp bounds outward to whole dimensions. Default: true.
  bool truncate = true;
  // YaRN: multiplier applied to cos/sin (so to q·k by its square). Derived from
  // `factor` when the config does not give `attention_factor`.
  double attention_factor = 1.0;
};

struct RopeSpec {
  RopeStyle style = RopeStyle::kSplitHalf;
  // Dimensions per attention head. Must be even.
  int head_dim = 0;
  // Leading dimensions that rotate; the rest is a static dot product. Must be even,
  // in [2, head_dim]. Default: head_dim (full rotary).
  int rotary_dim = 0;
  // RoPE base θ. Default: 10000.
  double theta = 10000.0;
  RopeScaling scaling;

  // Blocks per head: head_dim / 2. The first rotary_dim/2 rotate; the rest are
  // static pairs (frequency 0) so that every dimension belongs to a block.
  int num_blocks() const { return head_dim / 2; }
  int num_rotary_blocks() const { return rotary_dim / 2; }

  // The two head dimensions of block `block` (0 <= block < num_blocks()).
  std::array<int, 2> BlockDims(int block) const;
  // BlockDims for every block, in block order.
  std::vector<std::array<int, 2>> AllBlockDims() const;

  // Angular frequency θ_i (radians per position) of every block, after scaling;
  // 0 for static blocks. Computed in fp64.
  std::vector<double> InvFrequencies() const;

  // OK when the fields are consistent; otherwise names the bad field.
  absl::Status Validate() const;
};

// Applies RoPE to head vectors, in place, as the model does at a given position:
// each block (a, b) turns by position·θ_i, scaled by YaRN's attention factor where
// the spec has one. Angles are computed in fp64. Thread-safe after construction.
//
// Example:
//   RopeRotator rope(spec);
//   rope.Apply(/*position=*/17, absl::MakeSpan(k_head));  // k_head: head_dim floats
class RopeRotator {
 public:
  explicit RopeRotator(const RopeSpec& spec);
  // `head` holds head_dim values in the model's dimension order. Negative
  // positions rotate backwards (R_{-p} = R_pᵀ when the attention factor is 1).
  void Apply(int64_t position, absl::Span<float> head) const;

 private:
  std::vector<std::array<int, 2>> dims_;
  std::vector<double> inv_freq_;
  double scale_;
};

std::string_view RopeStyleName(RopeStyle style);
std::string_view RopeScalingTypeName(RopeScalingType type);

// Reads the RoPE description from a Hugging Face `config.json` object.
//
// Understands `head_dim` (else hidden_size / num_attention_heads), `rope_theta`,
// transformers-5 `rope_parameters`, `rope_scaling` (`type` or `rope_type`:
// default, linear, llama3, yarn), `partial_rotary_factor` and `rotary_dim`, and
// picks the interleaved style for model types that use it (gptj, chatglm, glm).
// Unsupported scaling types (dynamic, longrope, ...) are refused by name.
absl::StatusOr<RopeSpec> RopeSpecFromHfConfig(const nlohmann::json& config);

// kvplan's own canonical JSON for a RopeSpec (plans and statistics files carry
// it), e.g. {"style": "split-half", "head_dim": 128, "rotary_dim": 128,
// "theta": 500000, "scaling": {"type": "llama3", "factor": 8, ...}}.
nlohmann::json RopeSpecToJson(const RopeSpec& spec);
// Reads RopeSpecToJson's form back; InvalidArgument naming a missing or bad field.
absl::StatusOr<RopeSpec> RopeSpecFromJson(const nlohmann::json& json);

}  // namespace kvplan

#endif  // KVPLAN_CORE_ROPE_H_
