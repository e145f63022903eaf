#include "core/packed_kv_cache.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <utility>

#include "absl/strings/str_format.h"
#include "core/codebook.h"
#include "core/grouped_quantizer.h"
#include "core/half.h"

namespace kvplan {
namespace {

// Codebook levels of `bits` scaled by 1/√dim, rounded once from fp64: the ĉ
// that GroupedQuantizer decodes with.
std::vector<float> ScaledLevels(int bits, int dim) {
  const Codebook& book = LloydMaxCodebook(bits);
  std::vector<float> levels(book.centroids.size());
  const double inv_sqrt = 1.0 / std::sqrt(static_cast<double>(dim));
  for (size_t i = 0; i < levels.size(); ++i) {
    levels[i] = static_cast<float>(book.centroids[i] * inv_sqrt);
  }
  return levels;
}

absl::Status CheckFinite(absl::Span<const float> x, int heads, int head_dim, const char* what) {
  for (size_t i = 0; i < x.size(); ++i) {
    if (!std::isfinite(x[i])) {
      const size_t row = i / head_dim;
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s[%d][%d][%d] is %f; the packed cache takes finite values only (check the model's "
          "activations)",
          what, row / heads, row % heads, i % head_dim, x[i]));
    }
  }
  return absl::OkStatus();
}

// One split's softmax partial for the G query heads of a KV head: running max,
// sum of exp and unnormalized output [G][head_dim], merged exactly.
struct Partial {
  std::vector<float> m, l, o;

  Partial(int heads, int head_dim)
      : m(heads, -std::numeric_limits<float>::infinity()),
        l(heads, 0.0f),
        o(static_cast<size_t>(heads) * head_dim, 0.0f) {}

  // this := merge(this, other): both rescaled to the larger max.
  void Merge(const Partial& other, int head_dim) {
    for (size_t g = 0; g < m.size(); ++g) {
      if (other.l[g] == 0.0f) continue;
      const float top = std::max(m[g], other.m[g]);
      const float mine = l[g] == 0.0f ? 0.0f : std::exp(m[g] - top);
      const float theirs = std::exp(other.m[g] - top);
      l[g] = l[g] * mine + other.l[g] * theirs;
      for (int d = 0; d < head_dim; ++d) {
        float& out = o[g * head_dim + d];
        out = out * mine + other.o[g * head_dim + d] * theirs;
      }
      m[g] = top;
    }
  }
};

// Plan-derived, immutable tables of one (layer, KV head).
struct HeadTables {
  GroupedQuantizer k_quant;
  GroupedQuantizer v_quant;
  PackedPageLayout page;
  std::vector<std::vector<float>> k_levels;  // [group][code]
  std::vector<float> v_levels;               // [code], at the layer's V width
};

// The tokens of one (layer, KV head).
struct HeadState {
  std::vector<uint8_t> pages;                // whole pages, page after page
  std::vector<uint16_t> sink_k, sink_v;      // [sink rows][head_dim] fp16
  std::vector<uint16_t> recent_k, recent_v;  // rows of positions [recent_begin, tokens)
};

struct LayerState {
  int64_t tokens = 0;
  int64_t recent_begin = 0;
  std::vector<HeadState> heads;
};

// Which tokens a query of prefix n reads, and how.
struct PrefixSplit {
  int sinks = 0;
  int packed = 0;
  int recent = 0;
  int64_t recent_row = 0;  // first row of the recent copies it reads
};

}  // namespace

struct PackedKvCache::Impl {
  int num_layers = 0, num_kv_heads = 0, num_q_heads = 0, head_dim = 0;
  PackedKvCacheOptions options;
  float scale = 1.0f;
  std::map<int, Rotation> rotations;
  std::vector<HeadTables> tables;  // [layer * num_kv_heads + kv_head]
  std::vector<LayerState> layers;

  const HeadTables& Tables(int layer, int kv_head) const {
    return tables[static_cast<size_t>(layer) * num_kv_heads + kv_head];
  }
  absl::StatusOr<PrefixSplit> Split(int layer, int64_t num_keys) const;
  void AppendHead(int layer, int kv_head, int64_t first, int tokens, absl::Span<const float> k,
                  absl::Span<const float> v);
  void AttendPacked(const HeadTables& t, const HeadState& s, int first, int count,
                    const float* q_rot, Partial& out) const;
  void AttendFp16(const uint16_t* k, const uint16_t* v, int count, const float* q,
                  Partial& out) const;
};

