// conv2d_fft.cpp: CPU (FFTW) implementation of the frequency-domain convolution (conv2d_fft.h).
//
// Padded size: any (ph, pw) >= (h + k/2, w + k/2) gives the exact result (conv2d_fft.h). FFTW's
// speed varies ~3x between neighbouring sizes, so the CPU path picks per shape, from a table of
// FFTW's measured speed per length, the size its cost model expects to be fastest (often a bit
// larger than conv2d_fft_size's minimum, e.g. 144 instead of 135 for 128 + 3). See geometry().
//
// One call = three phases on one OpenMP team (conv2d_cpu.h's rule: one team per call, small
// problems on the calling thread):
//  1. spectra: every input plane is zero padded to [ph,pw] and transformed by FFTW (single
//     precision, real-to-complex, ph x bw bins with bw = pw/2+1); every kernel [k,k] gets its
//     spectrum G by a pruned DFT (below). Spectra go into the workspace in the blocked layout.
//  2. product: per frequency bin, the small complex matrix product of conv2d_fft.h over the
//     channels (forward, backward data) or the batch (backward weights).
//  3. back: FFTW's complex-to-real inverse of each output plane, cropped to [h,w] with bias and
//     ReLU in the same pass (forward); the weight gradient by the pruned inverse DFT.
//
// Blocked layout: the bins of a plane, indexed fy*bwp + fx with rows padded by zero bins to bwp
// (bw rounded up to 8), are cut into blocks of bb bins (a multiple of 8), stored block-major as
// [block][plane][re bb | im bb]. Phase 2 works on one block at a time, so every operand of a
// block (all planes of the three spectra sets, <= 512 KiB) is read from memory once,
// contiguously, and then stays in the core's L2; real and imaginary parts in separate runs of 8
// make the complex multiply-add plain 8-wide FMAs (a register tile of 2x2 products = 8
// accumulators, 16 FMAs per 8 loads; measured ~80% of the FMA peak).
//
// Pruned kernel transform: the zero-padded kernel g has k*k non-zeros among ph*pw values, so
// instead of a full 2D FFT G is evaluated as the separable DFT of its support,
//   G(fy,fx) = sum_a Ey[fy,a] sum_b w[a,b] Ex[b,fx],  Ey[fy,a] = e^{-2 pi i fy (p-a)/ph},
//   Ex[b,fx] = e^{-2 pi i fx (p-b)/pw}   (w[a,b] sits at g[(p-a) mod ph, (p-b) mod pw]),
// k*(ph+k)*bw complex multiply-adds that vectorize over fx (measured 1.6-2.3x faster than FFTW
// on the padded kernel at 36..144 points a side, equal at 20). The weight gradient is its adjoint:
// dw[a,b] = (1/N) sum_fy sum_fx c_fx Re(DG(fy,fx) conj(Ey[fy,a]) conj(Ex[b,fx])), with c_fx = 2
// for the bins whose conjugate twin is not stored (0 < fx < pw/2) and 1 otherwise. The scale
// 1/N = 1/(ph*pw) of the inverse transform is folded into G. Weight spectra are recomputed on
// every call: the API is stateless (the weights change after every step); their cost (writing
// c_in*c_out spectra to memory and reading them back once) is in the cost model, and is why
// the FFT loses at batch 1 (bench/results/2026-11-23_cpu_conv_fft.md).
//
// Plans: one r2c and one c2r plan per padded size, made under fftw_planner_mutex() with
// FFTW_ESTIMATE (no timing, so the same plan everywhere) on 64-byte-aligned arrays, cached for
// the life of the process and executed through the new-array interface on per-thread buffers
// carved from the caller's workspace at 16-float offsets (so with the planning alignment).
//
// Determinism: each output element is computed by the same operations in the same order
// whichever thread does it (fixed sums over the channel or batch index per bin), so results do
// not depend on the thread count.
#include "kernels/conv2d_fft.h"

#include <fftw3.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <map>
#include <mutex>
#include <utility>

#include "kernels/conv2d_cpu.h"
#include "kernels/error.h"
#include "kernels/fft_util.h"
#include "kernels/op_checks.h"

#if defined(__AVX2__) || defined(__FMA__)
#include <immintrin.h>
#endif

