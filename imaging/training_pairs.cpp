// training_pairs.cpp: implementation of training_pairs.h (eq. 2 degradation of lateral planes,
// foreground patch sampling, PSF-compatible augmentation).
#include "imaging/training_pairs.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <sstream>

#include "imaging/noise.h"
#include "kernels/error.h"
#include "kernels/log.h"
#include "kernels/rng.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace isonet {

namespace {

void check_factor(double factor, const char* op) {
  ISONET_CHECK(std::isfinite(factor) && factor >= 1.0, op, ": subsampling factor must be a finite number >= 1, got ",
               factor);
}

// The kernel with rows playing z, rescaled to sum 1 (so blurring keeps the brightness of the
// target and an affine normalization commutes with it).
Volume prepare_kernel(const Volume& kernel, LateralZAxis z_axis, const char* op) {
  ISONET_CHECK(kernel.nz == 1 && kernel.ny >= 1 && kernel.nx >= 1 &&
                   kernel.data.size() == size_t(kernel.ny) * kernel.nx,
               op, ": the training kernel must be a 2D Volume [1, ky, kx], got ", kernel.shape_str());
  require_finite(kernel, op);
  Volume k(1, z_axis == LateralZAxis::Y ? kernel.ny : kernel.nx, z_axis == LateralZAxis::Y ? kernel.nx : kernel.ny);
  k.voxel = kernel.voxel;
  double sum = 0;
  for (int r = 0; r < k.ny; ++r)
    for (int c = 0; c < k.nx; ++c) {
      float v = z_axis == LateralZAxis::Y ? kernel.at(0, r, c) : kernel.at(0, c, r);
      k.at(0, r, c) = v;
      sum += v;
    }
  ISONET_CHECK(sum > 0, op, ": the training kernel must have a positive sum, got ", sum);
  if (std::fabs(sum - 1.0) > 1e-3) {
    std::ostringstream os;
    os << op << ": training kernel sum " << sum << " rescaled to 1";
    log_debug(os.str());
  }
  for (float& v : k.data) v = float(v / sum);
  return k;
}

// Mirror index with the edge repeated (a b c | c b a), for any i (period 2n).
int mirror(int i, int n) {
  const int period = 2 * n;
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - 1 - i;
}

// The input offset that output offset (dr, dc) of element e reads (see apply_symmetry).
void source_offset(uint8_t e, int dr, int dc, int* sr, int* sc) {
  if (e & kTranspose) std::swap(dr, dc);
  *sr = (e & kFlipRows) ? -dr : dr;
  *sc = (e & kFlipCols) ? -dc : dc;
}

// Uniform integer in [0, range) from 32 random bits (bias < range / 2^32: negligible).
int uniform_int(uint32_t bits, int range) { return int((uint64_t(bits) * uint64_t(range)) >> 32); }

}  // namespace

// ------------------------------------------------------------------ symmetries

uint8_t allowed_symmetries(const Volume& kernel, double factor, double tolerance) {
  ISONET_CHECK(kernel.nz == 1 && kernel.ny >= 1 && kernel.nx >= 1, "allowed_symmetries: kernel must be [1, ky, kx], got ",
               kernel.shape_str());
  check_factor(factor, "allowed_symmetries");
  ISONET_CHECK(tolerance >= 0, "allowed_symmetries: tolerance must be >= 0, got ", tolerance);
  const int cr = kernel.ny / 2, cc = kernel.nx / 2;  // centre pixel, as FftConvolver places it
  float kmax = 0;
  for (float v : kernel.data) kmax = std::max(kmax, std::fabs(v));
  auto value = [&](int r, int c) {
    return (r >= 0 && r < kernel.ny && c >= 0 && c < kernel.nx) ? kernel.at(0, r, c) : 0.f;
  };
  uint8_t mask = 1;
  for (uint8_t e = 1; e < 8; ++e) {
    if ((e & kTranspose) && factor != 1.0) continue;  // would move the decimation onto the columns
    // h must equal h o M on every offset. Checking offsets d inside the array against M d and
    // against M^-1 d (= M^3 d: every element of the square's group has order 1, 2 or 4) covers
    // every pair in which at least one side is inside; outside the array h is 0 on both sides.
    double worst = 0;
    for (int r = 0; r < kernel.ny; ++r)
      for (int c = 0; c < kernel.nx; ++c) {
        int sr = r - cr, sc = c - cc;
        for (int power = 1; power <= 3; ++power) {
          source_offset(e, sr, sc, &sr, &sc);
          if (power == 2) continue;  // M^2 d is implied by the other two checks
          worst = std::max(worst, double(std::fabs(kernel.at(0, r, c) - value(cr + sr, cc + sc))));
        }
      }
    if (worst <= tolerance * kmax) mask |= uint8_t(1u << e);
  }
  return mask;
}