absl::StatusOr<PackedKvCache> PackedKvCache::Create(const KvPlan& plan, int num_q_heads,
                                                    const PackedKvCacheOptions& options) {
  if (plan.num_layers <= 0 || plan.num_kv_heads <= 0 || plan.head_dim <= 0 ||
      plan.k_block_bits.size() != static_cast<size_t>(plan.num_layers) * plan.num_kv_heads) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "plan shape is inconsistent: %d layers x %d KV heads, head_dim %d, %d K allocations",
        plan.num_layers, plan.num_kv_heads, plan.head_dim, plan.k_block_bits.size()));
  }
  if (num_q_heads <= 0 || num_q_heads % plan.num_kv_heads != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%d query heads is not a positive multiple of the plan's %d KV heads",
                        num_q_heads, plan.num_kv_heads));
  }
  if (options.sink_tokens < 0 || options.recent_tokens < 0 || options.pages_per_split < 1 ||
      !(options.scale >= 0.0) || !std::isfinite(options.scale)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "cache options need sink_tokens >= 0, recent_tokens >= 0, pages_per_split >= 1 and a "
        "finite scale >= 0; got %d, %d, %d, %g",
        options.sink_tokens, options.recent_tokens, options.pages_per_split, options.scale));
  }
  absl::StatusOr<std::map<int, Rotation>> rotations = PlanRotations(plan);
  if (!rotations.ok()) return rotations.status();
  auto impl = std::make_unique<Impl>();
  impl->num_layers = plan.num_layers;
  impl->num_kv_heads = plan.num_kv_heads;
  impl->num_q_heads = num_q_heads;
  impl->head_dim = plan.head_dim;
  impl->options = options;
  impl->scale = static_cast<float>(options.scale > 0.0 ? options.scale
                                                       : 1.0 / std::sqrt(plan.head_dim * 1.0));
  impl->rotations = *std::move(rotations);
  auto rotation = [&](int dim) -> absl::StatusOr<Rotation> {
    auto it = impl->rotations.find(dim);
    if (it == impl->rotations.end()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("plan names no rotation for dimension %d, which its layouts use", dim));
    }
    return it->second;
  };
  absl::StatusOr<Rotation> v_rotation = rotation(plan.head_dim);
  if (!v_rotation.ok()) return v_rotation.status();
  for (int l = 0; l < plan.num_layers; ++l) {
    // V's width is per layer: exempt layers keep theirs at exempt_bits.
    const int v_bits = plan.VBits(l);
    absl::StatusOr<GroupLayout> v_layout = UniformLayout(plan.head_dim, v_bits);
    if (!v_layout.ok()) return v_layout.status();
    for (int h = 0; h < plan.num_kv_heads; ++h) {
      absl::StatusOr<GroupLayout> layout = plan.KLayout(l, h);
      if (!layout.ok()) return layout.status();
      std::vector<Rotation> k_rotations;
      std::vector<std::vector<float>> levels;
      for (const QuantGroup& g : layout->groups) {
        absl::StatusOr<Rotation> r = rotation(g.size);
        if (!r.ok()) return r.status();
        k_rotations.push_back(*std::move(r));
        levels.push_back(ScaledLevels(g.bits, g.size));
      }
      absl::StatusOr<GroupedQuantizer> k_quant = GroupedQuantizer::Create(*layout, k_rotations);
      if (!k_quant.ok()) return k_quant.status();
      absl::StatusOr<GroupedQuantizer> v_quant =
          GroupedQuantizer::Create(*v_layout, absl::MakeConstSpan(&*v_rotation, 1));
      if (!v_quant.ok()) return v_quant.status();
      absl::StatusOr<PackedPageLayout> page = PackedPageLayout::Create(*layout, v_bits);
      if (!page.ok()) return page.status();
      impl->tables.push_back(HeadTables{.k_quant = *std::move(k_quant),
                                        .v_quant = *std::move(v_quant),
                                        .page = *std::move(page),
                                        .k_levels = std::move(levels),
                                        .v_levels = ScaledLevels(v_bits, plan.head_dim)});
    }
  }
  impl->layers.resize(plan.num_layers);
  PackedKvCache cache(std::move(impl));
  cache.Clear();
  return cache;
}

