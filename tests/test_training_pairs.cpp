// test_training_pairs.cpp: eq. (2) training pairs: shapes, the degradation (delta kernel, blur
// only along the z-role rows in both layouts, decimation grid alignment), foreground sampling,
// augmentation following the kernel's symmetries, determinism, noise and error messages.
#include "imaging/training_pairs.h"

#include <algorithm>
#include <cmath>

#include "kernels/error.h"
#include "test_util.h"

using namespace isonet;

namespace {

// Gaussian kernel [1, ky, kx] with std devs (sr along rows, sc along columns), centre shifted by
// (dr, dc) pixels; sc == 0 gives a one-pixel-wide column. Sum 1.
Volume gaussian_kernel(int ky, int kx, double sr, double sc, double dr = 0, double dc = 0) {
  Volume k(1, ky, kx);
  double sum = 0;
  for (int r = 0; r < ky; ++r)
    for (int c = 0; c < kx; ++c) {
      double y = r - ky / 2 - dr, x = c - kx / 2 - dc;
      double v = std::exp(-0.5 * y * y / (sr * sr)) * (sc > 0 ? std::exp(-0.5 * x * x / (sc * sc)) : (x == 0 ? 1.0 : 0.0));
      k.at(0, r, c) = float(v);
      sum += v;
    }
  for (float& v : k.data) v = float(v / sum);
  return k;
}

Volume delta_kernel(int size) {
  Volume k(1, size, size);
  k.at(0, size / 2, size / 2) = 1.f;
  return k;
}

Volume random_volume(int nz, int ny, int nx, uint64_t seed) {
  Volume v(nz, ny, nx);
  v.data = test::random_vector(v.size(), seed, 0.f, 100.f);
  return v;
}

TrainingPairOptions base_options(double factor, int P, int n) {
  TrainingPairOptions o;
  o.factor = factor;
  o.patch_size = P;
  o.n_patches = n;
  o.foreground_threshold = 0;  // accept all unless a test is about the filter
  o.augment = false;
  o.seed = 42;
  return o;
}

// Intensity-weighted variance of a [P, P] image along rows and columns.
void moments(const float* img, int P, double* var_r, double* var_c) {
  double s = 0, mr = 0, mc = 0;
  for (int r = 0; r < P; ++r)
    for (int c = 0; c < P; ++c) {
      double w = img[r * P + c];
      s += w, mr += w * r, mc += w * c;
    }
  mr /= s, mc /= s;
  double vr = 0, vc = 0;
  for (int r = 0; r < P; ++r)
    for (int c = 0; c < P; ++c) {
      double w = img[r * P + c];
      vr += w * (r - mr) * (r - mr), vc += w * (c - mc) * (c - mc);
    }
  *var_r = vr / s, *var_c = vc / s;
}

}  // namespace

TEST_CASE("training pairs: shapes, counts, origins and normalization parameters") {
  Volume g = random_volume(5, 37, 41, 1);
  TrainingPairOptions o = base_options(2.5, 16, 23);
  TrainingPairs tp = make_training_pairs(g, gaussian_kernel(9, 3, 2.0, 0.7), o);
  CHECK(tp.n == 23);
  CHECK(tp.shortfall() == 0);
  CHECK(tp.patch_size == 16);
  CHECK(tp.inputs.size() == size_t(23) * 16 * 16);
  CHECK(tp.targets.size() == tp.inputs.size());
  CHECK(tp.origins.size() == 23u);
  int transposed = 0;
  for (const PatchOrigin& p : tp.origins) {
    int rows = p.transposed ? 41 : 37, cols = p.transposed ? 37 : 41;
    CHECK((p.z >= 0 && p.z < 5));
    CHECK((p.row >= 0 && p.row + 16 <= rows));
    CHECK((p.col >= 0 && p.col + 16 <= cols));
    transposed += p.transposed;
  }
  CHECK(transposed > 0);
  CHECK(transposed < 23);
  NormalizeParams ref = percentile_params(g, 2.0, 99.8);
  CHECK(tp.norm.p_lo == ref.p_lo);
  CHECK(tp.norm.p_hi == ref.p_hi);
  // Targets are the normalized planes: check one against the volume directly.
  const PatchOrigin& p = tp.origins[0];
  for (int r = 0; r < 16; ++r)
    for (int c = 0; c < 16; ++c) {
      int y = p.transposed ? p.col + c : p.row + r, x = p.transposed ? p.row + r : p.col + c;
      float expect = (g.at(p.z, y, x) - ref.p_lo) * float(1.0 / ref.scale());
      REQUIRE(tp.targets[r * 16 + c] == expect);
    }
}

