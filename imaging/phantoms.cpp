// phantoms.cpp: implementation of phantoms.h. All randomness comes from the counter-based mixer
// (kernels/rng.h) through sequential draw counters, never from std:: distributions (whose
// algorithms differ between standard libraries), so phantoms are identical everywhere.
#include "imaging/phantoms.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <unordered_map>

#include "kernels/error.h"
#include "kernels/rng.h"

namespace isonet {

namespace {

constexpr double kPi = 3.14159265358979323846;

// Sequential uniform draws under one key.
class Draws {
 public:
  explicit Draws(uint64_t key) : key_(mix64(key)) {}
  double uniform() { return double(mix64(key_ ^ mix64(n_++)) >> 11) * 0x1.0p-53; }  // [0, 1)
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }

 private:
  uint64_t key_, n_ = 0;
};

void check_shape(int nz, int ny, int nx, const char* op) {
  ISONET_CHECK(nz > 0 && ny > 0 && nx > 0, op, ": volume size must be positive, got (", nz, ",", ny, ",", nx, ")");
  ISONET_CHECK(double(nz) * ny * nx < 4.0e9, op, ": volume (", nz, ",", ny, ",", nx, ") too large");
}

double cube_root_volume(int nz, int ny, int nx) { return std::cbrt(double(nz) * ny * nx); }

// ---------------------------------------------------------------------------------------------
// Perlin gradient noise.

// The 12 edge directions of a cube (Perlin 2002, "Improving noise").
constexpr int kGrad[12][3] = {{1, 1, 0}, {-1, 1, 0}, {1, -1, 0}, {-1, -1, 0}, {1, 0, 1}, {-1, 0, 1},
                              {1, 0, -1}, {-1, 0, -1}, {0, 1, 1}, {0, -1, 1}, {0, 1, -1}, {0, -1, -1}};

inline double fade(double t) { return t * t * t * (t * (t * 6 - 15) + 10); }

// Standard deviation of one octave of this noise over space (measured over 4*10^6 samples:
// 0.2691); the output is divided by it and multiplied by kTargetStd.
constexpr double kOctaveStd = 0.269;
constexpr double kTargetStd = 0.35;

// Lattice coordinates of one axis: cell index and fade weight per voxel.
struct AxisLattice {
  std::vector<int> cell;
  std::vector<double> frac, fade;
};

AxisLattice axis_lattice(int n, double size, double offset) {
  AxisLattice a;
  a.cell.resize(n);
  a.frac.resize(n);
  a.fade.resize(n);
  for (int i = 0; i < n; ++i) {
    double p = (i + offset) / size;
    double c = std::floor(p);
    a.cell[i] = int(c);
    a.frac[i] = p - c;
    a.fade[i] = fade(p - c);
  }
  return a;
}

}  // namespace

