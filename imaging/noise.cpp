// noise.cpp: implementation of noise.h. Draw k for element i under seed s is the 53-bit uniform
// mix64(mix64(mix64(s ^ domain) ^ k) ^ i) >> 11, so no generator state is shared between
// elements and any thread may compute any element.
#include "imaging/noise.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string>

#include "kernels/error.h"
#include "kernels/rng.h"

namespace isonet {

namespace {

// Domain tags keep the Poisson and Gaussian streams of the same seed independent.
constexpr uint64_t kPoissonDomain = 0x506F6973736F6E31ull;  // "Poisson1"
constexpr uint64_t kNormalDomain = 0x4E6F726D616C3031ull;   // "Normal01"

// Uniform in [0, 1) with 53 random bits.
inline double uniform01(uint64_t key, uint64_t draw, uint64_t index) {
  return double(mix64(mix64(key ^ draw) ^ index) >> 11) * 0x1.0p-53;
}

// log(k!) exactly (via lgamma at start-up) for k < 256, Stirling's series beyond (error < 1e-15).
double log_factorial(double k) {
  static const std::array<double, 256> table = [] {
    std::array<double, 256> t{};
    double s = 0;
    for (int i = 1; i < 256; ++i) t[i] = s += std::log(double(i));
    return t;
  }();
  if (k < 256) return table[size_t(k)];
  const double n = k + 1, n2 = n * n;
  return (n - 0.5) * std::log(n) - n + 0.91893853320467274178 + (1.0 / 12 - (1.0 / 360 - 1.0 / (1260 * n2)) / n2) / n;
}

// Poisson draw for one element: key = mix64(seed ^ domain).
double poisson_keyed(double mean, uint64_t key, uint64_t index) {
  uint64_t draw = 0;
  if (mean < 10.0) {
    // Inversion by sequential multiplication (Knuth): count uniforms until their product drops
    // below exp(-mean). About mean + 1 draws.
    const double limit = std::exp(-mean);
    double prod = 1.0;
    double k = 0;
    for (;;) {
      prod *= uniform01(key, draw++, index);
      if (prod <= limit) return k;
      k += 1;
    }
  }
  // PTRS: transformed rejection with squeeze (W. Hoermann, "The transformed rejection method for
  // generating Poisson random variables", Insurance: Mathematics and Economics 12, 1993).
  // Acceptance rate above 0.9 for mean >= 10; exact.
  const double slam = std::sqrt(mean), loglam = std::log(mean);
  const double b = 0.931 + 2.53 * slam, a = -0.059 + 0.02483 * b;
  const double inv_alpha = 1.1239 + 1.1328 / (b - 3.4), vr = 0.9277 - 3.6224 / (b - 2.0);
  for (;;) {
    const double u = uniform01(key, draw++, index) - 0.5, v = uniform01(key, draw++, index);
    const double us = 0.5 - std::fabs(u);
    const double k = std::floor((2.0 * a / us + b) * u + mean + 0.43);
    if (us >= 0.07 && v <= vr) return k;
    if (k < 0 || (us < 0.013 && v > us)) continue;
    if (std::log(v) + std::log(inv_alpha) - std::log(a / (us * us) + b) <= -mean + k * loglam - log_factorial(k)) {
      return k;
    }
  }
}

double normal_keyed(uint64_t key, uint64_t index) {
  // Box-Muller with u1 in (0, 1] so the log is finite; one of the pair is used.
  const double u1 = 1.0 - uniform01(key, 0, index), u2 = uniform01(key, 1, index);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586477 * u2);
}

void check_mean(double mean, const char* op, size_t index) {
  if (!(std::isfinite(mean) && mean >= 0)) {
    fail(op, ": expected photon count at element ", index, " is ", mean,
         " (must be finite and >= 0: Poisson noise applies to raw counts)");
  }
}

}  // namespace

double poisson_sample(double mean, uint64_t seed, uint64_t index) {
  check_mean(mean, "poisson_sample", index);
  if (mean == 0) return 0;
  return poisson_keyed(mean, mix64(seed ^ kPoissonDomain), index);
}

double normal_sample(uint64_t seed, uint64_t index) { return normal_keyed(mix64(seed ^ kNormalDomain), index); }

void add_poisson_noise(Volume& counts, uint64_t seed) {
  const long long n = (long long)counts.data.size();
  for (long long i = 0; i < n; ++i) check_mean(counts.data[i], "add_poisson_noise", size_t(i));
  const uint64_t key = mix64(seed ^ kPoissonDomain);
#pragma omp parallel for schedule(static)
  for (long long i = 0; i < n; ++i) {
    const double m = counts.data[i];
    counts.data[i] = m == 0 ? 0.f : float(poisson_keyed(m, key, uint64_t(i)));
  }
}

void add_gaussian_noise(Volume& v, double sigma, uint64_t seed) {
  ISONET_CHECK(std::isfinite(sigma) && sigma >= 0, "add_gaussian_noise: sigma must be finite and >= 0, got ", sigma);
  const long long n = (long long)v.data.size();
  const uint64_t key = mix64(seed ^ kNormalDomain);
#pragma omp parallel for schedule(static)
  for (long long i = 0; i < n; ++i) v.data[i] = float(v.data[i] + sigma * normal_keyed(key, uint64_t(i)));
}

Volume apply_camera_noise(const Volume& clean, const CameraNoise& cam) {
  ISONET_CHECK(std::isfinite(cam.photons_per_unit) && cam.photons_per_unit > 0,
               "apply_camera_noise: photons_per_unit must be > 0, got ", cam.photons_per_unit);
  ISONET_CHECK(std::isfinite(cam.read_sigma) && cam.read_sigma >= 0, "apply_camera_noise: read_sigma must be >= 0, got ",
               cam.read_sigma);
  ISONET_CHECK(std::isfinite(cam.offset), "apply_camera_noise: offset must be finite, got ", cam.offset);
  require_finite(clean, "apply_camera_noise");
  Volume out = clean;
  const long long n = (long long)clean.data.size();
  const uint64_t pkey = mix64(cam.seed ^ kPoissonDomain), nkey = mix64(cam.seed ^ kNormalDomain);
#pragma omp parallel for schedule(static)
  for (long long i = 0; i < n; ++i) {
    const double mean = std::max(0.0, double(clean.data[i])) * cam.photons_per_unit;
    double counts = cam.poisson && mean > 0 ? poisson_keyed(mean, pkey, uint64_t(i)) : mean;
    if (cam.read_sigma > 0) counts += cam.read_sigma * normal_keyed(nkey, uint64_t(i));
    out.data[i] = float(counts + cam.offset);
  }
  return out;
}

}  // namespace isonet