namespace isonet {

Conv2dFftSize conv2d_fft_size(const Conv2dShape& s) {
  check_conv2d_shape(s, "conv2d_fft_size");
  return {next_fast_fft_size(s.h + s.k / 2), next_fast_fft_size(s.w + s.k / 2)};
}

namespace cpu {
namespace {

constexpr int kLanes = 8;                        // floats per vector
constexpr size_t kBlockBytes = size_t(1) << 19;  // operands of one bin block (half of a 1 MiB L2)
constexpr int kMaxBlockBins = 256;

size_t align16(size_t floats) { return (floats + 15) / 16 * 16; }
int round_up(int a, int m) { return (a + m - 1) / m * m; }

// 8 floats in one vector (GCC/Clang vector extension: AVX with this project's x86-64-v3 flags,
// two SSE registers on older targets), with fused multiply-adds where the build has FMA (GCC
// does not contract a*b+c by itself under -std=c++17).
typedef float v8f __attribute__((vector_size(32)));
inline v8f load8(const float* p) {
  v8f v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store8(float* p, v8f v) { std::memcpy(p, &v, sizeof v); }
inline v8f splat8(float a) { return v8f{} + a; }
inline v8f fma8(v8f a, v8f b, v8f c) {  // a*b + c
#if defined(__FMA__)
  return (v8f)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
#else
  return a * b + c;
#endif
}
inline v8f fnma8(v8f a, v8f b, v8f c) {  // c - a*b
#if defined(__FMA__)
  return (v8f)_mm256_fnmadd_ps((__m256)a, (__m256)b, (__m256)c);
#else
  return c - a * b;
#endif
}
inline float hsum8(v8f v) {  // fixed order, so results never depend on anything but the data
  return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]));
}

// Sizes of one call's transforms and spectra for shape s. Bins are indexed f = fy*bwp + fx with
// rows padded from bw to bwp (a multiple of 8) by zero bins, so that every vector of 8 bins lies
// in one row (the pruned kernel DFT needs one Ey factor per vector); the padding costs
// (bwp-bw)/bw of the product (6% at 128x128, 11% at 64x64).
struct Geometry {
  int ph, pw, bw;  // padded size; complex columns of a real-to-complex transform (pw/2+1)
  int bwp;         // bw rounded up to a multiple of 8
  int nb;          // bins of one plane, ph*bwp
  int bb;          // bins per block (multiple of 8)
  int blocks;      // ceil(nb / bb)
  int p_in, p_out, p_w;  // planes of the three spectra sets: n*c_in, n*c_out, c_out*c_in
  // Per-thread scratch: a padded real plane, a spectrum (interleaved [ph][bw] for FFTW, or
  // split [ph][bwp] re | im), and the [k][bwp] intermediate of the pruned kernel DFT (re | im).
  size_t real_floats() const { return align16(size_t(ph) * pw); }
  size_t spec_floats() const { return align16(2 * size_t(ph) * bwp); }
  size_t thread_floats(int k) const { return real_floats() + spec_floats() + align16(2 * size_t(k) * bwp); }
  size_t set_floats(int planes) const { return size_t(blocks) * planes * 2 * bb; }
};

// FFTW's speed per size: ns per point*log2(points) of one m x m real transform (r2c or c2r,
// FFTW_ESTIMATE, single precision), measured on the development machine for every 7-smooth m up
// to 512 (`bench_conv_cpu --fftw-table`: fastest of 5 rounds; repeated runs agreed within 10%).
// It varies ~3x between neighbouring sizes (144: 0.107, 135: 0.307; 72: 0.152, 70: 0.225), so
// the padded size is chosen with it.
struct FftwLength {
  int m;
  float ns;
};
constexpr FftwLength kFftwLengths[] = {
    // clang-format off
    {2, 1.377f}, {3, 0.540f}, {4, 0.360f}, {5, 0.283f}, {6, 0.171f}, {7, 0.195f}, {8, 0.149f}, 
    {9, 0.214f}, {10, 0.142f}, {12, 0.127f}, {14, 0.223f}, {15, 0.162f}, {16, 0.168f}, {18, 0.410f}, 
    {20, 0.146f}, {21, 0.482f}, {24, 0.313f}, {25, 0.247f}, {27, 0.404f}, {28, 0.286f}, {30, 0.500f}, 
    {32, 0.149f}, {35, 0.351f}, {36, 0.239f}, {40, 0.357f}, {42, 0.234f}, {45, 0.326f}, {48, 0.218f}, 
    {49, 0.326f}, {50, 0.260f}, {54, 0.242f}, {56, 0.172f}, {60, 0.321f}, {63, 0.294f}, {64, 0.147f}, 
    {70, 0.225f}, {72, 0.152f}, {75, 0.291f}, {80, 0.122f}, {81, 0.282f}, {84, 0.158f}, {90, 0.223f}, 
    {96, 0.234f}, {98, 0.182f}, {100, 0.139f}, {105, 0.341f}, {108, 0.172f}, {112, 0.165f}, {120, 0.142f}, 
    {125, 0.315f}, {126, 0.213f}, {128, 0.147f}, {135, 0.307f}, {140, 0.187f}, {144, 0.107f}, {147, 0.375f}, 
    {150, 0.172f}, {160, 0.112f}, {162, 0.237f}, {168, 0.165f}, {175, 0.301f}, {180, 0.142f}, {189, 0.357f}, 
    {192, 0.124f}, {196, 0.158f}, {200, 0.116f}, {210, 0.223f}, {216, 0.166f}, {224, 0.173f}, {225, 0.289f}, 
    {240, 0.112f}, {243, 0.328f}, {245, 0.314f}, {250, 0.157f}, {252, 0.148f}, {256, 0.118f}, {270, 0.251f}, 
    {280, 0.176f}, {288, 0.120f}, {294, 0.176f}, {300, 0.133f}, {315, 0.311f}, {320, 0.103f}, {324, 0.176f}, 
    {336, 0.178f}, {343, 0.320f}, {350, 0.225f}, {360, 0.172f}, {375, 0.312f}, {378, 0.211f}, {384, 0.123f}, 
    {392, 0.167f}, {400, 0.098f}, {405, 0.302f}, {420, 0.162f}, {432, 0.162f}, {441, 0.311f}, {448, 0.172f}, 
    {450, 0.213f}, {480, 0.162f}, {486, 0.208f}, {490, 0.194f}, {500, 0.137f}, {504, 0.166f}, {512, 0.121f}
    // clang-format on
};
constexpr int kMaxListedLength = 512;
// Past the table: the smallest 7-smooth length, assumed slow (like 135 or 147), and the smallest
// 2^a 3^b 5^c with b <= 2, c <= 1, the form of the table's fast sizes (144, 160, 240, 288, 320).
constexpr float kUnlistedNs = 0.3f;
constexpr float kUnlistedFriendlyNs = 0.13f;

int friendly_length(int n) {
  for (int m = n;; ++m) {
    int r = m, threes = 0, fives = 0;
    while (r % 2 == 0) r /= 2;
    for (; r % 3 == 0; r /= 3) ++threes;
    for (; r % 5 == 0; r /= 5) ++fives;
    if (r == 1 && threes <= 2 && fives <= 1) return m;
  }
}

Geometry make_geometry(const Conv2dShape& s, int ph, int pw) {
  Geometry g;
  g.ph = ph;
  g.pw = pw;
  g.bw = g.pw / 2 + 1;
  g.bwp = round_up(g.bw, kLanes);
  g.nb = g.ph * g.bwp;
  g.p_in = s.n * s.c_in;
  g.p_out = s.n * s.c_out;
  g.p_w = s.c_out * s.c_in;
  const double per_bin = 8.0 * (double(g.p_in) + g.p_out + g.p_w);  // bytes of all planes at one bin
  const int fit = static_cast<int>(std::min<double>(kMaxBlockBins, double(kBlockBytes) / per_bin));
  g.bb = std::clamp(fit / kLanes * kLanes, kLanes, g.nb);
  g.blocks = (g.nb + g.bb - 1) / g.bb;
  return g;
}

double fft_seconds(const Conv2dShape& s, const Geometry& g, double transform_ns);

// Padded length candidates for a bound n: the listed lengths in [n, n + max(8, n/2)], or the two
// lengths above past the table. f(m, ns) is called for each.
template <typename F>
void for_each_length(int n, const F& f) {
  if (n > kMaxListedLength) {
    f(friendly_length(n), kUnlistedFriendlyNs);
    const int smooth = next_fast_fft_size(n);
    if (smooth != friendly_length(n)) f(smooth, kUnlistedNs);
    return;
  }
  for (const FftwLength& l : kFftwLengths)
    if (l.m >= n && l.m <= n + std::max(8, n / 2)) f(l.m, l.ns);
}

// The geometry of shape s: the padded size (ph, pw) >= (h + k/2, w + k/2) that the cost model
// below expects to be fastest for this shape (a larger but FFTW-friendly size often wins: the
// transforms get cheaper while the products grow with the bins). Any such size is exact
// (conv2d_fft.h), so this is only about speed; conv2d_fft_size's 7-smooth minimum (used by the
// CUDA path) is one of the candidates. Deterministic: shape in, size out.
struct Choice {
  Geometry g;
  double seconds;  // the cost model's estimate for this geometry
};

Choice choose(const Conv2dShape& s) {
  check_conv2d_shape(s, "conv2d_fft");
  Choice best{};
  for_each_length(s.h + s.k / 2, [&](int ph, float ns_h) {
    for_each_length(s.w + s.k / 2, [&](int pw, float ns_w) {
      const Geometry g = make_geometry(s, ph, pw);
      const double t = fft_seconds(s, g, std::sqrt(double(ns_h) * ns_w));
      if (best.g.ph == 0 || t < best.seconds) best = {g, t};  // ties: the smaller size
    });
  });
  return best;
}

Geometry geometry(const Conv2dShape& s) { return choose(s).g; }

// ---- FFTW plans -------------------------------------------------------------------------------

struct Plans {
  fftwf_plan r2c = nullptr;  // real [ph,pw] -> complex [ph,bw]
  fftwf_plan c2r = nullptr;  // complex [ph,bw] -> real [ph,pw] (unnormalized, destroys its input)
};

// The plans of size ph x pw, made on first use. Plans are never destroyed (a handful per process).
Plans plans_for(int ph, int pw) {
  std::lock_guard<std::mutex> lock(fftw_planner_mutex());
  static std::map<std::pair<int, int>, Plans> cache;
  auto it = cache.find({ph, pw});
  if (it != cache.end()) return it->second;
  const int bw = pw / 2 + 1;
  // Planning arrays from fftwf_malloc: aligned like the 16-float offsets used at execution.
  float* real = static_cast<float*>(fftwf_malloc(sizeof(float) * size_t(ph) * pw));
  fftwf_complex* cplx = static_cast<fftwf_complex*>(fftwf_malloc(sizeof(fftwf_complex) * size_t(ph) * bw));
  if (!real || !cplx) {
    fftwf_free(real);
    fftwf_free(cplx);
    fail("conv2d_fft: out of memory planning a ", ph, "x", pw, " transform");
  }
  Plans p;
  p.r2c = fftwf_plan_dft_r2c_2d(ph, pw, real, cplx, FFTW_ESTIMATE);
  p.c2r = fftwf_plan_dft_c2r_2d(ph, pw, cplx, real, FFTW_ESTIMATE);
  fftwf_free(real);
  fftwf_free(cplx);
  if (!p.r2c || !p.c2r) {
    if (p.r2c) fftwf_destroy_plan(p.r2c);
    if (p.c2r) fftwf_destroy_plan(p.c2r);
    fail("conv2d_fft: FFTW could not plan a ", ph, "x", pw, " real transform");
  }
  cache.emplace(std::make_pair(ph, pw), p);
  return p;
}

// ---- twiddles of the pruned kernel DFT --------------------------------------------------------

// Split-complex twiddles, in the workspace: ey [ph][k], ex [k][bwp] (zero in the padding bins),
// cw [bwp] the Hermitian weights c_fx of the inverse (0 in the padding). Angles are reduced mod
// ph / pw in integers and evaluated in double: every entry is the rounded float of its value.
struct Twiddles {
  float *eyr, *eyi, *exr, *exi, *cw;
  static size_t floats(const Geometry& g, int k) {
    return 2 * align16(size_t(g.ph) * k) + 2 * align16(size_t(k) * g.bwp) + align16(g.bwp);
  }
};

Twiddles make_twiddles(const Geometry& g, int k, float* mem) {
  Twiddles t;
  t.eyr = mem;
  t.eyi = t.eyr + align16(size_t(g.ph) * k);
  t.exr = t.eyi + align16(size_t(g.ph) * k);
  t.exi = t.exr + align16(size_t(k) * g.bwp);
  t.cw = t.exi + align16(size_t(k) * g.bwp);
  const int p = k / 2;
  const double two_pi = 6.283185307179586476925286766559;
  auto mod = [](long a, long m) { return ((a % m) + m) % m; };
  for (int fy = 0; fy < g.ph; ++fy)
    for (int a = 0; a < k; ++a) {
      const double ang = two_pi * double(mod(long(fy) * (p - a), g.ph)) / g.ph;
      t.eyr[fy * k + a] = static_cast<float>(std::cos(ang));
      t.eyi[fy * k + a] = static_cast<float>(-std::sin(ang));
    }
  for (int b = 0; b < k; ++b)
    for (int fx = 0; fx < g.bwp; ++fx) {
      const double ang = two_pi * double(mod(long(fx) * (p - b), g.pw)) / g.pw;
      t.exr[b * g.bwp + fx] = fx < g.bw ? static_cast<float>(std::cos(ang)) : 0.f;
      t.exi[b * g.bwp + fx] = fx < g.bw ? static_cast<float>(-std::sin(ang)) : 0.f;
    }
  for (int fx = 0; fx < g.bwp; ++fx) t.cw[fx] = fx >= g.bw ? 0.f : (fx == 0 || 2 * fx == g.pw) ? 1.f : 2.f;
  return t;
}

// ---- blocked spectra ---------------------------------------------------------------------------

// One spectra set of `planes` planes in the blocked layout: [blocks][planes][re bb | im bb].
struct Spectra {
  float* data;
  int planes;
  // The real part of bin f of plane q (the imaginary part is bb floats further on).
  float* bin(const Geometry& g, int q, int f) const {
    return data + (size_t(f / g.bb) * planes + q) * 2 * size_t(g.bb) + f % g.bb;
  }
  float* at(const Geometry& g, int block, int q) const { return data + (size_t(block) * planes + q) * 2 * size_t(g.bb); }
};

// Zeroes the lanes past nb in the last block of plane q (they go through the product with the
// others and must stay finite).
void zero_tail(const Geometry& g, const Spectra& S, int q) {
  const int used = g.nb - (g.blocks - 1) * g.bb;
  float* d = S.at(g, g.blocks - 1, q);
  for (int t = used; t < g.bb; ++t) d[t] = d[g.bb + t] = 0.f;
}

// 8 interleaved complex values c[0..16) <-> their real and imaginary parts.
typedef int v8i __attribute__((vector_size(32)));
inline void deinterleave8(const float* c, v8f& re, v8f& im) {
  const v8f a = load8(c), b = load8(c + 8);
#if defined(__clang__)
  re = __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14);
  im = __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15);
