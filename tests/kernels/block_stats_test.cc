#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kvplan/kernels/launch.h"
#include "tests/kernels/codec_fixtures.h"
#include "tests/kernels/gpu_test_util.h"

namespace kvplan::kernels::testing {
namespace {

void CheckBlockStats(int tokens, int kv_heads, int group, int head_dim) {
  KVPLAN_SKIP_WITHOUT_GPU();
  const int blocks = head_dim / 2;
  const int q_heads = kv_heads * group;
  const std::vector<float> q = RandomVector(static_cast<size_t>(tokens) * q_heads * head_dim, 11);
  const std::vector<float> k =
      RandomVector(static_cast<size_t>(tokens) * kv_heads * head_dim, 12, 3.0);
  std::vector<int> dims(2 * blocks);
  for (int b = 0; b < blocks; ++b) {
    dims[2 * b] = b;
    dims[2 * b + 1] = b + blocks;
  }
  std::vector<double> want_q(kv_heads * blocks), want_k(kv_heads * blocks);
  for (int t = 0; t < tokens; ++t) {
    for (int h = 0; h < kv_heads; ++h) {
      for (int b = 0; b < blocks; ++b) {
        for (int d : {dims[2 * b], dims[2 * b + 1]}) {
          const double kv = k[(static_cast<size_t>(t) * kv_heads + h) * head_dim + d];
          want_k[h * blocks + b] += kv * kv;
          for (int j = 0; j < group; ++j) {
            const double qv = q[(static_cast<size_t>(t) * q_heads + h * group + j) * head_dim + d];
            want_q[h * blocks + b] += qv * qv;
          }
        }
      }
    }
  }
  DeviceBuffer<float> dq(q), dk(k);
  DeviceBuffer<int> ddims(dims);
  DeviceBuffer<double> dqs(std::vector<double>(kv_heads * blocks, 0.0));
  DeviceBuffer<double> dks(std::vector<double>(kv_heads * blocks, 0.0));
  BlockStatsParams p;
  p.q = dq.get();
  p.k = dk.get();
  p.block_dims = ddims.get();
  p.q_sums = dqs.get();
  p.k_sums = dks.get();
  p.num_tokens = tokens;
  p.num_kv_heads = kv_heads;
  p.group_size = group;
  p.head_dim = head_dim;
  p.num_blocks = blocks;
  KVPLAN_CUDA_OK(LaunchBlockStats(p, nullptr));
  KVPLAN_CUDA_OK(cudaDeviceSynchronize());
  const std::vector<double> got_q = dqs.ToHost(), got_k = dks.ToHost();
  const std::string config = "block_stats_t" + std::to_string(tokens) + "_h" +
                             std::to_string(kv_heads) + "_g" + std::to_string(group) + "_hd" +
                             std::to_string(head_dim);
  std::vector<float> got(got_q.begin(), got_q.end());
  got.insert(got.end(), got_k.begin(), got_k.end());
  std::vector<double> want = want_q;
  want.insert(want.end(), want_k.begin(), want_k.end());
  // fp64 sums in another order: far below fp32's resolution, so compare as fp32.
  EXPECT_TRUE(AllClose(config, got, want, 0.0, 1e-6));
}

TEST(BlockStatsKernelTest, OneToken) { CheckBlockStats(1, 2, 4, 64); }
TEST(BlockStatsKernelTest, OddTokensLlamaShape) { CheckBlockStats(333, 8, 4, 128); }
TEST(BlockStatsKernelTest, ManyTokensQwenShape) { CheckBlockStats(4099, 2, 8, 128); }

}  // namespace
}  // namespace kvplan::kernels::testing
