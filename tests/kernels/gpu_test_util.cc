#include "tests/kernels/gpu_test_util.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace kvplan::kernels::testing {

bool HasCudaDevice() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

bool DeviceRunsSm90a() {
  int major = 0, minor = 0;
  return HasCudaDevice() &&
         cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0) == cudaSuccess &&
         cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, 0) == cudaSuccess &&
         major == 9 && minor == 0;
}

std::string DumpFailure(const std::string& config, const std::string& text) {
  const std::filesystem::path dir = std::filesystem::path(KVPLAN_BINARY_DIR) / "gpu_failures";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  const std::filesystem::path path = dir / (config + ".txt");
  std::ofstream(path) << text;
  return path.string();
}

::testing::AssertionResult AllClose(const std::string& config, const std::vector<float>& got,
                                    const std::vector<double>& want, double atol, double rtol) {
  if (got.size() != want.size()) {
    return ::testing::AssertionFailure()
           << config << ": " << got.size() << " values, expected " << want.size();
  }
  size_t bad = 0, first_bad = got.size();
  bool got_nonzero = false, want_nonzero = false;
  std::ostringstream report;
  report.precision(9);
  report << "index got want diff tol\n";
  for (size_t i = 0; i < got.size(); ++i) {
    const double diff = std::abs(static_cast<double>(got[i]) - want[i]);
    const double tol = atol + rtol * std::abs(want[i]);
    got_nonzero |= got[i] != 0.0f;
    want_nonzero |= want[i] != 0.0;
    const bool ok = std::isfinite(got[i]) && diff <= tol;
    if (!ok) {
      ++bad;
      if (first_bad == got.size()) first_bad = i;
    }
    report << i << ' ' << got[i] << ' ' << want[i] << ' ' << diff << ' ' << tol
           << (ok ? "" : " BAD") << '\n';
  }
  if (want_nonzero && !got_nonzero) {
    return ::testing::AssertionFailure()
           << config << ": output is all zero; dump: " << DumpFailure(config, report.str());
  }
  if (bad > 0) {
    return ::testing::AssertionFailure()
           << config << ": " << bad << " of " << got.size() << " elements out of tolerance, first "
           << first_bad << " (got " << got[first_bad] << ", want " << want[first_bad]
           << "); dump: " << DumpFailure(config, report.str());
  }
  return ::testing::AssertionSuccess();
}

}  // namespace kvplan::kernels::testing
