#include "core/block_stats.h"

#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/byte_io.h"
#include "core/digest.h"

// Serialized form (all integers little-endian):
//
//   stats      := header heads checksum
//   header     := "KVPS" u32:version(=1) u32:num_layers u32:num_kv_heads
//                 u32:num_blocks u32:group_size
//   heads      := head{num_layers * num_kv_heads}       (layer-major, then KV head)
//   head       := u64:q_rows u64:k_tokens block{num_blocks}
//   block      := u128:q_sum u128:k_sum                  (u128 := u64:low u64:high;
//                                                          fixed point, 2^-48 units)
//   checksum   := 64 ASCII bytes: lowercase hex SHA-256 of everything before it
//
// Version changes whenever the grammar does; readers refuse versions they do not know.

namespace kvplan {
namespace {

constexpr char kMagic[4] = {'K', 'V', 'P', 'S'};
constexpr uint32_t kFormatVersion = 1;
constexpr int kFractionBits = 48;
constexpr size_t kChecksumBytes = 64;
constexpr size_t kHeaderBytes = 4 + 5 * 4;

absl::uint128 ToFixed(double value) {
  return absl::uint128(std::nearbyint(std::ldexp(value, kFractionBits)));
}

double FromFixed(absl::uint128 value) {
  return std::ldexp(static_cast<double>(value), -kFractionBits);
}

const absl::uint128 kMaxFixed = ToFixed(BlockStats::kMaxSum);

absl::Status CheckSums(absl::Span<const double> sums, int num_blocks, const char* what) {
  if (static_cast<int>(sums.size()) != num_blocks) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s block sums have %d entries, expected one per RoPE block (%d)", what,
                        sums.size(), num_blocks));
  }
  for (size_t i = 0; i < sums.size(); ++i) {
    if (!std::isfinite(sums[i]) || sums[i] < 0.0 || sums[i] > BlockStats::kMaxSum) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s energy sum of block %d is %g; sums must be finite, >= 0 and <= %g (check the "
          "capture for overflow or NaN activations)",
          what, i, sums[i], BlockStats::kMaxSum));
    }
  }
  return absl::OkStatus();
}

class Writer {
 public:
  void Bytes(const void* data, size_t n) { out_.append(static_cast<const char*>(data), n); }
  void U32(uint32_t v) { AppendLittleEndian(out_, v, 4); }
  void U64(uint64_t v) { AppendLittleEndian(out_, v, 8); }
  void U128(absl::uint128 v) {
    U64(absl::Uint128Low64(v));
    U64(absl::Uint128High64(v));
  }
  std::string& out() { return out_; }

 private:
  std::string out_;
};

// Reads fields whose presence the caller checked against the total size first.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  uint32_t U32() { return static_cast<uint32_t>(Le(4)); }
  uint64_t U64() { return Le(8); }
  absl::uint128 U128() {
    const uint64_t low = U64();
    return absl::MakeUint128(U64(), low);
  }

 private:
  uint64_t Le(int bytes) {
    uint64_t v = 0;
    in_.LittleEndian(bytes, &v);
    return v;
  }
  ByteReader in_;
};

}  // namespace

std::string ShapeString(const StatsShape& s) {
  return absl::StrFormat("layers=%d kv_heads=%d blocks=%d group=%d", s.num_layers, s.num_kv_heads,
                         s.num_blocks, s.group_size);
}

BlockStats::BlockStats(const StatsShape& shape)
    : shape_(shape),
      q_sums_(static_cast<size_t>(shape.num_layers) * shape.num_kv_heads * shape.num_blocks),
      k_sums_(q_sums_.size()),
      q_rows_(static_cast<size_t>(shape.num_layers) * shape.num_kv_heads),
      k_tokens_(q_rows_.size()) {}

