// metrics.cpp: implementation of metrics.h. SSIM is computed in z-blocks so memory stays bounded
// (five double maps for the block plus its z halo), with the separable Gaussian applied in x and
// y per input plane and then in z per output plane.
#include "imaging/metrics.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/error.h"

namespace isonet {

namespace {

constexpr double kSigma = 1.5;
constexpr int kRadius = 5;  // int(3.5 * 1.5 + 0.5): skimage's truncate=3.5
constexpr double kK1 = 0.01, kK2 = 0.03;

void require_same_shape(const Volume& pred, const Volume& ref, const char* op) {
  ISONET_CHECK(pred.nz == ref.nz && pred.ny == ref.ny && pred.nx == ref.nx, op, ": prediction ", pred.shape_str(),
               " and reference ", ref.shape_str(), " differ in shape");
  ISONET_CHECK(!ref.data.empty() && pred.data.size() == pred.size() && ref.data.size() == ref.size(), op,
               ": empty or malformed volume ", ref.shape_str());
  require_finite(pred, op);
  require_finite(ref, op);
}

// Half-sample symmetric reflection (scipy.ndimage mode 'reflect'), valid for any i.
inline int reflect(int i, int n) {
  if (n == 1) return 0;
  const int period = 2 * n;
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - 1 - i;
}

std::vector<double> gaussian_taps() {
  std::vector<double> w(2 * kRadius + 1);
  double sum = 0;
  for (int k = -kRadius; k <= kRadius; ++k) sum += w[k + kRadius] = std::exp(-0.5 * k * k / (kSigma * kSigma));
  for (double& x : w) x /= sum;
  return w;
}

// The prediction as scored: mapped by the affine fit or unchanged.
std::vector<double> scored_values(const Volume& pred, const Volume& ref, ScoreFit fit, AffineFit* used) {
  AffineFit f;
  if (fit == ScoreFit::Affine) f = fit_affine_minmse(pred, ref);
  if (used) *used = f;
  std::vector<double> out(pred.size());
  for (size_t i = 0; i < out.size(); ++i) out[i] = f.scale * pred.data[i] + f.offset;
  return out;
}

double mse_of(const std::vector<double>& x, const Volume& ref) {
  double s = 0;
#pragma omp parallel for reduction(+ : s) schedule(static)
  for (long long i = 0; i < (long long)x.size(); ++i) {
    double d = x[i] - ref.data[i];
    s += d * d;
  }
  return s / double(x.size());
}

double psnr_of(double mse, double range) {
  if (mse == 0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(range * range / mse);
}

// Mean SSIM of x (prediction, as scored) against ref. See metrics.h for the conventions.
double ssim_of(const std::vector<double>& x, const Volume& ref, double range) {
  const int nz = ref.nz, ny = ref.ny, nx = ref.nx;
  const size_t plane = ref.plane();
  const std::vector<double> w = gaussian_taps();
  const double c1 = (kK1 * range) * (kK1 * range), c2 = (kK2 * range) * (kK2 * range);
  // Crop kRadius along axes longer than the window (skimage's crop), none along shorter ones.
  auto crop = [](int n) { return n > 2 * kRadius ? kRadius : 0; };
  const int cz = crop(nz), cy = crop(ny), cx = crop(nx);

  // Block of output planes [z0, z0+block) needs input planes z0-r .. z0+block-1+r (reflected).
  const int block = std::max(1, std::min(nz, int((size_t(256) << 20) / (5 * sizeof(double) * plane + 1)) - 2 * kRadius));
  const int taps_z = nz > 1 ? kRadius : 0;  // a 2D image is not filtered along z
  std::vector<double> maps;  // [block + 2r][5][ny][nx]: mu_x, mu_y, xx, yy, xy filtered in x and y
  double total = 0;
  long long count = 0;

  for (int z0 = cz; z0 < nz - cz; z0 += block) {
    const int z1 = std::min(nz - cz, z0 + block);
    const int in0 = z0 - taps_z, nin = (z1 + taps_z) - in0;
    maps.assign(size_t(nin) * 5 * plane, 0.0);
#pragma omp parallel
    {
      std::vector<double> prod(5 * plane), padded(nx + 2 * kRadius);
#pragma omp for schedule(dynamic)
      for (int k = 0; k < nin; ++k) {
        const size_t src = size_t(reflect(in0 + k, nz)) * plane;
        for (size_t i = 0; i < plane; ++i) {
          double a = x[src + i], b = ref.data[src + i];
          prod[i] = a;
          prod[plane + i] = b;
          prod[2 * plane + i] = a * a;
          prod[3 * plane + i] = b * b;
          prod[4 * plane + i] = a * b;
        }
        double* out = maps.data() + size_t(k) * 5 * plane;
        for (int m = 0; m < 5; ++m) {
          double* p = prod.data() + m * plane;
          double* o = out + m * plane;
          // x pass (p -> p, row by row through a reflected, padded copy).
          for (int yy = 0; yy < ny; ++yy) {
            double* row = p + size_t(yy) * nx;
            for (int j = 0; j < nx + 2 * kRadius; ++j) padded[j] = row[reflect(j - kRadius, nx)];
            for (int xx = 0; xx < nx; ++xx) {
              double s = 0;
              for (int t = 0; t <= 2 * kRadius; ++t) s += w[t] * padded[xx + t];
              row[xx] = s;
            }
          }
          // y pass (p -> o), contiguous inner loop over x.
          for (int yy = 0; yy < ny; ++yy) {
            double* orow = o + size_t(yy) * nx;
            std::fill(orow, orow + nx, 0.0);
            for (int t = -kRadius; t <= kRadius; ++t) {
              const double* prow = p + size_t(reflect(yy + t, ny)) * nx;
              const double wt = w[t + kRadius];
              for (int xx = 0; xx < nx; ++xx) orow[xx] += wt * prow[xx];
            }
          }
        }
      }
    }
    // z pass per output plane and the SSIM sum over the cropped region.
    double block_total = 0;
#pragma omp parallel reduction(+ : block_total)
    {
      std::vector<double> mu(5 * size_t(nx));
#pragma omp for schedule(dynamic)
      for (int z = z0; z < z1; ++z) {
        for (int yy = cy; yy < ny - cy; ++yy) {
          std::fill(mu.begin(), mu.end(), 0.0);
          for (int t = -taps_z; t <= taps_z; ++t) {
            // Input plane z+t sits in slot z + t - in0 (reflection was applied when loading).
            const double* map = maps.data() + size_t(z + t - in0) * 5 * plane + size_t(yy) * nx;
            const double wt = taps_z ? w[t + kRadius] : 1.0;
            for (int m = 0; m < 5; ++m)
              for (int xx = 0; xx < nx; ++xx) mu[size_t(m) * nx + xx] += wt * map[m * plane + xx];
          }
          for (int xx = cx; xx < nx - cx; ++xx) {
            const double mx = mu[xx], my = mu[nx + xx];
            const double vx = mu[2 * nx + xx] - mx * mx, vy = mu[3 * nx + xx] - my * my;
            const double cxy = mu[4 * nx + xx] - mx * my;
            block_total += ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2));
          }
        }
      }
    }
    total += block_total;
    count += (long long)(z1 - z0) * (ny - 2 * cy) * (nx - 2 * cx);
  }
  return total / double(count);
}

}  // namespace

