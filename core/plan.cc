#include "core/plan.h"

#include <algorithm>
#include <functional>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/allocator.h"
#include "core/codebook.h"
#include "core/digest.h"
#include "core/file_io.h"
#include "core/random.h"
#include "core/whatif.h"
#include "nlohmann/json.hpp"

namespace kvplan {
namespace {

using nlohmann::json;
using ordered_json = nlohmann::ordered_json;

absl::Status ValidatePlanOptions(const PlanOptions& options, int num_layers, int num_blocks) {
  AllocationOptions alloc{
      .avg_bits = options.k_bits, .min_bits = options.min_bits, .max_bits = options.max_bits};
  if (absl::Status st = ValidateAllocationOptions(alloc, num_blocks); !st.ok()) return st;
  if (options.v_bits < kMinSupportedBits || options.v_bits > kMaxSupportedBits) {
    return absl::OutOfRangeError(absl::StrFormat(
        "V budget %d bits is outside [1, 8]; V is uniform TQ-MSE, so use whole bits",
        options.v_bits));
  }
  if (absl::Status st = ValidateKGroupAlign(options, 2 * num_blocks); !st.ok()) return st;
  return ValidateExemptLayers(options, num_layers);
}

// The distinct group sizes of every head's K layout, and V's head_dim.
absl::StatusOr<std::set<int>> RotationDims(const KvPlan& plan) {
  std::set<int> dims = {plan.head_dim};
  for (int l = 0; l < plan.num_layers; ++l) {
    for (int h = 0; h < plan.num_kv_heads; ++h) {
      absl::StatusOr<GroupLayout> layout = plan.KLayout(l, h);
      if (!layout.ok()) return layout.status();
      for (const QuantGroup& g : layout->groups) dims.insert(g.size);
    }
  }
  return dims;
}

// Every code width the plan uses: its K blocks' and each layer's V (exempt_bits
// in exempt layers, so v_bits is absent when every layer is exempt).
std::set<int> CodeWidths(const KvPlan& plan) {
  std::set<int> widths;
  for (int l = 0; l < plan.num_layers; ++l) widths.insert(plan.VBits(l));
  for (const std::vector<int>& head : plan.k_block_bits) widths.insert(head.begin(), head.end());
  return widths;
}

ordered_json HashesJson(const std::map<int, std::string>& hashes) {
  ordered_json out = ordered_json::object();
  for (const auto& [key, hash] : hashes) out[std::to_string(key)] = hash;
  return out;
}

ordered_json ContentJson(const KvPlan& plan) {
  const PlanOptions& o = plan.options;
  ordered_json options = {{"k_scheme", std::string(KSchemeName(o.k_scheme))},
                          {"k_bits", o.k_bits},
                          {"v_bits", o.v_bits},
                          {"score", std::string(ScoreKindName(o.score))},
                          {"min_bits", o.min_bits},
                          {"max_bits", o.max_bits},
                          {"rotation_seed", o.rotation_seed}};
  // Only when used: a plan without exemptions keeps its pre-exemption digest.
  if (!o.exempt_layers.empty()) {
    options["exempt_layers"] = o.exempt_layers;
    options["exempt_bits"] = o.exempt_bits;
  }
  // Likewise: unaligned plans keep their pre-alignment digest.
  if (o.k_group_align != 0) options["k_group_align"] = o.k_group_align;
  return {{"format_version", plan.format_version},
          {"model",
           {{"fingerprint", plan.model_fingerprint},
            {"num_layers", plan.num_layers},
            {"num_kv_heads", plan.num_kv_heads},
            {"head_dim", plan.head_dim},
            {"rope", RopeSpecToJson(plan.rope)}}},
          {"options", std::move(options)},
          {"rotations", HashesJson(plan.rotation_hashes)},
          {"codebooks", HashesJson(plan.codebook_hashes)},
          {"k_block_bits", plan.k_block_bits}};
}

absl::Status Corrupt(std::string_view what) {
  return absl::InvalidArgumentError(absl::StrFormat("plan JSON: %s", what));
}

// Reads "codebooks" into plan.codebook_hashes (the K bits must be read first):
// exactly the widths the plan uses, each naming this build's table.
absl::Status ReadCodebooks(const json& in, KvPlan& plan) {
  const json& codebooks = in.contains("codebooks") ? in["codebooks"] : json();
  if (!codebooks.is_object()) {
    return Corrupt("'codebooks' must be an object of bits -> content hash");
  }
  const std::set<int> widths = CodeWidths(plan);
  for (const auto& [key, hash] : codebooks.items()) {
    int bits = 0;
    if (!absl::SimpleAtoi(key, &bits) || !hash.is_string() || !widths.contains(bits)) {
      return Corrupt(absl::StrFormat(
          "codebook entry '%s' is malformed or names a width no K block or V uses", key));
    }
    plan.codebook_hashes[bits] = hash.get<std::string>();
  }
  for (int bits : widths) {
    auto it = plan.codebook_hashes.find(bits);
    if (it == plan.codebook_hashes.end()) {
      return Corrupt(absl::StrFormat("no codebook is named for %d-bit codes", bits));
    }
    const std::string& ours = LloydMaxCodebook(bits).content_hash;
    if (it->second != ours) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "the plan's %d-bit codebook is %s but this build's is %s; caches coded with the plan "
          "would decode wrongly here, so use a kvplan build with the plan's codebooks",
          bits, it->second, ours));
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string_view KSchemeName(KScheme scheme) {
  return scheme == KScheme::kUniform ? "uniform" : "block-gtq";
}

std::string PlanLabel(const KvPlan& plan) {
  const PlanOptions& o = plan.options;
  std::string label = absl::StrFormat("%s K%gV%d", KSchemeName(o.k_scheme), o.k_bits, o.v_bits);
  if (!o.exempt_layers.empty()) {
    absl::StrAppendFormat(&label, ", layer%s %s at %d bits", o.exempt_layers.size() > 1 ? "s" : "",
                          absl::StrJoin(o.exempt_layers, ","), o.exempt_bits);
  }
  if (o.k_group_align != 0) absl::StrAppendFormat(&label, ", K groups of %d dims", o.k_group_align);
  return label;
}

absl::StatusOr<GroupLayout> KvPlan::KLayout(int layer, int kv_head) const {
  if (layer < 0 || layer >= num_layers || kv_head < 0 || kv_head >= num_kv_heads) {
    return absl::NotFoundError(
        absl::StrFormat("plan has no (layer %d, kv_head %d); it covers %d layers x %d KV heads",
                        layer, kv_head, num_layers, num_kv_heads));
  }
  const std::vector<int>& bits = KBlockBits(layer, kv_head);
  const bool all_equal =
      std::adjacent_find(bits.begin(), bits.end(), std::not_equal_to<>()) == bits.end();
  if ((options.k_scheme == KScheme::kUniform || IsExempt(layer)) && all_equal && !bits.empty()) {
    return UniformLayout(head_dim, bits.front());
  }
  return BuildGroupLayout(bits, rope.AllBlockDims());
}

bool KvPlan::IsExempt(int layer) const {
  return std::binary_search(options.exempt_layers.begin(), options.exempt_layers.end(), layer);
}

int KvPlan::VBits(int layer) const {
  return IsExempt(layer) ? options.exempt_bits : options.v_bits;
}

absl::Status ValidateExemptLayers(const PlanOptions& options, int num_layers) {
  if (options.exempt_bits < kMinSupportedBits || options.exempt_bits > kMaxSupportedBits) {
    return absl::OutOfRangeError(absl::StrFormat(
        "exempt layers' width %d bits is outside [1, 8]; exempt layers are uniform TQ-MSE, so "
        "use whole bits (default 8)",
        options.exempt_bits));
  }
  for (size_t i = 0; i < options.exempt_layers.size(); ++i) {
    const int layer = options.exempt_layers[i];
    if (layer < 0 || layer >= num_layers) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "exempt layer %d is outside the model's layers [0, %d)", layer, num_layers));
    }
    if (i > 0 && layer <= options.exempt_layers[i - 1]) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "exempt layer %d is %s; list exempt layers once each, in ascending order", layer,
          layer == options.exempt_layers[i - 1] ? "repeated" : "out of order"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateKGroupAlign(const PlanOptions& options, int head_dim) {
  if (options.k_group_align != 0 && options.k_scheme == KScheme::kUniform) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "k_group_align %d applies to the block-gtq scheme; uniform K is one group over the head "
        "already, so leave k_group_align at 0 (off) or use block-gtq",
        options.k_group_align));
  }
  return ValidateKGroupAlign(options.k_group_align, head_dim);
}

