// device.h: which backend runs (CPU or CUDA), device discovery and raw device memory.
// A CUDA build runs on machines without a GPU: any error from cudaGetDeviceCount counts as
// zero devices, and `auto` then picks the CPU with one log line.
#pragma once
#include <cstddef>
#include <string>

namespace isonet {

enum class Device { CPU, CUDA };

const char* device_name(Device d);

// True when this binary was built with the CUDA backend.
bool built_with_cuda();

// Number of usable CUDA devices; 0 when built without CUDA or when the driver reports an error
// (e.g. "driver version is insufficient" on machines without a GPU). Queried once, cached.
int cuda_device_count();

// Why cuda_device_count() is 0, "" when it is not: "built without the CUDA backend", the runtime's
// error ("cudaGetDeviceCount: CUDA driver version is insufficient for CUDA runtime version") or
// "the CUDA runtime reports no device".
std::string cuda_unavailable_reason();

// "NVIDIA H100 80GB HBM3, compute capability 9.0, 79.1 GiB" for usable device `index`.
std::string cuda_device_description(int index);

// True when CUDA kernels can run here.
inline bool cuda_available() { return cuda_device_count() > 0; }

// Parses "auto", "cpu" or "cuda". `auto` picks CUDA when available, else the CPU and logs one
// line saying why. Asking for "cuda" where there is none throws isonet::Error naming the cause.
Device select_device(const std::string& request);

// Raw memory on a device. CPU memory is 64-byte aligned. Bytes of 0 give nullptr.
void* device_alloc(Device d, size_t bytes);
void device_free(Device d, void* ptr, size_t bytes) noexcept;
// Copies bytes between any two devices (synchronous with respect to the host).
void device_copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes);
// Sets every byte to `value` (used to poison outputs in tests).
void device_memset(Device d, void* ptr, int value, size_t bytes);
// Waits for all outstanding CUDA work (no-op on the CPU).
void device_synchronize(Device d);

// Bytes currently allocated through device_alloc per device (accounting, for tests and logs).
size_t device_bytes_in_use(Device d);

}  // namespace isonet