#else
  re = __builtin_shuffle(a, b, v8i{0, 2, 4, 6, 8, 10, 12, 14});
  im = __builtin_shuffle(a, b, v8i{1, 3, 5, 7, 9, 11, 13, 15});
#endif
}
inline void interleave8(v8f re, v8f im, float* c) {
#if defined(__clang__)
  store8(c, __builtin_shufflevector(re, im, 0, 8, 1, 9, 2, 10, 3, 11));
  store8(c + 8, __builtin_shufflevector(re, im, 4, 12, 5, 13, 6, 14, 7, 15));
#else
  store8(c, __builtin_shuffle(re, im, v8i{0, 8, 1, 9, 2, 10, 3, 11}));
  store8(c + 8, __builtin_shuffle(re, im, v8i{4, 12, 5, 13, 6, 14, 7, 15}));
#endif
}

// FFTW's interleaved [ph][bw] spectrum -> plane q of S (padding bins fx >= bw set to 0).
void scatter_interleaved(const Geometry& g, const float* c, const Spectra& S, int q) {
  for (int fy = 0; fy < g.ph; ++fy) {
    const float* row = c + 2 * size_t(fy) * g.bw;
    int x0 = 0;
    for (; x0 + kLanes <= g.bw; x0 += kLanes) {
      float* d = S.bin(g, q, fy * g.bwp + x0);
      v8f re, im;
      deinterleave8(row + 2 * x0, re, im);
      store8(d, re);
      store8(d + g.bb, im);
    }
    if (x0 < g.bwp) {  // the row's last, partly padding vector
      float* d = S.bin(g, q, fy * g.bwp + x0);
      for (int l = 0; l < kLanes; ++l) {
        const int fx = x0 + l;
        d[l] = fx < g.bw ? row[2 * fx] : 0.f;
        d[g.bb + l] = fx < g.bw ? row[2 * fx + 1] : 0.f;
      }
    }
  }
  zero_tail(g, S, q);
}

