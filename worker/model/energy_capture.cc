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

at::Tensor EnergyCapture::BlockSums(const at::Tensor& x, at::IntArrayRef sum_dims) const {
  // Reduce over tokens (and query heads) first, then pair dims into blocks on
  // the small [kv_heads, head_dim] result. A 2-norm reduction reads the
  // activations once without materializing their squares; one forward's partial
  // sums are fp32 (pairwise, ~1e-7 relative error), batches accumulate in fp64.
  at::Tensor values = x.to(at::kFloat);
  if (mask_.defined()) {
    std::vector<int64_t> shape(values.dim(), 1);
    shape[0] = mask_.size(0);
    shape[1] = mask_.size(1);
    values = values * mask_.view(shape);  // The mask is 0/1, so squares are masked too.
  }
  const at::Tensor per_dim =
      at::linalg_vector_norm(values, 2, sum_dims, /*keepdim=*/false).square().to(at::kDouble);
  if (!dim_a_.defined()) {
    // Split-half over the whole head: block i is dims (i, i + hd/2).
    const int64_t half = config_.head_dim / 2;
    return per_dim.narrow(-1, 0, half) + per_dim.narrow(-1, half, half);
  }
  return per_dim.index_select(-1, dim_a_) + per_dim.index_select(-1, dim_b_);
}

void EnergyCapture::Add(int layer, const at::Tensor& q, const at::Tensor& k) {
  // Every query head of the group is its own sample: summed, not averaged first.
  q_sums_.select(0, layer).add_(BlockSums(q, {0, 1, 3}));  // q: [B, T, KVH, G, hd]
  k_sums_.select(0, layer).add_(BlockSums(k, {0, 1}));     // k: [B, T, KVH, hd]
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