PackedKvCache::PackedKvCache(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PackedKvCache::PackedKvCache(PackedKvCache&&) noexcept = default;
PackedKvCache& PackedKvCache::operator=(PackedKvCache&&) noexcept = default;
PackedKvCache::~PackedKvCache() = default;

int PackedKvCache::num_layers() const { return impl_->num_layers; }
int PackedKvCache::num_kv_heads() const { return impl_->num_kv_heads; }
int PackedKvCache::num_q_heads() const { return impl_->num_q_heads; }
int PackedKvCache::head_dim() const { return impl_->head_dim; }
const PackedKvCacheOptions& PackedKvCache::options() const { return impl_->options; }

int64_t PackedKvCache::num_tokens(int layer) const {
  if (layer < 0 || layer >= impl_->num_layers) return 0;
  return impl_->layers[layer].tokens;
}

void PackedKvCache::Clear() {
  for (LayerState& layer : impl_->layers) {
    layer.tokens = 0;
    layer.recent_begin = impl_->options.sink_tokens;
    layer.heads.assign(impl_->num_kv_heads, HeadState{});
  }
}

absl::Status PackedKvCache::Append(int layer, absl::Span<const float> k,
                                   absl::Span<const float> v) {
  Impl& m = *impl_;
  const size_t row = static_cast<size_t>(m.num_kv_heads) * m.head_dim;
  if (layer < 0 || layer >= m.num_layers) {
    return absl::InvalidArgumentError(
        absl::StrFormat("layer %d is outside the cache's %d layers", layer, m.num_layers));
  }
  if (k.size() != v.size() || k.size() % row != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("k has %d and v %d values; both must be [tokens][%d KV heads][%d head_dim]",
                        k.size(), v.size(), m.num_kv_heads, m.head_dim));
  }
  if (absl::Status s = CheckFinite(k, m.num_kv_heads, m.head_dim, "k"); !s.ok()) return s;
  if (absl::Status s = CheckFinite(v, m.num_kv_heads, m.head_dim, "v"); !s.ok()) return s;
  const int tokens = static_cast<int>(k.size() / row);
  if (tokens == 0) return absl::OkStatus();
  LayerState& state = m.layers[layer];
  const int64_t first = state.tokens;
  const int recent = m.options.recent_tokens;
  if (recent > 0) {
    // Queries of this chunk see prefixes >= first + 1, whose windows start at
    // or after first + 1 - recent: older copies are never read again.
    const int64_t keep_from = std::max<int64_t>(state.recent_begin, first + 1 - recent);
    const size_t drop = static_cast<size_t>(keep_from - state.recent_begin) * m.head_dim;
    for (HeadState& head : state.heads) {
      head.recent_k.erase(head.recent_k.begin(), head.recent_k.begin() + drop);
      head.recent_v.erase(head.recent_v.begin(), head.recent_v.begin() + drop);
    }
    state.recent_begin = keep_from;
  }
  for (int h = 0; h < m.num_kv_heads; ++h) m.AppendHead(layer, h, first, tokens, k, v);
  state.tokens += tokens;
  return absl::OkStatus();
}