TEST_CASE("training pairs: a delta kernel with S = 1 gives input == target") {
  Volume g = random_volume(3, 29, 33, 2);
  TrainingPairs tp = make_training_pairs(g, delta_kernel(5), base_options(1.0, 12, 10));
  REQUIRE(tp.n == 10);
  // Only the fp32 FFT round trip differs: a few 1e-7 of the largest value (~1.0 normalized)
  // of the padded plane; 1e-5 absolute leaves a margin of > 10x.
  CHECK_CLOSE_ARRAYS("delta, S=1", tp.targets.data(), tp.inputs.data(), tp.inputs.size(), 1e-5, 0);
}

TEST_CASE("training pairs: a Gaussian blurs only along the z-role rows, in both layouts") {
  // One plane with one bright point at (y, x) = (10, 20); the patch is the whole plane.
  Volume g(1, 32, 32);
  g.at(0, 10, 20) = 1000.f;
  const double sigma = 3.0;
  TrainingPairOptions o = base_options(1.0, 32, 12);
  o.normalize = false;  // a single point has p_lo == p_hi
  TrainingPairs tp = make_training_pairs(g, gaussian_kernel(25, 1, sigma, 0), o);
  REQUIRE(tp.n == 12);
  int seen[2] = {0, 0};
  for (int i = 0; i < tp.n; ++i) {
    const float* in = tp.inputs.data() + size_t(i) * 32 * 32;
    const float* tg = tp.targets.data() + size_t(i) * 32 * 32;
    bool tr = tp.origins[i].transposed;
    ++seen[tr];
    // The target shows the point where the layout puts it.
    CHECK(tg[(tr ? 20 : 10) * 32 + (tr ? 10 : 20)] == 1000.f);
    double tvr, tvc, vr, vc;
    moments(tg, 32, &tvr, &tvc);
    moments(in, 32, &vr, &vc);
    CHECK(tvr == 0.0);
    CHECK(tvc == 0.0);
    // Rows: the Gaussian's variance sigma^2 = 9, truncated at +-12 rows and mirrored at the
    // edge (the point is 10 rows from it, so ~1e-3 of the mass folds back): within 0.2.
    CHECK(std::fabs(vr - sigma * sigma) < 0.2);
    // Columns: a one-pixel-wide kernel: only FFT round-off (~1e-7 relative) spreads mass.
    CHECK(vc < 1e-3);
  }
  CHECK(seen[0] > 0);
  CHECK(seen[1] > 0);
}

TEST_CASE("training pairs: white-noise targets become smooth along rows only, both layouts, S = 2") {
  Volume g = random_volume(4, 40, 40, 3);
  TrainingPairOptions o = base_options(2.0, 24, 16);
  TrainingPairs tp = make_training_pairs(g, gaussian_kernel(13, 1, 2.0, 0), o);
  REQUIRE(tp.n == 16);
  for (int i = 0; i < tp.n; ++i) {
    const float* in = tp.inputs.data() + size_t(i) * 24 * 24;
    const float* tg = tp.targets.data() + size_t(i) * 24 * 24;
    auto diffs = [](const float* a, double* dr, double* dc) {
      *dr = *dc = 0;
      for (int r = 0; r + 1 < 24; ++r)
        for (int c = 0; c + 1 < 24; ++c) {
          *dr += std::pow(a[(r + 1) * 24 + c] - a[r * 24 + c], 2);
          *dc += std::pow(a[r * 24 + c + 1] - a[r * 24 + c], 2);
        }
    };
    double tr_, tc_, ir, ic;
    diffs(tg, &tr_, &tc_);
    diffs(in, &ir, &ic);
    // White noise: adjacent differences have equal energy along both axes (576 samples each:
    // ratio within ~+-20% at 3 sigma). After a row blur of sigma 2 (and the row decimation),
    // neighbouring rows share most of their weights: row differences shrink ~50x relative to
    // column differences; 0.1 is a loose bound that an unblurred or column-blurred input fails.
    CHECK(tr_ / tc_ > 0.7);
    CHECK(tr_ / tc_ < 1.4);
    CHECK(ir / ic < 0.1);
  }
}