// Plane q of S -> FFTW's interleaved [ph][bw] spectrum.
void gather_interleaved(const Geometry& g, const Spectra& S, int q, float* c) {
  for (int fy = 0; fy < g.ph; ++fy) {
    float* row = c + 2 * size_t(fy) * g.bw;
    int x0 = 0;
    for (; x0 + kLanes <= g.bw; x0 += kLanes) {
      const float* d = S.bin(g, q, fy * g.bwp + x0);
      interleave8(load8(d), load8(d + g.bb), row + 2 * x0);
    }
    if (x0 < g.bw) {
      const float* d = S.bin(g, q, fy * g.bwp + x0);
      for (int l = 0; x0 + l < g.bw; ++l) {
        row[2 * (x0 + l)] = d[l];
        row[2 * (x0 + l) + 1] = d[g.bb + l];
      }
    }
  }
}

// Per-thread scratch of one team member.
struct Scratch {
  float* real;  // [ph, pw]
  float* spec;  // interleaved [ph][bw] (FFTW) or split [ph][bwp] re | im
  float* tmp;   // [k][bwp] re | im: the kernel DFT's intermediate
};

// Plane [h,w] -> zero padded [ph,pw] -> r2c -> plane q of S.
void transform_plane(const Geometry& g, const Plans& plans, const float* x, int h, int w, const Scratch& sc,
                     const Spectra& S, int q) {
  for (int i = 0; i < h; ++i) {
    float* row = sc.real + size_t(i) * g.pw;
    std::memcpy(row, x + size_t(i) * w, sizeof(float) * w);
    std::fill(row + w, row + g.pw, 0.f);
  }
  std::fill(sc.real + size_t(h) * g.pw, sc.real + size_t(g.ph) * g.pw, 0.f);
  fftwf_execute_dft_r2c(plans.r2c, sc.real, reinterpret_cast<fftwf_complex*>(sc.spec));
  scatter_interleaved(g, sc.spec, S, q);
}

// Plane q of S -> c2r -> crop to y [h,w], adding bias (y = v + bias) and ReLU when asked.
void inverse_plane(const Geometry& g, const Plans& plans, const Spectra& S, int q, int h, int w, float bias,
                   bool relu, const Scratch& sc, float* y) {
  gather_interleaved(g, S, q, sc.spec);
  fftwf_execute_dft_c2r(plans.c2r, reinterpret_cast<fftwf_complex*>(sc.spec), sc.real);
  for (int i = 0; i < h; ++i) {
    const float* src = sc.real + size_t(i) * g.pw;
    float* dst = y + size_t(i) * w;
    if (relu) {
      for (int j = 0; j < w; ++j) {
        const float v = src[j] + bias;
        dst[j] = v < 0.f ? 0.f : v;  // NaN < 0 is false: NaN propagates
      }
    } else {
      for (int j = 0; j < w; ++j) dst[j] = src[j] + bias;
    }
  }
}