Volume perlin_noise(int nz, int ny, int nx, double feature_size, int octaves, uint64_t seed) {
  check_shape(nz, ny, nx, "perlin_noise");
  ISONET_CHECK(std::isfinite(feature_size) && feature_size > 0, "perlin_noise: feature_size must be > 0, got ",
               feature_size);
  ISONET_CHECK(octaves >= 1 && octaves <= 16, "perlin_noise: octaves must be in 1..16, got ", octaves);
  Volume out(nz, ny, nx, 0.f);
  out.voxel = VoxelSize{1, 1, 1, "px"};
  double size = feature_size, amp = 1.0, sum_sq = 0;
  for (int o = 0; o < octaves; ++o, size *= 0.5, amp *= 0.5) {
    if (o > 0 && size < 2.0) break;  // finer octaves alias on the voxel grid
    sum_sq += amp * amp;
    Draws d(seed ^ (0x9E3779B97F4A7C15ull * uint64_t(o + 1)));
    // A random lattice offset per octave, so lattice points of different octaves do not align.
    const AxisLattice lz = axis_lattice(nz, size, d.uniform(0, size)), ly = axis_lattice(ny, size, d.uniform(0, size)),
                      lx = axis_lattice(nx, size, d.uniform(0, size));
    // Gradient index of every lattice point the volume touches (cells 0..cell[n-1]+1).
    const int gz = lz.cell.back() + 2, gy = ly.cell.back() + 2, gx = lx.cell.back() + 2;
    const uint64_t key = mix64(seed + uint64_t(o) * 0xD1B54A32D192ED03ull);
    std::vector<uint8_t> grad(size_t(gz) * gy * gx);
    for (size_t i = 0; i < grad.size(); ++i) grad[i] = uint8_t(mix64(key ^ i) % 12);
    const float famp = float(amp);
#pragma omp parallel for schedule(static)
    for (int z = 0; z < nz; ++z) {
      const int cz = lz.cell[z];
      const double fz = lz.frac[z], wz = lz.fade[z];
      for (int y = 0; y < ny; ++y) {
        const int cy = ly.cell[y];
        const double fy = ly.frac[y], wy = ly.fade[y];
        float* row = out.plane_ptr(z) + size_t(y) * nx;
        for (int x = 0; x < nx; ++x) {
          const int cx = lx.cell[x];
          const double fx = lx.frac[x], wx = lx.fade[x];
          double corner[8];
          for (int k = 0; k < 8; ++k) {
            const int dz = k >> 2, dy = (k >> 1) & 1, dx = k & 1;
            const int* g = kGrad[grad[(size_t(cz + dz) * gy + (cy + dy)) * gx + (cx + dx)]];
            corner[k] = g[0] * (fz - dz) + g[1] * (fy - dy) + g[2] * (fx - dx);
          }
          // Trilinear blend with the quintic fade weights.
          double x00 = corner[0] + wx * (corner[1] - corner[0]), x01 = corner[2] + wx * (corner[3] - corner[2]);
          double x10 = corner[4] + wx * (corner[5] - corner[4]), x11 = corner[6] + wx * (corner[7] - corner[6]);
          double y0 = x00 + wy * (x01 - x00), y1 = x10 + wy * (x11 - x10);
          row[x] += famp * float(y0 + wz * (y1 - y0));
        }
      }
    }
  }
  const float gain = float(kTargetStd / (kOctaveStd * std::sqrt(sum_sq)));
  for (float& v : out.data) v = std::clamp(v * gain, -1.f, 1.f);
  return out;
}

namespace {

// ---------------------------------------------------------------------------------------------
// Ellipsoids.

struct Ellipsoid {
  double c[3];       // centre (z, y, x) in voxels
  double axes[3];    // semi-axes along the rotated frame's axes
  double rot[3][3];  // rows: the ellipsoid's axes in (z, y, x)
  double bound;      // max semi-axis: bounding sphere radius
  double brightness;
  int32_t label;
};

// Uniformly random rotation from three uniforms (Shoemake's unit quaternion).
void random_rotation(Draws& d, double r[3][3]) {
  const double u1 = d.uniform(), u2 = d.uniform(), u3 = d.uniform();
  const double a = std::sqrt(1 - u1), b = std::sqrt(u1);
  const double w = a * std::sin(2 * kPi * u2), x = a * std::cos(2 * kPi * u2);
  const double y = b * std::sin(2 * kPi * u3), z = b * std::cos(2 * kPi * u3);
  const double m[3][3] = {{1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)},
                          {2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)},
                          {2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)}};
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) r[i][j] = m[i][j];
}

Ellipsoid random_ellipsoid(Draws& d, const double c[3], double radius, double spread, double bmin, int32_t label) {
  Ellipsoid e;
  for (int i = 0; i < 3; ++i) e.c[i] = c[i];
  e.bound = 0;
  for (int i = 0; i < 3; ++i) {
    e.axes[i] = radius * d.uniform(1 - spread, 1 + spread);
    e.bound = std::max(e.bound, e.axes[i]);
  }
  random_rotation(d, e.rot);
  e.brightness = d.uniform(bmin, 1.0);
  e.label = label;
  return e;
}

