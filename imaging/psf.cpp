// psf.cpp: PSF models (Gaussian, scalar widefield / Gibson-Lanni, confocal, light-sheet) and the
// preparation of measured bead PSFs (see psf.h for the physics and conventions).
#include "imaging/psf.h"

#include <algorithm>
#include <cmath>
#include <complex>
#include <vector>

#include "imaging/fft_convolve.h"
#include "imaging/normalize.h"
#include "imaging/tiff.h"
#include "kernels/error.h"

namespace isonet {

namespace {

constexpr double kPi = 3.14159265358979323846;

Volume empty_psf(const PsfGrid& g) {
  Volume v(g.nz, g.ny, g.nx, 0.f);
  v.voxel = g.voxel;
  return v;
}

// Offset of voxel index i from the grid centre, in voxels.
inline int centred(int i, int n) { return i - n / 2; }

void check_positive(double value, const char* what, const char* name) {
  ISONET_CHECK(std::isfinite(value) && value > 0, what, ": ", name, " must be a positive number, got ", value);
}

}  // namespace

void check_psf_grid(const PsfGrid& g, const char* what) {
  ISONET_CHECK(g.nz >= 1 && g.ny >= 1 && g.nx >= 1 && g.nz % 2 == 1 && g.ny % 2 == 1 && g.nx % 2 == 1, what,
               ": PSF grid sizes must be odd and >= 1 so that the centre is a voxel, got (", g.nz, ",", g.ny, ",",
               g.nx, ")");
  ISONET_CHECK(std::isfinite(g.voxel.z) && std::isfinite(g.voxel.y) && std::isfinite(g.voxel.x) && g.voxel.z > 0 &&
                   g.voxel.y > 0 && g.voxel.x > 0,
               what, ": voxel sizes must be positive, got (", g.voxel.z, ",", g.voxel.y, ",", g.voxel.x, ")");
  ISONET_CHECK(double(g.nz) * g.ny * g.nx <= 512.0 * 512 * 512, what, ": PSF grid (", g.nz, ",", g.ny, ",", g.nx,
               ") is unreasonably large");
}

void normalize_sum(Volume& v, const char* what) {
  double s = 0;
  for (float f : v.data) s += f;
  ISONET_CHECK(std::isfinite(s) && s > 0, what, ": cannot normalize to sum 1, the sum is ", s);
  const double inv = 1.0 / s;
  for (float& f : v.data) f = float(f * inv);
}

// --- Gaussian -----------------------------------------------------------------------------------

Volume gaussian_psf(const PsfGrid& grid, double sigma_xy_px, double sigma_z_px) {
  check_psf_grid(grid, "gaussian_psf");
  ISONET_CHECK(std::isfinite(sigma_xy_px) && std::isfinite(sigma_z_px) && sigma_xy_px >= 0 && sigma_z_px >= 0,
               "gaussian_psf: sigmas must be >= 0 pixels, got sigma_xy=", sigma_xy_px, " sigma_z=", sigma_z_px);
  // Separable 1D profiles; sigma 0 is a delta (1 at the centre, 0 elsewhere).
  auto profile = [](int n, double sigma) {
    std::vector<double> p(n);
    for (int i = 0; i < n; ++i) {
      const double d = centred(i, n);
      p[i] = sigma > 0 ? std::exp(-d * d / (2 * sigma * sigma)) : (d == 0 ? 1.0 : 0.0);
    }
    return p;
  };
  const auto pz = profile(grid.nz, sigma_z_px), py = profile(grid.ny, sigma_xy_px), px = profile(grid.nx, sigma_xy_px);
  Volume v = empty_psf(grid);
  for (int z = 0; z < grid.nz; ++z)
    for (int y = 0; y < grid.ny; ++y)
      for (int x = 0; x < grid.nx; ++x) v.at(z, y, x) = float(pz[z] * py[y] * px[x]);
  normalize_sum(v, "gaussian_psf");
  return v;
}

// --- Scalar widefield (Born-Wolf / Gibson-Lanni) ---------------------------------------------

namespace {

// Unnormalized widefield intensity I(z, r) on the grid (see psf.h for the integral).
Volume widefield_intensity(const PsfGrid& g, const WidefieldParams& p, const char* what) {
  check_psf_grid(g, what);
  check_positive(p.na, what, "NA");
  check_positive(p.wavelength_um, what, "wavelength");
  check_positive(p.n_immersion, what, "immersion refractive index");
  const double n = p.n_immersion;
  const double ns = p.n_sample > 0 ? p.n_sample : n;
  ISONET_CHECK(p.na < n, what, ": NA ", p.na, " must be below the immersion index ", n,
               " (a larger NA is not physical in that medium)");
  ISONET_CHECK(std::isfinite(p.depth_um) && p.depth_um >= 0, what, ": depth must be >= 0 um, got ", p.depth_um);
  const double k0 = 2 * kPi / p.wavelength_um;
  const double depth = ns == n ? 0.0 : p.depth_um;

  // Unique lateral distances: one integral per (|dy|, |dx|) pair of the grid's quadrant.
  const int hy = g.ny / 2, hx = g.nx / 2, hz = g.nz / 2;
  const int n_pairs = (hy + 1) * (hx + 1);
  const double r_max = std::hypot(hy * g.voxel.y, hx * g.voxel.x), z_max = hz * g.voxel.z;

  // Samples of rho in [0, 1] for composite Simpson: the integrand's total phase (Bessel argument
  // plus defocus plus aberration) is resolved with >= 8 samples per radian-cycle of 2 pi.
  const double delta_n = n - std::sqrt(n * n - p.na * p.na);
  const double phase = k0 * (p.na * r_max + z_max * delta_n + depth * std::fabs(ns - n) * 2);
  int m = std::max(200, int(std::ceil(8 * phase / (2 * kPi))) * 2);
  m += m % 2;  // Simpson needs an even number of intervals
  std::vector<double> rho(m + 1), w(m + 1);
  for (int i = 0; i <= m; ++i) {
    rho[i] = double(i) / m;
    w[i] = (i == 0 || i == m ? 1.0 : (i % 2 ? 4.0 : 2.0)) / (3.0 * m) * rho[i];  // Simpson weight times rho
  }
  // Pupil terms independent of r: the aberration phase and the defocus "frequency" per rho.
  std::vector<std::complex<double>> aberr(m + 1);
  std::vector<double> kz(m + 1);
  for (int i = 0; i <= m; ++i) {
    const double s2 = p.na * p.na * rho[i] * rho[i];
    kz[i] = k0 * std::sqrt(n * n - s2);
    // sqrt of a negative argument (NA above the sample index) is imaginary: the evanescent
    // part decays with depth, which the complex exponential gives with the principal root.
    const std::complex<double> ks = k0 * std::sqrt(std::complex<double>(ns * ns - s2));
    aberr[i] = std::exp(std::complex<double>(0, 1) * depth * (ks - kz[i]));
  }
  // J0 table [n_pairs, m+1] (the expensive part, computed once for all planes).
  std::vector<double> j0(size_t(n_pairs) * (m + 1));
#pragma omp parallel for schedule(dynamic)
  for (int pr = 0; pr < n_pairs; ++pr) {
    const double r = std::hypot((pr / (hx + 1)) * g.voxel.y, (pr % (hx + 1)) * g.voxel.x);
    for (int i = 0; i <= m; ++i) j0[size_t(pr) * (m + 1) + i] = std::cyl_bessel_j(0.0, k0 * p.na * r * rho[i]);
  }
  Volume v(g.nz, g.ny, g.nx);
  v.voxel = g.voxel;
#pragma omp parallel for schedule(dynamic)
  for (int z = 0; z < g.nz; ++z) {
    const double dz = centred(z, g.nz) * g.voxel.z;
    std::vector<std::complex<double>> pupil(m + 1);
    for (int i = 0; i <= m; ++i) pupil[i] = w[i] * aberr[i] * std::exp(std::complex<double>(0, kz[i] * dz));
    for (int pr = 0; pr < n_pairs; ++pr) {
      std::complex<double> s = 0;
      const double* jr = &j0[size_t(pr) * (m + 1)];
      for (int i = 0; i <= m; ++i) s += jr[i] * pupil[i];
      const float value = float(std::norm(s));
      const int ay = pr / (hx + 1), ax = pr % (hx + 1);
      // The four quadrant mirrors of (|dy|, |dx|).
      for (int sy : {-1, 1})
        for (int sx : {-1, 1}) v.at(z, hy + sy * ay, hx + sx * ax) = value;
    }
  }
  return v;
}

}  // namespace

Volume widefield_psf(const PsfGrid& grid, const WidefieldParams& p) {
  Volume v = widefield_intensity(grid, p, "widefield_psf");
  normalize_sum(v, "widefield_psf");
  return v;
}

// --- Confocal ----------------------------------------------------------------------------------

Volume confocal_psf(const PsfGrid& grid, const ConfocalParams& p) {
  const char* what = "confocal_psf";
  ISONET_CHECK(std::isfinite(p.pinhole_au) && p.pinhole_au >= 0, what, ": pinhole must be >= 0 Airy units, got ",
               p.pinhole_au);
  WidefieldParams ex{p.na, p.wavelength_ex_um, p.n_immersion, 0.0, 0.0};
  WidefieldParams em{p.na, p.wavelength_em_um, p.n_immersion, 0.0, 0.0};
  Volume excitation = widefield_intensity(grid, ex, what);
  Volume emission = widefield_intensity(grid, em, what);
  if (p.pinhole_au > 0) {
    // Disk of diameter pinhole_au * 1.22 lambda_em / NA, area coverage of each pixel by 8x8
    // sub-samples; the emission PSF is convolved with it plane by plane (a one-plane kernel).
    const double radius = 0.5 * p.pinhole_au * 1.22 * p.wavelength_em_um / p.na;
    const int ry = int(std::ceil(radius / grid.voxel.y)), rx = int(std::ceil(radius / grid.voxel.x));
    Volume disk(1, 2 * ry + 1, 2 * rx + 1, 0.f);
    constexpr int kSub = 8;
    for (int y = 0; y < disk.ny; ++y)
      for (int x = 0; x < disk.nx; ++x) {
        int inside = 0;
        for (int a = 0; a < kSub; ++a)
          for (int b = 0; b < kSub; ++b) {
            const double yy = (y - ry + (a + 0.5) / kSub - 0.5) * grid.voxel.y;
            const double xx = (x - rx + (b + 0.5) / kSub - 0.5) * grid.voxel.x;
            inside += yy * yy + xx * xx <= radius * radius;
          }
        disk.at(0, y, x) = float(inside) / (kSub * kSub);
      }
    normalize_sum(disk, "confocal_psf pinhole");
    FftConvolver conv(emission.nz, emission.ny, emission.nx, disk, Device::CPU);
    conv.convolve(emission.data.data(), emission.data.data());
  }
  for (size_t i = 0; i < excitation.size(); ++i) excitation.data[i] = std::max(0.f, excitation.data[i] * emission.data[i]);
  normalize_sum(excitation, what);
  return excitation;
}

// --- Light sheet -------------------------------------------------------------------------------

Volume lightsheet_psf(const PsfGrid& grid, const LightSheetParams& p) {
  const char* what = "lightsheet_psf";
  check_positive(p.na_illum, what, "illumination NA");
  check_positive(p.wavelength_ex_um, what, "excitation wavelength");
  ISONET_CHECK(p.na_illum < p.n_immersion, what, ": illumination NA ", p.na_illum, " must be below the index ",
               p.n_immersion);
  WidefieldParams det{p.na_detect, p.wavelength_em_um, p.n_immersion, 0.0, 0.0};
  Volume v = widefield_intensity(grid, det, what);
  const double w0 = p.wavelength_ex_um / (kPi * p.na_illum);
  const double zr = kPi * w0 * w0 * p.n_immersion / p.wavelength_ex_um;
  for (int x = 0; x < grid.nx; ++x) {
    const double xx = centred(x, grid.nx) * grid.voxel.x;
    const double w = w0 * std::sqrt(1 + (xx / zr) * (xx / zr));
    for (int z = 0; z < grid.nz; ++z) {
      const double zz = centred(z, grid.nz) * grid.voxel.z;
      const float sheet = float(w0 / w * std::exp(-2 * zz * zz / (w * w)));
      for (int y = 0; y < grid.ny; ++y) v.at(z, y, x) *= sheet;
    }
  }
  normalize_sum(v, what);
  return v;
}

// --- Measured PSFs ------------------------------------------------------------------------------

namespace {

// Axes along which a voxel can be "outside": sizes > 2 (a 1- or 2-voxel axis has no interior).
bool on_border(const Volume& v, int z, int y, int x) {
  return (v.nz > 2 && (z == 0 || z == v.nz - 1)) || (v.ny > 2 && (y == 0 || y == v.ny - 1)) ||
         (v.nx > 2 && (x == 0 || x == v.nx - 1));
}

double median_of(std::vector<float> values) {
  if (values.empty()) return 0;
  auto mid = values.begin() + values.size() / 2;
  std::nth_element(values.begin(), mid, values.end());
  return *mid;
}

std::vector<float> border_values(const Volume& v) {
  std::vector<float> b;
  for (int z = 0; z < v.nz; ++z)
    for (int y = 0; y < v.ny; ++y)
      for (int x = 0; x < v.nx; ++x)
        if (on_border(v, z, y, x)) b.push_back(v.at(z, y, x));
  return b;
}

// 3x3x3 box mean (edges clamped), to find the peak robustly against single hot voxels.
Volume box_smooth(const Volume& v) {
  Volume out(v.nz, v.ny, v.nx);
  for (int z = 0; z < v.nz; ++z)
    for (int y = 0; y < v.ny; ++y)
      for (int x = 0; x < v.nx; ++x) {
        double s = 0;
        int n = 0;
        for (int dz = -1; dz <= 1; ++dz)
          for (int dy = -1; dy <= 1; ++dy)
            for (int dx = -1; dx <= 1; ++dx) {
              const int zz = z + dz, yy = y + dy, xx = x + dx;
              if (zz < 0 || yy < 0 || xx < 0 || zz >= v.nz || yy >= v.ny || xx >= v.nx) continue;
              s += v.at(zz, yy, xx);
              ++n;
            }
        out.at(z, y, x) = float(s / n);
      }
  return out;
}

// Trilinear sample at continuous voxel coordinates, zero outside the volume.
double trilinear(const Volume& v, double z, double y, double x) {
  const int z0 = int(std::floor(z)), y0 = int(std::floor(y)), x0 = int(std::floor(x));
  const double fz = z - z0, fy = y - y0, fx = x - x0;
  double s = 0;
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < 2; ++b)
      for (int c = 0; c < 2; ++c) {
        const int zz = z0 + a, yy = y0 + b, xx = x0 + c;
        if (zz < 0 || yy < 0 || xx < 0 || zz >= v.nz || yy >= v.ny || xx >= v.nx) continue;
        const double w = (a ? fz : 1 - fz) * (b ? fy : 1 - fy) * (c ? fx : 1 - fx);
        if (w != 0) s += w * v.at(zz, yy, xx);
      }
  return s;
}

}  // namespace