// V vectors of row fy of G from T [k][bwp]: G[fy, x] = sum_a Ey[fy,a] T[a,x] for x in
// [x0, x0 + 8V), stored into plane q of S. V independent accumulator pairs hide the FMA latency.
template <int V>
inline void kernel_row(const Geometry& g, const Twiddles& tw, const float* tr, const float* ti, int k, int fy,
                       int x0, const Spectra& S, int q) {
  v8f gr[V], gi[V];
  for (int v = 0; v < V; ++v) gr[v] = gi[v] = v8f{};
  for (int a = 0; a < k; ++a) {
    const v8f er = splat8(tw.eyr[fy * k + a]), ei = splat8(tw.eyi[fy * k + a]);
    for (int v = 0; v < V; ++v) {
      const size_t o = size_t(a) * g.bwp + x0 + v * kLanes;
      const v8f t_r = load8(tr + o), t_i = load8(ti + o);
      gr[v] = fnma8(ei, t_i, fma8(er, t_r, gr[v]));  // (er + i ei)(tr + i ti)
      gi[v] = fma8(ei, t_r, fma8(er, t_i, gi[v]));
    }
  }
  for (int v = 0; v < V; ++v) {
    float* d = S.bin(g, q, fy * g.bwp + x0 + v * kLanes);
    store8(d, gr[v]);
    store8(d + g.bb, gi[v]);
  }
}

// Kernel w [k,k] -> scale * G (the pruned DFT of the file comment) -> plane q of S.
void kernel_spectrum(const Geometry& g, const Twiddles& tw, const float* w, int k, float scale, const Scratch& sc,
                     const Spectra& S, int q) {
  const int bwp = g.bwp;
  float* tr = sc.tmp;  // T [k][bwp] = scale * sum_b w[a,b] Ex[b,x]
  float* ti = sc.tmp + size_t(k) * bwp;
  for (int a = 0; a < k; ++a)
    for (int x0 = 0; x0 < bwp; x0 += kLanes) {
      v8f r{}, im{};
      for (int b = 0; b < k; ++b) {
        const v8f wab = splat8(scale * w[a * k + b]);
        r = fma8(wab, load8(tw.exr + size_t(b) * bwp + x0), r);
        im = fma8(wab, load8(tw.exi + size_t(b) * bwp + x0), im);
      }
      store8(tr + size_t(a) * bwp + x0, r);
      store8(ti + size_t(a) * bwp + x0, im);
    }
  for (int fy = 0; fy < g.ph; ++fy) {
    int x0 = 0;
    for (; x0 + 4 * kLanes <= bwp; x0 += 4 * kLanes) kernel_row<4>(g, tw, tr, ti, k, fy, x0, S, q);
    switch ((bwp - x0) / kLanes) {
      case 3: kernel_row<3>(g, tw, tr, ti, k, fy, x0, S, q); break;
      case 2: kernel_row<2>(g, tw, tr, ti, k, fy, x0, S, q); break;
      case 1: kernel_row<1>(g, tw, tr, ti, k, fy, x0, S, q); break;
      default: break;
    }
  }
  zero_tail(g, S, q);
}

// U[a, x0 .. x0+8V) = sum_fy conj(Ey[fy,a]) D[fy, x] for the split plane D [ph][bwp].
template <int V>
inline void gradient_row(const Geometry& g, const Twiddles& tw, const float* dr, const float* di, int k, int a,
                         int x0, float* ur, float* ui) {
  v8f r[V], im[V];
  for (int v = 0; v < V; ++v) r[v] = im[v] = v8f{};
  for (int fy = 0; fy < g.ph; ++fy) {
    const v8f er = splat8(tw.eyr[fy * k + a]), ei = splat8(tw.eyi[fy * k + a]);
    for (int v = 0; v < V; ++v) {
      const size_t o = size_t(fy) * g.bwp + x0 + v * kLanes;
      const v8f d_r = load8(dr + o), d_i = load8(di + o);
      r[v] = fma8(ei, d_i, fma8(er, d_r, r[v]));  // (er - i ei)(dr + i di)
      im[v] = fnma8(ei, d_r, fma8(er, d_i, im[v]));
    }
  }
  for (int v = 0; v < V; ++v) {
    store8(ur + size_t(a) * g.bwp + x0 + v * kLanes, r[v]);
    store8(ui + size_t(a) * g.bwp + x0 + v * kLanes, im[v]);
  }
}

// Plane q of S (a weight-gradient spectrum DG) -> dw [k,k] by the pruned inverse DFT.
void kernel_gradient(const Geometry& g, const Twiddles& tw, const Spectra& S, int q, int k, const Scratch& sc,
                     float* dw) {
  const int bwp = g.bwp;
  float* dr = sc.spec;  // DG split [ph][bwp]
  float* di = sc.spec + size_t(g.ph) * bwp;
  for (int f = 0; f < g.nb; f += kLanes) {
    const float* d = S.bin(g, q, f);
    store8(dr + f, load8(d));
    store8(di + f, load8(d + g.bb));
  }
  float* ur = sc.tmp;  // U [k][bwp]
  float* ui = sc.tmp + size_t(k) * bwp;
  for (int a = 0; a < k; ++a) {
    int x0 = 0;
    for (; x0 + 4 * kLanes <= bwp; x0 += 4 * kLanes) gradient_row<4>(g, tw, dr, di, k, a, x0, ur, ui);
    switch ((bwp - x0) / kLanes) {
      case 3: gradient_row<3>(g, tw, dr, di, k, a, x0, ur, ui); break;
      case 2: gradient_row<2>(g, tw, dr, di, k, a, x0, ur, ui); break;
      case 1: gradient_row<1>(g, tw, dr, di, k, a, x0, ur, ui); break;
      default: break;
    }
  }
  const float inv_n = 1.f / (float(g.ph) * float(g.pw));
  for (int a = 0; a < k; ++a)
    for (int b = 0; b < k; ++b) {
      v8f sum{};  // Re(U conj(Ex)) weighted by c_fx (0 in the padding bins)
      for (int x0 = 0; x0 < bwp; x0 += kLanes) {
        const size_t ua = size_t(a) * bwp + x0, eb = size_t(b) * bwp + x0;
        const v8f re = fma8(load8(ur + ua), load8(tw.exr + eb), load8(ui + ua) * load8(tw.exi + eb));
        sum = fma8(load8(tw.cw + x0), re, sum);
      }
      dw[a * k + b] = hsum8(sum) * inv_n;
    }
}