// Adds the ellipsoids into density (max where soft edges meet) and labels (inside: rho < 1).
// Work is split by z plane; each plane visits only the ellipsoids that reach it.
// The edge is a logistic in the (radial) signed distance to the surface, scale edge_width / 4.
void rasterize(const std::vector<Ellipsoid>& ell, double edge_width, Volume& density, std::vector<int32_t>& labels,
               const Volume& texture, double texture_strength, float scale) {
  const int nz = density.nz, ny = density.ny, nx = density.nx;
  const double k = std::max(edge_width, 1e-3) / 4.0, margin = 4.0 * edge_width + 1.0;
  std::vector<std::vector<int>> by_plane(nz);
  for (size_t i = 0; i < ell.size(); ++i) {
    int z0 = std::max(0, int(std::floor(ell[i].c[0] - ell[i].bound - margin)));
    int z1 = std::min(nz - 1, int(std::ceil(ell[i].c[0] + ell[i].bound + margin)));
    for (int z = z0; z <= z1; ++z) by_plane[z].push_back(int(i));
  }
#pragma omp parallel for schedule(dynamic)
  for (int z = 0; z < nz; ++z) {
    for (int idx : by_plane[z]) {
      const Ellipsoid& e = ell[idx];
      const double reach = e.bound + margin;
      const int y0 = std::max(0, int(std::floor(e.c[1] - reach))), y1 = std::min(ny - 1, int(std::ceil(e.c[1] + reach)));
      const int x0 = std::max(0, int(std::floor(e.c[2] - reach))), x1 = std::min(nx - 1, int(std::ceil(e.c[2] + reach)));
      const double dz = z - e.c[0];
      for (int y = y0; y <= y1; ++y) {
        const double dy = y - e.c[1];
        for (int x = x0; x <= x1; ++x) {
          const double dx = x - e.c[2];
          const double r2 = dz * dz + dy * dy + dx * dx;
          if (r2 > reach * reach) continue;
          double rho2 = 0;
          for (int a = 0; a < 3; ++a) {
            const double l = (e.rot[a][0] * dz + e.rot[a][1] * dy + e.rot[a][2] * dx) / e.axes[a];
            rho2 += l * l;
          }
          const double rho = std::sqrt(rho2), r = std::sqrt(r2);
          // Signed distance along the ray from the centre: exact for spheres, close for the
          // mild eccentricities used here.
          const double s = rho > 0 ? (rho - 1.0) * r / rho : -e.axes[0];
          const double inside = 1.0 / (1.0 + std::exp(s / k));
          const size_t i = density.index(z, y, x);
          const double tex = std::max(0.0, 1.0 + texture_strength * texture.data[i]);
          const float v = scale * float(e.brightness * inside * tex);
          if (v > density.data[i]) density.data[i] = v;
          if (rho < 1.0) labels[i] = e.label;
        }
      }
    }
  }
}

Phantom empty_phantom(int nz, int ny, int nx) {
  Phantom p;
  p.density = Volume(nz, ny, nx, 0.f);
  p.density.voxel = VoxelSize{1, 1, 1, "px"};
  p.labels.assign(p.density.size(), 0);
  return p;
}

void add_background(Volume& v, double background) {
  if (background != 0)
    for (float& x : v.data) x += float(background);
}

// ---------------------------------------------------------------------------------------------
// Voronoi cells: jittered grid centres, nearest centre and distance to the nearest boundary.

struct CellGrid {
  double spacing = 0;
  int gz = 0, gy = 0, gx = 0;  // grid cells (one extra layer on every side of the volume)
  std::vector<std::array<double, 3>> centres;  // one per grid cell, index (iz*gy + iy)*gx + ix
  // Candidates per grid cell: centres that can be nearest, or within `cutoff` of being the
  // neighbour across the nearest boundary, for any voxel of the cell.
  std::vector<std::vector<int>> candidates;
  std::vector<std::vector<double>> candidate_dmin;  // their distances to the cell's box, ascending

  int cell_of(double p, int axis_cells) const {
    return std::clamp(int(std::floor(p / spacing)) + 1, 0, axis_cells - 1);
  }
};