TEST_CASE("training pairs: the decimation grid keeps rows k*S exactly (linear upsample-back)") {
  for (double S : {3.0, 2.5}) {
    const int bright = S == 3.0 ? 6 : 5;  // k = 2: position 2*S
    Volume g(1, 31, 7);
    for (int x = 0; x < 7; ++x) g.at(0, bright, x) = 1.f;
    Volume d = degrade_planes(g, delta_kernel(3), S, Interp::Linear);
    REQUIRE(d.ny == 31);
    for (int y = 0; y < 31; ++y) {
      // Kept samples: value 1 at k = 2 only; linear interpolation between kept samples.
      double expect = std::max(0.0, 1.0 - std::fabs(y / S - 2.0));
      for (int x = 0; x < 7; ++x) REQUIRE(std::fabs(d.at(0, y, x) - expect) < 1e-5);  // FFT round-off
    }
    CHECK(std::fabs(d.at(0, bright, 3) - 1.f) < 1e-5);
  }
  // A row between kept positions is not acquired: it disappears.
  Volume g(1, 31, 7);
  for (int x = 0; x < 7; ++x) g.at(0, 7, x) = 1.f;
  Volume d = degrade_planes(g, delta_kernel(3), 3.0, Interp::Linear);
  for (float v : d.data) REQUIRE(std::fabs(v) < 1e-5);
}

TEST_CASE("training pairs: background patches are rejected on an empty volume with a bright cube") {
  Volume g(9, 48, 48);
  g.data = test::random_vector(g.size(), 4, 0.f, 0.01f);
  for (int z = 2; z < 8; ++z)
    for (int y = 20; y < 32; ++y)
      for (int x = 10; x < 22; ++x) g.at(z, y, x) = 1.f;  // 864 of 20736 voxels: p99.8 is inside the cube
  TrainingPairOptions o = base_options(2.0, 8, 50);
  o.foreground_threshold = 0.4;
  TrainingPairs tp = make_training_pairs(g, gaussian_kernel(7, 1, 1.5, 0), o);
  CHECK(tp.n == 50);
  CHECK(tp.rejected_background > 0);
  CHECK(tp.candidates == 50 + tp.rejected_background);
  for (const PatchOrigin& p : tp.origins) {
    int y0 = p.transposed ? p.col : p.row, x0 = p.transposed ? p.row : p.col;
    CHECK((p.z >= 2 && p.z < 8));
    CHECK((y0 + 8 > 20 && y0 < 32 && x0 + 8 > 10 && x0 < 22));  // overlaps the cube
  }
  // An unreachable threshold: bounded tries, nothing found, no hang, shortfall reported.
  o.foreground_threshold = 5.0;
  o.max_tries_per_patch = 3;
  TrainingPairs none = make_training_pairs(g, gaussian_kernel(7, 1, 1.5, 0), o);
  CHECK(none.n == 0);
  CHECK(none.shortfall() == 50);
  CHECK(none.candidates == 150);
  CHECK(none.inputs.empty());
}

