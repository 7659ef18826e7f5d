// segmentation.cpp: implementation of segmentation.h (intermodes threshold, hole filling,
// connected components, exact EDT, h-maxima markers, Meyer watershed, the nuclei pipeline, SEG).
#include "imaging/segmentation.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>
#include <functional>
#include <limits>
#include <numeric>
#include <queue>
#include <unordered_map>

#include "kernels/error.h"

namespace isonet {
namespace {

constexpr int kIntermodesBins = 256;
constexpr int kIntermodesMaxIterations = 10000;  // ImageJ gives up after the same count

void check_shape(Shape3 s, size_t got, const char* op, const char* what) {
  ISONET_CHECK(s.nz > 0 && s.ny > 0 && s.nx > 0, op, ": bad shape (", s.nz, ",", s.ny, ",", s.nx,
               "); every dimension must be positive");
  ISONET_CHECK(got == s.size(), op, ": ", what, " has ", got, " elements but the shape (", s.nz, ",", s.ny,
               ",", s.nx, ") needs ", s.size());
}

// The 26 (or 18 or 6) neighbours of a voxel in a volume of shape s: as (dz,dy,dx) for voxels on
// the border (bounds-checked) and as linear offsets for interior voxels (no checks, the common case).
struct Neighbours {
  Shape3 s;
  int count = 0;
  int dz[26], dy[26], dx[26];
  ptrdiff_t offset[26];
  Neighbours(Shape3 shape, int connectivity) : s(shape) {
    for (int z = -1; z <= 1; ++z)
      for (int y = -1; y <= 1; ++y)
        for (int x = -1; x <= 1; ++x) {
          int manhattan = std::abs(z) + std::abs(y) + std::abs(x);
          if (manhattan == 0) continue;
          if (connectivity == 6 && manhattan > 1) continue;
          if (connectivity == 18 && manhattan > 2) continue;
          dz[count] = z, dy[count] = y, dx[count] = x;
          offset[count] = (ptrdiff_t(z) * s.ny + y) * s.nx + x;
          ++count;
        }
  }
  // Calls fn(neighbour index) for every in-volume neighbour of voxel i.
  template <typename Fn>
  inline void visit(size_t i, Fn&& fn) const {
    const int x = int(i % size_t(s.nx));
    const size_t r = i / size_t(s.nx);
    const int y = int(r % size_t(s.ny)), z = int(r / size_t(s.ny));
    if (z > 0 && z + 1 < s.nz && y > 0 && y + 1 < s.ny && x > 0 && x + 1 < s.nx) {
      for (int k = 0; k < count; ++k) fn(size_t(ptrdiff_t(i) + offset[k]));
      return;
    }
    for (int k = 0; k < count; ++k) {
      int zz = z + dz[k], yy = y + dy[k], xx = x + dx[k];
      if (unsigned(zz) >= unsigned(s.nz) || unsigned(yy) >= unsigned(s.ny) || unsigned(xx) >= unsigned(s.nx)) continue;
      fn((size_t(zz) * s.ny + yy) * s.nx + xx);
    }
  }
};

// Order-preserving map of a float to uint32 (a < b <=> key(a) < key(b) for non-NaN values, and
// -0 == +0), so (value, tie-break) pairs sort as one 64-bit integer.
inline uint32_t float_order_key(float f) {
  if (f == 0.f) f = 0.f;  // fold -0 onto +0
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// Renumbers the positive labels 1..n in raster order of their first voxel; returns n.
int relabel_raster_order(std::vector<int32_t>& labels) {
  std::unordered_map<int32_t, int32_t> map;
  for (auto& l : labels) {
    if (l <= 0) continue;
    auto it = map.find(l);
    if (it == map.end()) it = map.emplace(l, int32_t(map.size() + 1)).first;
    l = it->second;
  }
  return int(map.size());
}

// 1D squared distance transform of one line (Felzenszwalb & Huttenlocher): d[q] = min_p w*(q-p)^2 + f[p]
// over the sites p with finite f. f, d: [n]; v (site indices) [n], zb (envelope boundaries) [n+1].
void edt_line(const double* f, int n, double w, double* d, int* v, double* zb) {
  const double inf = std::numeric_limits<double>::infinity();
  int k = -1;
  for (int q = 0; q < n; ++q) {
    if (!std::isfinite(f[q])) continue;
    if (k < 0) {
      k = 0, v[0] = q, zb[0] = -inf, zb[1] = inf;
      continue;
    }
    // Intersection of the parabola of q with the rightmost one of the envelope; pop the parabolas
    // it hides. zb[0] = -inf, so k never drops below 0.
    double s;
    while (true) {
      int p = v[k];
      s = ((f[q] + w * double(q) * q) - (f[p] + w * double(p) * p)) / (2.0 * w * double(q - p));
      if (s <= zb[k]) --k;
      else break;
    }
    ++k;
    v[k] = q, zb[k] = s, zb[k + 1] = inf;
  }
  if (k < 0) {  // no site on this line
    for (int q = 0; q < n; ++q) d[q] = inf;
    return;
  }
  k = 0;
  for (int q = 0; q < n; ++q) {
    while (zb[k + 1] < double(q)) ++k;
    double t = double(q - v[k]);
    d[q] = w * t * t + f[v[k]];
  }
}

// One separable pass along an axis of the squared distance volume `sq` ([nz, ny, nx]), in place.
// axis: 0 = z, 1 = y, 2 = x; w = spacing^2 along that axis.
void edt_pass(std::vector<float>& sq, Shape3 s, int axis, double w) {
  const int n = axis == 0 ? s.nz : axis == 1 ? s.ny : s.nx;
  const size_t stride = axis == 0 ? size_t(s.ny) * s.nx : axis == 1 ? size_t(s.nx) : 1;
  // Lines are indexed by (outer, inner) with the line's axis left out: for x lines (z*ny + y, -),
  // for y lines (z, x), for z lines (y, x).
  const int outer = axis == 2 ? s.nz * s.ny : axis == 1 ? s.nz : s.ny;
  const int inner = axis == 2 ? 1 : s.nx;
  float* data = sq.data();
#pragma omp parallel if (sq.size() >= (size_t(1) << 15))
  {
    std::vector<double> f(n), d(n), zb(n + 1);
    std::vector<int> v(n);
#pragma omp for schedule(static)
    for (int o = 0; o < outer; ++o) {
      for (int i = 0; i < inner; ++i) {
        size_t base = axis == 2 ? size_t(o) * s.nx
                      : axis == 1 ? size_t(o) * s.ny * s.nx + size_t(i)
                                  : size_t(o) * s.nx + size_t(i);
        for (int q = 0; q < n; ++q) f[q] = data[base + q * stride];
        edt_line(f.data(), n, w, d.data(), v.data(), zb.data());
        for (int q = 0; q < n; ++q) data[base + q * stride] = float(d[q]);
      }
    }
  }
}

void check_mask(const std::vector<uint8_t>& mask, Shape3 s, const char* op) {
  check_shape(s, mask.size(), op, "mask");
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Intermodes

int intermodes_bin(const std::vector<double>& histogram, int* mode_lo, int* mode_hi, int* iterations) {
  ISONET_CHECK(histogram.size() >= 3, "intermodes: histogram needs at least 3 bins, got ", histogram.size());
  int first = -1, last = -1;
  for (size_t i = 0; i < histogram.size(); ++i) {
    ISONET_CHECK(std::isfinite(histogram[i]) && histogram[i] >= 0, "intermodes: histogram bin ", i,
                 " holds ", histogram[i], "; counts must be finite and non-negative");
    if (histogram[i] > 0) {
      if (first < 0) first = int(i);
      last = int(i);
    }
  }
  ISONET_CHECK(first >= 0, "intermodes: the histogram is empty");
  // Work on the occupied range only (as ImageJ does): empty end bins would otherwise pull the
  // smoothed modes outwards.
  const int n = last - first + 1;
  std::vector<double> h(histogram.begin() + first, histogram.begin() + last + 1), next(n);
  auto count_maxima = [&](int* a, int* b) {
    int found = 0;
    for (int i = 1; i + 1 < n; ++i) {
      if (h[i - 1] < h[i] && h[i + 1] < h[i]) {
        if (found == 0 && a) *a = i;
        if (found == 1 && b) *b = i;
        ++found;
      }
    }
    return found;
  };
  int iter = 0, j = -1, k = -1;
  while (count_maxima(&j, &k) != 2) {
    ISONET_CHECK(iter < kIntermodesMaxIterations, "intermodes: the histogram still does not have exactly two "
                 "maxima after ", kIntermodesMaxIterations, " smoothing passes; it is not bimodal (",
                 n, " occupied bins), so intermodes cannot threshold it");
    // 3-point running mean with zeros outside the occupied range.
    for (int i = 0; i < n; ++i) {
      double left = i > 0 ? h[i - 1] : 0.0, right = i + 1 < n ? h[i + 1] : 0.0;
      next[i] = (left + h[i] + right) / 3.0;
    }
    h.swap(next);
    ++iter;
  }
  if (mode_lo) *mode_lo = first + j;
  if (mode_hi) *mode_hi = first + k;
  if (iterations) *iterations = iter;
  return first + (j + k) / 2;  // j + k >= 0: integer division is the floor
}

namespace {

int bin_of(float value, double lo, double scale, int bins) {
  double b = std::floor((double(value) - lo) * scale);
  if (b < 0) return 0;
  if (b > bins - 1) return bins - 1;
  return int(b);
}

IntermodesResult intermodes_over(const Volume& v, double lo, double hi) {
  const int bins = kIntermodesBins;
  const double scale = double(bins) / (hi - lo);
  std::vector<double> hist(bins, 0.0);
  for (float x : v.data) hist[bin_of(x, lo, scale, bins)] += 1.0;
  IntermodesResult r;
  r.bins = bins;
  r.range_lo = lo, r.range_hi = hi;
  r.bin = intermodes_bin(hist, &r.mode_lo, &r.mode_hi, &r.iterations);
  r.value = float(lo + double(r.bin + 1) / scale);
  return r;
}

}  // namespace

IntermodesResult threshold_intermodes(const Volume& v) {
  ISONET_CHECK(v.size() > 0, "threshold_intermodes: empty volume");
  require_finite(v, "threshold_intermodes");
  auto mm = std::minmax_element(v.data.begin(), v.data.end());
  ISONET_CHECK(*mm.first < *mm.second, "threshold_intermodes: the volume is constant (", *mm.first,
               "); there is nothing to threshold");
  return intermodes_over(v, *mm.first, *mm.second);
}

IntermodesResult threshold_intermodes(const Volume& v, double range_lo, double range_hi) {
  ISONET_CHECK(v.size() > 0, "threshold_intermodes: empty volume");
  ISONET_CHECK(std::isfinite(range_lo) && std::isfinite(range_hi) && range_lo < range_hi,
               "threshold_intermodes: histogram range [", range_lo, ", ", range_hi,
               "] must be finite with lo < hi");
  require_finite(v, "threshold_intermodes");
  return intermodes_over(v, range_lo, range_hi);
}

std::vector<uint8_t> apply_threshold(const Volume& v, const IntermodesResult& t) {
  ISONET_CHECK(t.bins > 0 && t.range_lo < t.range_hi && t.bin >= 0 && t.bin < t.bins,
               "apply_threshold: invalid threshold (bin ", t.bin, " of ", t.bins, ", range [", t.range_lo, ", ",
               t.range_hi, "])");
  const double scale = double(t.bins) / (t.range_hi - t.range_lo);
  std::vector<uint8_t> mask(v.size());
  const ptrdiff_t n = ptrdiff_t(v.size());
#pragma omp parallel for schedule(static) if (n >= (ptrdiff_t(1) << 15))
  for (ptrdiff_t i = 0; i < n; ++i) mask[i] = bin_of(v.data[i], t.range_lo, scale, t.bins) > t.bin ? 1 : 0;
  return mask;
}

// ---------------------------------------------------------------------------------------------
// Hole filling and components

void fill_holes_3d(std::vector<uint8_t>& mask, Shape3 s) {
  check_mask(mask, s, "fill_holes_3d");
  ISONET_CHECK(mask.size() < (size_t(1) << 32), "fill_holes_3d: volume too large (", mask.size(),
               " voxels; at most 2^32)");
  // Flood the background from the border (6-connected); what the flood does not reach is a hole.
  std::vector<uint8_t> outside(mask.size(), 0);
  // Breadth-first: the queue holds the flood's front (~n^2 voxels for an n^3 volume), where a
  // depth-first stack can grow to the size of the background.
  std::deque<uint32_t> queue;
  auto seed = [&](size_t i) {
    if (!mask[i] && !outside[i]) outside[i] = 1, queue.push_back(uint32_t(i));
  };
  for (int z = 0; z < s.nz; ++z)
    for (int y = 0; y < s.ny; ++y)
      for (int x = 0; x < s.nx; ++x) {
        bool border = z == 0 || z == s.nz - 1 || y == 0 || y == s.ny - 1 || x == 0 || x == s.nx - 1;
        if (!border) {  // jump to the last voxel of the row
          if (x == 0 && s.nx > 1) x = s.nx - 2;
          continue;
        }
        seed((size_t(z) * s.ny + y) * s.nx + x);
      }
  const Neighbours nb(s, 6);
  while (!queue.empty()) {
    size_t i = queue.front();
    queue.pop_front();
    nb.visit(i, seed);
  }
  for (size_t i = 0; i < mask.size(); ++i)
    if (!mask[i] && !outside[i]) mask[i] = 1;
}

std::vector<int32_t> connected_components_3d(const std::vector<uint8_t>& mask, Shape3 s, int connectivity,
                                             int* count) {
  check_mask(mask, s, "connected_components_3d");
  ISONET_CHECK(connectivity == 6 || connectivity == 18 || connectivity == 26,
               "connected_components_3d: connectivity must be 6, 18 or 26, got ", connectivity);
  ISONET_CHECK(mask.size() < size_t(std::numeric_limits<int32_t>::max()),
               "connected_components_3d: volume too large for int32 labels");
  const Neighbours nb(s, connectivity);
  std::vector<int32_t> labels(mask.size(), 0);
  std::deque<uint32_t> queue;  // breadth-first, as in fill_holes_3d
  int32_t n = 0;
  for (size_t start = 0; start < mask.size(); ++start) {
    if (!mask[start] || labels[start]) continue;
    labels[start] = ++n;
    queue.push_back(uint32_t(start));
    while (!queue.empty()) {
      size_t i = queue.front();
      queue.pop_front();
      nb.visit(i, [&](size_t j) {
        if (mask[j] && !labels[j]) labels[j] = n, queue.push_back(uint32_t(j));
      });
    }
  }
  if (count) *count = n;
  return labels;
}

// ---------------------------------------------------------------------------------------------
// Distance transform, markers, watershed

std::vector<float> distance_transform_edt(const std::vector<uint8_t>& mask, Shape3 s, const VoxelSize& spacing,
                                          bool squared) {
  check_mask(mask, s, "distance_transform_edt");
  ISONET_CHECK(spacing.z > 0 && spacing.y > 0 && spacing.x > 0 && std::isfinite(spacing.z) &&
                   std::isfinite(spacing.y) && std::isfinite(spacing.x),
               "distance_transform_edt: voxel spacing (", spacing.z, ",", spacing.y, ",", spacing.x,
               ") must be positive and finite");
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> sq(mask.size());
  for (size_t i = 0; i < mask.size(); ++i) sq[i] = mask[i] ? inf : 0.f;
  // x first (contiguous lines), then y, then z; each pass is exact given the previous ones.
  edt_pass(sq, s, 2, spacing.x * spacing.x);
  if (s.ny > 1) edt_pass(sq, s, 1, spacing.y * spacing.y);
  if (s.nz > 1) edt_pass(sq, s, 0, spacing.z * spacing.z);
  if (!squared) {
    const ptrdiff_t n = ptrdiff_t(sq.size());
#pragma omp parallel for schedule(static) if (n >= (ptrdiff_t(1) << 15))
    for (ptrdiff_t i = 0; i < n; ++i) sq[i] = std::sqrt(sq[i]);
  }
  return sq;
}

std::vector<int32_t> maxima_markers(const std::vector<float>& f, const std::vector<uint8_t>& mask, Shape3 s,
                                    double h, int* count) {
  check_mask(mask, s, "maxima_markers");
  check_shape(s, f.size(), "maxima_markers", "surface");
  ISONET_CHECK(h >= 0 && std::isfinite(h), "maxima_markers: h must be finite and >= 0, got ", h);
  ISONET_CHECK(mask.size() < size_t(std::numeric_limits<int32_t>::max()),
               "maxima_markers: volume too large for int32 indices");
  // Foreground voxels from high to low, ties in raster order: one 64-bit key per voxel,
  // (inverted value key) << 32 | index, sorted ascending.
  std::vector<uint64_t> order;
  for (size_t i = 0; i < mask.size(); ++i)
    if (mask[i]) {
      ISONET_CHECK(!std::isnan(f[i]), "maxima_markers: surface is NaN at index ", i);
      order.push_back((uint64_t(~float_order_key(f[i])) << 32) | uint64_t(i));
    }
  std::sort(order.begin(), order.end());

  // Union-find over the voxels in that order builds the maxima's merge tree. A voxel with no
  // processed neighbour starts a component: a peak, recorded in `peaks` (so in height order). A
  // voxel with processed neighbours joins the first one's component and merges the others into it;
  // at each merge of two components the one with the lower peak ends, and its dynamic is its peak's
  // height minus the height of the merging voxel (the saddle).
  struct Peak {
    int32_t voxel;
    double dynamic;
  };
  std::vector<Peak> peaks;
  std::vector<int32_t> parent(mask.size(), -1);  // -1: background or not processed yet
  std::vector<int32_t> peak_of(mask.size(), -1);  // at roots: index into peaks
  auto find = [&](int32_t i) {
    int32_t r = i;
    while (parent[r] != r) r = parent[r];
    while (parent[i] != r) {  // path compression
      int32_t next = parent[i];
      parent[i] = r;
      i = next;
    }
    return r;
  };
  // Peaks are created in processing order, so a smaller peak index is higher (ties: raster order).
  const Neighbours nb(s, 26);
  for (uint64_t key : order) {
    const int32_t p = int32_t(key & 0xffffffffu);
    const double level = f[p];
    bool joined = false;
    nb.visit(size_t(p), [&](size_t jq) {
      const int32_t q = int32_t(jq);
      if (parent[q] < 0) return;
      const int32_t rq = find(q);
      if (!joined) {
        parent[p] = rq;
        joined = true;
        return;
      }
      const int32_t rp = find(p);
      if (rp == rq) return;
      const int32_t a = peak_of[rp], b = peak_of[rq];
      const int32_t winner = std::min(a, b), loser = std::max(a, b);
      peaks[loser].dynamic = double(f[peaks[loser].voxel]) - level;
      parent[rq] = rp;
      peak_of[rp] = winner;
    });
    if (!joined) {
      parent[p] = p;
      peak_of[p] = int32_t(peaks.size());
      peaks.push_back({p, std::numeric_limits<double>::infinity()});
    }
  }
  std::vector<int32_t> markers(mask.size(), 0);
  int32_t n = 0;
  for (const Peak& pk : peaks)  // a dynamic of 0: a plateau voxel that met its own plateau
    if (pk.dynamic > 0 && pk.dynamic >= h) markers[pk.voxel] = ++n;
  if (count) *count = n;
  return markers;
}

std::vector<int32_t> watershed_from_markers(const std::vector<float>& surface, const std::vector<int32_t>& markers,
                                            const std::vector<uint8_t>& mask, Shape3 s) {
  check_mask(mask, s, "watershed_from_markers");
  check_shape(s, surface.size(), "watershed_from_markers", "surface");
  check_shape(s, markers.size(), "watershed_from_markers", "markers");
  ISONET_CHECK(mask.size() < size_t(std::numeric_limits<int32_t>::max()),
               "watershed_from_markers: volume too large for int32 indices");
  // The flood order is "lowest value first, and among equal values first in, first out" (plateaus
  // then flood evenly from all sides, and the result depends on nothing but the data). It is kept
  // with a bucket queue: the distinct values of the surface in the mask are ranked into levels,
  // each level is a FIFO list (linked through `next`, as every voxel enters once), and a small
  // heap holds the levels whose lists are not empty. For a distance map there are only a few
  // hundred levels, so this costs O(N) instead of a heap's O(N log N) with its cache misses.
  std::vector<uint32_t> values;
  for (size_t i = 0; i < mask.size(); ++i)
    if (mask[i]) {
      ISONET_CHECK(!std::isnan(surface[i]), "watershed_from_markers: surface is NaN at index ", i);
      values.push_back(float_order_key(surface[i]));
    }
  std::sort(values.begin(), values.end());
  values.erase(std::unique(values.begin(), values.end()), values.end());
  auto level_of = [&](size_t i) {
    return uint32_t(std::lower_bound(values.begin(), values.end(), float_order_key(surface[i])) - values.begin());
  };
  std::vector<int32_t> head(values.size(), -1), tail(values.size(), -1), next(mask.size(), -1);
  std::priority_queue<uint32_t, std::vector<uint32_t>, std::greater<uint32_t>> active;
  auto push = [&](size_t i) {
    const uint32_t l = level_of(i);
    if (head[l] < 0) {
      head[l] = tail[l] = int32_t(i);
      active.push(l);
    } else {
      next[tail[l]] = int32_t(i);
      tail[l] = int32_t(i);
    }
  };

  std::vector<int32_t> labels(mask.size(), 0);
  for (size_t i = 0; i < mask.size(); ++i) {
    if (markers[i] == 0) continue;
    ISONET_CHECK(markers[i] > 0, "watershed_from_markers: negative marker label ", markers[i], " at index ", i);
    ISONET_CHECK(mask[i], "watershed_from_markers: marker ", markers[i], " at index ", i, " lies outside the mask");
    labels[i] = markers[i];
    push(i);
  }
  const Neighbours nb(s, 26);
  while (!active.empty()) {
    const uint32_t l = active.top();
    const size_t i = size_t(head[l]);
    head[l] = next[i];
    if (head[l] < 0) active.pop();  // pushes below re-activate the level if needed
    const int32_t lab = labels[i];
    nb.visit(i, [&](size_t j) {
      if (!mask[j] || labels[j]) return;
      labels[j] = lab;  // labelled when first reached: each voxel enters the queue once
      push(j);
    });
  }
  return labels;
}

// ---------------------------------------------------------------------------------------------
// Pipeline

SegmentResult segment_nuclei(const Volume& v, const SegmentOptions& o) {
  ISONET_CHECK(o.h_voxels >= 0 && std::isfinite(o.h_voxels), "segment_nuclei: h_voxels must be >= 0, got ",
               o.h_voxels);
  ISONET_CHECK(o.min_object_voxels >= 0, "segment_nuclei: min_object_voxels must be >= 0, got ",
               o.min_object_voxels);
  const Shape3 s = shape_of(v);
  SegmentResult r;
  r.threshold = o.range_lo < o.range_hi ? threshold_intermodes(v, o.range_lo, o.range_hi) : threshold_intermodes(v);
  std::vector<uint8_t> mask = apply_threshold(v, r.threshold);
  if (o.fill_holes) fill_holes_3d(mask, s);
  r.foreground_voxels = size_t(std::count(mask.begin(), mask.end(), uint8_t(1)));

  if (o.split) {
    std::vector<float> edt = distance_transform_edt(mask, s, v.voxel, /*squared=*/false);
    const double finest = std::min({v.voxel.z, v.voxel.y, v.voxel.x});
    // A mask without background has an infinite EDT: one object per component, no split.
    for (auto& d : edt)
      if (std::isinf(d)) d = std::numeric_limits<float>::max();
    std::vector<int32_t> markers = maxima_markers(edt, mask, s, o.h_voxels * finest, &r.num_markers);
    for (auto& d : edt) d = -d;  // flood from the centres outwards
    r.labels = watershed_from_markers(edt, markers, mask, s);
  } else {
    r.labels = connected_components_3d(mask, s, 26, &r.num_markers);
  }

  if (o.min_object_voxels > 0) {
    std::unordered_map<int32_t, size_t> sizes;
    for (int32_t l : r.labels)
      if (l > 0) ++sizes[l];
    for (auto& l : r.labels)
      if (l > 0 && sizes[l] < size_t(o.min_object_voxels)) l = 0;
  }
  r.num_labels = relabel_raster_order(r.labels);
  return r;
}

// ---------------------------------------------------------------------------------------------
// SEG

SegScore seg_score(const std::vector<int32_t>& gt, const std::vector<int32_t>& pred) {
  ISONET_CHECK(gt.size() == pred.size(), "seg_score: ground truth has ", gt.size(), " voxels but prediction has ",
               pred.size());
  // Compact the labels to 0..n-1 so the overlaps can be counted per (gt, pred) pair.
  std::unordered_map<int32_t, int32_t> gt_id, pred_id;
  std::vector<int64_t> gt_size, pred_size;
  std::unordered_map<uint64_t, int64_t> overlap;  // key: gt id << 32 | pred id
  for (size_t i = 0; i < gt.size(); ++i) {
    const int32_t g = gt[i], p = pred[i];
    ISONET_CHECK(g >= 0 && p >= 0, "seg_score: negative label at index ", i, " (gt ", g, ", pred ", p, ")");
    int32_t gi = -1, pi = -1;
    if (g > 0) {
      auto it = gt_id.find(g);
      if (it == gt_id.end()) it = gt_id.emplace(g, int32_t(gt_size.size())).first, gt_size.push_back(0);
      gi = it->second;
      ++gt_size[gi];
    }
    if (p > 0) {
      auto it = pred_id.find(p);
      if (it == pred_id.end()) it = pred_id.emplace(p, int32_t(pred_size.size())).first, pred_size.push_back(0);
      pi = it->second;
      ++pred_size[pi];
    }
    if (gi >= 0 && pi >= 0) ++overlap[(uint64_t(uint32_t(gi)) << 32) | uint32_t(pi)];
  }
  ISONET_CHECK(!gt_size.empty(), "seg_score: the ground truth has no objects; SEG is undefined");
  // For each gt object the (unique) predicted object covering more than half of it.
  std::vector<double> score(gt_size.size(), 0.0);
  SegScore r;
  for (const auto& [key, ov] : overlap) {
    const int32_t gi = int32_t(key >> 32), pi = int32_t(key & 0xffffffffu);
    if (2 * ov > gt_size[gi]) {
      score[gi] = double(ov) / double(gt_size[gi] + pred_size[pi] - ov);
      ++r.num_matched;
    }
  }
  r.num_gt = int(gt_size.size());
  r.num_pred = int(pred_size.size());
  r.seg = std::accumulate(score.begin(), score.end(), 0.0) / double(r.num_gt);
  return r;
}

}  // namespace isonet