void apply_symmetry(const float* in, float* out, int P, uint8_t element) {
  ISONET_CHECK(in != out, "apply_symmetry: output must not alias the input");
  ISONET_CHECK(element < 8, "apply_symmetry: element must be 0..7, got ", int(element));
  for (int r = 0; r < P; ++r)
    for (int c = 0; c < P; ++c) {
      int a = r, b = c;
      if (element & kTranspose) std::swap(a, b);
      if (element & kFlipRows) a = P - 1 - a;
      if (element & kFlipCols) b = P - 1 - b;
      out[size_t(r) * P + c] = in[size_t(a) * P + b];
    }
}

// ------------------------------------------------------------------ PlaneDegrader

struct PlaneDegrader::Impl {
  int rows, cols, pad_r, pad_c;
  FftConvolver conv;             // on the padded plane [rows + 2 pad_r, cols + 2 pad_c]
  AxisSampler down, up;          // rows -> decimated rows -> rows
  std::vector<float> padded;     // [rows + 2 pad_r, cols + 2 pad_c]
  Impl(int r, int c, const Volume& k, double factor, Interp interp, Device device)
      : rows(r), cols(c), pad_r(k.ny / 2), pad_c(k.nx / 2),
        conv(1, r + 2 * (k.ny / 2), c + 2 * (k.nx / 2), k, device),
        down(AxisSampler::subsample(r, factor)),
        up(AxisSampler::upsample(down.n_out(), factor, interp, r)),
        padded(size_t(r + 2 * pad_r) * (c + 2 * pad_c)) {}
};

PlaneDegrader::PlaneDegrader(int rows, int cols, const Volume& kernel, double factor, Interp interp, Device device) {
  ISONET_CHECK(rows >= 1 && cols >= 1, "PlaneDegrader: plane size must be positive, got ", rows, " x ", cols);
  check_factor(factor, "PlaneDegrader");
  impl_ = std::make_unique<Impl>(rows, cols, prepare_kernel(kernel, LateralZAxis::Y, "PlaneDegrader"), factor, interp,
                                 device);
}
PlaneDegrader::~PlaneDegrader() = default;
PlaneDegrader::PlaneDegrader(PlaneDegrader&&) noexcept = default;
PlaneDegrader& PlaneDegrader::operator=(PlaneDegrader&&) noexcept = default;
int PlaneDegrader::rows() const { return impl_->rows; }
int PlaneDegrader::cols() const { return impl_->cols; }

void PlaneDegrader::blur(const float* in, float* blurred) {
  Impl& m = *impl_;
  const int prow = m.rows + 2 * m.pad_r, pcol = m.cols + 2 * m.pad_c;
  for (int r = 0; r < prow; ++r) {
    const float* src = in + size_t(mirror(r - m.pad_r, m.rows)) * m.cols;
    float* dst = m.padded.data() + size_t(r) * pcol;
    for (int c = 0; c < pcol; ++c) dst[c] = src[mirror(c - m.pad_c, m.cols)];
  }
  m.conv.convolve(m.padded.data(), m.padded.data());
  for (int r = 0; r < m.rows; ++r)
    std::copy_n(m.padded.data() + size_t(r + m.pad_r) * pcol + m.pad_c, m.cols, blurred + size_t(r) * m.cols);
}

void PlaneDegrader::decimate_and_upsample(const float* blurred, float* out) const {
  const Impl& m = *impl_;
  std::vector<float> low(size_t(m.down.n_out()) * m.cols);  // [decimated rows, cols]
  m.down.apply(blurred, low.data(), 1, size_t(m.cols));
  m.up.apply(low.data(), out, 1, size_t(m.cols));
}

void PlaneDegrader::degrade(const float* in, float* out) {
  std::vector<float> blurred(size_t(impl_->rows) * impl_->cols);
  blur(in, blurred.data());
  decimate_and_upsample(blurred.data(), out);
}

Volume degrade_planes(const Volume& g, const Volume& kernel_rows_z, double factor, Interp interp, Device device) {
  ISONET_CHECK(g.nz >= 1 && g.ny >= 1 && g.nx >= 1, "degrade_planes: empty volume ", g.shape_str());
  require_finite(g, "degrade_planes input");
  PlaneDegrader d(g.ny, g.nx, kernel_rows_z, factor, interp, device);
  Volume out(g.nz, g.ny, g.nx);
  out.voxel = g.voxel;
  for (int z = 0; z < g.nz; ++z) d.degrade(g.plane_ptr(z), out.plane_ptr(z));
  return out;
}

// ------------------------------------------------------------------ training pairs