KvTokenBytes PlanBytesPerToken(const KvPlan& plan) {
  KvTokenBytes total;
  for (int l = 0; l < plan.num_layers; ++l) {
    for (int h = 0; h < plan.num_kv_heads; ++h) {
      const KvTokenBytes b = TokenBytesForHead(plan.KBlockBits(l, h), plan.VBits(l));
      total.k_codes += b.k_codes;
      total.k_norms += b.k_norms;
      total.v_codes += b.v_codes;
      total.v_norms += b.v_norms;
    }
  }
  return total;
}

uint64_t KvPlan::RotationSeed(int dim) const {
  uint64_t state = options.rotation_seed ^ (static_cast<uint64_t>(dim) * 0x9e3779b97f4a7c15ull);
  return SplitMix64(state);
}

absl::StatusOr<KvPlan> BuildPlan(const EnergyTable& table, const RopeSpec& rope,
                                 const PlanOptions& options) {
  if (absl::Status st = rope.Validate(); !st.ok()) return st;
  if (table.num_blocks() != rope.num_blocks()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("statistics have %d blocks per head but the model's head_dim %d has %d",
                        table.num_blocks(), rope.head_dim, rope.num_blocks()));
  }
  if (absl::Status st = ValidatePlanOptions(options, table.num_layers(), table.num_blocks());
      !st.ok()) {
    return st;
  }
  KvPlan plan;
  plan.num_layers = table.num_layers();
  plan.num_kv_heads = table.num_kv_heads();
  plan.head_dim = rope.head_dim;
  plan.rope = rope;
  plan.options = options;
  const AllocationOptions alloc{
      .avg_bits = options.k_bits, .min_bits = options.min_bits, .max_bits = options.max_bits};
  for (int l = 0; l < plan.num_layers; ++l) {
    for (int h = 0; h < plan.num_kv_heads; ++h) {
      absl::StatusOr<std::vector<int>> bits;
      if (plan.IsExempt(l)) {
        bits = std::vector<int>(table.num_blocks(), options.exempt_bits);
      } else if (options.k_scheme == KScheme::kUniform) {
        bits = UniformAllocate(table.num_blocks(), alloc);
      } else {
        absl::StatusOr<std::vector<double>> scores = table.Scores(l, h, options.score);
        if (!scores.ok()) return scores.status();
        bits = options.k_group_align != 0
                   ? GroupAlignedAllocate(*scores, alloc, options.k_group_align / 2)
                   : GreedyAllocate(*scores, alloc);
      }
      if (!bits.ok()) return bits.status();
      plan.k_block_bits.push_back(*std::move(bits));
    }
  }
  absl::StatusOr<std::set<int>> dims = RotationDims(plan);
  if (!dims.ok()) return dims.status();
  for (int dim : *dims) {
    plan.rotation_hashes[dim] = HaarRotation(dim, plan.RotationSeed(dim)).content_hash;
  }
  for (int bits : CodeWidths(plan))
    plan.codebook_hashes[bits] = LloydMaxCodebook(bits).content_hash;
  return plan;
}

