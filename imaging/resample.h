// resample.h: 1D resampling of a volume along one axis by a (possibly fractional) factor S >= 1:
// the axial upsampling of the restore step, and the decimation S_sigma and upsample-back of the
// training-pair model (paper eq. 2).
//
// Geometry (../shared/DESIGN.md section 5): input sample k lies at output position k*S, the first
// samples coincide, no half-step shift. Upsampling: output sample j reads input position j/S, so
// input sample k lands exactly on output sample k*S whenever k*S is an integer (positions within
// 1e-9 of an integer snap to it, so floating error never blurs an acquired plane). Subsampling
// (decimation): output sample k reads input position k*S.
//
// Interpolation:
//  - Linear: 2 taps.
//  - Cubic: Keys cubic convolution with a = -0.5 (what the paper and most tools call "bicubic");
//    4 taps, interpolating (weights 1,0,0,0 at integer positions), third-order accurate: it
//    reproduces polynomials of degree <= 2 exactly wherever all 4 taps lie inside the input.
// Edges: indices outside [0, n-1] are clamped (replicate the edge sample). Consequences, tested:
//  - linear reproduces a ramp exactly on [0, n-1]; cubic reproduces ramps and quadratics exactly
//    on [1, n-2] (all taps inside) and only approximately in the first/last input interval;
//  - positions past the last input sample (n-1, the "extrapolated" planes after the last acquired
//    plane) repeat the last sample with linear; with cubic they are f[n-1] plus a small
//    (|w| <= 0.075) overshoot term towards f[n-2].
// Subsampling of a fractional factor reads positions k*S by LINEAR interpolation, whatever the
// interpolation chosen for the upsample-back (no anti-alias prefilter: in eq. 2 the PSF blur is the
// prefilter, as in the microscope). For an integer factor the positions are integers and
// subsampling is an exact copy of every S-th sample.
#pragma once
#include <cstddef>
#include <vector>

#include "imaging/volume.h"

namespace isonet {

enum class Interp { Linear, Cubic };

const char* interp_name(Interp i);
// Parses "linear" or "cubic" (also "bicubic"); anything else is an isonet::Error.
Interp parse_interp(const char* name);

// Number of output samples when upsampling n samples by `factor`: ceil(n*S) (the restored volume
// has ceil(Z*S) planes); n*S within 1e-9 of an integer counts as that integer.
int upsampled_length(int n, double factor);
// Number of samples k with k*S <= n-1 (again with 1e-9 slack): floor((n-1)/S) + 1.
int subsampled_length(int n, double factor);

// Precomputed taps along one axis: output sample j = sum_t w[j][t] * input[idx[j][t]].
// Build once, apply to many lines/planes (e.g. every plane of the training data).
class AxisSampler {
 public:
  // Output j reads input position j/factor; n_out < 0 means upsampled_length(n_in, factor).
  static AxisSampler upsample(int n_in, double factor, Interp interp, int n_out = -1);
  // Output k reads input position k*factor (linear), n_out = subsampled_length(n_in, factor).
  static AxisSampler subsample(int n_in, double factor);

  int n_in() const { return n_in_; }
  int n_out() const { return n_out_; }

  // in: [outer, n_in, inner] -> out: [outer, n_out, inner] (x fastest); out must not alias in.
  // `inner` = product of the sizes of the faster axes (1 for x, nx for y, ny*nx for z).
  void apply(const float* in, float* out, size_t outer, size_t inner) const;

 private:
  static constexpr int kTaps = 4;
  AxisSampler(int n_in, int n_out) : n_in_(n_in), n_out_(n_out), idx_(size_t(n_out) * kTaps), w_(size_t(n_out) * kTaps) {}
  void set_taps(int j, double position, Interp interp);
  int n_in_, n_out_;
  std::vector<int> idx_;  // [n_out, 4] clamped input indices
  std::vector<float> w_;  // [n_out, 4] weights (unused taps have weight 0)
};

// Axis numbers of a ZYX volume.
constexpr int kAxisZ = 0, kAxisY = 1, kAxisX = 2;

// Upsamples `v` along `axis` (0=z, 1=y, 2=x) by `factor` >= 1 to out_len samples (out_len < 0:
// upsampled_length). The voxel size along that axis is divided by `factor`. factor 1 with the
// default length is the identity (a copy).
Volume upsample_axis(const Volume& v, int axis, double factor, Interp interp, int out_len = -1);

// Decimation S_sigma along `axis`: keeps the samples at positions k*factor (linear interpolation
// for fractional factors), subsampled_length(n, factor) of them. Voxel size along axis times factor.
Volume subsample_axis(const Volume& v, int axis, double factor);

// The restore step's first stage: upsamples along z to ceil(nz*S) planes (acquired plane k at
// plane k*S) and sets voxel.z to the lateral pixel size voxel.x. Logs a warning when voxel.y and
// voxel.x differ by more than 1% (the result is then not isotropic), and when voxel.z/S is not
// voxel.x within 1% (the factor does not match the metadata; the factor given wins, it is never
// changed silently).
Volume upsample_axial(const Volume& v, double factor, Interp interp);

}  // namespace isonet