TEST_CASE("training pairs: augmentation elements follow the kernel's symmetries") {
  const uint8_t flips = 0x0F;  // identity, row flip, column flip, 180-degree rotation
  CHECK(allowed_symmetries(gaussian_kernel(11, 5, 3.0, 1.0), 2.0) == flips);
  CHECK(allowed_symmetries(gaussian_kernel(11, 5, 3.0, 1.0), 1.0) == flips);  // elongated: no 90 degrees
  CHECK(allowed_symmetries(gaussian_kernel(9, 9, 2.0, 2.0), 1.0) == 0xFF);    // isotropic, S = 1: all 8
  CHECK(allowed_symmetries(gaussian_kernel(9, 9, 2.0, 2.0), 2.0) == flips);   // S > 1: no transposes
  // Shifted along rows: not row-flip symmetric; columns still are.
  CHECK(allowed_symmetries(gaussian_kernel(11, 5, 2.0, 1.0, 0.5, 0), 2.0) == (1 | (1 << kFlipCols)));
  // Elongated along the diagonal (S = 1): invariant under the transpose (4), the anti-transpose
  // (7 = flips + transpose) and the 180-degree rotation (3), not under the 90-degree ones (5, 6).
  Volume diag(1, 9, 9);
  for (int r = 0; r < 9; ++r)
    for (int c = 0; c < 9; ++c) {
      double u = (r - 4 + c - 4) / std::sqrt(2.0), v = (r - c) / std::sqrt(2.0);
      diag.at(0, r, c) = float(std::exp(-0.5 * (u * u / 9.0 + v * v / 1.0)));
    }
  CHECK(allowed_symmetries(diag, 1.0) == ((1 << 0) | (1 << 3) | (1 << 4) | (1 << 7)));
  // Tolerance: a perturbation of 1e-5 of the peak keeps the flips, one of 1e-2 breaks the row flip.
  Volume k = gaussian_kernel(11, 5, 3.0, 1.0);
  float peak = *std::max_element(k.data.begin(), k.data.end());
  k.at(0, 1, 2) += 1e-5f * peak;
  CHECK(allowed_symmetries(k, 2.0) == flips);
  k.at(0, 1, 2) += 1e-2f * peak;
  CHECK((allowed_symmetries(k, 2.0) & (1 << kFlipRows)) == 0);

  // Semantics: for an element e allowed for h, e(h * x) == h * e(x) (direct 'same' convolution
  // with zero outside, in double), so apply_symmetry and allowed_symmetries agree.
  const int P = 11;
  std::vector<float> x = test::random_vector(P * P, 5);
  auto conv = [&](const std::vector<float>& img, const Volume& h) {
    std::vector<float> out(P * P);
    for (int r = 0; r < P; ++r)
      for (int c = 0; c < P; ++c) {
        double s = 0;
        for (int i = 0; i < h.ny; ++i)
          for (int j = 0; j < h.nx; ++j) {
            int rr = r - (i - h.ny / 2), cc = c - (j - h.nx / 2);
            if (rr >= 0 && rr < P && cc >= 0 && cc < P) s += double(h.at(0, i, j)) * img[rr * P + cc];
          }
        out[r * P + c] = float(s);
      }
    return out;
  };
  for (uint8_t e : {uint8_t(3), uint8_t(4), uint8_t(7)}) {
    std::vector<float> ex(P * P), a(P * P);
    apply_symmetry(x.data(), ex.data(), P, e);
    std::vector<float> hx = conv(x, diag);
    apply_symmetry(hx.data(), a.data(), P, e);
    std::vector<float> b = conv(ex, diag);
    // Same products summed in another order (fp32 inputs, double sums, fp32 results).
    CHECK_CLOSE_ARRAYS("e(h*x) vs h*e(x)", a.data(), b.data(), a.size(), 1e-6, 1e-6);
  }
}

TEST_CASE("training pairs: augmented pairs are the plain pairs transformed jointly") {
  Volume g = random_volume(3, 30, 34, 6);
  TrainingPairOptions o = base_options(2.0, 16, 20);
  Volume h = gaussian_kernel(9, 3, 2.0, 0.8);
  TrainingPairs plain = make_training_pairs(g, h, o);
  o.augment = true;
  TrainingPairs aug = make_training_pairs(g, h, o);
  REQUIRE(aug.n == plain.n);
  CHECK(aug.allowed_symmetries == 0x0F);
  int changed = 0;
  std::vector<float> t(16 * 16);
  for (int i = 0; i < aug.n; ++i) {
    const PatchOrigin &a = aug.origins[i], &p = plain.origins[i];
    REQUIRE((a.z == p.z && a.transposed == p.transposed && a.row == p.row && a.col == p.col));
    CHECK(((aug.allowed_symmetries >> a.symmetry) & 1) == 1);
    changed += a.symmetry != 0;
    for (int pass = 0; pass < 2; ++pass) {
      const float* src = (pass ? plain.targets : plain.inputs).data() + size_t(i) * 256;
      const float* got = (pass ? aug.targets : aug.inputs).data() + size_t(i) * 256;
      apply_symmetry(src, t.data(), 16, a.symmetry);
      for (int j = 0; j < 256; ++j) REQUIRE(got[j] == t[j]);  // the same numbers moved
    }
  }
  CHECK(changed > 0);
}

