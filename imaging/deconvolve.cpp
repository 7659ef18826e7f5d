// deconvolve.cpp: Richardson-Lucy (see deconvolve.h): input checks, the extended-domain problem
// (reflection or masked margin), the CPU iterations, and the final crop. The GPU iterations are
// in deconvolve.cu.
#include "imaging/deconvolve.h"

#include <algorithm>
#include <cmath>

#include "imaging/deconvolve_backend.h"
#include "imaging/fft_convolve.h"
#include "kernels/error.h"

namespace isonet {

namespace {

// Mirror index with the edge repeated (... c b a | a b c ...), valid for any offset: the
// extension is periodic with period 2n.
int reflect(int i, int n) {
  const int period = 2 * n;
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - 1 - i;
}

Volume normalized_psf(const Volume& psf, const Volume& image) {
  const char* what = "richardson_lucy";
  ISONET_CHECK(psf.nz >= 1 && psf.ny >= 1 && psf.nx >= 1 && psf.data.size() == size_t(psf.nz) * psf.ny * psf.nx,
               what, ": PSF ", psf.shape_str(), " is empty or its data do not match its shape");
  ISONET_CHECK(psf.nz % 2 == 1 && psf.ny % 2 == 1 && psf.nx % 2 == 1, what,
               ": PSF sizes must be odd so that its centre is a voxel, got ", psf.shape_str());
  ISONET_CHECK(psf.nz <= image.nz && psf.ny <= image.ny && psf.nx <= image.nx, what, ": PSF ", psf.shape_str(),
               " is larger than the volume ", image.shape_str(), " along some axis",
               image.nz == 1 ? " (a 2D image needs a 2D PSF with nz == 1)" : "", "; crop the PSF");
  require_finite(psf, "richardson_lucy PSF");
  double s = 0;
  for (float f : psf.data) {
    ISONET_CHECK(f >= 0, what, ": PSF has a negative value ", f, "; clip it at 0 first");
    s += f;
  }
  ISONET_CHECK(s > 0, what, ": PSF sums to 0");
  Volume h = psf;
  for (float& f : h.data) f = float(f / s);
  return h;
}

// The extended domain: object margin m = PSF half-size (Masked) or 2m (Reflect); the data
// weight w = 1 on the image (Masked) or on the image plus the reflected first margin (Reflect),
// so every weighted voxel has its whole PSF footprint inside the object domain.
detail::RlProblem make_problem(const Volume& image, const Volume& h, const RichardsonLucyOptions& opt) {
  const bool reflect_edges = opt.edge == RlEdge::Reflect;
  const int hz = h.nz / 2, hy = h.ny / 2, hx = h.nx / 2;          // data margin (reflected)
  const int k = reflect_edges ? 2 : 1;
  const int mz = k * hz, my = k * hy, mx = k * hx;                // object margin
  const int dz = reflect_edges ? hz : 0, dy = reflect_edges ? hy : 0, dx = reflect_edges ? hx : 0;
  detail::RlProblem p;
  p.nz = image.nz + 2 * mz, p.ny = image.ny + 2 * my, p.nx = image.nx + 2 * mx;
  p.mz = mz, p.my = my, p.mx = mx;
  const size_t n = size_t(p.nz) * p.ny * p.nx;
  p.y.assign(n, 0.f);
  p.w.assign(n, 0.f);
  double ymax = 0, sum = 0, count = 0;
  for (int z = 0; z < p.nz; ++z)
    for (int y = 0; y < p.ny; ++y)
      for (int x = 0; x < p.nx; ++x) {
        const int iz = z - mz, iy = y - my, ix = x - mx;  // image coordinates
        if (iz < -dz || iy < -dy || ix < -dx || iz >= image.nz + dz || iy >= image.ny + dy || ix >= image.nx + dx)
          continue;
        const float v = std::max(0.f, image.at(reflect(iz, image.nz), reflect(iy, image.ny), reflect(ix, image.nx)));
        const size_t i = (size_t(z) * p.ny + y) * p.nx + x;
        p.y[i] = v;
        p.w[i] = 1.f;
        ymax = std::max(ymax, double(v));
        sum += v, count += 1;
      }
  ISONET_CHECK(ymax > 0, "richardson_lucy: the image has no positive value (all <= 0 after clipping negatives)");
  p.x0 = float(sum / count);
  p.eps = float(opt.epsilon * ymax);
  p.iterations = opt.iterations;
  return p;
}

std::vector<float> iterate_cpu(const detail::RlProblem& p, const Volume& h) {
  const size_t n = p.y.size();
  FftConvolver conv(p.nz, p.ny, p.nx, h, Device::CPU);
  std::vector<float> norm(n), x(n, p.x0), t(n);
  conv.correlate(p.w.data(), norm.data());
  for (int it = 0; it < p.iterations; ++it) {
    conv.convolve(x.data(), t.data());
#pragma omp parallel for schedule(static) if (n > (1u << 16))
    for (long long i = 0; i < (long long)n; ++i) t[i] = detail::rl_ratio(p.y[i], p.w[i], t[i], p.eps);
    conv.correlate(t.data(), t.data());
#pragma omp parallel for schedule(static) if (n > (1u << 16))
    for (long long i = 0; i < (long long)n; ++i) x[i] = detail::rl_update(x[i], t[i], norm[i]);
  }
  return x;
}

}  // namespace

Volume richardson_lucy(const Volume& image, const Volume& psf, const RichardsonLucyOptions& opt, Device device) {
  const char* what = "richardson_lucy";
  ISONET_CHECK(image.nz >= 1 && image.ny >= 1 && image.nx >= 1 &&
                   image.data.size() == size_t(image.nz) * image.ny * image.nx,
               what, ": image ", image.shape_str(), " is empty or its data do not match its shape");
  require_finite(image, "richardson_lucy image");
  ISONET_CHECK(opt.iterations >= 0, what, ": iterations must be >= 0, got ", opt.iterations);
  ISONET_CHECK(std::isfinite(opt.epsilon) && opt.epsilon > 0, what, ": epsilon must be > 0, got ", opt.epsilon);
  const Volume h = normalized_psf(psf, image);
  const detail::RlProblem p = make_problem(image, h, opt);

  std::vector<float> x;
  if (device == Device::CPU) {
    x = iterate_cpu(p, h);
  } else {
#if ISONET_HAS_CUDA
    ISONET_CHECK(cuda_available(), what, ": CUDA requested but no usable CUDA device was found");
    x = detail::richardson_lucy_cuda(p, h);
#else
    fail(what, ": CUDA requested but this isonet was built without the CUDA backend");
#endif
  }

  Volume out(image.nz, image.ny, image.nx);
  out.voxel = image.voxel;
  for (int z = 0; z < image.nz; ++z)
    for (int y = 0; y < image.ny; ++y)
      std::copy_n(&x[((size_t(z + p.mz) * p.ny) + y + p.my) * p.nx + p.mx], image.nx, &out.at(z, y, 0));
  return out;
}

}  // namespace isonet
