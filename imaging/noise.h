// noise.h: camera noise on raw counts: Poisson shot noise, Gaussian read noise and a camera
// offset. Every random draw is keyed on (seed, voxel index, draw number) through the counter-based
// mixer of kernels/rng.h, so results are bit-identical across runs and OpenMP thread counts.
//
// Poisson sampling is exact at every mean: inversion by sequential multiplication for mean < 10,
// Hoermann's transformed rejection (PTRS, 1993) for mean >= 10. No normal approximation is used.
// Gaussian draws use the Box-Muller transform on two 53-bit uniforms.
#pragma once
#include <cstdint>

#include "imaging/volume.h"

namespace isonet {

// One Poisson draw of the given mean (>= 0, finite) for element `index` under `seed`.
double poisson_sample(double mean, uint64_t seed, uint64_t index);
// One standard-normal draw for element `index` under `seed`.
double normal_sample(uint64_t seed, uint64_t index);

// In place: each value (an expected photon count, >= 0) becomes a Poisson draw of that mean.
// Negative or non-finite values are refused with the first offending index.
void add_poisson_noise(Volume& counts, uint64_t seed);
// In place: adds N(0, sigma^2) to every value.
void add_gaussian_noise(Volume& v, double sigma, uint64_t seed);

// A simple sCMOS/CCD camera model with gain 1 (one count per photon):
//   out = Poisson(max(clean, 0) * photons_per_unit) + N(0, read_sigma^2) + offset      [counts]
// clean: noise-free intensities (negative values, e.g. ringing of a deconvolution, are taken as 0).
// The result is in counts (the offset is not subtracted); divide by photons_per_unit after
// subtracting the offset to return to the clean scale.
struct CameraNoise {
  double photons_per_unit = 100.0;  // expected photons for an intensity of 1.0 (> 0)
  double read_sigma = 0.0;          // Gaussian read noise, in counts
  double offset = 0.0;              // camera baseline, in counts
  bool poisson = true;              // shot noise on or off
  uint64_t seed = 0;
};
Volume apply_camera_noise(const Volume& clean, const CameraNoise& camera);

}  // namespace isonet