TEST_CASE("training pairs: deterministic for a seed; kernel z axis X is the transposed kernel") {
  Volume g = random_volume(4, 27, 31, 7);
  Volume h = gaussian_kernel(9, 3, 2.0, 0.8);
  TrainingPairOptions o = base_options(2.5, 12, 15);
  o.augment = true;
  TrainingPairs a = make_training_pairs(g, h, o);
  TrainingPairs b = make_training_pairs(g, h, o);
  CHECK(a.inputs == b.inputs);
  CHECK(a.targets == b.targets);
  o.seed = 43;
  TrainingPairs c = make_training_pairs(g, h, o);
  CHECK(c.targets != a.targets);
  o.seed = 42;
  Volume ht(1, h.nx, h.ny);
  for (int r = 0; r < h.ny; ++r)
    for (int cc = 0; cc < h.nx; ++cc) ht.at(0, cc, r) = h.at(0, r, cc);
  o.kernel_z_axis = LateralZAxis::X;
  TrainingPairs d = make_training_pairs(g, ht, o);
  CHECK(d.inputs == a.inputs);
}

TEST_CASE("training pairs: optional camera noise on the blurred plane") {
  Volume g = random_volume(2, 24, 24, 8);
  Volume h = gaussian_kernel(7, 1, 1.5, 0);
  TrainingPairOptions o = base_options(2.0, 16, 6);
  TrainingPairs clean = make_training_pairs(g, h, o);
  o.noise.enabled = true;
  o.noise.photons_per_unit = 1.0;  // values 0..100 are photon counts
  TrainingPairs n1 = make_training_pairs(g, h, o);
  TrainingPairs n2 = make_training_pairs(g, h, o);
  CHECK(n1.inputs == n2.inputs);    // keyed noise: deterministic
  CHECK(n1.targets == clean.targets);  // targets stay clean
  double diff2 = 0, mean_diff = 0;
  for (size_t i = 0; i < clean.inputs.size(); ++i) {
    double d = (n1.inputs[i] - clean.inputs[i]) * n1.norm.scale();  // back to counts
    diff2 += d * d, mean_diff += d;
  }
  diff2 /= double(clean.inputs.size()), mean_diff /= double(clean.inputs.size());
  // Poisson noise on blurred values ~50 counts has variance ~50 per pixel before the row
  // decimation/upsampling (which averages at most 4 rows, reducing it by at most 4x): the mean
  // square difference is in [5, 100]; the mean difference is ~0 (|.| < 1.5 count).
  CHECK(diff2 > 5.0);
  CHECK(diff2 < 100.0);
  CHECK(std::fabs(mean_diff) < 1.5);
}

TEST_CASE("training pairs: bad input is refused with a message") {
  Volume g = random_volume(2, 20, 24, 9);
  Volume h = gaussian_kernel(5, 3, 1.0, 1.0);
  TrainingPairOptions o = base_options(2.0, 24, 4);
  CHECK_THROWS_WITH_AS(make_training_pairs(g, h, o), doctest::Contains("exceeds the lateral plane"), Error);
  o.patch_size = 10;
  CHECK_THROWS_WITH_AS(make_training_pairs(g, h, o), doctest::Contains("multiple of 4"), Error);
  o.patch_size = 8;
  o.factor = 0.5;
  CHECK_THROWS_WITH_AS(make_training_pairs(g, h, o), doctest::Contains(">= 1"), Error);
  o.factor = 2.0;
  Volume h3(2, 5, 5, 0.02f);
  CHECK_THROWS_WITH_AS(make_training_pairs(g, h3, o), doctest::Contains("[1, ky, kx]"), Error);
  Volume h0(1, 3, 3, 0.f);
  CHECK_THROWS_WITH_AS(make_training_pairs(g, h0, o), doctest::Contains("positive sum"), Error);
  g.data[17] = std::nanf("");
  CHECK_THROWS_WITH_AS(make_training_pairs(g, h, o), doctest::Contains("non-finite"), Error);
}
