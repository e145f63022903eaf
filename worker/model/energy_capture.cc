#include "worker/model/energy_capture.h"

#include <vector>

#include "absl/strings/str_cat.h"

namespace kvplan::torch_internal {

EnergyCapture::EnergyCapture(const ModelConfig& config, at::Device device, const at::Tensor& valid,
                             int64_t real_tokens)
    : config_(config), tokens_(real_tokens) {
  if (real_tokens != valid.numel()) mask_ = valid.to(at::kFloat);
  const RopeSpec& rope = config.rope;
  if (rope.rotary_dim != rope.head_dim || rope.style != RopeStyle::kSplitHalf) {
    std::vector<int64_t> a, b;
    for (const auto& dims : rope.AllBlockDims()) {
      a.push_back(dims[0]);
      b.push_back(dims[1]);
    }
    const auto options = at::TensorOptions().dtype(at::kLong);
    dim_a_ = at::tensor(a, options).to(device);
    dim_b_ = at::tensor(b, options).to(device);
  }
  const auto sums = at::TensorOptions().dtype(at::kDouble).device(device);
  q_sums_ = at::zeros({config.num_layers, config.num_kv_heads, config.head_dim / 2}, sums);
  k_sums_ = at::zeros_like(q_sums_);
}

at::Tensor EnergyCapture::BlockEnergy(const at::Tensor& x) const {
  const at::Tensor sq = x.to(at::kFloat).square();
  if (!dim_a_.defined()) {
    // Split-half over the whole head: block i is dims (i, i + hd/2).
    const int64_t half = config_.head_dim / 2;
    return sq.narrow(-1, 0, half) + sq.narrow(-1, half, half);
  }
  return sq.index_select(-1, dim_a_) + sq.index_select(-1, dim_b_);
}

void EnergyCapture::Add(int layer, const at::Tensor& q, const at::Tensor& k) {
  at::Tensor eq = BlockEnergy(q);  // [B, T, KVH, G, blocks]
  at::Tensor ek = BlockEnergy(k);  // [B, T, KVH, blocks]
  if (mask_.defined()) {
    eq = eq * mask_.view({mask_.size(0), mask_.size(1), 1, 1, 1});
    ek = ek * mask_.view({mask_.size(0), mask_.size(1), 1, 1});
  }
  // Every query head of the group is its own sample: summed, not averaged first.
  q_sums_.select(0, layer).add_(eq.sum(at::IntArrayRef{0, 1, 3}, /*keepdim=*/false, at::kDouble));
  k_sums_.select(0, layer).add_(ek.sum(at::IntArrayRef{0, 1}, /*keepdim=*/false, at::kDouble));
}

absl::Status EnergyCapture::AddTo(BlockStats& stats) const {
  const StatsShape shape = config_.stats_shape();
  if (!(stats.shape() == shape)) {
    return absl::InvalidArgumentError(absl::StrCat("capture statistics have shape ",
                                                   ShapeString(stats.shape()), ", the model ",
                                                   ShapeString(shape)));
  }
  const at::Tensor q = q_sums_.to(at::kCPU).contiguous();
  const at::Tensor k = k_sums_.to(at::kCPU).contiguous();
  const double* qp = q.data_ptr<double>();
  const double* kp = k.data_ptr<double>();
  const int blocks = shape.num_blocks;
  // Fill a scratch copy and merge it, so a bad value (NaN from a diverging
  // model) leaves `stats` untouched rather than half-updated.
  absl::StatusOr<BlockStats> batch = BlockStats::Create(shape);
  if (!batch.ok()) return batch.status();
  for (int layer = 0; layer < shape.num_layers; ++layer) {
    for (int head = 0; head < shape.num_kv_heads; ++head) {
      const size_t offset = (static_cast<size_t>(layer) * shape.num_kv_heads + head) * blocks;
      absl::Status st =
          batch->Add(layer, head, absl::MakeConstSpan(qp + offset, blocks),
                     static_cast<uint64_t>(tokens_) * shape.group_size,
                     absl::MakeConstSpan(kp + offset, blocks), static_cast<uint64_t>(tokens_));
      if (!st.ok()) {
        return absl::Status(
            st.code(), absl::StrCat("captured energies of layer ", layer, ", KV head ", head, ": ",
                                    std::string(st.message())));
      }
    }
  }
  return stats.Merge(*batch);
}

}  // namespace kvplan::torch_internal