CellGrid make_cell_grid(int nz, int ny, int nx, double spacing, double jitter, double cutoff, Draws& d) {
  CellGrid g;
  g.spacing = spacing;
  g.gz = int(std::ceil(nz / spacing)) + 2;
  g.gy = int(std::ceil(ny / spacing)) + 2;
  g.gx = int(std::ceil(nx / spacing)) + 2;
  g.centres.resize(size_t(g.gz) * g.gy * g.gx);
  for (int iz = 0; iz < g.gz; ++iz)
    for (int iy = 0; iy < g.gy; ++iy)
      for (int ix = 0; ix < g.gx; ++ix) {
        auto& c = g.centres[(size_t(iz) * g.gy + iy) * g.gx + ix];
        const int idx[3] = {iz, iy, ix};
        for (int a = 0; a < 3; ++a) c[a] = (idx[a] - 1 + 0.5 + jitter * d.uniform(-1, 1)) * spacing;
      }
  // Pruning: for the box B of a grid cell, let D = min over centres j of the largest distance
  // from B to c_j (every voxel of B has a centre within D). A centre can matter for a voxel p of
  // B only if |p - c_j| <= |p - c_nearest| + 2 cutoff <= D + 2 cutoff, i.e. if its distance to B
  // is at most D + 2 cutoff. D <= sqrt(3) (0.5 + jitter) spacing < 1.5 spacing (the cell's own
  // centre) and cutoff <= spacing / 2, so qualifying centres lie within 2.5 spacings of B; a
  // centre 4 grid cells away is at least 3 spacings from B: searching +-3 cells is enough.
  g.candidates.resize(g.centres.size());
  g.candidate_dmin.resize(g.centres.size());
  const int R = 3;
  for (int iz = 0; iz < g.gz; ++iz)
    for (int iy = 0; iy < g.gy; ++iy)
      for (int ix = 0; ix < g.gx; ++ix) {
        const double lo[3] = {(iz - 1) * spacing, (iy - 1) * spacing, (ix - 1) * spacing};
        const double hi[3] = {lo[0] + spacing, lo[1] + spacing, lo[2] + spacing};
        std::vector<int> near;
        std::vector<double> dmin, dmax;
        for (int jz = std::max(0, iz - R); jz <= std::min(g.gz - 1, iz + R); ++jz)
          for (int jy = std::max(0, iy - R); jy <= std::min(g.gy - 1, iy + R); ++jy)
            for (int jx = std::max(0, ix - R); jx <= std::min(g.gx - 1, ix + R); ++jx) {
              const int j = int((size_t(jz) * g.gy + jy) * g.gx + jx);
              const auto& c = g.centres[j];
              double mn = 0, mx = 0;
              for (int a = 0; a < 3; ++a) {
                const double below = lo[a] - c[a], above = c[a] - hi[a];
                const double out = std::max({below, above, 0.0});
                mn += out * out;
                const double far = std::max(std::fabs(c[a] - lo[a]), std::fabs(c[a] - hi[a]));
                mx += far * far;
              }
              near.push_back(j);
              dmin.push_back(std::sqrt(mn));
              dmax.push_back(std::sqrt(mx));
            }
        const double D = *std::min_element(dmax.begin(), dmax.end());
        std::vector<std::pair<double, int>> keep;
        for (size_t k = 0; k < near.size(); ++k)
          if (dmin[k] <= D + 2 * cutoff) keep.emplace_back(dmin[k], near[k]);
        std::sort(keep.begin(), keep.end());  // by distance to the box: lets the search stop early
        const size_t cell = (size_t(iz) * g.gy + iy) * g.gx + ix;
        for (const auto& [dist, j] : keep) {
          g.candidates[cell].push_back(j);
          g.candidate_dmin[cell].push_back(dist);
        }
      }
  return g;
}

