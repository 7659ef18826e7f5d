// test_segmentation.cpp: the paper's 3D nuclei segmentation (intermodes threshold, hole filling,
// exact EDT, h-maxima markers, Meyer watershed, the pipeline) and the ISBI SEG score.
#include "imaging/segmentation.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <queue>
#include <tuple>

#include <unistd.h>

#include "imaging/fft_convolve.h"
#include "imaging/phantoms.h"
#include "imaging/psf.h"
#include "kernels/error.h"
#include "test_util.h"

using namespace isonet;

namespace {

size_t idx(Shape3 s, int z, int y, int x) { return (size_t(z) * s.ny + y) * s.nx + x; }

// A smooth-edged binary-looking volume: intensity 0.5 * (1 - tanh((d - R) / w)) of the distance d to
// the nearest of the given ball centres (so touching balls merge), on a zero background, plus
// seeded uniform noise of amplitude `noise`. The histogram then has two clear modes (near 0 and
// near 1) with a sparse valley between them, as a real blurred nuclei volume.
struct Ball {
  double z, y, x, r;
};
Volume balls_volume(Shape3 s, const std::vector<Ball>& balls, double edge, double noise, uint64_t seed) {
  Volume v(s.nz, s.ny, s.nx);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-noise, noise);
  for (int z = 0; z < s.nz; ++z)
    for (int y = 0; y < s.ny; ++y)
      for (int x = 0; x < s.nx; ++x) {
        double best = 0;
        for (const auto& b : balls) {
          double d = std::sqrt((z - b.z) * (z - b.z) + (y - b.y) * (y - b.y) + (x - b.x) * (x - b.x));
          best = std::max(best, 0.5 * (1.0 - std::tanh((d - b.r) / edge)));
        }
        v.at(z, y, x) = float(best + u(rng));
      }
  return v;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Intermodes

TEST_CASE("intermodes: hand-computed single smoothing pass, crop of empty end bins") {
  // Interior maxima at 1, 3, 7: three, so one pass of the 3-point mean (zeros outside) is needed:
  // [4/3, 2, 8/3, 2, 4/3, 2/3, 5/3, 2, 5/3] has maxima at 2 and 7 -> floor(9/2) = 4.
  std::vector<double> h = {1, 3, 2, 3, 1, 0, 1, 4, 1};
  int lo = -1, hi = -1, it = -1;
  CHECK(intermodes_bin(h, &lo, &hi, &it) == 4);
  CHECK(lo == 2);
  CHECK(hi == 7);
  CHECK(it == 1);
  // Empty bins before and after are cropped (ImageJ): everything shifts by the 3 leading bins.
  std::vector<double> padded(3, 0.0);
  padded.insert(padded.end(), h.begin(), h.end());
  padded.insert(padded.end(), 5, 0.0);
  CHECK(intermodes_bin(padded, &lo, &hi, &it) == 7);
  CHECK(lo == 5);
  CHECK(hi == 10);
  CHECK(it == 1);
}

TEST_CASE("intermodes: symmetric and noisy bimodal 256-bin histograms give the midpoint of the modes") {
  std::vector<double> h(256);
  for (int i = 0; i < 256; ++i)
    h[i] = 1000.0 * std::exp(-0.5 * std::pow((i - 61) / 9.0, 2)) + 400.0 * std::exp(-0.5 * std::pow((i - 187) / 9.0, 2));
  int lo, hi, it;
  // Clean: already bimodal, no smoothing; floor((61 + 187) / 2) = 124.
  CHECK(intermodes_bin(h, &lo, &hi, &it) == 124);
  CHECK(lo == 61);
  CHECK(hi == 187);
  CHECK(it == 0);
  // Seeded multiplicative noise of +-30% makes many local maxima; smoothing removes them. Each mode
  // is a symmetric Gaussian, and the smoothing is symmetric, so the smoothed modes stay within a
  // few bins of the true ones: the tolerance of 3 bins on each mode is the drift of a noisy peak's
  // argmax after smoothing (about sigma / sqrt(bins in the peak), i.e. ~1 bin), plus margin.
  std::mt19937_64 rng(12345);
  std::uniform_real_distribution<double> u(0.7, 1.3);
  std::vector<double> noisy(256);
  for (int i = 0; i < 256; ++i) noisy[i] = std::round(h[i] * u(rng)) + 1.0;
  int t = intermodes_bin(noisy, &lo, &hi, &it);
  CHECK(it > 0);
  CHECK(std::abs(lo - 61) <= 3);
  CHECK(std::abs(hi - 187) <= 3);
  CHECK(t == (lo + hi) / 2);
  CHECK(std::abs(t - 124) <= 3);
}

TEST_CASE("intermodes: matches an independent numpy re-implementation (skipped without python3/numpy)") {
  // The python side re-implements the documented algorithm with numpy vector operations (crop to
  // the occupied bins, np.convolve with [1,1,1]/3 in 'same' mode = zero padding, strict interior
  // maxima), so it shares no code with the C++ loop.
  std::mt19937_64 rng(99);
  std::uniform_real_distribution<double> u(0.5, 1.5);
  std::vector<double> h(256, 0.0);
  for (int i = 3; i < 250; ++i)
    h[i] = std::round(u(rng) * (300.0 * std::exp(-0.5 * std::pow((i - 40) / 12.0, 2)) +
                                120.0 * std::exp(-0.5 * std::pow((i - 150) / 25.0, 2)) + 2.0));
  const std::string python = test::find_python("numpy");
  if (python.empty()) {
    MESSAGE("skipped: python3 with numpy is not available");
    return;
  }
  std::ostringstream cmd;
  cmd << python << " -c \""
         "import sys\n"
         "try:\n import numpy as np\nexcept ImportError:\n print('NO_NUMPY'); sys.exit(0)\n"
         "h=np.array([float(a) for a in sys.argv[1:]])\n"
         "nz=np.nonzero(h)[0]; f=nz[0]; h=h[f:nz[-1]+1]\n"
         "k=np.ones(3)/3.0\n"
         "def maxima(h): return np.nonzero((h[1:-1]>h[:-2])&(h[1:-1]>h[2:]))[0]+1\n"
         "it=0\n"
         "while len(maxima(h))!=2:\n h=np.convolve(h,k,mode='same'); it+=1\n"
         "m=maxima(h); print(f+(m[0]+m[1])//2, it)\n"
         "\"";
  for (double v : h) cmd << " " << v;
  cmd << " 2>/dev/null";
  FILE* p = popen(cmd.str().c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[256] = {0};
  std::string out;
  while (fgets(buf, sizeof buf, p)) out += buf;
  int rc = pclose(p);
  if (rc != 0 || out.empty() || out.find("NO_NUMPY") != std::string::npos) {
    MESSAGE("skipped: python3 with numpy is not available");
    return;
  }
  int py_t = -1, py_it = -1;
  REQUIRE(std::sscanf(out.c_str(), "%d %d", &py_t, &py_it) == 2);
  int it = -1;
  // Exact agreement: both sum the same three doubles per bin (np.convolve's order may differ in the
  // last bit, but the maxima are separated by far more than rounding on this histogram).
  CHECK(intermodes_bin(h, nullptr, nullptr, &it) == py_t);
  CHECK(it == py_it);
}

TEST_CASE("intermodes: volume threshold separates two intensity populations and reports its range") {
  const Shape3 s{9, 13, 11};
  Volume v(s.nz, s.ny, s.nx);
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<float> bg(0.05f, 0.25f), fg(0.6f, 0.9f);
  std::bernoulli_distribution is_fg(0.3);
  std::vector<uint8_t> truth(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    truth[i] = is_fg(rng);
    v.data[i] = truth[i] ? fg(rng) : bg(rng);
  }
  IntermodesResult t = threshold_intermodes(v);
  auto mm = std::minmax_element(v.data.begin(), v.data.end());
  CHECK(t.range_lo == double(*mm.first));
  CHECK(t.range_hi == double(*mm.second));
  CHECK(t.bins == 256);
  CHECK(t.mode_lo < t.bin);
  CHECK(t.bin < t.mode_hi);
  // The two populations are disjoint intervals, and the threshold lies between the modes, hence
  // between the populations: the mask is exactly the truth.
  CHECK(t.value > 0.25f);
  CHECK(t.value < 0.6f);
  CHECK(apply_threshold(v, t) == truth);
  // An explicit range is used as given.
  IntermodesResult t2 = threshold_intermodes(v, -1.0, 2.0);
  CHECK(t2.range_lo == -1.0);
  CHECK(t2.range_hi == 2.0);
  CHECK(apply_threshold(v, t2) == truth);
}

TEST_CASE("intermodes: errors on constant, non-finite, empty and non-bimodal input") {
  Volume c(3, 5, 7, 0.5f);
  CHECK_THROWS_WITH_AS(threshold_intermodes(c), doctest::Contains("constant"), isonet::Error);
  Volume nan = c;
  nan.data[4] = std::nanf("");
  CHECK_THROWS_AS(threshold_intermodes(nan), isonet::Error);
  CHECK_THROWS_AS(threshold_intermodes(Volume()), isonet::Error);
  CHECK_THROWS_AS(threshold_intermodes(c, 1.0, 1.0), isonet::Error);
  // A flat histogram smooths into a single hump: never two maxima.
  CHECK_THROWS_WITH_AS(intermodes_bin(std::vector<double>(256, 7.0)), doctest::Contains("not bimodal"), isonet::Error);
  CHECK_THROWS_AS(intermodes_bin(std::vector<double>(256, 0.0)), isonet::Error);
  CHECK_THROWS_AS(intermodes_bin({1.0, -1.0, 2.0}), isonet::Error);
}

// ---------------------------------------------------------------------------------------------
// Hole filling and components

TEST_CASE("fill_holes_3d: an enclosed cavity is filled, a tunnel open to the border is not") {
  const Shape3 s{11, 13, 15};
  std::vector<uint8_t> m(s.size(), 0);
  // Hollow box: solid z 2..8, y 1..7, x 2..8 around a 3x3x3 cavity z 4..6, y 3..5, x 4..6.
  for (int z = 2; z <= 8; ++z)
    for (int y = 1; y <= 7; ++y)
      for (int x = 2; x <= 8; ++x) {
        bool cavity = z >= 4 && z <= 6 && y >= 3 && y <= 5 && x >= 4 && x <= 6;
        m[idx(s, z, y, x)] = cavity ? 0 : 1;
      }
  // A tube along x through the whole volume: wall z 4..6, y 9..11, lumen (z=5, y=10) open at the
  // x = 0 and x = 14 faces of the volume.
  for (int x = 0; x < s.nx; ++x)
    for (int z = 4; z <= 6; ++z)
      for (int y = 9; y <= 11; ++y)
        if (!(z == 5 && y == 10)) m[idx(s, z, y, x)] = 1;
  std::vector<uint8_t> before = m;
  fill_holes_3d(m, s);
  for (int z = 4; z <= 6; ++z)
    for (int y = 3; y <= 5; ++y)
      for (int x = 4; x <= 6; ++x) CHECK(m[idx(s, z, y, x)] == 1);
  // Nothing else changed: the lumen stays background along its whole length.
  size_t changed = 0;
  for (size_t i = 0; i < m.size(); ++i) changed += m[i] != before[i];
  CHECK(changed == 27);
  for (int x = 0; x < s.nx; ++x) CHECK(m[idx(s, 5, 10, x)] == 0);
}

TEST_CASE("fill_holes_3d: tunnel through an interior block stays open; diagonal-only leaks count as holes") {
  const Shape3 s{9, 11, 13};
  std::vector<uint8_t> m(s.size(), 0);
  // Solid block z 1..7, y 1..9, x 1..11 with a straight tunnel along x at (z=4, y=5), open at both
  // block faces, and a separate one-voxel cavity at (2, 2, 6).
  for (int z = 1; z <= 7; ++z)
    for (int y = 1; y <= 9; ++y)
      for (int x = 1; x <= 11; ++x) m[idx(s, z, y, x)] = 1;
  for (int x = 1; x <= 11; ++x) m[idx(s, 4, 5, x)] = 0;
  m[idx(s, 2, 2, 6)] = 0;
  // Background voxel (2, 2, 5) has only foreground face neighbours; it touches the notch (1, 1, 5)
  // (open to the outside through its face neighbour (0, 1, 5)) along an edge only. Background is
  // 6-connected, so (2, 2, 5) is a hole and the notch is not.
  m[idx(s, 1, 1, 5)] = 0;
  m[idx(s, 2, 2, 5)] = 0;
  std::vector<uint8_t> filled = m;
  fill_holes_3d(filled, s);
  for (int x = 1; x <= 11; ++x) CHECK(filled[idx(s, 4, 5, x)] == 0);
  CHECK(filled[idx(s, 2, 2, 6)] == 1);
  CHECK(filled[idx(s, 2, 2, 5)] == 1);
  CHECK(filled[idx(s, 1, 1, 5)] == 0);
  size_t changed = 0;
  for (size_t i = 0; i < m.size(); ++i) changed += m[i] != filled[i];
  CHECK(changed == 2);
  // A voxel whose face touches the outside is not a hole.
  std::vector<uint8_t> m2 = m;
  // A background pocket (2, 3, 7) joined by a face to (1, 3, 7), whose face neighbour (0, 3, 7) is
  // outside the block: a chain of faces to the border, so neither is a hole.
  m2[idx(s, 2, 3, 7)] = 0;
  m2[idx(s, 1, 3, 7)] = 0;
  fill_holes_3d(m2, s);
  CHECK(m2[idx(s, 2, 3, 7)] == 0);
  CHECK(m2[idx(s, 1, 3, 7)] == 0);
  CHECK_THROWS_AS(fill_holes_3d(m2, Shape3{9, 11, 12}), isonet::Error);
}

TEST_CASE("connected_components_3d: connectivities 6/18/26 and raster-order numbering") {
  const Shape3 s{3, 5, 7};
  std::vector<uint8_t> m(s.size(), 0);
  m[idx(s, 0, 0, 0)] = 1;
  m[idx(s, 0, 1, 1)] = 1;  // edge neighbour of the first (18 and 26 join it)
  m[idx(s, 1, 2, 2)] = 1;  // corner neighbour of (0,1,1) (only 26 joins it)
  m[idx(s, 2, 4, 6)] = 1;  // isolated
  m[idx(s, 2, 4, 5)] = 1;  // face neighbour of the isolated one
  int n6, n18, n26;
  auto l6 = connected_components_3d(m, s, 6, &n6);
  auto l18 = connected_components_3d(m, s, 18, &n18);
  auto l26 = connected_components_3d(m, s, 26, &n26);
  CHECK(n6 == 4);
  CHECK(n18 == 3);
  CHECK(n26 == 2);
  CHECK(l26[idx(s, 0, 0, 0)] == 1);
  CHECK(l26[idx(s, 1, 2, 2)] == 1);
  CHECK(l26[idx(s, 2, 4, 5)] == 2);
  CHECK(l26[idx(s, 2, 4, 6)] == 2);
  CHECK(l6[idx(s, 1, 2, 2)] == 3);
  CHECK(l6[idx(s, 2, 4, 5)] == 4);
  CHECK(l18[idx(s, 0, 1, 1)] == 1);
  CHECK(l18[idx(s, 1, 2, 2)] == 2);
  CHECK_THROWS_AS(connected_components_3d(m, s, 8), isonet::Error);
}

// ---------------------------------------------------------------------------------------------
// Distance transform

namespace {
// Brute force squared EDT in double: min over all background voxels.
std::vector<double> brute_sq_edt(const std::vector<uint8_t>& m, Shape3 s, const VoxelSize& sp) {
  std::vector<double> out(m.size(), std::numeric_limits<double>::infinity());
  std::vector<std::array<int, 3>> bg;
  for (int z = 0; z < s.nz; ++z)
    for (int y = 0; y < s.ny; ++y)
      for (int x = 0; x < s.nx; ++x)
        if (!m[idx(s, z, y, x)]) bg.push_back({z, y, x});
  for (int z = 0; z < s.nz; ++z)
    for (int y = 0; y < s.ny; ++y)
      for (int x = 0; x < s.nx; ++x) {
        double best = std::numeric_limits<double>::infinity();
        for (const auto& b : bg) {
          double dz = (z - b[0]) * sp.z, dy = (y - b[1]) * sp.y, dx = (x - b[2]) * sp.x;
          best = std::min(best, dz * dz + dy * dy + dx * dx);
        }
        out[idx(s, z, y, x)] = best;
      }
  return out;
}
std::vector<uint8_t> random_mask(Shape3 s, double p_background, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::bernoulli_distribution bg(p_background);
  std::vector<uint8_t> m(s.size());
  for (auto& v : m) v = bg(rng) ? 0 : 1;
  return m;
}
}  // namespace

TEST_CASE("distance_transform_edt: equals brute force on random masks (isotropic exact, anisotropic)") {
  const Shape3 s{9, 11, 13};
  for (double p : {0.02, 0.1, 0.5}) {
    CAPTURE(p);
    auto m = random_mask(s, p, 1000 + uint64_t(p * 100));
    // Isotropic: squared distances are integers < 2^24, exact in float: no tolerance.
    auto sq = distance_transform_edt(m, s, VoxelSize{}, true);
    auto ref = brute_sq_edt(m, s, VoxelSize{});
    size_t bad = 0;
    for (size_t i = 0; i < m.size(); ++i) bad += double(sq[i]) != ref[i];
    CHECK(bad == 0);
    auto d = distance_transform_edt(m, s, VoxelSize{}, false);
    for (size_t i = 0; i < m.size(); i += 7) CHECK(d[i] == doctest::Approx(std::sqrt(ref[i])).epsilon(1e-7));

    // Anisotropic spacing: every pass stores float, so each value carries a few float roundings
    // (relative 6e-8 each): rtol 1e-6 is ~10x that; any wrong nearest site is off by far more.
    VoxelSize sp;
    sp.z = 2.5, sp.y = 0.7, sp.x = 1.3;
    auto sqa = distance_transform_edt(m, s, sp, true);
    auto refa = brute_sq_edt(m, s, sp);
    std::vector<float> ref_f(refa.begin(), refa.end());
    CHECK_CLOSE_ARRAYS("anisotropic squared EDT", ref_f.data(), sqa.data(), m.size(), 0.0, 1e-6);
  }
  // 2D (nz = 1) and a line.
  for (Shape3 s2 : {Shape3{1, 17, 19}, Shape3{1, 1, 23}, Shape3{21, 1, 1}}) {
    auto m = random_mask(s2, 0.15, 77);
    auto sq = distance_transform_edt(m, s2, VoxelSize{}, true);
    auto ref = brute_sq_edt(m, s2, VoxelSize{});
    for (size_t i = 0; i < m.size(); ++i) CHECK(double(sq[i]) == ref[i]);
  }
}

TEST_CASE("distance_transform_edt: no background gives +inf; bad input is refused") {
  const Shape3 s{3, 5, 7};
  std::vector<uint8_t> m(s.size(), 1);
  auto d = distance_transform_edt(m, s);
  for (float v : d) CHECK(std::isinf(v));
  m[idx(s, 1, 2, 3)] = 0;  // one background voxel: distance is the Euclidean norm of the offset
  d = distance_transform_edt(m, s);
  CHECK(d[idx(s, 0, 0, 0)] == doctest::Approx(std::sqrt(1.0 + 4.0 + 9.0)).epsilon(1e-7));
  CHECK(d[idx(s, 1, 2, 3)] == 0.f);
  VoxelSize bad;
  bad.y = 0;
  CHECK_THROWS_AS(distance_transform_edt(m, s, bad), isonet::Error);
  CHECK_THROWS_AS(distance_transform_edt(m, Shape3{3, 5, 6}), isonet::Error);
}

// ---------------------------------------------------------------------------------------------
// Markers and watershed

TEST_CASE("maxima_markers: dynamics decide which maxima survive") {
  const Shape3 s{1, 1, 7};
  std::vector<uint8_t> m(7, 1);
  // Peaks 5 (index 1) and 4 (index 4); saddle 3 between them: dynamic of the lower peak is 1.
  std::vector<float> f = {0, 5, 3, 3.5, 4, 1, 0};
  int n;
  auto k = maxima_markers(f, m, s, 0.0, &n);
  CHECK(n == 2);
  CHECK(k[1] == 1);  // numbered by height
  CHECK(k[4] == 2);
  maxima_markers(f, m, s, 1.0, &n);  // dynamic >= h: kept
  CHECK(n == 2);
  k = maxima_markers(f, m, s, 1.5, &n);
  CHECK(n == 1);
  CHECK(k[1] == 1);
  // A plateau is one maximum (h = 0 still needs a positive dynamic).
  std::vector<float> plateau = {0, 2, 2, 2, 1, 0, 0};
  k = maxima_markers(plateau, m, s, 0.0, &n);
  CHECK(n == 1);
  CHECK(k[1] == 1);  // first voxel of the plateau in raster order
  // Separate mask components each keep their highest maximum whatever h.
  std::vector<uint8_t> two = {1, 1, 1, 0, 1, 1, 1};
  k = maxima_markers(f, two, s, 100.0, &n);
  CHECK(n == 2);
  CHECK(k[1] == 1);
  CHECK(k[4] == 2);
}

TEST_CASE("watershed_from_markers: FIFO priority flood on a hand-computed line, unreached voxels stay 0") {
  const Shape3 s{1, 1, 11};
  std::vector<float> surf = {0, 1, 2, 3, 4, 3, 2, 1, 0, 5, 5};
  std::vector<uint8_t> mask = {1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1};
  std::vector<int32_t> markers(11, 0);
  markers[0] = 7, markers[8] = 3;
  auto l = watershed_from_markers(surf, markers, mask, s);
  // Both floods climb in step; the ridge voxel 4 is reached first from marker 7 (older in the queue).
  std::vector<int32_t> expect = {7, 7, 7, 7, 7, 3, 3, 3, 3, 0, 0};
  CHECK(l == expect);
  markers[9] = 1;  // outside the mask
  CHECK_THROWS_WITH_AS(watershed_from_markers(surf, markers, mask, s), doctest::Contains("outside the mask"),
                       isonet::Error);
}

namespace {
// Reference flood with a plain binary heap on (value, age): the definition of the flood order.
std::vector<int32_t> ref_watershed(const std::vector<float>& surf, const std::vector<int32_t>& markers,
                                   const std::vector<uint8_t>& mask, Shape3 s) {
  using Item = std::tuple<float, uint64_t, size_t>;
  std::priority_queue<Item, std::vector<Item>, std::greater<Item>> q;
  std::vector<int32_t> lab(mask.size(), 0);
  uint64_t age = 0;
  for (size_t i = 0; i < mask.size(); ++i)
    if (markers[i]) lab[i] = markers[i], q.emplace(surf[i], age++, i);
  while (!q.empty()) {
    size_t i = std::get<2>(q.top());
    q.pop();
    int z = int(i / (size_t(s.ny) * s.nx)), y = int(i / s.nx % s.ny), x = int(i % s.nx);
    for (int dz = -1; dz <= 1; ++dz)
      for (int dy = -1; dy <= 1; ++dy)
        for (int dx = -1; dx <= 1; ++dx) {
          int zz = z + dz, yy = y + dy, xx = x + dx;
          if ((dz | dy | dx) == 0 || zz < 0 || yy < 0 || xx < 0 || zz >= s.nz || yy >= s.ny || xx >= s.nx) continue;
          size_t j = idx(s, zz, yy, xx);
          if (!mask[j] || lab[j]) continue;
          lab[j] = lab[i];
          q.emplace(surf[j], age++, j);
        }
  }
  return lab;
}
}  // namespace

TEST_CASE("watershed_from_markers: same labels as a reference heap flood on random surfaces with ties") {
  const Shape3 s{11, 13, 17};
  std::mt19937_64 rng(8);
  std::uniform_int_distribution<int> level(0, 5);  // few levels: many ties, so FIFO order matters
  std::bernoulli_distribution in_mask(0.85), is_marker(0.01);
  for (int rep = 0; rep < 3; ++rep) {
    std::vector<float> surf(s.size());
    std::vector<uint8_t> mask(s.size());
    std::vector<int32_t> markers(s.size(), 0);
    int n = 0;
    for (size_t i = 0; i < s.size(); ++i) {
      surf[i] = rep == 2 ? float(level(rng)) * 0.37f - 1.0f : float(level(rng));
      mask[i] = in_mask(rng);
      if (mask[i] && is_marker(rng)) markers[i] = ++n;
    }
    REQUIRE(n >= 2);
    auto got = watershed_from_markers(surf, markers, mask, s);
    auto ref = ref_watershed(surf, markers, mask, s);
    size_t diff = 0;
    for (size_t i = 0; i < s.size(); ++i) diff += got[i] != ref[i];
    CHECK(diff == 0);
  }
}

TEST_CASE("segment_nuclei: two touching balls are split, one ball stays one object") {
  const Shape3 s{25, 27, 41};
  // Radius 7 at distance 12: neck radius sqrt(49 - 36) = 3.6, so each EDT maximum (about 7) is
  // about 3.4 above the saddle: above the default h = 1 (and above h = 2).
  const double cz = 12, cy = 13;
  Volume two = balls_volume(s, {{cz, cy, 14, 7}, {cz, cy, 26, 7}}, 0.8, 0.02, 3);
  SegmentResult r = segment_nuclei(two);
  CHECK(r.num_labels == 2);
  const int32_t a = r.labels[idx(s, 12, 13, 14)], b = r.labels[idx(s, 12, 13, 26)];
  CHECK(a > 0);
  CHECK(b > 0);
  CHECK(a != b);
  // Split plane is x = 20 by symmetry: voxels of the union away from it carry their ball's label.
  size_t wrong = 0, fg = 0;
  for (int z = 0; z < s.nz; ++z)
    for (int y = 0; y < s.ny; ++y)
      for (int x = 0; x < s.nx; ++x) {
        int32_t l = r.labels[idx(s, z, y, x)];
        if (l == 0) continue;
        ++fg;
        if (x <= 18) wrong += l != a;
        if (x >= 22) wrong += l != b;
      }
  CHECK(wrong == 0);
  // Foreground is the union of the balls (threshold near the 0.5 level of the tanh edge): its
  // volume is within 10% of 2 * 4/3 pi 7^3 minus the lens overlap (1436.8 + 1436.8 - 2 * cap of
  // height 1 = 2 * pi * 1^2 * (21 - 1) / 3 = 41.9), i.e. 2831.7; 10% covers the voxelization of a
  // radius-7 surface (about one voxel shell: 4 pi 49 / 2873 = 21% of the volume, half of it on
  // either side on average) and the threshold's bin placement.
  CHECK(double(fg) == doctest::Approx(2831.7).epsilon(0.1));

  Volume one = balls_volume(s, {{cz, cy, 20, 9}}, 0.8, 0.02, 4);
  SegmentResult r1 = segment_nuclei(one);
  CHECK(r1.num_labels == 1);
  CHECK(r1.num_markers == 1);

  // With split off the two balls are one 26-connected object.
  SegmentOptions no_split;
  no_split.split = false;
  CHECK(segment_nuclei(two, no_split).num_labels == 1);
}

TEST_CASE("segment_nuclei: anisotropic voxels use physical distances; small objects can be removed") {
  // The same two balls sampled with z voxels twice as large (ellipsoids in voxel space): with the
  // voxel size set, the EDT is physical and the split still happens.
  const Shape3 s{15, 27, 41};
  Volume v(s.nz, s.ny, s.nx);
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> u(-0.02, 0.02);
  for (int z = 0; z < s.nz; ++z)
    for (int y = 0; y < s.ny; ++y)
      for (int x = 0; x < s.nx; ++x) {
        double best = 0;
        for (double bx : {14.0, 26.0}) {
          double pz = (z - 7) * 2.0, d = std::sqrt(pz * pz + (y - 13.0) * (y - 13.0) + (x - bx) * (x - bx));
          best = std::max(best, 0.5 * (1.0 - std::tanh((d - 7.0) / 0.8)));
        }
        v.at(z, y, x) = float(best + u(rng));
      }
  v.voxel.z = 2.0;
  SegmentResult r = segment_nuclei(v);
  CHECK(r.num_labels == 2);
  CHECK(r.labels[idx(s, 7, 13, 14)] != r.labels[idx(s, 7, 13, 26)]);
  // A bright single voxel far away is its own object; min_object_voxels removes it.
  v.at(1, 1, 1) = 1.0f;
  CHECK(segment_nuclei(v).num_labels == 3);
  SegmentOptions o;
  o.min_object_voxels = 5;
  SegmentResult rr = segment_nuclei(v, o);
  CHECK(rr.num_labels == 2);
  CHECK(rr.labels[idx(s, 1, 1, 1)] == 0);
}

// ---------------------------------------------------------------------------------------------
// SEG

TEST_CASE("seg_score: identity, merge, coverage boundary, empty prediction, permutation invariance") {
  const Shape3 s{5, 7, 9};
  std::vector<int32_t> gt(s.size(), 0);
  // Three objects: A (label 4) 2x3x3 = 18 voxels, B (label 9) 2x3x4 = 24 voxels adjacent to A,
  // C (label 2) 1x2x5 = 10 voxels elsewhere.
  for (int z = 0; z < 2; ++z)
    for (int y = 0; y < 3; ++y) {
      for (int x = 0; x < 3; ++x) gt[idx(s, z, y, x)] = 4;
      for (int x = 3; x < 7; ++x) gt[idx(s, z, y, x)] = 9;
    }
  for (int y = 5; y < 7; ++y)
    for (int x = 2; x < 7; ++x) gt[idx(s, 4, y, x)] = 2;

  SegScore id = seg_score(gt, gt);
  CHECK(id.seg == 1.0);
  CHECK(id.num_gt == 3);
  CHECK(id.num_matched == 3);
  CHECK(id.num_pred == 3);

  // Merge A and B into one predicted object S (|S| = 42): A scores 18/42, B 24/42, C 1 ->
  // SEG = (18/42 + 24/42 + 1) / 3 = 2/3.
  std::vector<int32_t> merged = gt;
  for (auto& v : merged)
    if (v == 4 || v == 9) v = 5;
  SegScore m = seg_score(gt, merged);
  CHECK(m.seg == doctest::Approx(2.0 / 3.0).epsilon(1e-12));
  CHECK(m.num_matched == 3);
  CHECK(m.num_pred == 2);

  // Coverage boundary for C (10 voxels): exactly 5 covered is not "more than half" -> 0;
  // 6 covered plus 2 extra voxels outside -> 6 / (10 + 8 - 6) = 0.5.
  std::vector<int32_t> half = gt;
  for (int x = 2; x < 7; ++x) half[idx(s, 4, 6, x)] = 0;  // keep C's first row (5 voxels)
  SegScore h = seg_score(gt, half);
  CHECK(h.seg == doctest::Approx((1.0 + 1.0 + 0.0) / 3.0).epsilon(1e-12));
  CHECK(h.num_matched == 2);
  half[idx(s, 4, 6, 2)] = 2;  // 6 of 10 covered
  half[idx(s, 3, 0, 0)] = 2;  // 2 extra voxels outside any gt object
  half[idx(s, 3, 0, 1)] = 2;
  h = seg_score(gt, half);
  CHECK(h.seg == doctest::Approx((1.0 + 1.0 + 0.5) / 3.0).epsilon(1e-12));

  // Empty prediction.
  SegScore e = seg_score(gt, std::vector<int32_t>(s.size(), 0));
  CHECK(e.seg == 0.0);
  CHECK(e.num_matched == 0);

  // Permuting the predicted (and the gt) labels changes nothing.
  std::vector<int32_t> perm = merged;
  for (auto& v : perm) v = v == 5 ? 1234567 : v == 2 ? 1 : v;
  CHECK(seg_score(gt, perm).seg == m.seg);
  std::vector<int32_t> gt_perm = gt;
  for (auto& v : gt_perm) v = v == 4 ? 2 : v == 2 ? 4 : v == 9 ? 77 : v;
  CHECK(seg_score(gt_perm, perm).seg == m.seg);

  // Random over-segmentation of a random labelling against a brute-force SEG in double.
  std::mt19937_64 rng(21);
  std::uniform_int_distribution<int> lab(0, 6);
  std::vector<int32_t> g(s.size()), p(s.size());
  for (size_t i = 0; i < s.size(); ++i) g[i] = lab(rng), p[i] = (g[i] * 3 + (lab(rng) == 0 ? 1 : 0)) % 11;
  double sum = 0;
  int objects = 0;
  for (int gl = 1; gl <= 6; ++gl) {
    size_t size_r = std::count(g.begin(), g.end(), gl);
    if (!size_r) continue;
    ++objects;
    double best = 0;
    for (int pl = 1; pl <= 10; ++pl) {
      size_t inter = 0, size_s = std::count(p.begin(), p.end(), pl);
      for (size_t i = 0; i < s.size(); ++i) inter += g[i] == gl && p[i] == pl;
      if (2 * inter > size_r) best = double(inter) / double(size_r + size_s - inter);
    }
    sum += best;
  }
  CHECK(seg_score(g, p).seg == doctest::Approx(sum / objects).epsilon(1e-12));

  CHECK_THROWS_AS(seg_score(gt, std::vector<int32_t>(3, 0)), isonet::Error);
  CHECK_THROWS_WITH_AS(seg_score(std::vector<int32_t>(s.size(), 0), gt), doctest::Contains("no objects"),
                       isonet::Error);
  std::vector<int32_t> neg = gt;
  neg[0] = -1;
  CHECK_THROWS_AS(seg_score(neg, gt), isonet::Error);
}

// ---------------------------------------------------------------------------------------------
// The pipeline on the nuclei phantom

TEST_CASE("segment_nuclei: lightly blurred nuclei phantom scores SEG > 0.7 and splitting helps") {
  // Small noiseless phantom (47x49x51, auto radius 4.5 voxels, 77 nuclei filling ~25% of the
  // volume, so many touch), blurred by an isotropic Gaussian of sigma 1 voxel: the paper's
  // "isotropic ground truth" condition in miniature. Brightness in [0.7, 1] and texture 0.2 keep
  // the nuclei mode of the histogram distinct from the blurred edges; with the phantom defaults
  // (brightness 0.5..1, texture 0.4) and no noise the nuclei intensities spread so flat that
  // intermodes on small volumes sometimes takes the bright tail as its upper mode, or finds no
  // second mode at all (the method's documented weakness with unequal peaks and flat valleys).
  //
  // Bound: 0.7. Measured here: SEG 0.81..0.92 over seeds 1..8 (0.90 for seeds 1..3); the paper
  // reports 0.923 on its isotropic ground truth and 0.742 on the blurred input. Without the
  // watershed split (touching nuclei merged) the same volumes score 0.47..0.82, and a threshold
  // on the wrong mode about 0.5, so 0.7 separates a working pipeline from those failures with a
  // margin of ~0.1 below the worst seed we measured.
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    CAPTURE(seed);
    NucleiParams p;
    p.seed = seed;
    p.brightness_min = 0.7;
    p.texture_strength = 0.2;
    Phantom ph = make_nuclei(47, 49, 51, p);
    REQUIRE(ph.num_labels > 20);
    PsfGrid g;
    g.nz = g.ny = g.nx = 7;  // +-3 sigma
    Volume blurred = fft_convolve(ph.density, gaussian_psf(g, 1.0, 1.0));
    SegmentResult r = segment_nuclei(blurred);
    SegScore sc = seg_score(ph.labels, r.labels);
    MESSAGE("seed " << seed << ": " << ph.num_labels << " nuclei, " << r.num_labels << " objects, SEG " << sc.seg
                    << ", matched " << sc.num_matched);
    CHECK(sc.seg > 0.7);
    // Object count within 10% of the truth (merges and splits both move it).
    CHECK(std::abs(r.num_labels - ph.num_labels) <= ph.num_labels / 10);
    SegmentOptions no_split;
    no_split.split = false;
    CHECK(seg_score(ph.labels, segment_nuclei(blurred, no_split).labels).seg < sc.seg);
  }
}
