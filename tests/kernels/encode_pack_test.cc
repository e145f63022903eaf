// Encode + pack on the GPU against GroupedQuantizer + WriteRecordsToPage on the
// CPU, bit for bit over whole page buffers (which also proves that no other
// slot's bits change): every K width 1..8, per-head layouts differing, every
// V width, token counts 1, odd, page boundary ±1, many pages.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "core/group_layout.h"
#include "core/grouped_quantizer.h"
#include "core/packed_page.h"
#include "core/random.h"
#include "kvplan/kernels/launch.h"
#include "kvplan/kernels/packed_plan.h"
#include "tests/kernels/codec_fixtures.h"
#include "tests/kernels/gpu_test_util.h"

namespace kvplan::kernels::testing {
namespace {

struct EncodeCase {
  int head_dim;
  int kv_heads;
  int v_bits;
  int tokens;
  bool every_width;  // head 0 uses every width 1..8
};

std::string Name(const EncodeCase& c) {
  std::ostringstream s;
  s << "encode_hd" << c.head_dim << "_h" << c.kv_heads << "_v" << c.v_bits << "_t" << c.tokens
    << (c.every_width ? "_allwidths" : "");
  return s.str();
}

void RunEncodeCase(const EncodeCase& c) {
  KVPLAN_SKIP_WITHOUT_GPU();
  const int hd = c.head_dim;
  std::vector<HeadCodec> codecs;
  for (int h = 0; h < c.kv_heads; ++h) {
    if (h == 0 && c.every_width) {
      std::vector<int> widths(hd / 2);
      for (int i = 0; i < hd / 2; ++i) widths[i] = 1 + (i * 7 + 3) % 8;
      codecs.push_back(CodecFromWidths(widths, 500 + h));
    } else {
      codecs.push_back(RandomCodec(hd, 2.0 + h, 600 + h));
    }
  }
  PackedDecodeConfig config;
  config.num_layers = 1;
  config.num_kv_heads = c.kv_heads;
  config.head_dim = hd;
  config.group_size = 1;
  config.v_bits = c.v_bits;
  config.encode_only = true;  // attention's dispatch set has fewer V widths
  absl::StatusOr<PackedDecodePlan> plan = PackedDecodePlan::Create(config, codecs);
  ASSERT_TRUE(plan.ok()) << plan.status();
  std::vector<PackedPageLayout> layouts;
  int64_t stride = 0;
  for (int h = 0; h < c.kv_heads; ++h) {
    layouts.push_back(*PackedPageLayout::Create(codecs[h].k_layout, c.v_bits));
    stride = std::max<int64_t>(stride, layouts.back().page_bytes());
  }
  // Tokens go to shuffled slots of shuffled pages.
  const int pages = (c.tokens + kPageTokens - 1) / kPageTokens + 2;
  std::vector<int64_t> slots(static_cast<size_t>(pages) * kPageTokens);
  std::iota(slots.begin(), slots.end(), 0);
  DeterministicRng rng(c.tokens * 7 + hd);
  for (size_t i = slots.size() - 1; i > 0; --i) std::swap(slots[i], slots[rng.NextU64() % (i + 1)]);
  slots.resize(c.tokens);
  if (c.tokens > 3) slots[2] = -1;  // a padding token: skipped
  const std::vector<float> k =
      RandomVector(static_cast<size_t>(c.tokens) * c.kv_heads * hd, 21, 2.0);
  const std::vector<float> v = RandomVector(static_cast<size_t>(c.tokens) * c.kv_heads * hd, 22);
  std::vector<uint8_t> pool(static_cast<size_t>(pages) * c.kv_heads * stride);
  for (size_t i = 0; i < pool.size(); ++i) pool[i] = static_cast<uint8_t>(rng.NextU64());

  // CPU: records, then the page conversion.
  std::vector<uint8_t> want = pool;
  for (int h = 0; h < c.kv_heads; ++h) {
    const GroupedQuantizer kq =
        *GroupedQuantizer::Create(codecs[h].k_layout, codecs[h].k_rotations);
    const GroupedQuantizer vq =
        *GroupedQuantizer::Create(*UniformLayout(hd, c.v_bits), {codecs[h].v_rotation});
    std::vector<uint8_t> kr(kq.PackedBytes()), vr(vq.PackedBytes());
    for (int t = 0; t < c.tokens; ++t) {
      if (slots[t] < 0) continue;
      const size_t row = (static_cast<size_t>(t) * c.kv_heads + h) * hd;
      kq.Encode(absl::MakeConstSpan(k.data() + row, hd), absl::MakeSpan(kr));
      vq.Encode(absl::MakeConstSpan(v.data() + row, hd), absl::MakeSpan(vr));
      uint8_t* page = want.data() + ((slots[t] / kPageTokens) * c.kv_heads + h) * stride;
      WriteRecordsToPage(layouts[h], kr, vr, static_cast<int>(slots[t] % kPageTokens),
                         absl::MakeSpan(page, stride));
    }
  }

  void* ws = nullptr;
  KVPLAN_CUDA_OK(cudaMalloc(&ws, plan->workspace_bytes()));
  KVPLAN_CUDA_OK(plan->Upload(ws, nullptr));
  DeviceBuffer<float> dk(k), dv(v);
  DeviceBuffer<int64_t> dslots(slots);
  DeviceBuffer<uint8_t> dpool(pool);
  EncodePackParams p = plan->EncodeParams(0, ws);
  ASSERT_EQ(p.page_stride, stride);
  p.k = dk.get();
  p.v = dv.get();
  p.slot_mapping = dslots.get();
  p.pages = dpool.get();
  p.num_tokens = c.tokens;
  KVPLAN_CUDA_OK(LaunchEncodePack(p, nullptr));
  KVPLAN_CUDA_OK(cudaDeviceSynchronize());
  const std::vector<uint8_t> got = dpool.ToHost();
  cudaFree(ws);

  size_t bad = 0;
  std::ostringstream report;
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i] != want[i]) {
      if (bad++ < 2000) {
        report << "byte " << i << " (page " << i / (c.kv_heads * stride) << " head "
               << (i / stride) % c.kv_heads << " offset " << i % stride << "): got " << int{got[i]}
               << " want " << int{want[i]} << '\n';
      }
    }
  }
  EXPECT_EQ(bad, 0u) << Name(c) << ": " << bad
                     << " bytes differ; dump: " << DumpFailure(Name(c), report.str());
}

class EncodePackTest : public ::testing::TestWithParam<EncodeCase> {};

TEST_P(EncodePackTest, MatchesCpuBitForBit) { RunEncodeCase(GetParam()); }

INSTANTIATE_TEST_SUITE_P(
    Sizes, EncodePackTest,
    ::testing::Values(EncodeCase{128, 2, 3, 1, true}, EncodeCase{128, 3, 3, 33, true},
                      EncodeCase{128, 2, 2, 63, false}, EncodeCase{128, 2, 4, 64, true},
                      EncodeCase{128, 2, 8, 65, false}, EncodeCase{64, 4, 3, 129, true},
                      EncodeCase{64, 2, 1, 40, true}, EncodeCase{64, 2, 5, 40, false},
                      EncodeCase{128, 2, 6, 70, true}, EncodeCase{128, 2, 7, 17, false},
                      EncodeCase{128, 8, 3, 1000, false}),
    [](const ::testing::TestParamInfo<EncodeCase>& test_info) { return Name(test_info.param); });

}  // namespace
}  // namespace kvplan::kernels::testing
