// device.cpp: backend discovery and raw memory (see device.h). CUDA runtime calls are compiled
// only into CUDA builds; a CPU-only build reports zero devices.
#include "kernels/device.h"

#include <atomic>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "kernels/error.h"
#include "kernels/log.h"

#if ISONET_HAS_CUDA
#include "kernels/cuda_check.h"
#endif

namespace isonet {

static std::atomic<size_t> g_bytes[2];

const char* device_name(Device d) { return d == Device::CPU ? "cpu" : "cuda"; }

bool built_with_cuda() { return ISONET_HAS_CUDA != 0; }

#if ISONET_HAS_CUDA
namespace detail {
void throw_cuda_error(cudaError_t err, const char* op, const char* expr, const char* file, int line) {
  std::string hint;
  if (err == cudaErrorMemoryAllocation)
    hint = " (out of GPU memory: use smaller batches/patches, or tiling with --max-memory)";
  fail(op, ": CUDA error ", cudaGetErrorName(err), " (", cudaGetErrorString(err), ")", hint, " in ", expr,
       " at ", file, ":", line);
}
void throw_library_error(const char* library, int status, const char* op, const char* expr, const char* file,
                         int line) {
  fail(op, ": ", library, " error ", status, " in ", expr, " at ", file, ":", line);
}
}  // namespace detail
#endif

namespace {
struct CudaDiscovery {
  int count = 0;
  std::string reason;  // why count is 0
};

const CudaDiscovery& cuda_discovery() {
  static const CudaDiscovery found = [] {
    CudaDiscovery d;
#if ISONET_HAS_CUDA
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
      cudaGetLastError();  // clear the sticky error so later runtime calls are not confused
      d.reason = std::string("cudaGetDeviceCount: ") + cudaGetErrorString(err);
      log_debug(d.reason + " -> treating as 0 devices");
      n = 0;
    } else if (n == 0) {
      d.reason = "the CUDA runtime reports no device";
    }
    d.count = n;
#else
    d.reason = "built without the CUDA backend";
#endif
    return d;
  }();
  return found;
}
}  // namespace

int cuda_device_count() { return cuda_discovery().count; }

std::string cuda_unavailable_reason() { return cuda_discovery().reason; }

std::string cuda_device_description(int index) {
  ISONET_CHECK(index >= 0 && index < cuda_device_count(), "CUDA device ", index, " does not exist (",
               cuda_device_count(), " usable)");
#if ISONET_HAS_CUDA
  cudaDeviceProp p{};
  CUDA_CHECK("describing a CUDA device", cudaGetDeviceProperties(&p, index));
  char memory[32];
  std::snprintf(memory, sizeof memory, "%.1f GiB", double(p.totalGlobalMem) / double(size_t(1) << 30));
  return std::string(p.name) + ", compute capability " + std::to_string(p.major) + "." + std::to_string(p.minor) +
         ", " + memory;
#else
  return {};  // unreachable: no device is usable without the backend
#endif
}

Device select_device(const std::string& request) {
  if (request == "cpu") return Device::CPU;
  if (request == "cuda") {
    if (!built_with_cuda()) fail("--device cuda: this isonet was built without the CUDA backend");
    if (!cuda_available())
      fail("--device cuda: no usable CUDA device found (no GPU, or the driver is missing or too old)");
    return Device::CUDA;
  }
  if (request == "auto" || request.empty()) {
    if (cuda_available()) return Device::CUDA;
    static std::once_flag once;
    std::call_once(once, [] {
      log_info(built_with_cuda() ? "no CUDA device found: running on the CPU"
                                 : "built without CUDA: running on the CPU");
    });
    return Device::CPU;
  }
  fail("unknown device '", request, "' (expected auto, cpu or cuda)");
}

static void require_cuda(const char* what) {
  if (!built_with_cuda()) fail(what, ": this isonet was built without the CUDA backend");
  if (!cuda_available()) fail(what, ": no usable CUDA device");
}

void* device_alloc(Device d, size_t bytes) {
  if (bytes == 0) return nullptr;
  void* p = nullptr;
  if (d == Device::CPU) {
    size_t rounded = (bytes + 63) / 64 * 64;
    p = std::aligned_alloc(64, rounded);
    if (!p) fail("allocating ", bytes, " bytes of host memory: out of memory");
  } else {
    require_cuda("device_alloc");
#if ISONET_HAS_CUDA
    CUDA_CHECK("allocating GPU memory", cudaMalloc(&p, bytes));
#endif
  }
  g_bytes[static_cast<int>(d)] += bytes;
  return p;
}

void device_free(Device d, void* ptr, size_t bytes) noexcept {
  if (!ptr) return;
  g_bytes[static_cast<int>(d)] -= bytes;
  if (d == Device::CPU) {
    std::free(ptr);
  } else {
#if ISONET_HAS_CUDA
    cudaError_t err = cudaFree(ptr);
    if (err != cudaSuccess) log_info(std::string("cudaFree failed: ") + cudaGetErrorString(err));
#endif
  }
}

void device_copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) {
  if (bytes == 0) return;
  if (dst_device == Device::CPU && src_device == Device::CPU) {
    std::memcpy(dst, src, bytes);
    return;
  }
  require_cuda("device_copy");
#if ISONET_HAS_CUDA
  cudaMemcpyKind kind = cudaMemcpyDefault;
  CUDA_CHECK("copying memory", cudaMemcpy(dst, src, bytes, kind));
#endif
}

void device_memset(Device d, void* ptr, int value, size_t bytes) {
  if (bytes == 0) return;
  if (d == Device::CPU) {
    std::memset(ptr, value, bytes);
    return;
  }
  require_cuda("device_memset");
#if ISONET_HAS_CUDA
  CUDA_CHECK("memset", cudaMemset(ptr, value, bytes));
#endif
}

void device_synchronize(Device d) {
  if (d == Device::CPU) return;
#if ISONET_HAS_CUDA
  CUDA_CHECK("synchronizing the GPU", cudaDeviceSynchronize());
#endif
}

size_t device_bytes_in_use(Device d) { return g_bytes[static_cast<int>(d)]; }

}  // namespace isonet