void PackedKvCache::Impl::AppendHead(int layer, int kv_head, int64_t first, int tokens,
                                     absl::Span<const float> k, absl::Span<const float> v) {
  const HeadTables& t = Tables(layer, kv_head);
  HeadState& s = layers[layer].heads[kv_head];
  const size_t hd = head_dim;
  auto row = [&](absl::Span<const float> x, int token) {
    return x.subspan((static_cast<size_t>(token) * num_kv_heads + kv_head) * hd, hd);
  };
  auto push_half = [](absl::Span<const float> x, std::vector<uint16_t>& out) {
    for (float f : x) out.push_back(FloatToHalfSaturate(f));
  };
  // Rows past the sinks, gathered for batched encoding.
  std::vector<float> k_rows, v_rows;
  const int64_t sinks = options.sink_tokens;
  for (int i = 0; i < tokens; ++i) {
    if (first + i < sinks) {
      push_half(row(k, i), s.sink_k);
      push_half(row(v, i), s.sink_v);
      continue;
    }
    k_rows.insert(k_rows.end(), row(k, i).begin(), row(k, i).end());
    v_rows.insert(v_rows.end(), row(v, i).begin(), row(v, i).end());
    if (options.recent_tokens > 0) {
      push_half(row(k, i), s.recent_k);
      push_half(row(v, i), s.recent_v);
    }
  }
  const int packed_new = static_cast<int>(k_rows.size() / hd);
  if (packed_new == 0) return;
  const int64_t packed_before = std::max<int64_t>(0, first - sinks);
  std::vector<uint8_t> k_records(static_cast<size_t>(packed_new) * t.k_quant.PackedBytes());
  std::vector<uint8_t> v_records(static_cast<size_t>(packed_new) * t.v_quant.PackedBytes());
  t.k_quant.EncodeBatch(k_rows, absl::MakeSpan(k_records));
  t.v_quant.EncodeBatch(v_rows, absl::MakeSpan(v_records));
  const size_t page_bytes = t.page.page_bytes();
  const int64_t packed_after = packed_before + packed_new;
  const size_t pages = static_cast<size_t>((packed_after + kPageTokens - 1) / kPageTokens);
  s.pages.resize(pages * page_bytes, 0);
  for (int i = 0; i < packed_new; ++i) {
    const int64_t slot = packed_before + i;
    WriteRecordsToPage(
        t.page,
        absl::MakeConstSpan(k_records).subspan(i * t.k_quant.PackedBytes(),
                                               t.k_quant.PackedBytes()),
        absl::MakeConstSpan(v_records).subspan(i * t.v_quant.PackedBytes(),
                                               t.v_quant.PackedBytes()),
        static_cast<int>(slot % kPageTokens),
        absl::MakeSpan(s.pages).subspan((slot / kPageTokens) * page_bytes, page_bytes));
  }
}

absl::StatusOr<PrefixSplit> PackedKvCache::Impl::Split(int layer, int64_t num_keys) const {
  if (layer < 0 || layer >= num_layers) {
    return absl::InvalidArgumentError(
        absl::StrFormat("layer %d is outside the cache's %d layers", layer, num_layers));
  }
  const LayerState& state = layers[layer];
  if (num_keys < 1 || num_keys > state.tokens) {
    return absl::InvalidArgumentError(
        absl::StrFormat("a query over %d keys of layer %d, which holds %d tokens; it must see 1 "
                        "to %d (append the query's own key first)",
                        num_keys, layer, state.tokens, state.tokens));
  }
  const int64_t sinks = options.sink_tokens;
  PrefixSplit split;
  split.sinks = static_cast<int>(std::min(sinks, num_keys));
  if (num_keys <= sinks) return split;
  const int64_t window_begin = std::max(sinks, num_keys - options.recent_tokens);
  if (window_begin < num_keys && window_begin < state.recent_begin) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "layer %d no longer keeps fp16 copies of positions %d..%d that a query over %d keys reads "
        "from its recent window; attend each chunk's queries before appending the next chunk",
        layer, window_begin, state.recent_begin - 1, num_keys));
  }
  split.packed = static_cast<int>(window_begin - sinks);
  split.recent = static_cast<int>(num_keys - window_begin);
  split.recent_row = split.recent > 0 ? window_begin - state.recent_begin : 0;
  return split;
}

void PackedKvCache::Impl::AttendFp16(const uint16_t* k, const uint16_t* v, int count,
                                     const float* q, Partial& out) const {
  const int heads = num_q_heads / num_kv_heads;
  std::vector<float> scores(count);
  for (int g = 0; g < heads; ++g) {
    const float* qg = q + static_cast<size_t>(g) * head_dim;
    float top = -std::numeric_limits<float>::infinity();
    for (int t = 0; t < count; ++t) {
      const uint16_t* kt = k + static_cast<size_t>(t) * head_dim;
      float dot = 0.0f;
      for (int d = 0; d < head_dim; ++d) dot += qg[d] * HalfToFloat(kt[d]);
      scores[t] = scale * dot;
      top = std::max(top, scores[t]);
    }
    float sum = 0.0f;
    float* o = out.o.data() + static_cast<size_t>(g) * head_dim;
    for (int t = 0; t < count; ++t) {
      const float p = std::exp(scores[t] - top);
      sum += p;
      const uint16_t* vt = v + static_cast<size_t>(t) * head_dim;
      for (int d = 0; d < head_dim; ++d) o[d] += p * HalfToFloat(vt[d]);
    }
    out.m[g] = top;
    out.l[g] = sum;
  }
}