// For every voxel: the nearest centre (index into grid.centres) and the distance to the nearest
// Voronoi boundary (capped at `cutoff`).
void voronoi(const CellGrid& g, int nz, int ny, int nx, double cutoff, std::vector<int>& nearest,
             std::vector<float>& boundary) {
  nearest.assign(size_t(nz) * ny * nx, -1);
  boundary.assign(nearest.size(), float(cutoff));
#pragma omp parallel for schedule(dynamic)
  for (int z = 0; z < nz; ++z) {
    std::vector<double> d2;
    const int cz = g.cell_of(z, g.gz);
    for (int y = 0; y < ny; ++y) {
      const int cy = g.cell_of(y, g.gy);
      for (int x = 0; x < nx; ++x) {
        const int cx = g.cell_of(x, g.gx);
        const size_t cell = (size_t(cz) * g.gy + cy) * g.gx + cx;
        const auto& cand = g.candidates[cell];
        const auto& lower = g.candidate_dmin[cell];
        auto dist2 = [&](int j) {
          const auto& c = g.centres[j];
          return (z - c[0]) * (z - c[0]) + (y - c[1]) * (y - c[1]) + (x - c[2]) * (x - c[2]);
        };
        d2.assign(cand.size(), -1.0);  // -1: not computed yet
        // Nearest centre: candidates are sorted by a lower bound of their distance, so stop once
        // that bound exceeds the best distance found.
        size_t best = 0;
        d2[0] = dist2(cand[0]);
        for (size_t k = 1; k < cand.size() && lower[k] * lower[k] <= d2[best]; ++k) {
          d2[k] = dist2(cand[k]);
          if (d2[k] < d2[best]) best = k;
        }
        // Distance to the nearest bisector plane; only centres within |p - c_best| + 2 cutoff
        // can give a distance below the cutoff.
        const auto& cb = g.centres[cand[best]];
        const double limit = std::sqrt(d2[best]) + 2 * cutoff;
        double dist = cutoff;
        for (size_t k = 0; k < cand.size() && lower[k] <= limit; ++k) {
          if (k == best) continue;
          if (d2[k] < 0) d2[k] = dist2(cand[k]);
          if (d2[k] > limit * limit) continue;
          const auto& c = g.centres[cand[k]];
          const double sep = std::sqrt((c[0] - cb[0]) * (c[0] - cb[0]) + (c[1] - cb[1]) * (c[1] - cb[1]) +
                                       (c[2] - cb[2]) * (c[2] - cb[2]));
          dist = std::min(dist, (d2[k] - d2[best]) / (2 * sep));
        }
        const size_t i = (size_t(z) * ny + y) * nx + x;
        nearest[i] = cand[best];
        boundary[i] = float(dist);
      }
    }
  }
}

struct Membranes {
  Phantom phantom;
  CellGrid grid;
  std::vector<int32_t> label_of_centre;  // 0 when the centre's cell does not reach the volume
};

Membranes membranes_impl(int nz, int ny, int nx, const MembraneParams& p) {
  check_shape(nz, ny, nx, "make_membranes");
  const double spacing = p.cell_size > 0 ? p.cell_size : std::max(12.0, 0.08 * cube_root_volume(nz, ny, nx));
  ISONET_CHECK(std::isfinite(spacing) && spacing >= 3, "make_membranes: cell_size must be >= 3 voxels, got ", spacing);
  ISONET_CHECK(p.jitter >= 0 && p.jitter < 0.5, "make_membranes: jitter must be in [0, 0.5), got ", p.jitter);
  ISONET_CHECK(p.thickness > 0 && p.thickness <= spacing / 8, "make_membranes: thickness must be in (0, cell_size/8], got ",
               p.thickness);
  const double cutoff = 4.0 * p.thickness;  // the Gaussian profile is < 3.4e-4 beyond 4 sigma
  Membranes m;
  Draws d(p.seed ^ 0x4D656D6272616E65ull);
  m.grid = make_cell_grid(nz, ny, nx, spacing, p.jitter, cutoff, d);
  std::vector<int> nearest;
  std::vector<float> boundary;
  voronoi(m.grid, nz, ny, nx, cutoff, nearest, boundary);

  // Labels numbered in centre order, only for cells that reach the volume.
  m.label_of_centre.assign(m.grid.centres.size(), 0);
  for (int c : nearest) m.label_of_centre[c] = 1;
  int32_t next = 0;
  for (auto& l : m.label_of_centre)
    if (l) l = ++next;

  m.phantom = empty_phantom(nz, ny, nx);
  Phantom& ph = m.phantom;
  ph.num_labels = next;
  const double tex_size = p.texture_size > 0 ? p.texture_size : spacing / 2;
  const Volume tex = perlin_noise(nz, ny, nx, tex_size, 3, p.seed ^ 0x54657874757265ull);
  const double inv2s2 = 1.0 / (2 * p.thickness * p.thickness);
#pragma omp parallel for schedule(static)
  for (long long i = 0; i < (long long)ph.labels.size(); ++i) {
    ph.labels[i] = m.label_of_centre[nearest[i]];
    const double b = boundary[i];
    const double sheet = std::exp(-b * b * inv2s2);
    ph.density.data[i] = float(sheet * std::max(0.0, 1.0 + p.texture_strength * tex.data[i]));
  }
  return m;
}

}  // namespace

