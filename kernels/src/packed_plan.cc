#include "kvplan/kernels/packed_plan.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "core/codebook.h"
#include "core/half.h"
#include "kvplan/kernels/code_grid_builder.h"
#include "kvplan/kernels/dispatch.h"

namespace kvplan::kernels {
namespace {

constexpr size_t kAlign = 256;

size_t AlignUp(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

int PairTableOffset(int bits) { return bits == 1 ? 0 : bits == 2 ? 4 : bits == 3 ? 20 : 84; }
int SingleTableOffset(int bits) { return bits == 5 ? 0 : bits == 6 ? 32 : bits == 7 ? 96 : 224; }

absl::Status FillTables(CodeTables& t) {
  std::memset(&t, 0, sizeof(t));
  for (int bits = 1; bits <= 8; ++bits) {
    const Codebook& book = LloydMaxCodebook(bits);
    for (size_t k = 0; k < book.centroids.size(); ++k) t.centroids[bits - 1][k] = book.centroids[k];
    for (size_t k = 0; k < book.boundaries.size(); ++k)
      t.boundaries[bits - 1][k] = book.boundaries[k];
    if (bits <= 4) {
      const int n = 1 << bits;
      for (int e = 0; e < n * n; ++e) {
        const uint32_t lo = FloatToHalf(book.centroids[e & (n - 1)]);
        const uint32_t hi = FloatToHalf(book.centroids[e >> bits]);
        t.pair_tables[PairTableOffset(bits) + e] = lo | (hi << 16);
      }
    } else {
      for (int k = 0; k < (1 << bits); ++k) {
        t.single_tables[SingleTableOffset(bits) + k] = FloatToHalf(book.centroids[k]);
      }
    }
  }
  return FillCodeGrid(t.grid);
}

// The V widths: one per layer when layer_v_bits is set (errors name the
// layer), else v_bits. Attention's dispatch set unless encode_only, which
// takes every width a page can store.
absl::Status CheckVBits(const PackedDecodeConfig& config) {
  auto unsupported = [&](int bits) -> std::string {
    if (!config.encode_only) return UnsupportedVBits(bits);
    if (bits >= 1 && bits <= 8) return "";
    return absl::StrFormat("v_bits %d is outside [1, 8] (encode-only plan)", bits);
  };
  if (config.layer_v_bits.empty()) {
    const std::string e = unsupported(config.v_bits);
    return e.empty() ? absl::OkStatus() : absl::InvalidArgumentError(e);
  }
  if (config.layer_v_bits.size() != static_cast<size_t>(config.num_layers)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "layer_v_bits has %d widths for %d layers", config.layer_v_bits.size(), config.num_layers));
  }
  for (int l = 0; l < config.num_layers; ++l) {
    if (std::string e = unsupported(config.layer_v_bits[l]); !e.empty()) {
      return absl::InvalidArgumentError(absl::StrFormat("layer %d: %s", l, e));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<PackedDecodePlan> PackedDecodePlan::Create(const PackedDecodeConfig& config,
                                                          absl::Span<const HeadCodec> heads) {
  for (const std::string& e :
       {UnsupportedHeadDim(config.head_dim), UnsupportedGroupSize(config.group_size)}) {
    if (!e.empty()) return absl::InvalidArgumentError(e);
  }
  if (config.num_layers < 1 || config.num_kv_heads < 1 || config.max_batch < 1 ||
      config.num_sms < 1 || config.max_splits < 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "num_layers %d, num_kv_heads %d, max_batch %d, num_sms %d must be positive and max_splits "
        "%d non-negative",
        config.num_layers, config.num_kv_heads, config.max_batch, config.num_sms,
        config.max_splits));
  }
  if (config.max_sink < 0 || config.max_recent < 0 ||
      config.max_sink + config.max_recent > kMaxFp16Tokens) {
    return absl::InvalidArgumentError(
        absl::StrFormat("max_sink %d + max_recent %d must be in [0, %d]", config.max_sink,
                        config.max_recent, kMaxFp16Tokens));
  }
  if (absl::Status s = CheckVBits(config); !s.ok()) return s;
  if (!config.version1_layers.empty() && !config.fragment_pages) {
    return absl::InvalidArgumentError(
        "version1_layers names the layers of a fragment_pages plan that keep version-1 pages; "
        "set fragment_pages, or leave version1_layers empty");
  }
  for (int l : config.version1_layers) {
    if (l < 0 || l >= config.num_layers) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "version1_layers names layer %d; the plan has layers 0..%d", l, config.num_layers - 1));
    }
  }
  const size_t num_heads = static_cast<size_t>(config.num_layers) * config.num_kv_heads;
  if (heads.size() != num_heads) {
    return absl::InvalidArgumentError(absl::StrFormat("%d head codecs for %d layers x %d KV heads",
                                                      heads.size(), config.num_layers,
                                                      config.num_kv_heads));
  }
  const int hd = config.head_dim;
  PackedDecodePlan plan;
  plan.config_ = config;
  plan.layer_page_strides_.assign(config.num_layers, 0);
  plan.fragment_layers_.assign(config.num_layers, config.fragment_pages);
  for (int l : config.version1_layers) plan.fragment_layers_[l] = false;
  plan.k_groups_whole_.assign(config.num_layers, true);
  plan.fragment_layouts_.resize(num_heads);
  plan.max_splits_ =
      config.max_splits > 0
          ? config.max_splits
          : std::min(512, (4 * config.num_sms + config.num_kv_heads - 1) / config.num_kv_heads);

  std::vector<PackedHeadDesc> descs(num_heads);
  std::vector<FragmentHeadGeometry> fragments(config.fragment_pages ? num_heads : 0);
  std::vector<float> rotations;
  for (size_t h = 0; h < num_heads; ++h) {
    const HeadCodec& codec = heads[h];
    const int layer = static_cast<int>(h / config.num_kv_heads);
    const std::string where =
        absl::StrFormat("layer %d KV head %d", layer, h % config.num_kv_heads);
    if (codec.k_layout.head_dim != hd) {
      return absl::InvalidArgumentError(absl::StrFormat("%s: K layout head_dim %d, config %d",
                                                        where, codec.k_layout.head_dim, hd));
    }
    absl::StatusOr<PackedPageLayout> layout =
        PackedPageLayout::Create(codec.k_layout, plan.v_bits(layer));
    if (!layout.ok()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: %s", where, layout.status().message()));
    }
    const int groups = layout->num_k_groups();
    if (codec.k_rotations.size() != static_cast<size_t>(groups)) {
      return absl::InvalidArgumentError(absl::StrFormat("%s: %d K rotations for %d groups", where,
                                                        codec.k_rotations.size(), groups));
    }
    if (codec.v_rotation.dim != hd ||
        codec.v_rotation.matrix.size() != static_cast<size_t>(hd) * hd) {
      return absl::InvalidArgumentError(absl::StrFormat("%s: V rotation has dim %d; head_dim is %d",
                                                        where, codec.v_rotation.dim, hd));
    }
    if (plan.fragment_layers_[layer]) {
      absl::StatusOr<FragmentPageLayout> fragment =
          FragmentPageLayout::Create(codec.k_layout, plan.v_bits(layer));
      if (!fragment.ok()) {
        return absl::InvalidArgumentError(
            absl::StrFormat("%s: %s", where, fragment.status().message()));
      }
      FragmentHeadGeometry& f = fragments[h];
      f.k_run_words = fragment->k_run_words();
      f.v_run_words = fragment->v_run_words();
      f.v_runs_offset = static_cast<int>(fragment->v_runs_offset());
      f.norms_offset = static_cast<int>(fragment->norms_offset());
      f.tile_bytes = static_cast<int>(fragment->tile_bytes());
      f.num_k_groups = fragment->num_k_groups();
      for (int half = 0; half < hd / kFragmentHalfSliceDims; ++half) {
        f.half_bits[half] = fragment->half_slice_bits(half);
        f.half_offset[half] = fragment->half_slice_offset(half);
      }
      plan.fragment_layouts_[h] = *std::move(fragment);
    }
    PackedHeadDesc& d = descs[h];
    d.num_groups = groups;
    int padded = 0;
    for (int g = 0; g < groups; ++g) {
      const QuantGroup& q = codec.k_layout.groups[g];
      const Rotation& r = codec.k_rotations[g];
      if (r.dim != q.size || r.matrix.size() != static_cast<size_t>(q.size) * q.size) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "%s: K rotation %d has dim %d; group size is %d", where, g, r.dim, q.size));
      }
      d.bits[g] = q.bits;
      d.size[g] = q.size;
      if (q.size % 16 != 0) plan.k_groups_whole_[layer] = false;
      d.offset[g] = q.offset;
      d.padded_offset[g] = padded;
      padded += (q.size + 15) / 16 * 16;
      d.block_offset[g] = static_cast<int>(layout->k_block_offset(g));
      d.k_rotation_t[g] = static_cast<int64_t>(rotations.size());
      for (int j = 0; j < q.size; ++j) {
        for (int i = 0; i < q.size; ++i)
          rotations.push_back(r.matrix[static_cast<size_t>(i) * q.size + j]);
      }
    }
    d.padded_dims = padded;
    d.k_norm_offset = static_cast<int>(layout->k_norm_offset());
    d.v_block_offset = static_cast<int>(layout->v_block_offset());
    d.v_norm_offset = static_cast<int>(layout->v_norm_offset());
    d.page_bytes = static_cast<int>(layout->page_bytes());
    for (int p = 0; p < hd; ++p)
      d.permutation[p] = static_cast<uint8_t>(codec.k_layout.permutation[p]);
    d.v_rotation_t = static_cast<int64_t>(rotations.size());
    for (int j = 0; j < hd; ++j) {
      for (int i = 0; i < hd; ++i)
        rotations.push_back(codec.v_rotation.matrix[static_cast<size_t>(i) * hd + j]);
    }
    d.v_rotation = static_cast<int64_t>(rotations.size());
    rotations.insert(rotations.end(), codec.v_rotation.matrix.begin(),
                     codec.v_rotation.matrix.end());
    const int64_t page_bytes = plan.fragment_layers_[layer]
                                   ? static_cast<int64_t>(plan.fragment_layouts_[h]->page_bytes())
                                   : d.page_bytes;
    plan.layer_page_strides_[layer] = std::max(plan.layer_page_strides_[layer], page_bytes);
    plan.page_stride_ = std::max(plan.page_stride_, page_bytes);
    plan.layouts_.push_back(*std::move(layout));
  }

  const size_t descs_bytes = AlignUp(num_heads * sizeof(PackedHeadDesc));
  plan.fragment_offset_ = descs_bytes;
  plan.tables_offset_ =
      plan.fragment_offset_ + AlignUp(fragments.size() * sizeof(FragmentHeadGeometry));
  plan.rotations_offset_ = plan.tables_offset_ + AlignUp(sizeof(CodeTables));
  const size_t uploaded = plan.rotations_offset_ + AlignUp(rotations.size() * sizeof(float));
  plan.image_.assign(uploaded, 0);
  std::memcpy(plan.image_.data(), descs.data(), num_heads * sizeof(PackedHeadDesc));
  if (!fragments.empty()) {
    std::memcpy(plan.image_.data() + plan.fragment_offset_, fragments.data(),
                fragments.size() * sizeof(FragmentHeadGeometry));
  }
  if (absl::Status s =
          FillTables(*reinterpret_cast<CodeTables*>(plan.image_.data() + plan.tables_offset_));
      !s.ok()) {
    return s;
  }
  std::memcpy(plan.image_.data() + plan.rotations_offset_, rotations.data(),
              rotations.size() * sizeof(float));

  const size_t parts = static_cast<size_t>(config.max_batch) * config.num_kv_heads *
                       (plan.max_splits_ + 1) * config.group_size;
  plan.partial_o_offset_ = uploaded;
  plan.partial_ml_offset_ = plan.partial_o_offset_ + AlignUp(parts * hd * sizeof(float));
  plan.workspace_bytes_ = plan.partial_ml_offset_ + AlignUp(parts * 2 * sizeof(float));
  return plan;
}