void PackedKvCache::Impl::AttendPacked(const HeadTables& t, const HeadState& s, int first,
                                       int count, const float* q_rot, Partial& out) const {
  const int heads = num_q_heads / num_kv_heads;
  const PackedPageLayout& page = t.page;
  const GroupLayout& layout = page.k_layout();
  const size_t page_bytes = page.page_bytes();
  auto page_of = [&](int token) {
    return absl::MakeConstSpan(s.pages).subspan(
        static_cast<size_t>(token / kPageTokens) * page_bytes, page_bytes);
  };
  // Pass 1: scores straight from K codes, in the rotated domain.
  std::vector<float> scores(static_cast<size_t>(heads) * count);
  std::vector<float> levels(head_dim), dots(heads);
  for (int i = 0; i < count; ++i) {
    const int token = first + i;
    const absl::Span<const uint8_t> p = page_of(token);
    const int slot = token % kPageTokens;
    std::fill(dots.begin(), dots.end(), 0.0f);
    for (int g = 0; g < page.num_k_groups(); ++g) {
      const QuantGroup& group = layout.groups[g];
      const std::vector<float>& book = t.k_levels[g];
      for (int c = 0; c < group.size; ++c) levels[c] = book[page.KCode(p, g, slot, c)];
      const float norm = page.KNorm(p, g, slot);
      for (int h = 0; h < heads; ++h) {
        const float* qg = q_rot + static_cast<size_t>(h) * head_dim + group.offset;
        float dot = 0.0f;
        for (int c = 0; c < group.size; ++c) dot += qg[c] * levels[c];
        dots[h] += norm * dot;
      }
    }
    for (int h = 0; h < heads; ++h) scores[static_cast<size_t>(h) * count + i] = scale * dots[h];
  }
  // Pass 2: V accumulated in its rotated domain, codes read once per token.
  std::vector<float> top(heads), acc(static_cast<size_t>(heads) * head_dim, 0.0f);
  for (int h = 0; h < heads; ++h) {
    const float* sh = scores.data() + static_cast<size_t>(h) * count;
    top[h] = *std::max_element(sh, sh + count);
  }
  std::vector<float> weights(heads);
  for (int i = 0; i < count; ++i) {
    const int token = first + i;
    const absl::Span<const uint8_t> p = page_of(token);
    const int slot = token % kPageTokens;
    const float v_norm = page.VNorm(p, slot);
    for (int h = 0; h < heads; ++h) {
      const float e = std::exp(scores[static_cast<size_t>(h) * count + i] - top[h]);
      out.l[h] += e;
      weights[h] = e * v_norm;
    }
    for (int j = 0; j < head_dim; ++j) {
      const float level = t.v_levels[page.VCode(p, slot, j)];
      for (int h = 0; h < heads; ++h)
        acc[static_cast<size_t>(h) * head_dim + j] += weights[h] * level;
    }
  }
  // Undo V's rotation once for the split: x_i = Σ_j R[j][i]·y_j.
  const std::vector<float>& r = rotations.at(head_dim).matrix;
  for (int h = 0; h < heads; ++h) {
    out.m[h] = top[h];
    const float* a = acc.data() + static_cast<size_t>(h) * head_dim;
    float* o = out.o.data() + static_cast<size_t>(h) * head_dim;
    for (int j = 0; j < head_dim; ++j) {
      const float* rj = r.data() + static_cast<size_t>(j) * head_dim;
      for (int i = 0; i < head_dim; ++i) o[i] += rj[i] * a[j];
    }
  }
}