Phantom make_nuclei(int nz, int ny, int nx, const NucleiParams& p) {
  check_shape(nz, ny, nx, "make_nuclei");
  const double voxels = double(nz) * ny * nx;
  const double radius = p.radius > 0 ? p.radius : std::max(4.5, 0.0342 * cube_root_volume(nz, ny, nx));
  ISONET_CHECK(std::isfinite(radius) && radius >= 1, "make_nuclei: radius must be >= 1 voxel, got ", radius);
  ISONET_CHECK(p.radius_spread >= 0 && p.radius_spread < 1, "make_nuclei: radius_spread must be in [0, 1), got ",
               p.radius_spread);
  ISONET_CHECK(p.edge_width > 0, "make_nuclei: edge_width must be > 0, got ", p.edge_width);
  ISONET_CHECK(p.brightness_min >= 0 && p.brightness_min <= 1, "make_nuclei: brightness_min must be in [0, 1]");
  const int count = p.count > 0 ? p.count : std::max(1, int(std::lround(0.25 * voxels / (4.0 / 3.0 * kPi * radius * radius * radius))));

  // Random sequential placement with a uniform grid of buckets for the overlap test.
  Draws d(p.seed ^ 0x4E75636C6569ull);
  const double rmax = radius * (1 + p.radius_spread), bucket = 2 * rmax;
  const int bz = int(std::ceil(nz / bucket)) + 1, by = int(std::ceil(ny / bucket)) + 1, bx = int(std::ceil(nx / bucket)) + 1;
  std::vector<std::vector<int>> buckets(size_t(bz) * by * bx);
  auto bucket_of = [&](double v, int n) { return std::clamp(int(v / bucket), 0, n - 1); };
  std::vector<Ellipsoid> placed;
  placed.reserve(count);
  // Stop when the volume is (nearly) jammed: 20000 rejections in a row.
  const long long max_attempts = 50ll * count + 1000;
  long long failures = 0;
  for (long long attempt = 0; attempt < max_attempts && int(placed.size()) < count && failures < 20000; ++attempt) {
    const double c[3] = {d.uniform(0, nz), d.uniform(0, ny), d.uniform(0, nx)};
    Ellipsoid e = random_ellipsoid(d, c, radius, p.radius_spread, p.brightness_min, int32_t(placed.size() + 1));
    const int iz = bucket_of(c[0], bz), iy = bucket_of(c[1], by), ix = bucket_of(c[2], bx);
    bool free = true;
    for (int jz = std::max(0, iz - 1); free && jz <= std::min(bz - 1, iz + 1); ++jz)
      for (int jy = std::max(0, iy - 1); free && jy <= std::min(by - 1, iy + 1); ++jy)
        for (int jx = std::max(0, ix - 1); free && jx <= std::min(bx - 1, ix + 1); ++jx)
          for (int k : buckets[(size_t(jz) * by + jy) * bx + jx]) {
            const Ellipsoid& o = placed[k];
            const double dz = o.c[0] - c[0], dy = o.c[1] - c[1], dx = o.c[2] - c[2];
            const double need = o.bound + e.bound;
            if (dz * dz + dy * dy + dx * dx < need * need) {
              free = false;
              break;
            }
          }
    if (!free) {
      ++failures;
      continue;
    }
    failures = 0;
    buckets[(size_t(iz) * by + iy) * bx + ix].push_back(int(placed.size()));
    placed.push_back(e);
  }

  Phantom ph = empty_phantom(nz, ny, nx);
  ph.num_labels = int(placed.size());
  const double tex_size = p.texture_size > 0 ? p.texture_size : radius / 2;
  const Volume tex = perlin_noise(nz, ny, nx, tex_size, 3, p.seed ^ 0x4E54657874ull);
  rasterize(placed, p.edge_width, ph.density, ph.labels, tex, p.texture_strength, 1.f);
  add_background(ph.density, p.background);
  return ph;
}

