#include "proto/wire_convert.h"

#include <cmath>

#include "absl/strings/str_format.h"

namespace kvplan::wire {
namespace {

constexpr int kMaxBudgets = 64;

absl::Status CheckBitRange(int min_bits, int max_bits) {
  if (min_bits < 1 || max_bits > 8 || min_bits > max_bits) {
    return absl::InvalidArgumentError(
        absl::StrFormat("bit range [min_bits %d, max_bits %d] must satisfy 1 <= min <= max <= 8",
                        min_bits, max_bits));
  }
  return absl::OkStatus();
}

absl::Status CheckKBits(double k_bits, int min_bits, int max_bits) {
  if (!std::isfinite(k_bits)) {
    return absl::InvalidArgumentError(absl::StrFormat("k_bits %g is not a finite number", k_bits));
  }
  if (k_bits < min_bits || k_bits > max_bits) {
    return absl::OutOfRangeError(absl::StrFormat("k_bits %g is outside [min_bits %d, max_bits %d]",
                                                 k_bits, min_bits, max_bits));
  }
  return absl::OkStatus();
}

absl::Status CheckVBits(int v_bits) {
  if (v_bits < 1 || v_bits > 8) {
    return absl::OutOfRangeError(absl::StrFormat("v_bits %d is outside [1, 8]", v_bits));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateName(std::string_view name, std::string_view what) {
  if (name.empty() || name.size() > 64) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s must be 1 to 64 characters (got %d)", what, name.size()));
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s '%s' has a character outside [A-Za-z0-9._-]", what, std::string(name)));
    }
  }
  return absl::OkStatus();
}

v1::RopeSpec RopeSpecToProto(const RopeSpec& rope) {
  v1::RopeSpec p;
  p.set_style(rope.style == RopeStyle::kInterleaved ? v1::RopeSpec::INTERLEAVED
                                                    : v1::RopeSpec::SPLIT_HALF);
  p.set_head_dim(rope.head_dim);
  p.set_rotary_dim(rope.rotary_dim);
  p.set_theta(rope.theta);
  switch (rope.scaling.type) {
    case RopeScalingType::kNone:
      p.set_scaling_type(v1::RopeSpec::SCALING_NONE);
      break;
    case RopeScalingType::kLinear:
      p.set_scaling_type(v1::RopeSpec::SCALING_LINEAR);
      break;
    case RopeScalingType::kLlama3:
      p.set_scaling_type(v1::RopeSpec::SCALING_LLAMA3);
      break;
    case RopeScalingType::kYarn:
      p.set_scaling_type(v1::RopeSpec::SCALING_YARN);
      break;
  }
  p.set_scaling_factor(rope.scaling.factor);
  p.set_low_freq_factor(rope.scaling.low_freq_factor);
  p.set_high_freq_factor(rope.scaling.high_freq_factor);
  p.set_original_max_position_embeddings(rope.scaling.original_max_position_embeddings);
  p.set_beta_fast(rope.scaling.beta_fast);
  p.set_beta_slow(rope.scaling.beta_slow);
  p.set_truncate(rope.scaling.truncate);
  p.set_attention_factor(rope.scaling.attention_factor);
  return p;
}

absl::StatusOr<RopeSpec> RopeSpecFromProto(const v1::RopeSpec& p) {
  RopeSpec rope;
  rope.style =
      p.style() == v1::RopeSpec::INTERLEAVED ? RopeStyle::kInterleaved : RopeStyle::kSplitHalf;
  rope.head_dim = p.head_dim();
  rope.rotary_dim = p.rotary_dim() == 0 ? p.head_dim() : p.rotary_dim();
  rope.theta = p.theta() == 0 ? 10000.0 : p.theta();
  switch (p.scaling_type()) {
    case v1::RopeSpec::SCALING_LINEAR:
      rope.scaling.type = RopeScalingType::kLinear;
      break;
    case v1::RopeSpec::SCALING_LLAMA3:
      rope.scaling.type = RopeScalingType::kLlama3;
      break;
    case v1::RopeSpec::SCALING_YARN:
      rope.scaling.type = RopeScalingType::kYarn;
      break;
    default:
      rope.scaling.type = RopeScalingType::kNone;
  }
  if (rope.scaling.type != RopeScalingType::kNone) {
    rope.scaling.factor = p.scaling_factor();
    rope.scaling.low_freq_factor = p.low_freq_factor();
    rope.scaling.high_freq_factor = p.high_freq_factor();
    rope.scaling.original_max_position_embeddings = p.original_max_position_embeddings();
    rope.scaling.beta_fast = p.beta_fast();
    rope.scaling.beta_slow = p.beta_slow();
    rope.scaling.truncate = p.truncate();
    rope.scaling.attention_factor = p.attention_factor() == 0 ? 1.0 : p.attention_factor();
  }
  if (absl::Status st = rope.Validate(); !st.ok()) {
    return absl::InvalidArgumentError(absl::StrFormat("rope: %s", std::string(st.message())));
  }
  return rope;
}

absl::Status ValidateArchitecture(const v1::ModelArchitecture& a) {
  auto in = [](int v, int lo, int hi) { return v >= lo && v <= hi; };
  if (!in(a.num_layers(), 1, 1024) || !in(a.num_kv_heads(), 1, 1024) ||
      !in(a.num_q_heads(), 1, 4096) || !in(a.head_dim(), 2, 1024) || a.head_dim() % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "architecture out of range: num_layers %d (1..1024), num_q_heads %d (1..4096), "
        "num_kv_heads %d (1..1024), head_dim %d (even, 2..1024)",
        a.num_layers(), a.num_q_heads(), a.num_kv_heads(), a.head_dim()));
  }
  if (a.num_q_heads() % a.num_kv_heads() != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "num_q_heads %d is not a multiple of num_kv_heads %d", a.num_q_heads(), a.num_kv_heads()));
  }
  if (a.rope().head_dim() != a.head_dim()) {
    return absl::InvalidArgumentError(absl::StrFormat("rope.head_dim %d differs from head_dim %d",
                                                      a.rope().head_dim(), a.head_dim()));
  }
  return RopeSpecFromProto(a.rope()).status();
}

