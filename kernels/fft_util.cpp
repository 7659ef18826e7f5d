// fft_util.cpp: see fft_util.h.
#include "kernels/fft_util.h"

#include "kernels/error.h"

namespace isonet {

int next_fast_fft_size(int n) {
  ISONET_CHECK(n >= 1, "next_fast_fft_size: size must be >= 1, got ", n);
  for (int m = n;; ++m) {
    int r = m;
    for (int p : {2, 3, 5, 7})
      while (r % p == 0) r /= p;
    if (r == 1) return m;
  }
}

std::mutex& fftw_planner_mutex() {
  static std::mutex m;
  return m;
}

}  // namespace isonet