// ---- phase 2: the per-bin complex matrix product -------------------------------------------------

// out(i,j) = sum_r A(i,r) * op(B(j,r)) at every bin of one block, op = conj when CONJ. Plane
// indices: A(i,r) = i*a_i + r*a_r of set A, B(j,r) = j*b_j + r*b_r, out(i,j) = i*o_i + j*o_j.
struct Product {
  Spectra A, B, O;
  int a_i, a_r, b_j, b_r, o_i, o_j;
  int I, J, R;
};

// A TI x TJ tile of products over 8 bins. a, b, o point at lane 0 of plane (i0,0), (j0,0),
// (i0,j0) of the block; strides in floats; re at p, im at p + bb.
template <int TI, int TJ, bool CONJ>
inline void tile(const float* a, size_t a_i, size_t a_r, const float* b, size_t b_j, size_t b_r, int R, size_t bb,
                 float* o, size_t o_i, size_t o_j) {
  v8f cr[TI][TJ], ci[TI][TJ];
  for (int ti = 0; ti < TI; ++ti)
    for (int tj = 0; tj < TJ; ++tj) cr[ti][tj] = ci[ti][tj] = v8f{};
  for (int r = 0; r < R; ++r) {
    v8f ar[TI], ai[TI];
    for (int ti = 0; ti < TI; ++ti) {
      const float* p = a + ti * a_i + r * a_r;
      ar[ti] = load8(p);
      ai[ti] = load8(p + bb);
    }
    for (int tj = 0; tj < TJ; ++tj) {
      const float* p = b + tj * b_j + r * b_r;
      const v8f br = load8(p), bi = load8(p + bb);
      for (int ti = 0; ti < TI; ++ti) {
        cr[ti][tj] = fma8(ar[ti], br, cr[ti][tj]);
        if (CONJ) {  // a conj(b) = ar br + ai bi + i (ai br - ar bi)
          cr[ti][tj] = fma8(ai[ti], bi, cr[ti][tj]);
          ci[ti][tj] = fnma8(ar[ti], bi, fma8(ai[ti], br, ci[ti][tj]));
        } else {  // a b = ar br - ai bi + i (ar bi + ai br)
          cr[ti][tj] = fnma8(ai[ti], bi, cr[ti][tj]);
          ci[ti][tj] = fma8(ar[ti], bi, fma8(ai[ti], br, ci[ti][tj]));
        }
      }
    }
  }
  for (int ti = 0; ti < TI; ++ti)
    for (int tj = 0; tj < TJ; ++tj) {
      float* p = o + ti * o_i + tj * o_j;
      store8(p, cr[ti][tj]);
      store8(p + bb, ci[ti][tj]);
    }
}

template <bool CONJ>
void product_block(const Geometry& g, const Product& p, int blk) {
  const size_t bb = g.bb, ps = 2 * bb;  // floats per plane in a block
  const float* A = p.A.at(g, blk, 0);
  const float* B = p.B.at(g, blk, 0);
  float* O = p.O.at(g, blk, 0);
  const size_t a_i = p.a_i * ps, a_r = p.a_r * ps, b_j = p.b_j * ps, b_r = p.b_r * ps, o_i = p.o_i * ps,
               o_j = p.o_j * ps;
  for (int i = 0; i < p.I; i += 2) {
    const bool i2 = i + 1 < p.I;
    for (int j = 0; j < p.J; j += 2) {
      const bool j2 = j + 1 < p.J;
      for (size_t v = 0; v < bb; v += kLanes) {
        const float* a = A + i * a_i + v;
        const float* b = B + j * b_j + v;
        float* o = O + i * o_i + j * o_j + v;
        if (i2 && j2)
          tile<2, 2, CONJ>(a, a_i, a_r, b, b_j, b_r, p.R, bb, o, o_i, o_j);
        else if (i2)
          tile<2, 1, CONJ>(a, a_i, a_r, b, b_j, b_r, p.R, bb, o, o_i, o_j);
        else if (j2)
          tile<1, 2, CONJ>(a, a_i, a_r, b, b_j, b_r, p.R, bb, o, o_i, o_j);
        else
          tile<1, 1, CONJ>(a, a_i, a_r, b, b_j, b_r, p.R, bb, o, o_i, o_j);
      }
    }
  }
}

// Call from inside the team: blocks shared out dynamically (they write disjoint outputs).
void product(const Geometry& g, const Product& p, bool conj) {
#pragma omp for schedule(dynamic, 1)
  for (int blk = 0; blk < g.blocks; ++blk) {
    if (conj)
      product_block<true>(g, p, blk);
    else
      product_block<false>(g, p, blk);
  }
}

// ---- cost model -------------------------------------------------------------------------------

