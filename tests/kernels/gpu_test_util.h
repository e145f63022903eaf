// Helpers of the GPU tests: device detection for GTEST_SKIP, owning device
// buffers, CUDA error checks, failure dumps named after the configuration and
// the elementwise comparison every kernel test uses (all elements within
// tolerance; NaN/Inf and all-zero outputs fail).
//
// Example:
//   KVPLAN_SKIP_WITHOUT_GPU();
//   DeviceBuffer<float> d(host);           // cudaMalloc + copy
//   std::vector<float> back = d.ToHost();
#ifndef KVPLAN_TESTS_KERNELS_GPU_TEST_UTIL_H_
#define KVPLAN_TESTS_KERNELS_GPU_TEST_UTIL_H_

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

namespace kvplan::kernels::testing {

// True when cudaGetDeviceCount succeeds with at least one device.
bool HasCudaDevice();
// True when device 0 runs sm_90a code (compute capability 9.0: H100, H200),
// what PackedDecodeConfig::wgmma asks of a device.
bool DeviceRunsSm90a();

#define KVPLAN_SKIP_WITHOUT_GPU()                                              \
  do {                                                                         \
    if (!::kvplan::kernels::testing::HasCudaDevice()) {                        \
      GTEST_SKIP() << "no CUDA device (cudaGetDeviceCount failed or found 0)"; \
    }                                                                          \
  } while (0)

#define KVPLAN_CUDA_OK(expr) ASSERT_EQ((expr), cudaSuccess) << cudaGetErrorString(expr)

template <typename T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t count) : count_(count) {
    void* raw = nullptr;
    if (cudaMalloc(&raw, std::max<size_t>(1, count) * sizeof(T)) == cudaSuccess) {
      ptr_ = static_cast<T*>(raw);
    }
  }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) {
    if (ptr_ != nullptr && !host.empty()) {
      cudaMemcpy(ptr_, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice);
    }
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { cudaFree(ptr_); }
  T* get() const { return ptr_; }
  size_t size() const { return count_; }
  std::vector<T> ToHost() const {
    std::vector<T> host(count_);
    if (count_ > 0) cudaMemcpy(host.data(), ptr_, count_ * sizeof(T), cudaMemcpyDeviceToHost);
    return host;
  }

 private:
  T* ptr_ = nullptr;
  size_t count_ = 0;
};

// Writes `text` to <build>/gpu_failures/<config>.txt and returns the path.
std::string DumpFailure(const std::string& config, const std::string& text);

// Every got[i] within atol + rtol·|want[i]| of want[i]; got finite; got not
// all zero unless want is. On failure the full comparison goes to
// DumpFailure(config) and the result says where.
::testing::AssertionResult AllClose(const std::string& config, const std::vector<float>& got,
                                    const std::vector<double>& want, double atol, double rtol);

}  // namespace kvplan::kernels::testing

#endif  // KVPLAN_TESTS_KERNELS_GPU_TEST_UTIL_H_