Volume measured_psf(const Volume& bead_in, const PsfGrid& grid, const MeasuredPsfOptions& opt,
                    MeasuredPsfInfo* info) {
  const char* what = "measured_psf";
  check_psf_grid(grid, what);
  ISONET_CHECK(bead_in.nz >= 1 && bead_in.ny >= 1 && bead_in.nx >= 1 &&
                   bead_in.data.size() == size_t(bead_in.nz) * bead_in.ny * bead_in.nx,
               what, ": bead volume ", bead_in.shape_str(), " is empty or its data do not match its shape");
  require_finite(bead_in, "measured_psf bead");
  const double sz = opt.source_dz_um > 0 ? opt.source_dz_um : bead_in.voxel.z;
  const double sy = opt.source_dy_um > 0 ? opt.source_dy_um : bead_in.voxel.y;
  const double sx = opt.source_dx_um > 0 ? opt.source_dx_um : bead_in.voxel.x;
  ISONET_CHECK(sz > 0 && sy > 0 && sx > 0 && std::isfinite(sz * sy * sx), what, ": bead voxel size (", sz, ",", sy,
               ",", sx, ") must be positive");

  // Background and the noise level of the border (robust: 1.4826 * median absolute deviation).
  const std::vector<float> border = border_values(bead_in);
  const double border_median = median_of(border);
  std::vector<float> dev(border.size());
  for (size_t i = 0; i < border.size(); ++i) dev[i] = std::fabs(border[i] - float(border_median));
  const double noise = 1.4826 * median_of(dev);
  double background = 0;
  switch (opt.background) {
    case PsfBackground::BorderMedian: background = border_median; break;
    case PsfBackground::Percentile: {
      ISONET_CHECK(opt.percentile >= 0 && opt.percentile <= 100, what, ": percentile must be in [0, 100], got ",
                   opt.percentile);
      std::vector<float> all = bead_in.data;
      background = percentile_nearest_rank(all, opt.percentile);
      break;
    }
    case PsfBackground::None: break;
  }
  Volume bead = bead_in;
  for (float& f : bead.data) f = std::max(0.f, float(f - background));

  // Peak of the smoothed data; it must stand clear of the noise and inside the volume. Voxels whose
  // smoothed value ties with the maximum (to float rounding) are told apart by their own value:
  // a PSF as sharp as one voxel smooths to 27 equal values, and the first in memory order would
  // shift the PSF by a voxel along every axis.
  const Volume smooth = box_smooth(bead);
  const float smax = *std::max_element(smooth.data.begin(), smooth.data.end());
  size_t ipk = 0;
  bool found = false;
  for (size_t i = 0; i < smooth.data.size(); ++i)
    if (smooth.data[i] >= smax * (1 - 1e-5f) && (!found || bead.data[i] > bead.data[ipk])) ipk = i, found = true;
  const double peak = smooth.data[ipk];
  const int pz = int(ipk / bead.plane()), py = int((ipk / bead.nx) % bead.ny), px = int(ipk % bead.nx);
  ISONET_CHECK(peak > 0 && peak > 5 * noise, what, ": no bead found: the brightest (3x3x3-smoothed) signal above "
               "the background ", background, " is ", peak, ", not above 5x the border noise level ", noise);
  ISONET_CHECK(!on_border(bead, pz, py, px), what, ": the bead's peak lies on the volume's border at (z,y,x)=(",
               pz, ",", py, ",", px, "): the bead is cut off; crop around a bead that is fully inside");
  if (info) *info = MeasuredPsfInfo{background, noise, peak, pz, py, px};

  // Centre in source voxel coordinates.
  double cz = pz, cy = py, cx = px;
  if (opt.centering == PsfCentering::Centroid) {
    // Window half-size per axis: 2 x the half-width at half maximum (walked on the data).
    const double half = bead.at(pz, py, px) / 2;
    auto hwhm = [&](int dz, int dy, int dx, int n_max) {
      int s = 1;
      while (s < n_max) {
        const int z = pz + s * dz, y = py + s * dy, x = px + s * dx;
        if (z < 0 || y < 0 || x < 0 || z >= bead.nz || y >= bead.ny || x >= bead.nx || bead.at(z, y, x) < half) break;
        ++s;
      }
      return s;
    };
    const int wz = 2 * std::max(hwhm(1, 0, 0, bead.nz), hwhm(-1, 0, 0, bead.nz));
    const int wy = 2 * std::max(hwhm(0, 1, 0, bead.ny), hwhm(0, -1, 0, bead.ny));
    const int wx = 2 * std::max(hwhm(0, 0, 1, bead.nx), hwhm(0, 0, -1, bead.nx));
    double s = 0, mz = 0, my = 0, mx = 0;
    for (int z = std::max(0, pz - wz); z <= std::min(bead.nz - 1, pz + wz); ++z)
      for (int y = std::max(0, py - wy); y <= std::min(bead.ny - 1, py + wy); ++y)
        for (int x = std::max(0, px - wx); x <= std::min(bead.nx - 1, px + wx); ++x) {
          const double f = bead.at(z, y, x);
          s += f, mz += f * z, my += f * y, mx += f * x;
        }
    if (s > 0) cz = mz / s, cy = my / s, cx = mx / s;
  }

  // Resample the physical grid around the centre. Sub-samples per target voxel along each axis:
  // round(target / source) when coarser (box average over the target voxel), else 1.
  const int nsz = std::max(1, int(std::lround(grid.voxel.z / sz)));
  const int nsy = std::max(1, int(std::lround(grid.voxel.y / sy)));
  const int nsx = std::max(1, int(std::lround(grid.voxel.x / sx)));
  Volume out = empty_psf(grid);
#pragma omp parallel for schedule(static)
  for (int z = 0; z < grid.nz; ++z)
    for (int y = 0; y < grid.ny; ++y)
      for (int x = 0; x < grid.nx; ++x) {
        double s = 0;
        for (int a = 0; a < nsz; ++a)
          for (int b = 0; b < nsy; ++b)
            for (int c = 0; c < nsx; ++c) {
              const double oz = (centred(z, grid.nz) + (a + 0.5) / nsz - 0.5) * grid.voxel.z / sz;
              const double oy = (centred(y, grid.ny) + (b + 0.5) / nsy - 0.5) * grid.voxel.y / sy;
              const double ox = (centred(x, grid.nx) + (c + 0.5) / nsx - 0.5) * grid.voxel.x / sx;
              s += trilinear(bead, cz + oz, cy + oy, cx + ox);
            }
        out.at(z, y, x) = float(std::max(0.0, s / (nsz * nsy * nsx)));
      }
  normalize_sum(out, "measured_psf (nothing of the bead falls on the target grid)");
  return out;
}

