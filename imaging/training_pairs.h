// training_pairs.h: training pairs for IsoNet from the anisotropic volume itself, the paper's
// eq. (2):  p_xy = S_sigma(h~ (x) g_xy).  Target = a lateral patch of g; input = the same patch
// after blurring with the 2D training kernel h~ (rotated "full" or "split", imaging/psf_training.h),
// decimating along the axis that plays z by the factor S, and upsampling back onto the same grid
// (so input and target have the same size and alignment, as the network needs).
//
// ORIENTATION CONVENTION (the restore side must follow it):
//   In every patch [P, P] handed to the network, the z-role axis is the ROW axis (H, the slower
//   axis of [n, 1, H, W]). At restore time the network therefore sees the axial slices of the
//   z-upsampled volume [Z', Y, X] as they lie in memory with z along rows: the XZ slice at fixed y
//   is [Z', X] and the YZ slice at fixed x is [Z', Y].
//   For training, lateral planes [ny, nx] are used in two layouts: as they are (y plays z, x is
//   the other axis) and transposed to [nx, ny] (x plays z, y is the other axis); both are then
//   blurred with the same kernel whose ROWS play z and decimated along rows. (Transposing the
//   plane rather than the kernel keeps z on the rows of every patch.) `both_orientations`
//   draws half the patches from each layout on average; without it only the untransposed one.
//   The kernel: a Volume [1, ky, kx] whose z-role axis is named by `kernel_z_axis`: Y means its
//   rows play z (as used here), X means its columns do and it is transposed first. NB:
//   psf_training.h's TrainingPsfOptions defaults to z_axis = X; pass the same value here.
//
// Pipeline per plane (raw units first, so that noise acts on counts):
//   mirror-pad the plane by the kernel half-sizes (edge repeated: a b c | c b a), convolve with
//   the kernel (FftConvolver, OTF and plans cached and reused over planes; the kernel is rescaled
//   to sum 1), crop; optional camera noise (imaging/noise.h) on the blurred plane in raw units;
//   percentile normalization with the volume's parameters; decimation along rows at positions
//   k*S (resample.h: exact rows for integer S, linear interpolation for fractional S); upsampling
//   back along rows to the plane's row count (output row j reads position j/S; cubic Keys
//   a=-0.5 by default, or linear; the last < 1 decimated step past the last kept row is
//   extrapolated by edge clamping, exactly as upsample_axial does after the last acquired plane).
//   The decimation grid starts at row 0 of each (oriented) plane; patches start at random rows,
//   so every grid phase occurs.
//   The target is the normalized plane itself.
//
// Patch selection (never hangs): candidates (layout, plane z, row, column) are drawn uniformly
// with a counter-based RNG keyed on `seed`; a candidate is accepted when the
// `foreground_percentile`-th percentile (default 99.9) of its TARGET patch, in units normalized
// by the volume's (norm_low, norm_high) percentiles, is >= `foreground_threshold` (default 0.4,
// CSBDeep's no_background_patches threshold; CSBDeep compares a max filter against
// threshold * the image's 99.9th percentile; a high patch percentile instead of the max ignores
// single hot pixels while keeping small spots). After max_tries_per_patch * n_patches candidates
// the patches found so far are returned; `shortfall()` says how many are missing (and one line is
// logged). Accepted patches are ordered by candidate draw; they may overlap.
//
// Augmentation (paper: "where it is compatible with the symmetries of the PSF"): each accepted
// pair is transformed jointly (input and target) by one element drawn uniformly from the allowed
// subset of the 8 symmetries of the square, element e = bits (kFlipRows, kFlipCols, kTranspose),
// applied as: flip rows if set, flip columns if set, then transpose if set. An element is allowed
// iff the kernel (rows = z) is invariant under it about its centre pixel (ky/2, kx/2), within
// max|k(e) - k| <= symmetry_tolerance * max|k| (pixels leaving the array count as 0), and, for
// the elements that transpose (the 90-degree rotations and the two transposes), only when S == 1
// (otherwise they would move the decimation, i.e. the z role, onto the columns; with S == 1 a
// kernel invariant under them is in particular no longer elongated along z). Row flips change only the phase of the decimation grid, which is random anyway; the
// 180-degree rotation is (kFlipRows | kFlipCols). Element 0 (identity) is always allowed.
//
// Normalization: the volume's percentiles are computed once (normalize.h, norm_low/norm_high,
// default 2/99.8, no clipping) and applied to inputs and targets; the parameters are returned
// with the pairs for the model file and the undo. With normalize = false the data stay in input
// units (parameters = identity) and the percentiles still define the foreground test.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "imaging/fft_convolve.h"
#include "imaging/normalize.h"
#include "imaging/psf_training.h"
#include "imaging/resample.h"
#include "imaging/volume.h"
#include "kernels/device.h"