namespace {

// The (possibly transposed) plane z of g as [rows, cols].
void oriented_plane(const Volume& g, int z, bool transposed, float* out) {
  const float* p = g.plane_ptr(z);
  if (!transposed) {
    std::copy_n(p, g.plane(), out);
    return;
  }
  for (int x = 0; x < g.nx; ++x)
    for (int y = 0; y < g.ny; ++y) out[size_t(x) * g.ny + y] = p[size_t(y) * g.nx + x];
}

void check_options(const Volume& g, const TrainingPairOptions& o) {
  const char* op = "make_training_pairs";
  ISONET_CHECK(g.nz >= 1 && g.ny >= 1 && g.nx >= 1 && g.size() == size_t(g.nz) * g.ny * g.nx, op,
               ": empty or inconsistent volume ", g.shape_str());
  check_factor(o.factor, op);
  ISONET_CHECK(o.patch_multiple >= 1, op, ": patch_multiple must be >= 1, got ", o.patch_multiple);
  ISONET_CHECK(o.patch_size >= 1 && o.patch_size % o.patch_multiple == 0, op, ": patch size ", o.patch_size,
               " must be a positive multiple of ", o.patch_multiple, " (IsoNet-2 pools twice by 2)");
  ISONET_CHECK(o.patch_size <= g.ny && o.patch_size <= g.nx, op, ": patch size ", o.patch_size,
               " exceeds the lateral plane (", g.ny, " x ", g.nx, "); use a smaller patch");
  ISONET_CHECK(o.n_patches >= 0, op, ": n_patches must be >= 0, got ", o.n_patches);
  ISONET_CHECK(o.max_tries_per_patch >= 1, op, ": max_tries_per_patch must be >= 1, got ", o.max_tries_per_patch);
  ISONET_CHECK(o.foreground_percentile >= 0 && o.foreground_percentile <= 100, op,
               ": foreground_percentile must be in [0, 100], got ", o.foreground_percentile);
  ISONET_CHECK(std::isfinite(o.foreground_threshold), op, ": foreground_threshold must be finite");
  if (o.noise.enabled)
    ISONET_CHECK(o.noise.photons_per_unit > 0 && std::isfinite(o.noise.photons_per_unit) && o.noise.read_sigma >= 0,
                 op, ": noise needs photons_per_unit > 0 and read_sigma >= 0");
}

}  // namespace

TrainingPairs make_training_pairs(const Volume& g, const Volume& kernel, const TrainingPairOptions& opt) {
  check_options(g, opt);
  require_finite(g, "make_training_pairs input");
  const Volume k = prepare_kernel(kernel, opt.kernel_z_axis, "make_training_pairs");
  const int P = opt.patch_size;

  TrainingPairs out;
  out.patch_size = P;
  out.requested = opt.n_patches;
  out.factor = opt.factor;
  out.interp = opt.interp;
  const NormalizeParams vol = percentile_params(g, opt.norm_low, opt.norm_high);
  out.norm = opt.normalize ? vol : NormalizeParams::identity();
  out.allowed_symmetries = opt.augment ? allowed_symmetries(k, opt.factor, opt.symmetry_tolerance) : uint8_t(1);
  std::vector<uint8_t> elements;
  for (uint8_t e = 0; e < 8; ++e)
    if (out.allowed_symmetries & (1u << e)) elements.push_back(e);

  // 1. Candidates, accepted on the target alone (cheap: no convolution yet).
  const bool use_threshold = opt.foreground_threshold > 0;
  const double threshold_raw = double(vol.p_lo) + opt.foreground_threshold * vol.scale();
  const size_t pp = size_t(P) * P;
  std::vector<float> scratch(pp);
  const long long max_candidates = (long long)opt.max_tries_per_patch * opt.n_patches;
  for (long long t = 0; t < max_candidates && (int)out.origins.size() < opt.n_patches; ++t) {
    PatchOrigin o;
    o.transposed = opt.both_orientations && (counter_random_u32(opt.seed, t, 0) & 1u);
    o.z = uniform_int(counter_random_u32(opt.seed, t, 1), g.nz);
    const int rows = o.transposed ? g.nx : g.ny, cols = o.transposed ? g.ny : g.nx;
    o.row = uniform_int(counter_random_u32(opt.seed, t, 2), rows - P + 1);
    o.col = uniform_int(counter_random_u32(opt.seed, t, 3), cols - P + 1);
    o.symmetry = elements[uniform_int(counter_random_u32(opt.seed, t, 4), int(elements.size()))];
    ++out.candidates;
    if (use_threshold) {
      // The statistic is a percentile of the patch's values: the layout does not matter, so
      // read the patch in plane coordinates.
      const int y0 = o.transposed ? o.col : o.row, x0 = o.transposed ? o.row : o.col;
      for (int r = 0; r < P; ++r) std::copy_n(&g.data[g.index(o.z, y0 + r, x0)], P, scratch.data() + size_t(r) * P);
      const size_t kth = std::min(pp - 1, size_t(std::floor(opt.foreground_percentile / 100.0 * double(pp - 1))));
      std::nth_element(scratch.begin(), scratch.begin() + kth, scratch.end());
      if (double(scratch[kth]) < threshold_raw) {
        ++out.rejected_background;
        continue;
      }
    }
    out.origins.push_back(o);
  }
  out.n = int(out.origins.size());
  out.inputs.assign(size_t(out.n) * pp, 0.f);
  out.targets.assign(size_t(out.n) * pp, 0.f);

  // 2. Degrade each plane that holds accepted patches once, in its layout, and cut the patches.
  std::vector<int> order(out.n);
  for (int i = 0; i < out.n; ++i) order[i] = i;
  auto key = [&](int i) { return 2LL * out.origins[i].z + (out.origins[i].transposed ? 1 : 0); };
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return key(a) < key(b); });
  std::vector<size_t> group_start;  // start of each run of equal keys in `order`
  for (int i = 0; i < out.n; ++i)
    if (i == 0 || key(order[i]) != key(order[i - 1])) group_start.push_back(size_t(i));
  group_start.push_back(size_t(out.n));
  const int groups = int(group_start.size()) - 1;

  std::exception_ptr error;