ScoreKind ScoreFromProto(v1::BudgetOptions::Score score) {
  switch (score) {
    case v1::BudgetOptions::SCORE_PRODUCT:
      return ScoreKind::kProduct;
    case v1::BudgetOptions::SCORE_Q:
      return ScoreKind::kQ;
    case v1::BudgetOptions::SCORE_K:
      return ScoreKind::kK;
    default:
      return ScoreKind::kSum;
  }
}

v1::BudgetOptions::Score ScoreToProto(ScoreKind score) {
  switch (score) {
    case ScoreKind::kProduct:
      return v1::BudgetOptions::SCORE_PRODUCT;
    case ScoreKind::kQ:
      return v1::BudgetOptions::SCORE_Q;
    case ScoreKind::kK:
      return v1::BudgetOptions::SCORE_K;
    case ScoreKind::kSum:
      break;
  }
  return v1::BudgetOptions::SCORE_SUM;
}

absl::StatusOr<PlanOptions> PlanOptionsFromProto(const v1::BudgetOptions& p) {
  PlanOptions o;
  o.k_scheme = p.k_scheme() == v1::BudgetOptions::UNIFORM ? KScheme::kUniform : KScheme::kBlockGtq;
  o.min_bits = p.min_bits() == 0 ? 1 : p.min_bits();
  o.max_bits = p.max_bits() == 0 ? 8 : p.max_bits();
  if (absl::Status st = CheckBitRange(o.min_bits, o.max_bits); !st.ok()) return st;
  if (absl::Status st = CheckKBits(p.k_bits(), o.min_bits, o.max_bits); !st.ok()) return st;
  if (absl::Status st = CheckVBits(p.v_bits()); !st.ok()) return st;
  o.k_bits = p.k_bits();
  o.v_bits = p.v_bits();
  o.score = ScoreFromProto(p.score());
  if (p.rotation_seed() != 0) o.rotation_seed = p.rotation_seed();
  return o;
}