absl::StatusOr<std::map<int, Rotation>> PlanRotations(const KvPlan& plan) {
  std::map<int, Rotation> rotations;
  for (const auto& [dim, hash] : plan.rotation_hashes) {
    Rotation r = HaarRotation(dim, plan.RotationSeed(dim));
    if (r.content_hash != hash) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "rotation for dim %d hashes to %s here but the plan names %s; this build's generator "
          "differs, so fetch the matrix by hash instead of regenerating it",
          dim, r.content_hash, hash));
    }
    rotations.emplace(dim, std::move(r));
  }
  return rotations;
}

std::string PlanDigest(const KvPlan& plan) { return Sha256Hex(ContentJson(plan).dump()); }

std::string PlanToJson(const KvPlan& plan) {
  ordered_json out = ContentJson(plan);
  const KvTokenBytes bytes = PlanBytesPerToken(plan);
  const double heads = static_cast<double>(plan.k_block_bits.size());
  out["bytes_per_token"] = {{"k", bytes.k()},
                            {"v", bytes.v()},
                            {"per_head_mean", heads > 0 ? bytes.total() / heads : 0.0}};
  out["provenance"] = {{"tokens", plan.provenance.tokens},
                       {"stats_digest", plan.provenance.stats_digest},
                       {"created_unix", plan.provenance.created_unix},
                       {"source", plan.provenance.source}};
  out["digest"] = PlanDigest(plan);
  return out.dump(1);
}