int PackedDecodePlan::v_bits(int layer) const {
  return config_.layer_v_bits.empty() ? config_.v_bits : config_.layer_v_bits[layer];
}

cudaError_t PackedDecodePlan::Upload(void* workspace, cudaStream_t stream) const {
  return cudaMemcpyAsync(workspace, image_.data(), image_.size(), cudaMemcpyHostToDevice, stream);
}

PackedSplitMachine PackedDecodePlan::SplitMachine() const {
  // kAttentionCtasPerSm: the attention kernel's occupancy at K3V3 hd 128.
  return {.resident_ctas = kAttentionCtasPerSm * config_.num_sms,
          .kv_heads = config_.num_kv_heads,
          .max_splits = max_splits_};
}

int PackedDecodePlan::SplitsForLengths(absl::Span<const int> lengths) const {
  return PackedPairSplits(PagesOf(lengths), SplitMachine());
}

int PackedDecodePlan::SplitsFor(int batch, int max_tokens) const {
  const int64_t pages = (std::max(max_tokens, 0) + kPageTokens - 1) / kPageTokens;
  return PackedPairSplits({.batch = batch, .longest = pages, .total = int64_t{batch} * pages},
                          SplitMachine());
}

const FragmentHeadGeometry* PackedDecodePlan::FragmentGeometry(int layer, uint8_t* ws) const {
  if (!fragment_layers_[layer]) return nullptr;
  return reinterpret_cast<const FragmentHeadGeometry*>(ws + fragment_offset_) +
         static_cast<size_t>(layer) * config_.num_kv_heads;
}

