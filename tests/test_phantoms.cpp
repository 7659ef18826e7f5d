// test_phantoms.cpp: synthetic volumes (imaging/phantoms.h) and camera noise (imaging/noise.h):
// determinism (also across OpenMP thread counts), geometry of nuclei and Voronoi cells through
// their label volumes, Perlin statistics, and Poisson/Gaussian moments and probabilities within
// stated statistical bounds.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>
#include <vector>

#include "imaging/noise.h"
#include "imaging/phantoms.h"
#include "kernels/error.h"
#include "test_util.h"

using namespace isonet;

namespace {

// Number of 6-connected components of the voxels carrying each label (label -> components).
// connectivity 6 (faces) or 26 (faces, edges, corners).
std::map<int32_t, int> components_per_label(const std::vector<int32_t>& labels, int nz, int ny, int nx,
                                            int connectivity = 6) {
  std::vector<char> seen(labels.size(), 0);
  std::map<int32_t, int> comps;
  std::vector<size_t> stack;
  for (size_t s = 0; s < labels.size(); ++s) {
    if (seen[s] || labels[s] == 0) continue;
    const int32_t l = labels[s];
    comps[l]++;
    stack.push_back(s);
    seen[s] = 1;
    while (!stack.empty()) {
      size_t i = stack.back();
      stack.pop_back();
      int x = int(i % nx), y = int(i / nx % ny), z = int(i / (size_t(nx) * ny));
      for (int k = 0; k < 27; ++k) {
        const int d[3] = {k / 9 - 1, k / 3 % 3 - 1, k % 3 - 1};
        const int steps = std::abs(d[0]) + std::abs(d[1]) + std::abs(d[2]);
        if (steps == 0 || (connectivity == 6 && steps > 1)) continue;
        int zz = z + d[0], yy = y + d[1], xx = x + d[2];
        if (zz < 0 || yy < 0 || xx < 0 || zz >= nz || yy >= ny || xx >= nx) continue;
        size_t j = (size_t(zz) * ny + yy) * nx + xx;
        if (!seen[j] && labels[j] == l) {
          seen[j] = 1;
          stack.push_back(j);
        }
      }
    }
  }
  return comps;
}

struct Moments {
  double mean = 0, var = 0;
};
Moments moments(const std::vector<double>& v) {
  Moments m;
  for (double x : v) m.mean += x;
  m.mean /= v.size();
  for (double x : v) m.var += (x - m.mean) * (x - m.mean);
  m.var /= (v.size() - 1);
  return m;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Perlin noise.

TEST_CASE("phantoms: Perlin noise is deterministic, smooth, zero-mean with std about 0.35") {
  Volume a = perlin_noise(40, 45, 37, 6.0, 3, 9);
  Volume b = perlin_noise(40, 45, 37, 6.0, 3, 9);
  Volume c = perlin_noise(40, 45, 37, 6.0, 3, 10);
  CHECK(a.data == b.data);
  CHECK(a.data != c.data);
  double s = 0, s2 = 0, diff = 0;
  size_t outside = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    s += a.data[i];
    s2 += a.data[i] * a.data[i];
    outside += std::fabs(a.data[i]) > 1.f;
    if (i % a.nx) diff += std::fabs(a.data[i] - a.data[i - 1]);
  }
  CHECK(outside == 0);  // clamped to [-1, 1]
  const double mean = s / a.size(), sd = std::sqrt(s2 / a.size() - mean * mean);
  // About 20^3 independent features of size 6 in the volume: the sample mean scatters by
  // ~0.35/sqrt(1500) ~ 0.01; 0.06 is a wide bound. The std is calibrated to 0.35 (+-15% for a
  // finite sample with octaves of 6, 3 and 1.5 -> the last skipped: 2 octaves).
  CHECK(std::fabs(mean) < 0.06);
  CHECK(sd > 0.30);
  CHECK(sd < 0.40);
  // Smooth: neighbouring voxels differ much less than for white noise (mean |step| = 1.13 sd);
  // octaves of 6 and 3 voxels give about 0.43 sd.
  const double mean_step = diff / (a.size() - a.size() / a.nx);
  CHECK(mean_step < 0.6 * sd);
  CHECK_THROWS_AS(perlin_noise(4, 4, 4, 0.0, 1, 1), Error);
  CHECK_THROWS_AS(perlin_noise(0, 4, 4, 3.0, 1, 1), Error);
}

// ---------------------------------------------------------------------------------------------
// Nuclei.

TEST_CASE("phantoms: nuclei are deterministic, labelled, convex blobs filling about 25%") {
  NucleiParams p;
  p.seed = 5;
  Phantom a = make_nuclei(48, 53, 59, p);
  Phantom b = make_nuclei(48, 53, 59, p);
  CHECK(a.density.data == b.density.data);
  CHECK(a.labels == b.labels);
  // Thread count does not change anything (work split by plane, randomness keyed by counters).
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  Phantom single = make_nuclei(48, 53, 59, p);
  omp_set_num_threads(threads);
  CHECK(single.density.data == a.density.data);
  p.seed = 6;
  CHECK(make_nuclei(48, 53, 59, p).density.data != a.density.data);

  // Default radius 4.5 here; count = round(25% of 150096 voxels / (4/3 pi 4.5^3)) = 98.
  CHECK(a.num_labels == 98);
  auto comps = components_per_label(a.labels, 48, 53, 59);
  CHECK(int(comps.size()) == a.num_labels);  // every nucleus has voxels (centres lie inside)
  for (const auto& entry : comps) {  // no structured binding: clang 14 cannot capture one in INFO
    const auto label = entry.first;
    const auto n = entry.second;
    INFO("label " << label);
    CHECK(label >= 1);
    CHECK(label <= a.num_labels);
    CHECK(n == 1);  // ellipsoids are convex: one connected piece each
  }
  size_t inside = 0;
  double din = 0, dout = 0;
  float lo = 1e9f, hi = -1e9f;
  for (size_t i = 0; i < a.labels.size(); ++i) {
    lo = std::min(lo, a.density.data[i]);
    hi = std::max(hi, a.density.data[i]);
    if (a.labels[i]) {
      ++inside;
      din += a.density.data[i];
    } else {
      dout += a.density.data[i];
    }
  }
  const double fraction = double(inside) / a.labels.size();
  // 25% by construction, less where nuclei are cut by the borders (the radius spread changes the
  // mean volume by +-5%): 0.15..0.30.
  CHECK(fraction > 0.15);
  CHECK(fraction < 0.30);
  CHECK(lo >= 0.f);
  CHECK(hi <= 1.4f + 1e-6f);  // brightness <= 1 times texture <= 1 + 0.4
  CHECK(din / inside > 4 * dout / (a.labels.size() - inside));
  CHECK(a.density.voxel.unit == "px");
}

TEST_CASE("phantoms: nuclei parameters: explicit count and radius, overfull volumes, bad values") {
  NucleiParams p;
  p.count = 12;
  p.radius = 6;
  p.background = 0.1;
  Phantom a = make_nuclei(40, 40, 40, p);
  CHECK(a.num_labels == 12);
  float lo = *std::min_element(a.density.data.begin(), a.density.data.end());
  CHECK(std::fabs(lo - 0.1f) < 1e-3f);  // background away from the nuclei
  // Asking for far more nuclei than fit gives fewer, and terminates.
  p.count = 5000;
  p.radius = 4;
  Phantom full = make_nuclei(24, 24, 24, p);
  CHECK(full.num_labels > 10);
  CHECK(full.num_labels < 5000);
  p.radius_spread = 1.5;
  CHECK_THROWS_WITH_AS(make_nuclei(10, 10, 10, p), doctest::Contains("radius_spread"), Error);
  CHECK_THROWS_AS(make_nuclei(0, 10, 10), Error);
}

// ---------------------------------------------------------------------------------------------
// Membranes and cells.

TEST_CASE("phantoms: membranes lie on the boundaries of convex Voronoi cells") {
  MembraneParams p;
  p.cell_size = 9;
  p.seed = 3;
  const int nz = 37, ny = 41, nx = 43;
  Phantom m = make_membranes(nz, ny, nx, p);
  CHECK(make_membranes(nz, ny, nx, p).density.data == m.density.data);
  // Voronoi cells are convex; sampled on voxels, thin slivers (cells clipped by the volume's
  // faces) can be disconnected face-wise but stay connected through edges and corners.
  auto comps = components_per_label(m.labels, nz, ny, nx, 26);
  CHECK(int(comps.size()) == m.num_labels);
  for (const auto& entry : comps) {
    const auto label = entry.first;
    const auto n = entry.second;
    INFO("cell " << label);
    CHECK(n == 1);
  }
  CHECK(std::count(m.labels.begin(), m.labels.end(), 0) == 0);  // every voxel belongs to a cell
  // Convexity (and so the exactness of the pruned nearest-centre search): the midpoint of two
  // voxels of the same cell, when it is a voxel, carries the same label. Ties need two equally
  // near centres to 1e-12 and do not occur with random centres.
  std::mt19937 rng(4);
  int checked = 0, bad = 0;
  for (int t = 0; t < 60000; ++t) {
    int z1 = rng() % nz, y1 = rng() % ny, x1 = rng() % nx;
    int z2 = std::min(nz - 1, std::max(0, z1 + int(rng() % 13) - 6));
    int y2 = std::min(ny - 1, std::max(0, y1 + int(rng() % 13) - 6));
    int x2 = std::min(nx - 1, std::max(0, x1 + int(rng() % 13) - 6));
    if ((z1 + z2) % 2 || (y1 + y2) % 2 || (x1 + x2) % 2) continue;
    size_t i1 = m.density.index(z1, y1, x1), i2 = m.density.index(z2, y2, x2);
    if (m.labels[i1] != m.labels[i2]) continue;
    ++checked;
    if (m.labels[m.density.index((z1 + z2) / 2, (y1 + y2) / 2, (x1 + x2) / 2)] != m.labels[i1]) ++bad;
  }
  CHECK(checked > 1000);
  CHECK(bad == 0);
  // Where the label changes between 6-neighbours the boundary plane lies between them, so one
  // of the two is within 0.5 voxel of it: profile exp(-0.5^2 / (2 0.8^2)) = 0.82 times texture
  // >= 0.5 (strength 0.5, noise >= -1) gives >= 0.41.
  int changes = 0, weak = 0;
  for (int z = 0; z < nz; ++z)
    for (int y = 0; y < ny; ++y)
      for (int x = 0; x + 1 < nx; ++x) {
        size_t i = m.density.index(z, y, x);
        if (m.labels[i] == m.labels[i + 1]) continue;
        ++changes;
        if (std::max(m.density.data[i], m.density.data[i + 1]) < 0.41f) ++weak;
      }
  CHECK(changes > 500);
  CHECK(weak == 0);
  // Sheets: the profile exceeds 0.3 within 1.24 voxels of a boundary (texture aside); in cells
  // of 9 voxels a cube would have 1 - (1 - 2.5/9)^3 = 62% of its voxels there.
  size_t bright = 0;
  for (float v : m.density.data) bright += v > 0.3f;
  MESSAGE("fraction of membrane voxels (> 0.3): " << double(bright) / m.density.size());
  CHECK(double(bright) / m.density.size() < 0.7);
  CHECK(double(bright) / m.density.size() > 0.3);
}

TEST_CASE("phantoms: cells have one nucleus inside each cell, on top of the membranes") {
  CellsParams p;
  p.membranes.cell_size = 12;
  p.membranes.seed = 8;
  const int nz = 36, ny = 40, nx = 44;
  Phantom c = make_cells(nz, ny, nx, p);
  Phantom m = make_membranes(nz, ny, nx, p.membranes);
  CHECK(c.labels == m.labels);  // the cell labels of make_membranes
  CHECK(c.num_labels == m.num_labels);
  // Nuclei add intensity (never remove), and only inside cells, away from membranes: the
  // added intensity per cell is positive for cells whose centre region is in the volume.
  double added = 0, most_negative = 0;
  for (size_t i = 0; i < c.density.size(); ++i) {
    const double d = c.density.data[i] - m.density.data[i];
    most_negative = std::min(most_negative, d);
    added += d;
  }
  CHECK(most_negative >= -1e-6);  // float rounding of the sum only
  CHECK(added > 0.05 * c.density.size() * p.nucleus_brightness * 0.5);
  // Nuclei stay inside their cell: at label changes the nucleus contribution is small
  // (the nearest boundary is >= 1 - 0.66 of the half centre distance away, >= ~2 voxels).
  int at_boundary = 0, strong = 0;
  for (size_t i = 0; i + 1 < c.density.size(); ++i) {
    if ((i + 1) % nx == 0 || c.labels[i] == c.labels[i + 1]) continue;
    ++at_boundary;
    if (c.density.data[i] - m.density.data[i] > 0.2f) ++strong;
  }
  CHECK(at_boundary > 100);
  CHECK(strong < at_boundary / 50);
  CHECK_THROWS_AS(make_cells(10, 10, 10, CellsParams{MembraneParams{}, 1.5}), Error);
}

// ---------------------------------------------------------------------------------------------
// Noise.

TEST_CASE("noise: Poisson draws have the right mean, variance and probabilities (both algorithms)") {
  // N draws: sample mean within 5 standard errors sqrt(lambda/N); sample variance within 5
  // standard errors sqrt((lambda + 2 lambda^2)/N) (variance of the sample variance of a Poisson
  // variable, mu4 - sigma^4 = lambda + 2 lambda^2). 5 sd: a false failure has probability ~6e-7.
  const int N = 200000;
  for (double lambda : {0.3, 3.7, 9.99, 10.0, 57.5, 12345.6}) {
    INFO("lambda " << lambda);
    std::vector<double> v(N);
    int not_count = 0;
    for (int i = 0; i < N; ++i) {
      v[i] = poisson_sample(lambda, 42, uint64_t(i));
      not_count += v[i] != std::floor(v[i]) || v[i] < 0;
    }
    CHECK(not_count == 0);
    Moments m = moments(v);
    CHECK(std::fabs(m.mean - lambda) <= 5 * std::sqrt(lambda / N));
    CHECK(std::fabs(m.var - lambda) <= 5 * std::sqrt((lambda + 2 * lambda * lambda) / N));
  }
  // The whole pmf for lambda = 12 (rejection algorithm): each frequency within 5 binomial sd.
  const double lambda = 12.0;
  std::vector<int> hist(60, 0);
  for (int i = 0; i < N; ++i) hist[std::min(59, int(poisson_sample(lambda, 7, uint64_t(i))))]++;
  double logp = -lambda;  // log P(k) for k = 0
  for (int k = 0; k < 40; ++k) {
    if (k > 0) logp += std::log(lambda / k);
    const double p = std::exp(logp), sd = std::sqrt(N * p * (1 - p));
    INFO("k " << k << " count " << hist[k] << " expected " << N * p);
    CHECK(std::fabs(hist[k] - N * p) <= 5 * sd + 1);
  }
  // P(0) for lambda = 3.7 (inversion algorithm).
  int zeros = 0;
  for (int i = 0; i < N; ++i) zeros += poisson_sample(3.7, 8, uint64_t(i)) == 0;
  const double p0 = std::exp(-3.7);
  CHECK(std::fabs(zeros - N * p0) <= 5 * std::sqrt(N * p0 * (1 - p0)));
  CHECK(poisson_sample(0.0, 1, 1) == 0.0);
  CHECK_THROWS_AS(poisson_sample(-1.0, 1, 1), Error);
  CHECK_THROWS_AS(poisson_sample(std::nan(""), 1, 1), Error);
}

TEST_CASE("noise: Gaussian draws are standard normal") {
  const int N = 200000;
  std::vector<double> v(N);
  int tail = 0;
  for (int i = 0; i < N; ++i) {
    v[i] = normal_sample(3, uint64_t(i));
    tail += std::fabs(v[i]) > 2.0;
  }
  Moments m = moments(v);
  // 5 standard errors: mean 1/sqrt(N), variance sqrt(2/N); P(|z| > 2) = 0.0455 binomial.
  CHECK(std::fabs(m.mean) <= 5 / std::sqrt(double(N)));
  CHECK(std::fabs(m.var - 1) <= 5 * std::sqrt(2.0 / N));
  const double pt = 0.04550026;
  CHECK(std::fabs(tail - N * pt) <= 5 * std::sqrt(N * pt * (1 - pt)));
}

TEST_CASE("noise: camera model moments, determinism across threads, clamping and errors") {
  // clean = 0.8 everywhere, 50 photons per unit, read noise 3, offset 100:
  // mean 40 + 100, variance 40 + 9.
  const int nz = 11, ny = 97, nx = 89;  // 94963 voxels
  Volume clean(nz, ny, nx, 0.8f);
  CameraNoise cam;
  cam.photons_per_unit = 50;
  cam.read_sigma = 3;
  cam.offset = 100;
  cam.seed = 17;
  Volume a = apply_camera_noise(clean, cam);
  const double N = double(a.size());
  std::vector<double> v(a.data.begin(), a.data.end());
  Moments m = moments(v);
  CHECK(std::fabs(m.mean - 140) <= 5 * std::sqrt(49 / N));
  // Variance of the sample variance ~ (mu4 - sigma^4)/N; mu4 = 3*49^2 + 40 (Poisson excess
  // kurtosis 1/lambda adds lambda): sqrt((2*49^2 + 40)/N).
  CHECK(std::fabs(m.var - 49) <= 5 * std::sqrt((2 * 49.0 * 49.0 + 40) / N));
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  Volume single = apply_camera_noise(clean, cam);
  omp_set_num_threads(threads);
  CHECK(single.data == a.data);
  cam.seed = 18;
  CHECK(apply_camera_noise(clean, cam).data != a.data);

  // Shot noise only, no read noise: integer counts; negative intensities count as 0.
  CameraNoise shot;
  shot.photons_per_unit = 10;
  Volume neg(1, 2, 3, -5.f);
  Volume n = apply_camera_noise(neg, shot);
  for (float x : n.data) CHECK(x == 0.f);
  // Poisson off: exact scaling plus offset.
  CameraNoise off;
  off.poisson = false;
  off.photons_per_unit = 4;
  off.offset = 2;
  Volume r(2, 3, 4);
  r.data = test::random_vector(r.size(), 5, 0.f, 3.f);
  Volume s = apply_camera_noise(r, off);
  for (size_t i = 0; i < r.size(); ++i) CHECK(s.data[i] == float(double(r.data[i]) * 4 + 2));

  // In-place helpers: add_poisson_noise refuses negative counts, add_gaussian_noise shifts.
  Volume counts(1, 1, 3, 5.f);
  counts.data[2] = -1.f;
  CHECK_THROWS_WITH_AS(add_poisson_noise(counts, 1), doctest::Contains("element 2"), Error);
  Volume g(1, 1, 1000, 7.f);
  add_gaussian_noise(g, 0.0, 1);
  CHECK(g.data == std::vector<float>(1000, 7.f));
  add_gaussian_noise(g, 2.0, 1);
  CHECK(g.data != std::vector<float>(1000, 7.f));
  CameraNoise bad;
  bad.photons_per_unit = 0;
  CHECK_THROWS_WITH_AS(apply_camera_noise(clean, bad), doctest::Contains("photons_per_unit"), Error);
  Volume nan_in(1, 1, 2, 1.f);
  nan_in.data[1] = std::nanf("");
  CHECK_THROWS_WITH_AS(apply_camera_noise(nan_in, cam), doctest::Contains("non-finite"), Error);
}
