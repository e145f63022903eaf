// Shared fixtures for the coordinator tests: synthetic statistics, a model that
// matches them, and a temporary directory.
#ifndef KVPLAN_TESTS_SERVER_SERVER_TEST_UTIL_H_
#define KVPLAN_TESTS_SERVER_SERVER_TEST_UTIL_H_

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>

#include "core/block_stats.h"
#include "core/calibration_file.h"
#include "core/rope.h"
#include "kvplan/v1/model_service.pb.h"
#include "proto/wire_convert.h"

namespace kvplan::testing {

inline constexpr char kFingerprint[] = "fp-test-model-0001";

// Complete statistics of 3 layers x 2 KV heads x 8 blocks (hd 16), GQA 2, whose
// block energies fall with the block index (so allocations are not uniform).
// `seed` shifts the energies so different seeds give different plans.
inline BlockStats TestStats(int seed = 0, int layers = 3) {
  BlockStats stats = *BlockStats::Create(
      {.num_layers = layers, .num_kv_heads = 2, .num_blocks = 8, .group_size = 2});
  for (int l = 0; l < layers; ++l) {
    for (int h = 0; h < 2; ++h) {
      std::vector<double> q, k;
      for (int b = 0; b < 8; ++b) {
        q.push_back(1000.0 / (1 + b * (1 + l + h + seed)) + seed);
        k.push_back(500.0 / (1 + b * (2 + h)) + 0.5 * seed);
      }
      if (!stats.Add(l, h, q, 20, k, 10).ok()) std::abort();
    }
  }
  return stats;
}

inline RopeSpec TestRope() {
  RopeSpec rope;
  rope.head_dim = rope.rotary_dim = 16;
  return rope;
}

inline std::string TestCalibrationFile(int seed = 0, const std::string& fp = kFingerprint) {
  return SerializeCalibrationFile({.model_fingerprint = fp,
                                   .architecture = "LlamaForCausalLM",
                                   .rope = TestRope(),
                                   .num_q_heads = 4,
                                   .stats = TestStats(seed)});
}

inline v1::RegisterModelRequest TestModelRequest(const std::string& id = "tiny") {
  v1::RegisterModelRequest r;
  r.set_model_id(id);
  r.set_fingerprint(kFingerprint);
  v1::ModelArchitecture* a = r.mutable_architecture();
  a->set_num_layers(3);
  a->set_num_q_heads(4);
  a->set_num_kv_heads(2);
  a->set_head_dim(16);
  a->set_architecture("LlamaForCausalLM");
  *a->mutable_rope() = wire::RopeSpecToProto(TestRope());
  return r;
}

// A fresh directory under the system temp dir, removed on destruction.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("kvplan_server_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string Path(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace kvplan::testing

#endif  // KVPLAN_TESTS_SERVER_SERVER_TEST_UTIL_H_