absl::Status PackedKvCache::Attend(int layer, absl::Span<const float> q, int64_t num_keys,
                                   absl::Span<float> out) const {
  const Impl& m = *impl_;
  const size_t need = static_cast<size_t>(m.num_q_heads) * m.head_dim;
  if (q.size() != need || out.size() != need) {
    return absl::InvalidArgumentError(
        absl::StrFormat("q has %d and out %d values; [%d query heads][%d head_dim] expected",
                        q.size(), out.size(), m.num_q_heads, m.head_dim));
  }
  if (absl::Status s = CheckFinite(q, m.num_q_heads, m.head_dim, "q"); !s.ok()) return s;
  absl::StatusOr<PrefixSplit> split = m.Split(layer, num_keys);
  if (!split.ok()) return split.status();
  const int heads = m.num_q_heads / m.num_kv_heads;
  const int hd = m.head_dim;
  const LayerState& state = m.layers[layer];
  std::vector<float> q_rot(static_cast<size_t>(heads) * hd);
  for (int kv = 0; kv < m.num_kv_heads; ++kv) {
    const HeadTables& t = m.Tables(layer, kv);
    const HeadState& s = state.heads[kv];
    const float* q_head = q.data() + static_cast<size_t>(kv) * heads * hd;
    Partial total(heads, hd);
    if (split->sinks > 0) {
      Partial part(heads, hd);
      m.AttendFp16(s.sink_k.data(), s.sink_v.data(), split->sinks, q_head, part);
      total.Merge(part, hd);
    }
    if (split->packed > 0) {
      for (int h = 0; h < heads; ++h) {
        t.k_quant.RotateQuery(absl::MakeConstSpan(q_head + static_cast<size_t>(h) * hd, hd),
                              absl::MakeSpan(q_rot.data() + static_cast<size_t>(h) * hd, hd));
      }
      const int run = m.options.pages_per_split * kPageTokens;
      for (int first = 0; first < split->packed; first += run) {
        Partial part(heads, hd);
        m.AttendPacked(t, s, first, std::min(run, split->packed - first), q_rot.data(), part);
        total.Merge(part, hd);
      }
    }
    if (split->recent > 0) {
      Partial part(heads, hd);
      const size_t offset = static_cast<size_t>(split->recent_row) * hd;
      m.AttendFp16(s.recent_k.data() + offset, s.recent_v.data() + offset, split->recent, q_head,
                   part);
      total.Merge(part, hd);
    }
    float* o = out.data() + static_cast<size_t>(kv) * heads * hd;
    for (int h = 0; h < heads; ++h) {
      for (int d = 0; d < hd; ++d) o[h * hd + d] = total.o[h * hd + d] / total.l[h];
    }
  }
  return absl::OkStatus();
}