Phantom make_membranes(int nz, int ny, int nx, const MembraneParams& params) {
  Membranes m = membranes_impl(nz, ny, nx, params);
  add_background(m.phantom.density, params.background);
  return std::move(m.phantom);
}

Phantom make_cells(int nz, int ny, int nx, const CellsParams& params) {
  ISONET_CHECK(params.nucleus_fraction > 0 && params.nucleus_fraction <= 0.9,
               "make_cells: nucleus_fraction must be in (0, 0.9], got ", params.nucleus_fraction);
  Membranes m = membranes_impl(nz, ny, nx, params.membranes);
  const CellGrid& g = m.grid;
  // One nucleus per cell that reaches the volume, at its centre, inside the cell: the nearest
  // cell boundary is half the distance to the nearest other centre, and every semi-axis stays
  // below nucleus_fraction * 1.1 of that (< 1 for fraction <= 0.9).
  Draws d(params.membranes.seed ^ 0x43656C6C4E7563ull);
  std::vector<Ellipsoid> nuclei;
  for (size_t c = 0; c < g.centres.size(); ++c) {
    if (!m.label_of_centre[c]) continue;
    // The nearest other centre lies within +-3 grid cells: the face neighbour is at most
    // sqrt(6) < 2.5 spacings away, a centre 4 cells away at least 3 spacings (jitter < 0.5).
    const int iz = int(c / (size_t(g.gy) * g.gx)), iy = int(c / g.gx % g.gy), ix = int(c % g.gx);
    double nearest = 1e300;
    for (int jz = std::max(0, iz - 3); jz <= std::min(g.gz - 1, iz + 3); ++jz)
      for (int jy = std::max(0, iy - 3); jy <= std::min(g.gy - 1, iy + 3); ++jy)
        for (int jx = std::max(0, ix - 3); jx <= std::min(g.gx - 1, ix + 3); ++jx) {
          const size_t j = (size_t(jz) * g.gy + jy) * g.gx + jx;
          if (j == c) continue;
          double s = 0;
          for (int a = 0; a < 3; ++a) s += (g.centres[j][a] - g.centres[c][a]) * (g.centres[j][a] - g.centres[c][a]);
          nearest = std::min(nearest, std::sqrt(s));
        }
    const double r = params.nucleus_fraction * 0.5 * nearest;
    nuclei.push_back(random_ellipsoid(d, g.centres[c].data(), r, 0.1, 0.6, m.label_of_centre[c]));
  }
  Phantom& ph = m.phantom;
  Volume nuc(ph.density.nz, ph.density.ny, ph.density.nx, 0.f);
  std::vector<int32_t> unused(ph.labels.size(), 0);
  const Volume tex = perlin_noise(nuc.nz, nuc.ny, nuc.nx, std::max(2.0, g.spacing / 6), 3,
                                  params.membranes.seed ^ 0x43546578ull);
  rasterize(nuclei, 1.0, nuc, unused, tex, params.nucleus_texture_strength, float(params.nucleus_brightness));
  for (size_t i = 0; i < nuc.data.size(); ++i) ph.density.data[i] += nuc.data[i];
  add_background(ph.density, params.membranes.background);
  return std::move(ph);
}

}  // namespace isonet