absl::StatusOr<BlockStats> BlockStats::Create(const StatsShape& shape) {
  constexpr int kMaxDim = 1 << 16;
  if (shape.num_layers <= 0 || shape.num_kv_heads <= 0 || shape.num_blocks <= 0 ||
      shape.group_size <= 0 || shape.num_layers > kMaxDim || shape.num_kv_heads > kMaxDim ||
      shape.num_blocks > kMaxDim || shape.group_size > kMaxDim) {
    return absl::InvalidArgumentError(absl::StrCat(
        "statistics shape must have every dimension in [1, 65536]; got ", ShapeString(shape)));
  }
  return BlockStats(shape);
}

absl::Status BlockStats::Add(int layer, int kv_head, absl::Span<const double> q_block_sums,
                             uint64_t q_rows, absl::Span<const double> k_block_sums,
                             uint64_t k_tokens) {
  if (layer < 0 || layer >= shape_.num_layers || kv_head < 0 || kv_head >= shape_.num_kv_heads) {
    return absl::InvalidArgumentError(
        absl::StrFormat("(layer %d, kv_head %d) is outside the statistics shape %s", layer, kv_head,
                        ShapeString(shape_)));
  }
  if (absl::Status st = CheckSums(q_block_sums, shape_.num_blocks, "query"); !st.ok()) return st;
  if (absl::Status st = CheckSums(k_block_sums, shape_.num_blocks, "key"); !st.ok()) return st;
  const size_t base = BlockIndex(layer, kv_head, 0);
  std::vector<absl::uint128> q(shape_.num_blocks), k(shape_.num_blocks);
  for (int i = 0; i < shape_.num_blocks; ++i) {
    q[i] = q_sums_[base + i] + ToFixed(q_block_sums[i]);
    k[i] = k_sums_[base + i] + ToFixed(k_block_sums[i]);
    if (q[i] > kMaxFixed || k[i] > kMaxFixed) {
      return absl::OutOfRangeError(
          absl::StrFormat("energy sum of (layer %d, kv_head %d, block %d) would exceed %g", layer,
                          kv_head, i, kMaxSum));
    }
  }
  std::copy(q.begin(), q.end(), q_sums_.begin() + base);
  std::copy(k.begin(), k.end(), k_sums_.begin() + base);
  q_rows_[HeadIndex(layer, kv_head)] += q_rows;
  k_tokens_[HeadIndex(layer, kv_head)] += k_tokens;
  return absl::OkStatus();
}

absl::Status BlockStats::Merge(const BlockStats& other) {
  if (!(other.shape_ == shape_)) {
    return absl::FailedPreconditionError(absl::StrCat("cannot merge statistics of shape ",
                                                      ShapeString(other.shape_), " into ",
                                                      ShapeString(shape_)));
  }
  for (size_t i = 0; i < q_sums_.size(); ++i) {
    if (q_sums_[i] + other.q_sums_[i] > kMaxFixed || k_sums_[i] + other.k_sums_[i] > kMaxFixed) {
      return absl::OutOfRangeError(
          absl::StrFormat("merged energy sum of block record %d would exceed %g", i, kMaxSum));
    }
  }
  for (size_t i = 0; i < q_sums_.size(); ++i) {
    q_sums_[i] += other.q_sums_[i];
    k_sums_[i] += other.k_sums_[i];
  }
  for (size_t i = 0; i < q_rows_.size(); ++i) {
    q_rows_[i] += other.q_rows_[i];
    k_tokens_[i] += other.k_tokens_[i];
  }
  return absl::OkStatus();
}

double BlockStats::q_sum(int layer, int kv_head, int block) const {
  return FromFixed(q_sums_[BlockIndex(layer, kv_head, block)]);
}

double BlockStats::k_sum(int layer, int kv_head, int block) const {
  return FromFixed(k_sums_[BlockIndex(layer, kv_head, block)]);
}

std::vector<double> BlockStats::Means(const std::vector<absl::uint128>& sums,
                                      const std::vector<uint64_t>& counts, int layer,
                                      int kv_head) const {
  std::vector<double> means(shape_.num_blocks, 0.0);
  const uint64_t n = counts[HeadIndex(layer, kv_head)];
  if (n == 0) return means;
  const size_t base = BlockIndex(layer, kv_head, 0);
  for (int i = 0; i < shape_.num_blocks; ++i) {
    means[i] = FromFixed(sums[base + i]) / static_cast<double>(n);
  }
  return means;
}

