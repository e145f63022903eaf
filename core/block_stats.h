// Per-(layer, KV head, RoPE block) query and key energy statistics.
//
// `BlockStats` accumulates Σ‖q⁽ⁱ⁾‖² over query rows and Σ‖k⁽ⁱ⁾‖² over tokens, with
// the row counts, for every block of every KV head of every layer. Workers fill
// one per shard; the coordinator merges them. Sums are held in 128-bit fixed
// point (2⁻⁴⁸ resolution) rather than floating point so that merging is exact
// integer addition: any number of shards merged in any order give the same bits,
// which is what "a shard counts exactly once" needs to be checkable.
//
// Example:
//   absl::StatusOr<BlockStats> stats = BlockStats::Create({.num_layers = 32,
//       .num_kv_heads = 8, .num_blocks = 64, .group_size = 4});
//   // One batch: per-block sums over 4·T query rows and T key tokens.
//   stats->Add(layer, head, q_block_sums, 4 * T, k_block_sums, T);
//   std::vector<double> eq = stats->MeanQ(layer, head);  // E‖q⁽ⁱ⁾‖²
//   std::string bytes = stats->Serialize();
//
// Thread safety: const methods may run concurrently; mutators need exclusive access.
#ifndef KVPLAN_CORE_BLOCK_STATS_H_
#define KVPLAN_CORE_BLOCK_STATS_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/numeric/int128.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace kvplan {

struct StatsShape {
  int num_layers = 0;
  int num_kv_heads = 0;
  // RoPE blocks per head: head_dim / 2.
  int num_blocks = 0;
  // Query heads per KV head (GQA group size); each is its own query sample.
  int group_size = 1;

  friend bool operator==(const StatsShape&, const StatsShape&) = default;
};

// "layers=32 kv_heads=8 blocks=64 group=4", for error messages.
std::string ShapeString(const StatsShape& shape);

class BlockStats {
 public:
  // Largest value a single sum may reach; beyond it Add/Merge fail rather than wrap.
  static constexpr double kMaxSum = 1e22;

  // Zeroed statistics. InvalidArgument if any dimension is not positive.
  static absl::StatusOr<BlockStats> Create(const StatsShape& shape);

  const StatsShape& shape() const { return shape_; }

  // Adds per-block sums for one (layer, kv_head): `q_block_sums[i]` is Σ‖q⁽ⁱ⁾‖² over
  // `q_rows` query rows, `k_block_sums[i]` is Σ‖k⁽ⁱ⁾‖² over `k_tokens` keys.
  // Refuses (and changes nothing) on out-of-range indices, wrong lengths, or
  // values that are negative, NaN, Inf or too large.
  absl::Status Add(int layer, int kv_head, absl::Span<const double> q_block_sums, uint64_t q_rows,
                   absl::Span<const double> k_block_sums, uint64_t k_tokens);

  // Adds `other` into this one exactly. FailedPrecondition if the shapes differ;
  // this is unchanged on error.
  absl::Status Merge(const BlockStats& other);

  uint64_t q_rows(int layer, int kv_head) const { return q_rows_[HeadIndex(layer, kv_head)]; }
  uint64_t k_tokens(int layer, int kv_head) const { return k_tokens_[HeadIndex(layer, kv_head)]; }
  // Total key tokens summed over heads of layer 0 (the tokens the statistics saw).
  uint64_t tokens() const { return k_tokens_.empty() ? 0 : k_tokens_[0]; }

  double q_sum(int layer, int kv_head, int block) const;
  double k_sum(int layer, int kv_head, int block) const;
  // E‖q⁽ⁱ⁾‖² and E‖k⁽ⁱ⁾‖² per block; zeros where nothing was counted.
  std::vector<double> MeanQ(int layer, int kv_head) const;
  std::vector<double> MeanK(int layer, int kv_head) const;

  // OK when every (layer, head) has seen at least one query row and one key.
  absl::Status CheckComplete() const;

  // Compact, versioned, checksummed encoding (grammar in block_stats.cc).
  std::string Serialize() const;
  // DataLoss naming the bad part for truncated, corrupt or foreign bytes.
  static absl::StatusOr<BlockStats> Deserialize(std::string_view bytes);

  friend bool operator==(const BlockStats&, const BlockStats&) = default;

 private:
  explicit BlockStats(const StatsShape& shape);
  size_t HeadIndex(int layer, int kv_head) const {
    return static_cast<size_t>(layer) * shape_.num_kv_heads + kv_head;
  }
  size_t BlockIndex(int layer, int kv_head, int block) const {
    return HeadIndex(layer, kv_head) * shape_.num_blocks + block;
  }
  std::vector<double> Means(const std::vector<absl::uint128>& sums,
                            const std::vector<uint64_t>& counts, int layer, int kv_head) const;

  StatsShape shape_;
  std::vector<absl::uint128> q_sums_;  // [layer][kv_head][block], fixed point.
  std::vector<absl::uint128> k_sums_;
  std::vector<uint64_t> q_rows_;  // [layer][kv_head]
  std::vector<uint64_t> k_tokens_;
};

}  // namespace kvplan

#endif  // KVPLAN_CORE_BLOCK_STATS_H_