namespace isonet {

// Symmetry element bits (see above); element ids are 0..7.
constexpr uint8_t kFlipRows = 1, kFlipCols = 2, kTranspose = 4;

// Camera noise on the blurred plane, in raw units of the volume, before normalization:
//   x -> (Poisson(max(x,0) * photons_per_unit) + N(0, read_sigma^2)) / photons_per_unit
// (imaging/noise.h's CameraNoise with offset 0). photons_per_unit = 1 for data in photon counts,
// 1/gain for data in camera units. Any offset in the data is treated as signal (as CSBDeep does).
// The paper adds noise in its image formation; CSBDeep applies it to the degraded input: this is
// the latter, and it is off by default.
struct PairNoise {
  bool enabled = false;
  bool poisson = true;
  double photons_per_unit = 1.0;
  double read_sigma = 0.0;  // in counts
};

struct TrainingPairOptions {
  double factor = 0.0;                              // S >= 1 (required; fractional allowed)
  Interp interp = Interp::Cubic;                    // upsample-back (the paper: bicubic)
  LateralZAxis kernel_z_axis = LateralZAxis::Y;     // which axis of the given kernel plays z
  bool both_orientations = true;                    // also use planes transposed (x plays z)
  int patch_size = 64;                              // P
  int patch_multiple = 4;                           // P must be a multiple (IsoNet-2: two 2x pools)
  int n_patches = 1024;
  double foreground_threshold = 0.4;                // in normalized units, see above (0: accept all)
  double foreground_percentile = 99.9;
  int max_tries_per_patch = 50;
  bool normalize = true;
  double norm_low = 2.0, norm_high = 99.8;
  bool augment = true;
  double symmetry_tolerance = 1e-3;
  PairNoise noise;
  uint64_t seed = 0;
  Device device = Device::CPU;                      // for the convolutions
};

// Where a pair came from (for logs, debugging and tests).
struct PatchOrigin {
  int z = 0;                // lateral plane
  bool transposed = false;  // plane used as [nx, ny] (x played z)
  int row = 0, col = 0;     // top-left corner in the (possibly transposed) plane
  uint8_t symmetry = 0;     // augmentation element applied (0 = none)
};

struct TrainingPairs {
  int n = 0;           // number of pairs
  int patch_size = 0;  // P
  std::vector<float> inputs;   // [n, 1, P, P] degraded p_xy, z role along rows
  std::vector<float> targets;  // [n, 1, P, P] g_xy
  std::vector<PatchOrigin> origins;  // [n]
  NormalizeParams norm;              // applied to both (identity when normalize = false)
  uint8_t allowed_symmetries = 1;    // bit e set: element e allowed (bit 0 always)
  int requested = 0;
  long long candidates = 0;          // candidates drawn
  long long rejected_background = 0; // candidates refused by the foreground test
  double factor = 0.0;
  Interp interp = Interp::Cubic;

  int shortfall() const { return requested - n; }
};

TrainingPairs make_training_pairs(const Volume& g, const Volume& kernel, const TrainingPairOptions& opt);

// Bitmask of the allowed augmentation elements for a kernel whose rows play z (see above).
uint8_t allowed_symmetries(const Volume& kernel_rows_z, double factor, double tolerance = 1e-3);

// out = element e applied to in, both [P, P]; out must not alias in.
void apply_symmetry(const float* in, float* out, int P, uint8_t element);

// The degradation of eq. (2) for planes of a fixed size [rows, cols], rows playing z:
//   out = upsample_rows(subsample_rows(h (x) in)) on the same [rows, cols] grid,
// with mirror padding for the convolution; normalization and noise are the caller's (the
// optional hook between blur and decimation below). The kernel (rows = z) is rescaled to sum 1.
class PlaneDegrader {
 public:
  PlaneDegrader(int rows, int cols, const Volume& kernel_rows_z, double factor, Interp interp, Device device);
  ~PlaneDegrader();
  PlaneDegrader(PlaneDegrader&&) noexcept;
  PlaneDegrader& operator=(PlaneDegrader&&) noexcept;

  // blurred = h (x) in (mirror-padded 'same' convolution); in, blurred: [rows, cols].
  void blur(const float* in, float* blurred);
  // out = upsample_rows(subsample_rows(blurred)); blurred, out: [rows, cols], no aliasing.
  void decimate_and_upsample(const float* blurred, float* out) const;
  // Both in sequence (no noise, no normalization). in, out: [rows, cols]; out may alias in.
  void degrade(const float* in, float* out);

  int rows() const;
  int cols() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Every plane of g degraded with rows playing z (the untransposed layout), no noise and no
// normalization: [nz, ny, nx] -> [nz, ny, nx]. The kernel's rows play z.
Volume degrade_planes(const Volume& g, const Volume& kernel_rows_z, double factor, Interp interp,
                      Device device = Device::CPU);

}  // namespace isonet
