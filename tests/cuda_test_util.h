// cuda_test_util.h: helpers of the CUDA parity tests (test_cuda_ops_parity.cpp,
// test_cuda_conv_fft.cpp): device buffers between sentinel-filled guard regions with a poisoned
// (NaN) body, bitwise comparison, and the normalized tolerance for fp32 reductions. The device
// calls need a GPU; tests call isonet::test::gpu_or_skip() first.
#pragma once
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/device.h"
#include "test_util.h"

namespace isonet::test {

// Guard elements on each side of a device buffer. 64 floats keep the body 256-byte aligned
// (float4 paths); kGuardMisaligned shifts it by one float so the scalar paths run too.
constexpr size_t kGuard = 64;
constexpr size_t kGuardMisaligned = 65;

template <class T>
T sentinel();
template <>
inline float sentinel<float>() {
  return -1.2345678e30f;  // finite and distinctive; compared by bits
}
template <>
inline int32_t sentinel<int32_t>() {
  return 0x5EED5EED;
}

template <class T>
T poison();
template <>
inline float poison<float>() {
  return test::poison_value();  // NaN: an element the kernel does not write fails every comparison
}
template <>
inline int32_t poison<int32_t>() {
  return -777;  // not a valid argmax
}

template <class T>
bool same_bits(T a, T b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

// A device buffer of `count` elements between two guard regions filled with sentinel<T>().
template <class T>
class Guarded {
 public:
  explicit Guarded(size_t count, size_t guard = kGuard) : count_(count), guard_(guard), total_(count + 2 * guard) {
    base_ = static_cast<T*>(device_alloc(Device::CUDA, total_ * sizeof(T)));
    std::vector<T> init(total_, sentinel<T>());
    device_copy(base_, Device::CUDA, init.data(), Device::CPU, total_ * sizeof(T));
  }
  Guarded(const std::vector<T>& values, size_t guard = kGuard) : Guarded(values.size(), guard) { set(values); }
  ~Guarded() { device_free(Device::CUDA, base_, total_ * sizeof(T)); }
  Guarded(const Guarded&) = delete;
  Guarded& operator=(const Guarded&) = delete;

  T* get() { return base_ + guard_; }
  size_t size() const { return count_; }

  void set(const std::vector<T>& values) {
    REQUIRE(values.size() == count_);
    device_copy(base_ + guard_, Device::CUDA, values.data(), Device::CPU, count_ * sizeof(T));
  }
  void poison_body() { set(std::vector<T>(count_, poison<T>())); }

  // The body; CHECKs that both guard regions still hold the sentinel.
  std::vector<T> read(const std::string& what) {
    std::vector<T> all(total_);
    device_copy(all.data(), Device::CPU, base_, Device::CUDA, total_ * sizeof(T));
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < total_; ++i) {
      if (i >= guard_ && i < guard_ + count_) continue;
      if (!same_bits(all[i], sentinel<T>()) && bad++ == 0) first = i;
    }
    INFO(what << ": " << bad << " guard elements overwritten, first at offset "
              << static_cast<long long>(first) - static_cast<long long>(guard_) << " from the body start");
    CHECK(bad == 0);
    return std::vector<T>(all.begin() + guard_, all.begin() + guard_ + count_);
  }

 private:
  size_t count_, guard_, total_;
  T* base_ = nullptr;
};

// Bit-for-bit equality (NaN payloads included), printing the first mismatches.
template <class T>
void check_bitwise(const std::string& what, const std::vector<T>& ref, const std::vector<T>& got) {
  REQUIRE(ref.size() == got.size());
  size_t bad = 0;
  std::string first;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (same_bits(ref[i], got[i])) continue;
    if (bad++ < 5) first += "  [" + std::to_string(i) + "] ref=" + std::to_string(ref[i]) + " got=" + std::to_string(got[i]) + "\n";
  }
  INFO(what << ": " << bad << " of " << ref.size() << " elements differ\n" << first);
  CHECK(bad == 0);
}

// Per-element check for fp32 reductions of L products: |got - ref| <= factor * eps * sqrt(L) * mag,
// where mag = the same reduction over absolute values (sum |a_j b_j|, computed by the CPU twin on
// |inputs|). Reason: the CPU (blocked sgemm) and the GPU (per-thread FMA chains, then partials)
// sum in different orders; every partial sum is bounded by mag, and each rounding adds at most
// eps/2 of it; with random rounding the accumulated error grows like sqrt(L) (the worst case L*eps
// is never approached). factor = 6 covers two independent implementations at ~5 sigma over
// millions of elements. NaN never passes.
inline void check_normalized(const std::string& what, const std::vector<float>& ref, const std::vector<float>& mag,
                      const std::vector<float>& got, double reduction_length, double factor = 6.0) {
  REQUIRE(ref.size() == got.size());
  REQUIRE(ref.size() == mag.size());
  const double scale = factor * FLT_EPSILON * std::sqrt(reduction_length);
  size_t bad = 0;
  double worst = 0;  // max |got-ref| / (eps*sqrt(L)*mag)
  std::string first;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double diff = std::fabs(static_cast<double>(got[i]) - ref[i]);
    const double tol = scale * mag[i] + 1e-30;  // exact zeros (all terms 0) must stay exact
    const bool nan = std::isnan(got[i]) || std::isnan(ref[i]);
    if (!nan && mag[i] > 0) worst = std::max(worst, diff / (FLT_EPSILON * std::sqrt(reduction_length) * mag[i]));
    if (nan || diff > tol) {
      if (bad++ < 5) {
        char buf[200];
        std::snprintf(buf, sizeof buf, "  [%zu] ref=%.9g got=%.9g diff=%.3g tol=%.3g\n", i, ref[i], got[i], diff, tol);
        first += buf;
      }
    }
  }
  INFO(what << ": " << bad << " of " << ref.size() << " elements outside " << factor
            << "*eps*sqrt(L)*sum|terms| (L=" << reduction_length << "), worst " << worst
            << " eps*sqrt(L)*sum|terms|\n"
            << first);
  CHECK(bad == 0);
}

inline std::vector<float> absolute(std::vector<float> v) {
  for (auto& x : v) x = std::fabs(x);
  return v;
}

}  // namespace isonet::test