// Seconds per call on one core of the development machine (Zen 4 VM), each pass alike (forward,
// backward data and backward weights make the same transforms and products). Fitted to the
// fastest of 3 single-threaded runs of bench_conv_cpu over the IsoNet-1/2 layers at batch 1, 2,
// 4, 8, 16 and sides 32..128 plus small shapes (bench/results/2026-11-23_cpu_conv_fft.md):
// median error 16%, 90% of shapes within 28%, at most 48%. FFT path: the FFTW transforms of the
// n*(c_in+c_out) data planes (the table's time, times a factor for the padding copies and the
// scatter into blocks); the per-bin products per complex multiply-add; the spectra written and
// read back, per byte, the data planes' and the kernels' apart (the kernel DFT's arithmetic
// grows with the kernel spectra and fits into their term); a fixed cost per call.
constexpr double kTransformScale = 1.39;
constexpr double kProductSecPerCmac = 1.69e-10;
constexpr double kDataSpectraSecPerByte = 0.15e-10;
constexpr double kKernelSpectraSecPerByte = 1.06e-10;
constexpr double kFftSecPerCall = 4.6e-6;
// Direct path per multiply-add: the AVX2 kernels (k = 3, 5, 7) reach ~50 GMAC/s per core on wide
// layers, about half with one input or output channel, and fill register blocks of 6 columns
// (an 8-wide plane costs as much as a 12-wide one); im2col + sgemm (other k) ~30 forward and
// backward weights on IsoNet-1's 9x9 conv1 (1 -> 64). Its backward data (~5 GMAC/s: the GEMM
// has one output row) is left out on purpose: no model runs it (the input needs no gradient),
// and counting it would make FFT win there while losing 2x on the passes that do run.
constexpr double kDirectSecPerMac = 1.0 / 50e9;
constexpr double kDirectThinSecPerMac = 1.0 / 25e9;
constexpr double kIm2colSecPerMac = 1.0 / 30e9;
constexpr double kFftMinDirectSeconds = 50e-6;
// Auto never takes the FFT when its workspace (the spectra of all planes) would pass this: the
// spectra grow with c_in*c_out as well as with the data, e.g. IsoNet-2's dec2 (96 -> 32) on
// 512x512 slices at batch 4 would need ~1.6 GB. Callers that budget memory (restore) measure the
// network at small sizes and scale, which a jump of this size would defeat.
constexpr double kFftMaxWorkspaceBytes = 512.0 * (1 << 20);

// transform_ns: the table's ns per point*log2(points) for (ph, pw).
double fft_seconds(const Conv2dShape& s, const Geometry& g, double transform_ns) {
  const double points = double(g.ph) * g.pw;
  const double data_planes = double(s.n) * (s.c_in + s.c_out);
  const double kernel_planes = double(s.c_in) * s.c_out;
  const double spectrum_bytes = double(g.nb) * 2 * sizeof(float) * 2;  // written, then read
  return data_planes * points * std::log2(std::max(2.0, points)) * transform_ns * 1e-9 * kTransformScale +
         double(s.n) * s.c_in * s.c_out * g.nb * kProductSecPerCmac +
         data_planes * spectrum_bytes * kDataSpectraSecPerByte +
         kernel_planes * spectrum_bytes * kKernelSpectraSecPerByte + kFftSecPerCall;
}

double direct_seconds(const Conv2dShape& s) {
  const double macs = double(s.n) * s.c_in * s.c_out * s.k * s.k * s.h * s.w;
  if (s.k != 3 && s.k != 5 && s.k != 7) return macs * kIm2colSecPerMac;
  const double blocks = double(round_up(s.w, 6)) / s.w;
  return macs * blocks * (s.c_in == 1 || s.c_out == 1 ? kDirectThinSecPerMac : kDirectSecPerMac);
}

// Floats of workspace for shape s computed with geometry g: up to 15 floats to reach a 64-byte
// boundary (aligned_base), the three spectra sets, the twiddles, and every team thread's scratch.
size_t workspace_floats(const Conv2dShape& s, const Geometry& g) {
  return 16 + g.set_floats(g.p_in) + g.set_floats(g.p_out) + g.set_floats(g.p_w) + Twiddles::floats(g, s.k) +
         g.thread_floats(s.k) * size_t(conv_threads());
}

// ---- the three passes -----------------------------------------------------------------------------

// The workspace carved for one call: aligned base, the three spectra sets, twiddles, scratch.
struct Work {
  Geometry g;
  Plans plans;
  Spectra in, out, w;  // planes n*c_in, n*c_out, c_out*c_in
  Twiddles tw;
  float* scratch;      // team threads x thread_floats
  size_t thread_floats;
  int threads;
};

// The workspace must be float-aligned; its first float at a 64-byte boundary at most 15 floats
// in (conv2d_fft_workspace_floats reserves them), so every part below starts 64-byte aligned.
float* aligned_base(float* workspace, const char* op) {
  check_not_null(workspace, op, "workspace");
  const uintptr_t p = reinterpret_cast<uintptr_t>(workspace);
  ISONET_CHECK(p % alignof(float) == 0, op, ": workspace is not aligned to a float");
  return reinterpret_cast<float*>((p + 63) / 64 * 64);
}

Work carve(const Conv2dShape& s, float* workspace, const char* op) {
  Work wk;
  const Choice choice = choose(s);
  wk.g = choice.g;
  float* p = aligned_base(workspace, op);
  wk.in = {p, wk.g.p_in};
  p += wk.g.set_floats(wk.g.p_in);
  wk.out = {p, wk.g.p_out};
  p += wk.g.set_floats(wk.g.p_out);
  wk.w = {p, wk.g.p_w};
  p += wk.g.set_floats(wk.g.p_w);
  wk.tw = make_twiddles(wk.g, s.k, p);
  p += Twiddles::floats(wk.g, s.k);
  wk.scratch = p;
  wk.thread_floats = wk.g.thread_floats(s.k);
  // FFTW's new-array execute requires the planning alignment (fftwf_malloc's): check it once.
  ISONET_CHECK(fftwf_alignment_of(p) == 0 && wk.thread_floats % 16 == 0 && wk.g.real_floats() % 16 == 0, op,
               ": internal error, FFT scratch misaligned");
  wk.plans = plans_for(wk.g.ph, wk.g.pw);
  wk.threads = conv_team_size(choice.seconds / kDirectSecPerMac);
  return wk;
}

Scratch thread_scratch(const Work& wk) {
  Scratch sc;
  sc.real = wk.scratch + size_t(omp_get_thread_num()) * wk.thread_floats;
  sc.spec = sc.real + wk.g.real_floats();
  sc.tmp = sc.spec + wk.g.spec_floats();
  return sc;
}

void check_pointers(const char* op, std::initializer_list<std::pair<const void*, const char*>> ptrs) {
  for (const auto& p : ptrs) check_not_null(p.first, op, p.second);
}