#ifdef _OPENMP
  const int threads = opt.device == Device::CPU ? omp_get_max_threads() : 1;  // CUDA: one host thread
#else
  const int threads = 1;
#endif
#pragma omp parallel num_threads(threads) if (groups > 1)
  {
    // One degrader per layout per thread (FftConvolver objects are not shared between threads).
    std::unique_ptr<PlaneDegrader> degraders[2];
    std::vector<float> plane(g.plane()), target(g.plane()), blurred(g.plane()), input(g.plane()), patch(pp);
#pragma omp for schedule(dynamic)
    for (int gi = 0; gi < groups; ++gi) {
      try {
        const PatchOrigin& first = out.origins[order[group_start[gi]]];
        const bool tr = first.transposed;
        const int rows = tr ? g.nx : g.ny, cols = tr ? g.ny : g.nx;
        if (!degraders[tr]) degraders[tr] = std::make_unique<PlaneDegrader>(rows, cols, k, opt.factor, opt.interp, opt.device);
        PlaneDegrader& d = *degraders[tr];
        oriented_plane(g, first.z, tr, plane.data());
        d.blur(plane.data(), blurred.data());
        if (opt.noise.enabled) {
          Volume b(1, rows, cols);
          b.data.assign(blurred.begin(), blurred.end());
          CameraNoise cam;
          cam.photons_per_unit = opt.noise.photons_per_unit;
          cam.read_sigma = opt.noise.read_sigma;
          cam.poisson = opt.noise.poisson;
          cam.offset = 0.0;
          cam.seed = mix64(opt.seed ^ 0x6e6f697365ull) ^ uint64_t(2LL * first.z + (tr ? 1 : 0));
          Volume noisy = apply_camera_noise(b, cam);
          for (size_t i = 0; i < blurred.size(); ++i) blurred[i] = float(noisy.data[i] / opt.noise.photons_per_unit);
        }
        normalize_inplace(blurred.data(), blurred.size(), out.norm);
        d.decimate_and_upsample(blurred.data(), input.data());
        std::copy(plane.begin(), plane.end(), target.begin());
        normalize_inplace(target.data(), target.size(), out.norm);
        for (size_t j = group_start[gi]; j < group_start[gi + 1]; ++j) {
          const int i = order[j];
          const PatchOrigin& o = out.origins[i];
          for (int pass = 0; pass < 2; ++pass) {
            const std::vector<float>& src = pass == 0 ? input : target;
            float* dst = (pass == 0 ? out.inputs : out.targets).data() + size_t(i) * pp;
            float* cut = o.symmetry ? patch.data() : dst;
            for (int r = 0; r < P; ++r) std::copy_n(&src[size_t(o.row + r) * cols + o.col], P, cut + size_t(r) * P);
            if (o.symmetry) apply_symmetry(patch.data(), dst, P, o.symmetry);
          }
        }
      } catch (...) {
#pragma omp critical(isonet_training_pairs_error)
        if (!error) error = std::current_exception();
      }
    }
  }
  if (error) std::rethrow_exception(error);

  if (out.shortfall() > 0) {
    std::ostringstream os;
    os << "make_training_pairs: warning: found " << out.n << " of " << out.requested << " foreground patches in "
       << out.candidates << " candidates (" << out.rejected_background
       << " rejected as background); lower foreground_threshold or the patch size";
    log_info(os.str());
  }
  return out;
}

}  // namespace isonet