std::vector<double> BlockStats::MeanQ(int layer, int kv_head) const {
  return Means(q_sums_, q_rows_, layer, kv_head);
}

std::vector<double> BlockStats::MeanK(int layer, int kv_head) const {
  return Means(k_sums_, k_tokens_, layer, kv_head);
}

absl::Status BlockStats::CheckComplete() const {
  for (int l = 0; l < shape_.num_layers; ++l) {
    for (int h = 0; h < shape_.num_kv_heads; ++h) {
      if (q_rows(l, h) == 0 || k_tokens(l, h) == 0) {
        return absl::FailedPreconditionError(absl::StrFormat(
            "statistics of (layer %d, kv_head %d) are empty; calibrate on at least one token", l,
            h));
      }
    }
  }
  return absl::OkStatus();
}

std::string BlockStats::Serialize() const {
  Writer w;
  w.Bytes(kMagic, sizeof(kMagic));
  w.U32(kFormatVersion);
  w.U32(shape_.num_layers);
  w.U32(shape_.num_kv_heads);
  w.U32(shape_.num_blocks);
  w.U32(shape_.group_size);
  for (size_t head = 0; head < q_rows_.size(); ++head) {
    w.U64(q_rows_[head]);
    w.U64(k_tokens_[head]);
    for (int i = 0; i < shape_.num_blocks; ++i) {
      w.U128(q_sums_[head * shape_.num_blocks + i]);
      w.U128(k_sums_[head * shape_.num_blocks + i]);
    }
  }
  const std::string checksum = Sha256Hex(w.out());
  w.Bytes(checksum.data(), checksum.size());
  return std::move(w.out());
}

absl::StatusOr<BlockStats> BlockStats::Deserialize(std::string_view bytes) {
  if (bytes.size() < kHeaderBytes + kChecksumBytes ||
      std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0) {
    return absl::DataLossError(
        "not a kvplan statistics file (missing 'KVPS' header); was it written by "
        "kvplan-worker calibrate?");
  }
  Reader r(bytes.substr(sizeof(kMagic)));
  const uint32_t version = r.U32();
  if (version != kFormatVersion) {
    return absl::DataLossError(absl::StrFormat(
        "statistics format version %d is not supported (this build reads version %d)", version,
        kFormatVersion));
  }
  StatsShape shape;
  shape.num_layers = static_cast<int>(r.U32());
  shape.num_kv_heads = static_cast<int>(r.U32());
  shape.num_blocks = static_cast<int>(r.U32());
  shape.group_size = static_cast<int>(r.U32());
  absl::StatusOr<BlockStats> stats = Create(shape);
  if (!stats.ok()) {
    return absl::DataLossError(absl::StrCat("statistics header: ", stats.status().message()));
  }
  const size_t heads = stats->q_rows_.size();
  const size_t expected =
      kHeaderBytes + heads * (16 + 32 * static_cast<size_t>(shape.num_blocks)) + kChecksumBytes;
  if (bytes.size() != expected) {
    return absl::DataLossError(absl::StrFormat(
        "statistics file is %d bytes but its header (%s) implies %d; the file is truncated or "
        "padded",
        bytes.size(), ShapeString(shape), expected));
  }
  const std::string_view body = bytes.substr(0, expected - kChecksumBytes);
  if (Sha256Hex(body) != bytes.substr(expected - kChecksumBytes)) {
    return absl::DataLossError("statistics file checksum mismatch: the file is corrupt");
  }
  for (size_t head = 0; head < heads; ++head) {
    stats->q_rows_[head] = r.U64();
    stats->k_tokens_[head] = r.U64();
    for (int i = 0; i < shape.num_blocks; ++i) {
      stats->q_sums_[head * shape.num_blocks + i] = r.U128();
      stats->k_sums_[head * shape.num_blocks + i] = r.U128();
    }
  }
  return stats;
}

}  // namespace kvplan