absl::Status PackedKvCache::ReadBack(int layer, int64_t num_keys, absl::Span<float> k,
                                     absl::Span<float> v) const {
  const Impl& m = *impl_;
  absl::StatusOr<PrefixSplit> split = m.Split(layer, num_keys);
  if (!split.ok()) return split.status();
  const size_t hd = m.head_dim;
  const size_t need = static_cast<size_t>(num_keys) * m.num_kv_heads * hd;
  if (k.size() != need || v.size() != need) {
    return absl::InvalidArgumentError(
        absl::StrFormat("k has %d and v %d values; [%d keys][%d KV heads][%d head_dim] expected",
                        k.size(), v.size(), num_keys, m.num_kv_heads, hd));
  }
  for (int kv = 0; kv < m.num_kv_heads; ++kv) {
    const HeadTables& t = m.Tables(layer, kv);
    const HeadState& s = m.layers[layer].heads[kv];
    auto dest = [&](absl::Span<float> x, int64_t token) {
      return x.subspan((static_cast<size_t>(token) * m.num_kv_heads + kv) * hd, hd);
    };
    auto widen = [&](const uint16_t* row, absl::Span<float> x) {
      for (size_t d = 0; d < hd; ++d) x[d] = HalfToFloat(row[d]);
    };
    int64_t token = 0;
    for (int i = 0; i < split->sinks; ++i, ++token) {
      widen(s.sink_k.data() + i * hd, dest(k, token));
      widen(s.sink_v.data() + i * hd, dest(v, token));
    }
    std::vector<uint8_t> k_record(t.k_quant.PackedBytes()), v_record(t.v_quant.PackedBytes());
    const size_t page_bytes = t.page.page_bytes();
    for (int i = 0; i < split->packed; ++i, ++token) {
      ReadRecordsFromPage(
          t.page, absl::MakeConstSpan(s.pages).subspan((i / kPageTokens) * page_bytes, page_bytes),
          i % kPageTokens, absl::MakeSpan(k_record), absl::MakeSpan(v_record));
      t.k_quant.Decode(k_record, dest(k, token));
      t.v_quant.Decode(v_record, dest(v, token));
    }
    for (int i = 0; i < split->recent; ++i, ++token) {
      const size_t row = static_cast<size_t>(split->recent_row + i) * hd;
      widen(s.recent_k.data() + row, dest(k, token));
      widen(s.recent_v.data() + row, dest(v, token));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<PackedHeadView> PackedKvCache::HeadView(int layer, int kv_head,
                                                       int64_t num_keys) const {
  const Impl& m = *impl_;
  absl::StatusOr<PrefixSplit> split = m.Split(layer, num_keys);
  if (!split.ok()) return split.status();
  if (kv_head < 0 || kv_head >= m.num_kv_heads) {
    return absl::InvalidArgumentError(
        absl::StrFormat("KV head %d is outside the cache's %d", kv_head, m.num_kv_heads));
  }
  const HeadTables& t = m.Tables(layer, kv_head);
  const HeadState& s = m.layers[layer].heads[kv_head];
  PackedHeadView view;
  view.layout = &t.page;
  const size_t page_bytes = t.page.page_bytes();
  for (size_t offset = 0; offset < s.pages.size(); offset += page_bytes) {
    view.pages.push_back(absl::MakeConstSpan(s.pages).subspan(offset, page_bytes));
  }
  view.num_packed_tokens = split->packed;
  const size_t hd = m.head_dim;
  view.sink = {.k = absl::MakeConstSpan(s.sink_k).first(split->sinks * hd),
               .v = absl::MakeConstSpan(s.sink_v).first(split->sinks * hd),
               .num_tokens = split->sinks};
  const size_t row = static_cast<size_t>(split->recent_row) * hd;
  view.recent = {.k = absl::MakeConstSpan(s.recent_k).subspan(row, split->recent * hd),
                 .v = absl::MakeConstSpan(s.recent_v).subspan(row, split->recent * hd),
                 .num_tokens = split->recent};
  return view;
}

std::vector<Rotation> PackedKvCache::KRotations(int layer, int kv_head) const {
  std::vector<Rotation> out;
  if (layer < 0 || layer >= impl_->num_layers || kv_head < 0 || kv_head >= impl_->num_kv_heads) {
    return out;
  }
  for (const QuantGroup& g : impl_->Tables(layer, kv_head).page.k_layout().groups) {
    out.push_back(impl_->rotations.at(g.size));
  }
  return out;
}

const Rotation& PackedKvCache::VRotation() const { return impl_->rotations.at(impl_->head_dim); }

PackedTokenBytes PackedKvCache::BytesPerToken(int layer, int kv_head) const {
  if (layer < 0 || layer >= impl_->num_layers || kv_head < 0 || kv_head >= impl_->num_kv_heads) {
    return {};
  }
  const PackedPageLayout& page = impl_->Tables(layer, kv_head).page;
  // K's blocks and norms precede V's; the page's alignment padding is at the end.
  return {.k = static_cast<double>(page.v_block_offset()) / kPageTokens,
          .v = static_cast<double>(page.page_bytes() - page.v_block_offset()) / kPageTokens};
}

PackedTokenBytes PackedKvCache::MeanBytesPerToken() const {
  PackedTokenBytes mean;
  for (int l = 0; l < impl_->num_layers; ++l) {
    for (int h = 0; h < impl_->num_kv_heads; ++h) {
      const PackedTokenBytes b = BytesPerToken(l, h);
      mean.k += b.k;
      mean.v += b.v;
    }
  }
  const double heads = static_cast<double>(impl_->num_layers) * impl_->num_kv_heads;
  mean.k /= heads;
  mean.v /= heads;
  return mean;
}

}  // namespace kvplan