v1::BudgetOptions PlanOptionsToProto(const PlanOptions& o) {
  v1::BudgetOptions p;
  p.set_k_scheme(o.k_scheme == KScheme::kUniform ? v1::BudgetOptions::UNIFORM
                                                 : v1::BudgetOptions::BLOCK_GTQ);
  p.set_k_bits(o.k_bits);
  p.set_v_bits(o.v_bits);
  p.set_score(ScoreToProto(o.score));
  p.set_min_bits(o.min_bits);
  p.set_max_bits(o.max_bits);
  p.set_rotation_seed(o.rotation_seed);
  return p;
}

absl::StatusOr<WhatIfRequest> WhatIfRequestFromProto(const v1::WhatIfRequest& p) {
  WhatIfRequest r;
  r.min_bits = p.min_bits() == 0 ? 1 : p.min_bits();
  r.max_bits = p.max_bits() == 0 ? 8 : p.max_bits();
  if (absl::Status st = CheckBitRange(r.min_bits, r.max_bits); !st.ok()) return st;
  if (p.k_bits_size() < 1 || p.k_bits_size() > kMaxBudgets || p.v_bits_size() < 1 ||
      p.v_bits_size() > kMaxBudgets) {
    return absl::InvalidArgumentError(
        absl::StrFormat("what-if needs 1 to %d K budgets and 1 to %d V budgets (got %d and %d)",
                        kMaxBudgets, kMaxBudgets, p.k_bits_size(), p.v_bits_size()));
  }
  for (double k : p.k_bits()) {
    if (absl::Status st = CheckKBits(k, r.min_bits, r.max_bits); !st.ok()) return st;
    r.k_bits.push_back(k);
  }
  for (int v : p.v_bits()) {
    if (absl::Status st = CheckVBits(v); !st.ok()) return st;
    r.v_bits.push_back(v);
  }
  r.score = ScoreFromProto(p.score());
  if (p.context_tokens() < 0 || p.batch() < 0 || p.memory_bytes() < 0) {
    return absl::InvalidArgumentError("context_tokens, batch and memory_bytes must be >= 0");
  }
  if (p.context_tokens() > 0) r.context_tokens = p.context_tokens();
  if (p.batch() > 0) r.batch = p.batch();
  r.memory_bytes = p.memory_bytes();
  // Checked by RunWhatIf against the statistics' head_dim.
  r.k_group_align = p.k_group_align();
  return r;
}

v1::WhatIfRow WhatIfRowToProto(const WhatIfResult& r) {
  v1::WhatIfRow row;
  row.set_k_bits(r.k_bits);
  row.set_v_bits(r.v_bits);
  for (const LayerAllocationSummary& l : r.layers) {
    v1::LayerSummary* s = row.add_layers();
    s->set_layer(l.layer);
    for (int64_t n : l.bit_histogram) s->add_bit_histogram(n);
    s->set_entropy_bits(l.entropy_bits);
    s->set_distortion(l.distortion);
    s->set_uniform_distortion(l.uniform_distortion);
  }
  row.set_k_bytes_per_token_head(r.k_bytes_per_token_head);
  row.set_v_bytes_per_token_head(r.v_bytes_per_token_head);
  row.set_bytes_per_token(r.bytes_per_token);
  row.set_compression_vs_fp16(r.compression_vs_fp16);
  row.set_compression_vs_fp8(r.compression_vs_fp8);
  row.set_kv_bytes_at_context(r.kv_bytes_at_context);
  row.set_max_context_tokens(r.max_context_tokens);
  row.set_distortion_ratio(r.distortion_ratio);
  return row;
}

}  // namespace kvplan::wire
