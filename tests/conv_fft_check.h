// conv_fft_check.h: the tolerance for comparing a frequency-domain convolution (conv2d_fft.h) with
// the direct one, shared by the host replay of the CUDA algorithm (test_conv2d_fft_gpu_math.cpp)
// and the GPU parity test (test_cuda_conv_fft.cpp), so the bound checked on the GPU is the one
// calibrated on the host with FFTW in single precision.
#pragma once
#include <doctest/doctest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

namespace isonet::test {

// Checks |got - ref| <= factor * eps * log2(N) * plane_mag for every element, where N = ph * pw is
// the transform size and plane_mag = max over the element's output plane of mag (the direct
// convolution of |inputs| with |weights| plus |bias|: the sum of |terms| of each output).
// Why per plane and not per element: an FFT's rounding error is normwise. Every output element is
// a combination of all bins of its plane, and each bin carries errors of order eps * log2(N)
// times the plane's transform magnitude (forward transforms of data and kernel, the complex
// channel sum, the inverse transform), spread evenly over the plane; an element whose own terms
// are small (borders, cancellation) gets the same absolute error as the rest. The RMS error is
// about eps * log2(N) * plane_mag / sqrt(channels). Measured with FFTW in single precision (the
// host replay test): worst 0.41 over the small odd shapes, 0.17 on IsoNet-2's layers; factor 8
// leaves room for cuFFT's own rounding (same O(eps log N) algorithms, different twiddle and
// radix choices) and for the maximum over up to ~1e7 elements. An indexing bug (a wrong tap, a wrapped row, a missing
// scale) is off by at least one term, |w||x| ~ plane_mag / (c * k^2) >= 1e-4 plane_mag here,
// far above the ~1e-5 bound. NaN never passes.
struct FftCloseReport {
  size_t bad = 0;      // elements outside the bound (NaN included)
  double worst = 0;    // max |got - ref| / (eps * log2(N) * plane_mag)
  std::string first;   // the first mismatches
};

// The comparison without CHECKing (to show in a test that a wrong result fails it).
inline FftCloseReport fft_close_report(const std::vector<float>& ref, const std::vector<float>& mag,
                                       const std::vector<float>& got, size_t plane_elems, double transform_points,
                                       double factor = 8.0) {
  REQUIRE(ref.size() == got.size());
  REQUIRE(ref.size() == mag.size());
  REQUIRE(plane_elems > 0);
  REQUIRE(ref.size() % plane_elems == 0);
  const double unit = FLT_EPSILON * std::log2(std::max(transform_points, 2.0));
  FftCloseReport r;
  for (size_t p0 = 0; p0 < ref.size(); p0 += plane_elems) {
    double plane_mag = 0;
    for (size_t e = p0; e < p0 + plane_elems; ++e) plane_mag = std::max(plane_mag, static_cast<double>(mag[e]));
    const double tol = factor * unit * plane_mag + 1e-30;  // an all-zero plane must come out exactly zero
    for (size_t e = p0; e < p0 + plane_elems; ++e) {
      const double diff = std::fabs(static_cast<double>(got[e]) - ref[e]);
      const bool nan = std::isnan(got[e]) || std::isnan(ref[e]);
      if (!nan && plane_mag > 0) r.worst = std::max(r.worst, diff / (unit * plane_mag));
      if (nan || !(diff <= tol)) {
        if (r.bad++ < 5) {
          char buf[200];
          std::snprintf(buf, sizeof buf, "  [%zu] ref=%.9g got=%.9g diff=%.3g tol=%.3g\n", e, ref[e], got[e], diff,
                        tol);
          r.first += buf;
        }
      }
    }
  }
  return r;
}

// CHECKs the bound above; returns the worst ratio (for calibration messages).
inline double check_fft_close(const std::string& what, const std::vector<float>& ref, const std::vector<float>& mag,
                              const std::vector<float>& got, size_t plane_elems, double transform_points,
                              double factor = 8.0) {
  const FftCloseReport r = fft_close_report(ref, mag, got, plane_elems, transform_points, factor);
  INFO(what << ": " << r.bad << " of " << ref.size() << " elements outside " << factor
            << "*eps*log2(N)*plane max of sum|terms| (N=" << transform_points << "), worst " << r.worst
            << " eps*log2(N)*plane_mag\n"
            << r.first);
  CHECK(r.bad == 0);
  return r.worst;
}

}  // namespace isonet::test