absl::StatusOr<KvPlan> PlanFromJson(std::string_view text) {
  const json in = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (in.is_discarded() || !in.is_object()) return Corrupt("not a JSON object");
  KvPlan plan;
  // Every accessor below is type-checked first, so none of them throws.
  auto int_at = [](const json& obj, const char* key, auto* out) -> bool {
    auto it = obj.find(key);
    if (it == obj.end() || !it->is_number_integer()) return false;
    *out = it->get<std::decay_t<decltype(*out)>>();
    return true;
  };
  if (!int_at(in, "format_version", &plan.format_version)) return Corrupt("no format_version");
  if (plan.format_version < kPlanFormatVersion) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "plan format_version %d is older than this build's %d, which added the codebooks a plan "
        "names; rebuild the plan from its statistics (kvplan plans create / kvplan plan build)",
        plan.format_version, kPlanFormatVersion));
  }
  if (plan.format_version > kPlanFormatVersion) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "plan format_version %d is not supported by this build (reads %d); upgrade kvplan",
        plan.format_version, kPlanFormatVersion));
  }
  const json* model = in.contains("model") && in["model"].is_object() ? &in["model"] : nullptr;
  const json* opts = in.contains("options") && in["options"].is_object() ? &in["options"] : nullptr;
  if (model == nullptr || opts == nullptr) return Corrupt("missing 'model' or 'options'");
  if (!int_at(*model, "num_layers", &plan.num_layers) ||
      !int_at(*model, "num_kv_heads", &plan.num_kv_heads) ||
      !int_at(*model, "head_dim", &plan.head_dim) || !model->contains("rope") ||
      !model->contains("fingerprint") || !(*model)["fingerprint"].is_string()) {
    return Corrupt("'model' needs fingerprint, num_layers, num_kv_heads, head_dim and rope");
  }
  plan.model_fingerprint = (*model)["fingerprint"].get<std::string>();
  absl::StatusOr<RopeSpec> rope = RopeSpecFromJson((*model)["rope"]);
  if (!rope.ok()) return Corrupt(std::string(rope.status().message()));
  plan.rope = *rope;
  PlanOptions& o = plan.options;
  const std::string scheme = opts->contains("k_scheme") && (*opts)["k_scheme"].is_string()
                                 ? (*opts)["k_scheme"].get<std::string>()
                                 : "";
  if (scheme == "uniform") {
    o.k_scheme = KScheme::kUniform;
  } else if (scheme != "block-gtq") {
    return Corrupt(absl::StrFormat("unknown k_scheme '%s'", scheme));
  }
  if (!opts->contains("k_bits") || !(*opts)["k_bits"].is_number() ||
      !int_at(*opts, "v_bits", &o.v_bits) || !int_at(*opts, "min_bits", &o.min_bits) ||
      !int_at(*opts, "max_bits", &o.max_bits) ||
      !int_at(*opts, "rotation_seed", &o.rotation_seed) || !opts->contains("score") ||
      !(*opts)["score"].is_string()) {
    return Corrupt("'options' needs k_bits, v_bits, score, min_bits, max_bits, rotation_seed");
  }
  o.k_bits = (*opts)["k_bits"].get<double>();
  if (opts->contains("exempt_layers")) {
    const json& layers = (*opts)["exempt_layers"];
    if (!layers.is_array() || !std::all_of(layers.begin(), layers.end(), [](const json& l) {
          // Also in int range: a wrapped value could name a real layer.
          return l.is_number_integer() && l.get<int64_t>() == static_cast<int>(l.get<int64_t>());
        })) {
      return Corrupt("'exempt_layers' must be an array of layer indices");
    }
    o.exempt_layers = layers.get<std::vector<int>>();
    if (!int_at(*opts, "exempt_bits", &o.exempt_bits)) {
      return Corrupt("'exempt_layers' needs 'exempt_bits', the exempt layers' width");
    }
  } else if (opts->contains("exempt_bits")) {
    return Corrupt("'exempt_bits' without 'exempt_layers'; a plan names both or neither");
  }
  if (opts->contains("k_group_align") && !int_at(*opts, "k_group_align", &o.k_group_align)) {
    return Corrupt("'k_group_align' must be a whole number of dims");
  }
  absl::StatusOr<ScoreKind> score = ParseScoreKind((*opts)["score"].get<std::string>());
  if (!score.ok()) return Corrupt(std::string(score.status().message()));
  o.score = *score;
  if (plan.rope.head_dim != plan.head_dim || plan.num_layers <= 0 || plan.num_kv_heads <= 0) {
    return Corrupt("model shape is inconsistent (rope head_dim, layers, KV heads)");
  }
  if (absl::Status st = ValidatePlanOptions(o, plan.num_layers, plan.rope.num_blocks()); !st.ok()) {
    return st;
  }

  const json& bits = in.contains("k_block_bits") ? in["k_block_bits"] : json();
  const size_t heads = static_cast<size_t>(plan.num_layers) * plan.num_kv_heads;
  if (!bits.is_array() || bits.size() != heads) {
    return Corrupt(absl::StrFormat("'k_block_bits' must list %d heads", heads));
  }
  const int budget = BitBudget(plan.rope.num_blocks(), o.k_bits);
  for (size_t i = 0; i < heads; ++i) {
    std::vector<int> head;
    if (!bits[i].is_array() || static_cast<int>(bits[i].size()) != plan.rope.num_blocks()) {
      return Corrupt(
          absl::StrFormat("k_block_bits[%d] must have %d entries", i, plan.rope.num_blocks()));
    }
    const int layer = static_cast<int>(i / plan.num_kv_heads);
    if (plan.IsExempt(layer)) {
      for (const json& b : bits[i]) {
        if (!b.is_number_integer() || b.get<int>() != o.exempt_bits) {
          return Corrupt(absl::StrFormat(
              "k_block_bits[%d] (exempt layer %d, KV head %d) has a block at %s bits; every block "
              "of an exempt layer is at exempt_bits %d",
              i, layer, i % plan.num_kv_heads, b.dump(), o.exempt_bits));
        }
        head.push_back(b.get<int>());
      }
      plan.k_block_bits.push_back(std::move(head));
      continue;
    }
    int sum = 0;
    std::vector<int> blocks_at(kMaxSupportedBits + 1, 0);
    for (const json& b : bits[i]) {
      if (!b.is_number_integer() || b.get<int>() < o.min_bits || b.get<int>() > o.max_bits) {
        return Corrupt(absl::StrFormat("k_block_bits[%d] has %s, outside [%d, %d]", i, b.dump(),
                                       o.min_bits, o.max_bits));
      }
      head.push_back(b.get<int>());
      sum += head.back();
      ++blocks_at[head.back()];
    }
    if (o.k_group_align == 0) {
      if (sum != budget) {
        return Corrupt(
            absl::StrFormat("k_block_bits[%d] spends %d bits, the budget is %d", i, sum, budget));
      }
    } else {
      // An aligned head may leave bits unspent, never more than the budget.
      if (sum > budget) {
        return Corrupt(
            absl::StrFormat("k_block_bits[%d] spends %d bits, over the budget %d", i, sum, budget));
      }
      const int unit_blocks = o.k_group_align / 2;
      for (int w = o.min_bits; w <= o.max_bits; ++w) {
        if (blocks_at[w] % unit_blocks != 0) {
          return Corrupt(absl::StrFormat(
              "k_block_bits[%d] has %d blocks at %d bits, not a multiple of the %d blocks "
              "(k_group_align %d dims) every width group is made of",
              i, blocks_at[w], w, unit_blocks, o.k_group_align));
        }
      }
    }
    plan.k_block_bits.push_back(std::move(head));
  }
  const json& rotations = in.contains("rotations") ? in["rotations"] : json();
  if (!rotations.is_object()) return Corrupt("'rotations' must be an object");
  for (const auto& [dim, hash] : rotations.items()) {
    int d = 0;
    if (!absl::SimpleAtoi(dim, &d) || !hash.is_string()) {
      return Corrupt(absl::StrFormat("rotation entry '%s' is malformed", dim));
    }
    plan.rotation_hashes[d] = hash.get<std::string>();
  }
  absl::StatusOr<std::set<int>> dims = RotationDims(plan);
  if (!dims.ok()) return dims.status();
  for (int d : *dims) {
    if (!plan.rotation_hashes.contains(d)) {
      return Corrupt(absl::StrFormat("no rotation is named for group size %d", d));
    }
  }
  if (absl::Status st = ReadCodebooks(in, plan); !st.ok()) return st;
  if (const json* p = in.contains("provenance") ? &in["provenance"] : nullptr;
      p != nullptr && p->is_object()) {
    int_at(*p, "tokens", &plan.provenance.tokens);
    int_at(*p, "created_unix", &plan.provenance.created_unix);
    if (p->contains("stats_digest") && (*p)["stats_digest"].is_string()) {
      plan.provenance.stats_digest = (*p)["stats_digest"].get<std::string>();
    }
    if (p->contains("source") && (*p)["source"].is_string()) {
      plan.provenance.source = (*p)["source"].get<std::string>();
    }
  }
  const std::string digest = PlanDigest(plan);
  if (!in.contains("digest") || !in["digest"].is_string() ||
      in["digest"].get<std::string>() != digest) {
    return absl::DataLossError(absl::StrFormat(
        "plan digest mismatch: the file names %s but its content hashes to %s; the plan was "
        "edited or corrupted",
        in.contains("digest") ? in["digest"].dump() : "nothing", digest));
  }
  return plan;
}

absl::StatusOr<KvPlan> ReadPlanFile(const std::filesystem::path& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return text.status();
  absl::StatusOr<KvPlan> plan = PlanFromJson(*text);
  if (!plan.ok()) {
    return absl::Status(
        plan.status().code(),
        absl::StrFormat("%s: %s", path.string(), std::string(plan.status().message())));
  }
  return plan;
}

}  // namespace kvplan
