// psf_training.cpp: rotated, isotropic and split 2D training kernels from a 3D PSF (see
// psf_training.h for the geometry and the conventions).
#include "imaging/psf_training.h"

#include <algorithm>
#include <cmath>
#include <complex>
#include <vector>

#include "imaging/deconvolve.h"
#include "imaging/psf.h"
#include "kernels/error.h"

namespace isonet {

namespace {

constexpr double kPi = 3.14159265358979323846;

void check_psf(const Volume& psf, const char* what) {
  ISONET_CHECK(psf.nz >= 1 && psf.ny >= 1 && psf.nx >= 1 && psf.data.size() == size_t(psf.nz) * psf.ny * psf.nx,
               what, ": PSF ", psf.shape_str(), " is empty or its data do not match its shape");
  ISONET_CHECK(psf.nz % 2 == 1 && psf.ny % 2 == 1 && psf.nx % 2 == 1, what, ": PSF sizes must be odd (centred), got ",
               psf.shape_str());
  require_finite(psf, what);
  for (float f : psf.data) ISONET_CHECK(f >= 0, what, ": PSF has a negative value ", f, "; clip it first");
  const double vx = psf.voxel.x;
  ISONET_CHECK(vx > 0 && std::fabs(psf.voxel.y / vx - 1) <= 1e-3 && std::fabs(psf.voxel.z / vx - 1) <= 1e-3, what,
               ": the PSF must be sampled on an isotropic grid (the data's lateral pixel size along every axis), "
               "got voxel (z,y,x) = (",
               psf.voxel.z, ",", psf.voxel.y, ",", psf.voxel.x, "); build it with a PsfGrid of that spacing");
}

Volume kernel2d(int ny, int nx, const VoxelSize& voxel) {
  Volume k(1, ny, nx, 0.f);
  k.voxel = voxel;
  k.voxel.z = voxel.x;  // a 2D kernel: z spacing is meaningless, keep the grid isotropic
  return k;
}

void check_kernel2d(const Volume& k, const char* what, const char* name) {
  ISONET_CHECK(k.nz == 1 && k.ny >= 1 && k.nx >= 1 && k.ny % 2 == 1 && k.nx % 2 == 1 &&
                   k.data.size() == size_t(k.ny) * k.nx,
               what, ": ", name, " must be a 2D kernel [1, ky, kx] with odd sizes, got ", k.shape_str());
  require_finite(k, what);
}

// Discrete Fourier transform along one axis of a [n0, n1] complex array (axis 0 or 1), in place,
// by a precomputed twiddle matrix (kernels here are <= a few hundred pixels, O(n^3) is cheap
// and keeps double precision without a double-precision FFT library).
void dft_axis(std::vector<std::complex<double>>& a, int n0, int n1, int axis, bool inverse) {
  const int n = axis == 0 ? n0 : n1;
  std::vector<std::complex<double>> tw(size_t(n) * n);
  const double sign = inverse ? 1.0 : -1.0;
  for (int k = 0; k < n; ++k)
    for (int j = 0; j < n; ++j) tw[size_t(k) * n + j] = std::polar(1.0, sign * 2 * kPi * double((size_t(k) * j) % n) / n);
  std::vector<std::complex<double>> line(n), out(n);
  const int lines = axis == 0 ? n1 : n0;
  for (int l = 0; l < lines; ++l) {
    for (int j = 0; j < n; ++j) line[j] = axis == 0 ? a[size_t(j) * n1 + l] : a[size_t(l) * n1 + j];
    for (int k = 0; k < n; ++k) {
      std::complex<double> s = 0;
      const std::complex<double>* t = &tw[size_t(k) * n];
      for (int j = 0; j < n; ++j) s += t[j] * line[j];
      out[k] = inverse ? s / double(n) : s;
    }
    for (int k = 0; k < n; ++k) (axis == 0 ? a[size_t(k) * n1 + l] : a[size_t(l) * n1 + k]) = out[k];
  }
}

void dft2(std::vector<std::complex<double>>& a, int n0, int n1, bool inverse) {
  dft_axis(a, n0, n1, 0, inverse);
  dft_axis(a, n0, n1, 1, inverse);
}

// A centred 2D kernel wrapped onto a [p0, p1] grid with its centre at the origin.
std::vector<std::complex<double>> wrapped(const Volume& k, int p0, int p1) {
  std::vector<std::complex<double>> a(size_t(p0) * p1, 0.0);
  double s = 0;
  for (float f : k.data) s += f;
  for (int y = 0; y < k.ny; ++y)
    for (int x = 0; x < k.nx; ++x) {
      const int wy = ((y - k.ny / 2) % p0 + p0) % p0, wx = ((x - k.nx / 2) % p1 + p1) % p1;
      a[size_t(wy) * p1 + wx] = k.at(0, y, x) / s;  // sum 1, so eps is relative to |H(0)|^2 = 1
    }
  return a;
}

}  // namespace

Volume rotated_psf(const Volume& psf, const TrainingPsfOptions& opt) {
  const char* what = "rotated_psf";
  check_psf(psf, what);
  const bool xz = opt.plane == AxialPlane::XZ;
  const bool project = opt.mode == RotatedPsfMode::Projection;
  const int width = xz ? psf.nx : psf.ny;  // the section's lateral coordinate l
  const int normal = xz ? psf.ny : psf.nx;  // the axis the section is taken across
  // The section S(z, l): central slice or the integral across the normal axis.
  auto section = [&](int z, int l) {
    double s = 0;
    const int first = project ? 0 : normal / 2, last = project ? normal - 1 : normal / 2;
    for (int t = first; t <= last; ++t) s += xz ? psf.at(z, t, l) : psf.at(z, l, t);
    return s;
  };
  const bool z_along_x = opt.z_axis == LateralZAxis::X;
  Volume k = z_along_x ? kernel2d(width, psf.nz, psf.voxel) : kernel2d(psf.nz, width, psf.voxel);
  for (int z = 0; z < psf.nz; ++z)
    for (int l = 0; l < width; ++l) (z_along_x ? k.at(0, l, z) : k.at(0, z, l)) = float(section(z, l));
  normalize_sum(k, "rotated_psf (the PSF's axial section is zero)");
  return k;
}

Volume isotropic_psf(const Volume& psf, const TrainingPsfOptions& opt) {
  const char* what = "isotropic_psf";
  check_psf(psf, what);
  const bool project = opt.mode == RotatedPsfMode::Projection;
  const int n = std::max(psf.ny, psf.nx);  // odd: both sizes are odd
  const int oy = (n - psf.ny) / 2, ox = (n - psf.nx) / 2;
  std::vector<double> lat(size_t(n) * n, 0.0);  // lateral section, zero-padded to [n, n]
  for (int y = 0; y < psf.ny; ++y)
    for (int x = 0; x < psf.nx; ++x) {
      double s = 0;
      for (int z = project ? 0 : psf.nz / 2; z <= (project ? psf.nz - 1 : psf.nz / 2); ++z) s += psf.at(z, y, x);
      lat[size_t(y + oy) * n + x + ox] = s;
    }
  // Average over the 8 symmetries of the square: flips of y and x, with and without transpose.
  Volume k = kernel2d(n, n, psf.voxel);
  for (int y = 0; y < n; ++y)
    for (int x = 0; x < n; ++x) {
      double s = 0;
      for (int fy = 0; fy < 2; ++fy)
        for (int fx = 0; fx < 2; ++fx) {
          const int yy = fy ? n - 1 - y : y, xx = fx ? n - 1 - x : x;
          s += lat[size_t(yy) * n + xx] + lat[size_t(xx) * n + yy];
        }
      k.at(0, y, x) = float(s / 8);
    }
  normalize_sum(k, "isotropic_psf (the PSF's lateral section is zero)");
  return k;
}

Volume split_psf_wiener(const Volume& rotated, const Volume& isotropic, double eps) {
  const char* what = "split_psf_wiener";
  check_kernel2d(rotated, what, "the rotated PSF");
  check_kernel2d(isotropic, what, "the isotropic PSF");
  ISONET_CHECK(std::isfinite(eps) && eps > 0, what, ": the regularization eps must be > 0, got ", eps);
  // A grid of rot + iso - 1 per axis holds h_iso (x) h_split for any h_split of h_rot's support
  // without wrap-around.
  const int p0 = rotated.ny + isotropic.ny - 1, p1 = rotated.nx + isotropic.nx - 1;
  auto hr = wrapped(rotated, p0, p1);
  auto hi = wrapped(isotropic, p0, p1);
  dft2(hr, p0, p1, false);
  dft2(hi, p0, p1, false);
  for (size_t i = 0; i < hr.size(); ++i) hr[i] = hr[i] * std::conj(hi[i]) / (std::norm(hi[i]) + eps);
  dft2(hr, p0, p1, true);
  Volume k = kernel2d(rotated.ny, rotated.nx, rotated.voxel);
  for (int y = 0; y < k.ny; ++y)
    for (int x = 0; x < k.nx; ++x) {
      const int wy = ((y - k.ny / 2) % p0 + p0) % p0, wx = ((x - k.nx / 2) % p1 + p1) % p1;
      k.at(0, y, x) = float(std::max(0.0, hr[size_t(wy) * p1 + wx].real()));
    }
  normalize_sum(k, "split_psf (nothing positive is left after the division; increase eps)");
  return k;
}

Volume split_psf_rl(const Volume& rotated, const Volume& isotropic, int iterations) {
  const char* what = "split_psf_rl";
  check_kernel2d(rotated, what, "the rotated PSF");
  check_kernel2d(isotropic, what, "the isotropic PSF");
  ISONET_CHECK(iterations >= 1, what, ": iterations must be >= 1, got ", iterations);
  // RL needs the data grid at least as large as the PSF: zero-pad h_rot (centred) if needed.
  const int ny = std::max(rotated.ny, isotropic.ny), nx = std::max(rotated.nx, isotropic.nx);
  const int oy = (ny - rotated.ny) / 2, ox = (nx - rotated.nx) / 2;
  Volume data = kernel2d(ny, nx, rotated.voxel);
  for (int y = 0; y < rotated.ny; ++y)
    for (int x = 0; x < rotated.nx; ++x) data.at(0, y + oy, x + ox) = rotated.at(0, y, x);
  RichardsonLucyOptions rl;
  rl.iterations = iterations;
  rl.edge = RlEdge::Masked;  // h_rot is known on its grid only; h_split may not leak beyond it
  const Volume est = richardson_lucy(data, isotropic, rl, Device::CPU);
  Volume k = kernel2d(rotated.ny, rotated.nx, rotated.voxel);
  for (int y = 0; y < rotated.ny; ++y)
    for (int x = 0; x < rotated.nx; ++x) k.at(0, y, x) = std::max(0.f, est.at(0, y + oy, x + ox));
  normalize_sum(k, "split_psf_rl (the estimate vanished)");
  return k;
}

Volume split_psf(const Volume& rotated, const Volume& isotropic, const TrainingPsfOptions& opt) {
  return opt.split_method == SplitMethod::Wiener ? split_psf_wiener(rotated, isotropic, opt.split_eps)
                                                 : split_psf_rl(rotated, isotropic, opt.split_iterations);
}

TrainingPsfs training_psfs(const Volume& psf, const TrainingPsfOptions& opt) {
  TrainingPsfs t;
  t.rotated = rotated_psf(psf, opt);
  t.isotropic = isotropic_psf(psf, opt);
  t.split = split_psf(t.rotated, t.isotropic, opt);
  return t;
}

}  // namespace isonet