AffineFit fit_affine_minmse(const Volume& pred, const Volume& ref) {
  require_same_shape(pred, ref, "fit_affine_minmse");
  const size_t n = pred.size();
  double mp = 0, mr = 0;
#pragma omp parallel for reduction(+ : mp, mr) schedule(static)
  for (long long i = 0; i < (long long)n; ++i) {
    mp += pred.data[i];
    mr += ref.data[i];
  }
  mp /= double(n);
  mr /= double(n);
  double vp = 0, cov = 0;  // centred sums: no cancellation for large offsets
#pragma omp parallel for reduction(+ : vp, cov) schedule(static)
  for (long long i = 0; i < (long long)n; ++i) {
    double dp = pred.data[i] - mp;
    vp += dp * dp;
    cov += dp * (ref.data[i] - mr);
  }
  AffineFit f;
  f.scale = vp > 0 ? cov / vp : 0.0;
  f.offset = mr - f.scale * mp;
  return f;
}

Volume normalize_minmse(const Volume& pred, const Volume& ref) {
  AffineFit f = fit_affine_minmse(pred, ref);
  Volume out = pred;
  for (float& x : out.data) x = float(f.scale * x + f.offset);
  return out;
}

double data_range(const Volume& ref) {
  ISONET_CHECK(!ref.data.empty(), "data_range: empty reference");
  auto [lo, hi] = std::minmax_element(ref.data.begin(), ref.data.end());
  double r = double(*hi) - double(*lo);
  ISONET_CHECK(r > 0, "data_range: the reference is constant (", *lo,
               "): PSNR/SSIM need a reference with a non-zero range (max - min)");
  return r;
}

double mse(const Volume& pred, const Volume& ref) {
  require_same_shape(pred, ref, "mse");
  return mse_of(scored_values(pred, ref, ScoreFit::None, nullptr), ref);
}

double psnr(const Volume& pred, const Volume& ref, ScoreFit fit) {
  require_same_shape(pred, ref, "psnr");
  return psnr_of(mse_of(scored_values(pred, ref, fit, nullptr), ref), data_range(ref));
}

double ssim(const Volume& pred, const Volume& ref, ScoreFit fit) {
  require_same_shape(pred, ref, "ssim");
  return ssim_of(scored_values(pred, ref, fit, nullptr), ref, data_range(ref));
}

Scores score(const Volume& pred, const Volume& ref, ScoreFit fit) {
  require_same_shape(pred, ref, "score");
  const double range = data_range(ref);
  Scores s;
  std::vector<double> x = scored_values(pred, ref, fit, &s.fit);
  s.fitted = fit == ScoreFit::Affine;
  s.psnr = psnr_of(mse_of(x, ref), range);
  s.ssim = ssim_of(x, ref, range);
  return s;
}

}  // namespace isonet