EncodePackParams PackedDecodePlan::EncodeParams(int layer, void* workspace) const {
  uint8_t* ws = static_cast<uint8_t*>(workspace);
  EncodePackParams p;
  p.heads = reinterpret_cast<const PackedHeadDesc*>(ws) +
            static_cast<size_t>(layer) * config_.num_kv_heads;
  p.rotations = reinterpret_cast<const float*>(ws + rotations_offset_);
  p.tables = reinterpret_cast<const CodeTables*>(ws + tables_offset_);
  p.page_stride = page_stride(layer);
  p.fragment = FragmentGeometry(layer, ws);
  p.num_kv_heads = config_.num_kv_heads;
  p.head_dim = config_.head_dim;
  p.v_bits = v_bits(layer);
  p.num_sms = config_.num_sms;
  p.k_groups_whole = k_groups_whole_[layer];
  p.wgmma = config_.wgmma;
  return p;
}

PackedDecodeParams PackedDecodePlan::DecodeParams(int layer, void* workspace, int batch,
                                                  int num_splits) const {
  uint8_t* ws = static_cast<uint8_t*>(workspace);
  PackedDecodeParams p;
  p.heads = reinterpret_cast<const PackedHeadDesc*>(ws) +
            static_cast<size_t>(layer) * config_.num_kv_heads;
  p.rotations = reinterpret_cast<const float*>(ws + rotations_offset_);
  p.tables = reinterpret_cast<const CodeTables*>(ws + tables_offset_);
  p.num_kv_heads = config_.num_kv_heads;
  p.group_size = config_.group_size;
  p.head_dim = config_.head_dim;
  p.v_bits = v_bits(layer);
  p.num_splits = std::clamp(num_splits, 1, max_splits_);
  p.page_stride = page_stride(layer);
  p.fragment = FragmentGeometry(layer, ws);
  p.partial_o = reinterpret_cast<float*>(ws + partial_o_offset_);
  p.partial_ml = reinterpret_cast<float*>(ws + partial_ml_offset_);
  p.batch = std::min(batch, config_.max_batch);
  p.max_sink = config_.max_sink;
  p.max_recent = config_.max_recent;
  p.num_sms = config_.num_sms;
  return p;
}

}  // namespace kvplan::kernels
