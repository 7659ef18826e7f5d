// version.cpp: `isonet --version` (version.h). ISONET_VERSION, ISONET_BUILD_TYPE,
// ISONET_CUDA_ARCHITECTURES and ISONET_CUDA_VERSION come from CMake (apps/CMakeLists.txt).
#include "apps/version.h"

#include <sstream>

#include "kernels/device.h"

namespace isonet::app {

std::string version_text() {
  std::ostringstream os;
  os << "isonet " << ISONET_VERSION << " (IsoNet-1 and IsoNet-2, Weigert et al., MICCAI 2017)\n";
  os << "build: " << ISONET_BUILD_TYPE << ", CPU kernels + ";
  if (built_with_cuda())
    os << "CUDA backend (CUDA " << ISONET_CUDA_VERSION << ", architectures " << ISONET_CUDA_ARCHITECTURES << ")\n";
  else
    os << "no CUDA backend (built without nvcc or with ISONET_CUDA=OFF)\n";
  const int n = cuda_device_count();
  if (n == 0) {
    os << "CUDA devices: none usable (" << cuda_unavailable_reason() << "); commands run on the CPU\n";
  } else {
    os << "CUDA devices: " << n << "\n";
    for (int i = 0; i < n; ++i) os << "  " << i << ": " << cuda_device_description(i) << "\n";
  }
  return os.str();
}

}  // namespace isonet::app