// Forward and backward data: the spectra of src [n, src.planes/n, h, w] (into `src`) and of the
// kernels (into wk.w, scaled by the inverse transform's 1/(ph*pw)), the per-bin product `prod`
// (conjugating the kernels' spectra for backward data) into prod.O, and the inverse transform of
// its planes cropped into dst [n, prod.O.planes/n, h, w] with bias (may be null) and ReLU.
void kernel_product_pass(const Conv2dShape& s, const Work& wk, const float* src, const Spectra& src_set,
                         const float* weight, const Product& prod, bool conj, const float* bias, bool relu,
                         float* dst) {
  const Geometry& g = wk.g;
  const size_t plane = size_t(s.h) * s.w, kk = size_t(s.k) * s.k;
  const float scale = 1.f / (float(g.ph) * float(g.pw));
  const int src_planes = src_set.planes, dst_planes = prod.O.planes, dst_channels = dst_planes / s.n;
#pragma omp parallel num_threads(wk.threads)
  {
    const Scratch sc = thread_scratch(wk);
#pragma omp for schedule(dynamic, 1)
    for (int it = 0; it < src_planes + g.p_w; ++it) {
      if (it < src_planes)
        transform_plane(g, wk.plans, src + size_t(it) * plane, s.h, s.w, sc, src_set, it);
      else
        kernel_spectrum(g, wk.tw, weight + size_t(it - src_planes) * kk, s.k, scale, sc, wk.w, it - src_planes);
    }
    product(g, prod, conj);
#pragma omp for schedule(dynamic, 1)
    for (int q = 0; q < dst_planes; ++q)
      inverse_plane(g, wk.plans, prod.O, q, s.h, s.w, bias ? bias[q % dst_channels] : 0.f, relu, sc,
                    dst + size_t(q) * plane);
  }
}

}  // namespace

bool conv2d_fft_preferred(const Conv2dShape& s) {
  check_conv2d_shape(s, "conv2d_fft_preferred");
  // A 1x1 conv has no spatial sum to save: the FFT would do the same channel products per bin
  // plus the transforms. Otherwise FFT only when clearly ahead: the model's typical error is
  // ~20%, and a tie is better left to the direct path (no transform rounding, less memory).
  // Calls the direct path finishes within kFftMinDirectSeconds stay direct too: the FFT could
  // save tens of microseconds there (the test shapes), not worth the transforms' rounding. So do
  // shapes whose FFT workspace would pass kFftMaxWorkspaceBytes.
  // The cheap tests first: every conv call with Auto asks this, most of them small.
  if (s.k == 1) return false;
  const double direct = direct_seconds(s);
  if (direct < kFftMinDirectSeconds) return false;
  const Choice choice = choose(s);
  if (double(workspace_floats(s, choice.g)) * sizeof(float) > kFftMaxWorkspaceBytes) return false;
  return choice.seconds < 0.8 * direct;
}

size_t conv2d_fft_workspace_floats(const Conv2dShape& s) {
  check_conv2d_shape(s, "conv2d_fft_workspace_floats");
  return workspace_floats(s, geometry(s));
}

void conv2d_fft_forward(const Conv2dShape& s, const float* x, const float* weight, const float* bias, float* y,
                        bool fuse_relu, float* workspace) {
  const char* op = "conv2d_fft_forward";
  check_conv2d_shape(s, op);
  check_pointers(op, {{x, "x"}, {weight, "weight"}, {y, "y"}});
  const Work wk = carve(s, workspace, op);
  // Y[n,o] = sum_c G[o,c] X[n,c]: A = X (i=n, r=c), B = G (j=o, r=c), out = Y (n*c_out + o).
  const Product prod{wk.in, wk.w, wk.out, s.c_in, 1, s.c_in, 1, s.c_out, 1, s.n, s.c_out, s.c_in};
  kernel_product_pass(s, wk, x, wk.in, weight, prod, false, bias, fuse_relu, y);
}

void conv2d_fft_backward_data(const Conv2dShape& s, const float* dy, const float* weight, float* dx,
                              float* workspace) {
  const char* op = "conv2d_fft_backward_data";
  check_conv2d_shape(s, op);
  check_pointers(op, {{dy, "dy"}, {weight, "weight"}, {dx, "dx"}});
  const Work wk = carve(s, workspace, op);
  // DX[n,c] = sum_o DY[n,o] conj(G[o,c]): A = DY (i=n, r=o), B = G (j=c, r=o), out = DX (n*c_in + c).
  const Product prod{wk.out, wk.w, wk.in, s.c_out, 1, 1, s.c_in, s.c_in, 1, s.n, s.c_in, s.c_out};
  kernel_product_pass(s, wk, dy, wk.out, weight, prod, true, nullptr, false, dx);
}

void conv2d_fft_backward_weights(const Conv2dShape& s, const float* x, const float* dy, float* dweight,
                                 float* dbias, float* workspace) {
  const char* op = "conv2d_fft_backward_weights";
  check_conv2d_shape(s, op);
  check_pointers(op, {{x, "x"}, {dy, "dy"}, {dweight, "dweight"}});
  const Work wk = carve(s, workspace, op);
  const Geometry& g = wk.g;
  const size_t plane = size_t(s.h) * s.w, kk = size_t(s.k) * s.k;
  // DG[o,c] = sum_n DY[n,o] conj(X[n,c]): A = DY (i=o, r=n), B = X (j=c, r=n), out = DG (o*c_in + c).
  const Product prod{wk.out, wk.in, wk.w, 1, s.c_out, 1, s.c_in, s.c_in, 1, s.c_out, s.c_in, s.n};
#pragma omp parallel num_threads(wk.threads)
  {
    const Scratch sc = thread_scratch(wk);
#pragma omp for schedule(dynamic, 1)
    for (int it = 0; it < g.p_in + g.p_out; ++it) {
      if (it < g.p_in)
        transform_plane(g, wk.plans, x + size_t(it) * plane, s.h, s.w, sc, wk.in, it);
      else
        transform_plane(g, wk.plans, dy + size_t(it - g.p_in) * plane, s.h, s.w, sc, wk.out, it - g.p_in);
    }
    product(g, prod, true);
#pragma omp for schedule(dynamic, 1)
    for (int q = 0; q < g.p_w; ++q) kernel_gradient(g, wk.tw, wk.w, q, s.k, sc, dweight + size_t(q) * kk);
  }
  if (dbias) conv_bias_gradient(s, dy, dbias, wk.threads);
}

}  // namespace cpu
}  // namespace isonet