Volume load_measured_psf(const std::string& path, const PsfGrid& grid, const MeasuredPsfOptions& opt) {
  TiffInfo info;
  const Volume bead = read_tiff(path, &info);
  const bool have_z = opt.source_dz_um > 0 || info.has_z_spacing || bead.nz == 1;
  const bool have_xy = (opt.source_dy_um > 0 && opt.source_dx_um > 0) || info.has_xy_size;
  ISONET_CHECK(have_z && have_xy, "load_measured_psf: ", path, " states no ", (have_z ? "" : "z step "),
               (have_z || have_xy ? "" : "and no "), (have_xy ? "" : "lateral pixel size "),
               "; give the bead's voxel size explicitly (MeasuredPsfOptions::source_d*_um)");
  try {
    return measured_psf(bead, grid, opt);
  } catch (const Error& e) {
    fail(path, ": ", e.what());
  }
}

// --- Measurements -----------------------------------------------------------------------------

namespace {

double axis_spacing(const Volume& v, int axis) { return axis == 0 ? v.voxel.z : axis == 1 ? v.voxel.y : v.voxel.x; }

// FWHM in voxels of the profile through the maximum along `axis`.
double fwhm_voxels(const Volume& psf, int axis) {
  ISONET_CHECK(axis >= 0 && axis <= 2, "psf_fwhm: axis must be 0 (z), 1 (y) or 2 (x), got ", axis);
  ISONET_CHECK(psf.size() > 0 && psf.data.size() == size_t(psf.nz) * psf.ny * psf.nx, "psf_fwhm: empty PSF");
  const size_t ipk = size_t(std::max_element(psf.data.begin(), psf.data.end()) - psf.data.begin());
  const int pk[3] = {int(ipk / psf.plane()), int((ipk / psf.nx) % psf.ny), int(ipk % psf.nx)};
  const int n = axis == 0 ? psf.nz : axis == 1 ? psf.ny : psf.nx;
  auto value = [&](int i) {
    int c[3] = {pk[0], pk[1], pk[2]};
    c[axis] = i;
    return double(psf.at(c[0], c[1], c[2]));
  };
  const double half = value(pk[axis]) / 2;
  ISONET_CHECK(half > 0, "psf_fwhm: the PSF's maximum is not positive");
  double edge[2];
  for (int side = 0; side < 2; ++side) {
    const int step = side ? 1 : -1;
    int i = pk[axis];
    while (i + step >= 0 && i + step < n && value(i + step) >= half) i += step;
    ISONET_CHECK(i + step >= 0 && i + step < n, "psf_fwhm: the profile along axis ", axis,
                 " does not fall to half maximum inside the grid (", n, " voxels); use a larger grid");
    const double a = value(i), b = value(i + step);
    edge[side] = i + step * (a - half) / (a - b);
  }
  return edge[1] - edge[0];
}

}  // namespace

double psf_fwhm(const Volume& psf, int axis) { return fwhm_voxels(psf, axis) * axis_spacing(psf, axis); }

double psf_equivalent_sigma_px(const Volume& psf, int axis) {
  return fwhm_voxels(psf, axis) / (2 * std::sqrt(2 * std::log(2.0)));
}

}  // namespace isonet
