// test_conv2d_tf32_gpu_math.cpp: the CUDA TF32 tensor-core convolution (kernels/conv2d_tf32.cu)
// replayed on the host, lane by lane. Every index function its kernel calls (conv2d_gpu_math.h:
// block decoding, staging with TF32 rounding, the tap-offset table, the per-lane A/B fragment
// loads, the output coordinates, the tiling plan) runs here over the same launch geometry and
// shared-memory layout (a NaN-poisoned word array, so a word read before it is staged shows up),
// and mma.sync.m16n8k8.tf32 is emulated from its PTX definition, written out independently below
// (the fragment tables of the PTX ISA). The result is compared with the direct CPU convolution on
// TF32-rounded operands (tight: the products are exact, only the summation order differs) and,
// with the TF32 error bound, on the original operands. Deliberate bugs (fragment tables, a
// missing rounding, a dropped split) must fail it. Runs without a GPU.
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "kernels/conv2d.h"
#include "kernels/conv2d_gpu_math.h"
#include "test_util.h"

namespace {

using namespace isonet;
using namespace isonet::gpu;
using namespace isonet::gpu::tf32conv;
using isonet::test::absolute;
using isonet::test::random_vector;

// Deliberate bugs the replay can inject, to show that the comparison catches them.
// UnroundedOperand: the weights (forward) or x (backward weights) staged without TF32 rounding;
// DropLastSplit: the last split-K split (forward) or slice (backward weights) never runs.
enum class Bug { None, ASwap12, BRowsSwapped, CColsSwapped, UnroundedOperand, DropLastSplit, TapOffByOne };

// ---------------------------------------------------------------------------------------------
// mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32, from the PTX ISA fragment tables (written
// here as literals, not with conv2d_gpu_math.h's a_row/.../c_col, so the kernel's use of those is
// checked against an independent statement of the layout). g = lane >> 2, t = lane & 3:
//   A: a0 (g, t)   a1 (g+8, t)   a2 (g, t+4)   a3 (g+8, t+4)
//   B: b0 (t, g)   b1 (t+4, g)
//   C: c0 (g, 2t)  c1 (g, 2t+1)  c2 (g+8, 2t)  c3 (g+8, 2t+1)
// D = A*B + C with the products summed in order in fp32 (the tensor core's order and rounding
// differ; the tight comparison is made against the CPU, not against this order).
// ---------------------------------------------------------------------------------------------
struct WarpRegs {
  float a[32][4], b[32][2], c[32][4];
};

void emulate_mma(WarpRegs& w, Bug bug) {
  float A[16][8], B[8][8], C[16][8];
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane >> 2, t = lane & 3;
    const int a_rows[4] = {g, g + 8, g, g + 8}, a_cols[4] = {t, t, t + 4, t + 4};
    for (int r = 0; r < 4; ++r) {
      const int rr = bug == Bug::ASwap12 && (r == 1 || r == 2) ? 3 - r : r;
      A[a_rows[rr]][a_cols[rr]] = w.a[lane][r];
    }
    const int b_rows[2] = {t, t + 4};
    for (int r = 0; r < 2; ++r) B[b_rows[bug == Bug::BRowsSwapped ? 1 - r : r]][g] = w.b[lane][r];
    const int c_rows[4] = {g, g, g + 8, g + 8};
    const int c_cols[4] = {2 * t, 2 * t + 1, 2 * t, 2 * t + 1};
    for (int r = 0; r < 4; ++r) C[c_rows[r]][c_cols[r]] = w.c[lane][r];
  }
  float D[16][8];
  for (int i = 0; i < 16; ++i)
    for (int n = 0; n < 8; ++n) {
      float acc = C[i][n];
      for (int j = 0; j < 8; ++j) acc += A[i][j] * B[j][n];
      D[i][n] = acc;
    }
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane >> 2, t = lane & 3;
    const int c_rows[4] = {g, g, g + 8, g + 8};
    int c_cols[4] = {2 * t, 2 * t + 1, 2 * t, 2 * t + 1};
    if (bug == Bug::CColsSwapped) std::swap(c_cols[0], c_cols[1]);
    for (int r = 0; r < 4; ++r) w.c[lane][r] = D[c_rows[r]][c_cols[r]];
  }
}

// ---------------------------------------------------------------------------------------------
// The kernel conv_tf32<NT, FLIP> and the split-K reduction, block by block, warp by warp.
// ---------------------------------------------------------------------------------------------
template <bool FLIP>
std::vector<float> replay(const ConvArgs& a, const Plan& p, Bug bug = Bug::None) {
  const Smem& L = p.smem;
  const int NT = p.co_t / 8;
  const size_t plane = static_cast<size_t>(a.h) * a.w;
  std::vector<float> out(p.out_floats, std::numeric_limits<float>::quiet_NaN());
  std::vector<float> partial(p.splits > 1 ? p.workspace_floats() : 0, std::numeric_limits<float>::quiet_NaN());
  std::vector<float> smem(L.words);
  for (long long b = 0; b < p.blocks; ++b) {
    const BlockCoords bc = decode_block(static_cast<unsigned>(b), p.tiles_x, p.tiles_y, p.co_tiles, p.splits);
    if (bug == Bug::DropLastSplit && p.splits > 1 && bc.split == p.splits - 1) continue;
    const int x0 = bc.tx * kTileW, y0 = bc.ty * kTileH, co0 = bc.ct * p.co_t;
    std::fill(smem.begin(), smem.end(), std::numeric_limits<float>::quiet_NaN());
    float* in_s = smem.data();
    float* w_s = in_s + L.w_offset;
    int* tap_s = reinterpret_cast<int*>(in_s + L.tap_offset);  // the kernel's aliasing, replayed
    for (int i = 0; i < L.taps; ++i) {
      const int off = tap_offset(L, a.k, i) + (bug == Bug::TapOffByOne && i == 5 ? 1 : 0);
      std::memcpy(tap_s + i, &off, sizeof off);
    }
    std::vector<WarpRegs> warps(kWarps);
    std::vector<std::vector<float>> acc(kWarps, std::vector<float>(kMTiles * NT * 32 * 4, 0.f));
    const int kc_end = std::min((bc.split + 1) * p.chunks_per_split, p.chunks);
    for (int kc = bc.split * p.chunks_per_split; kc < kc_end; ++kc) {
      const int ci0 = kc * kCI, nci = std::min(kCI, a.cin - ci0);
      for (int i = 0; i < kCI * L.in_plane; ++i) in_s[i] = stage_input_value(a, L, bc.img, ci0, nci, y0, x0, i);
      for (int i = 0; i < L.taps * L.w_stride; ++i) {
        w_s[i] = stage_weight_value<FLIP>(a, L, co0, p.co_t, ci0, nci, i);
        if (bug == Bug::UnroundedOperand) {  // the same word without the TF32 rounding
          const int tap = i / L.w_stride, o = i % L.w_stride, kk = a.k * a.k;
          if (o < p.co_t && co0 + o < a.cout && tap / kk < nci)
            w_s[i] = conv_weight<FLIP>(a, a.k, co0 + o, ci0 + tap / kk, (tap % kk) / a.k, tap % a.k);
        }
      }
      for (int s = 0; s < active_tap_groups(nci, a.k); ++s)
        for (int warp = 0; warp < kWarps; ++warp)
          for (int m = 0; m < kMTiles; ++m)
            for (int nt = 0; nt < NT; ++nt) {
              WarpRegs& w = warps[warp];
              for (int lane = 0; lane < 32; ++lane) {
                load_a(in_s, L, lane_taps(tap_s, lane, s), warp, m, lane, w.a[lane]);
                load_b(w_s, L, nt, lane, s, w.b[lane]);
                for (int r = 0; r < 4; ++r) w.c[lane][r] = acc[warp][((m * NT + nt) * 32 + lane) * 4 + r];
              }
              emulate_mma(w, bug);
              for (int lane = 0; lane < 32; ++lane)
                for (int r = 0; r < 4; ++r) acc[warp][((m * NT + nt) * 32 + lane) * 4 + r] = w.c[lane][r];
            }
    }
    float* dst = p.splits > 1 ? partial.data() + static_cast<size_t>(bc.split) * p.out_floats : out.data();
    for (int warp = 0; warp < kWarps; ++warp)
      for (int m = 0; m < kMTiles; ++m) {
        const int oy = y0 + mtile_row(warp, m);
        if (oy >= a.h) continue;
        for (int nt = 0; nt < NT; ++nt)
          for (int lane = 0; lane < 32; ++lane)
            for (int r = 0; r < 4; ++r) {
              const int ox = x0 + mtile_col(m) + c_row(lane, r), oc = co0 + 8 * nt + c_col(lane, r);
              if (ox >= a.w || oc >= a.cout) continue;
              const float v = acc[warp][((m * NT + nt) * 32 + lane) * 4 + r];
              const size_t e = (static_cast<size_t>(bc.img) * a.cout + oc) * plane + static_cast<size_t>(oy) * a.w + ox;
              dst[e] = p.splits > 1 ? v : conv_epilogue(v, a, oc);
            }
      }
  }
  if (p.splits > 1)  // conv_split_reduce (conv2d.cu)
    for (size_t e = 0; e < p.out_floats; ++e) {
      float s = partial[e];
      for (int k = 1; k < p.splits; ++k) s += partial[static_cast<size_t>(k) * p.out_floats + e];
      out[e] = conv_epilogue(s, a, static_cast<int>((e / plane) % a.cout));
    }
  return out;
}

// The kernel conv_wgrad_tf32<K, MT> and conv_wgrad_reduce (conv2d.cu: warp w of a block sums
// partials w, w+8, ..., then warp 0 adds the 8 sums in order), for x [n,cin,h,w], dy [n,cout,h,w].
std::vector<float> replay_wgrad(const float* x, const float* dy, int n, int cin, int cout, int h, int w, int k,
                                const tf32wgrad::Plan& p, Bug bug = Bug::None) {
  namespace W = tf32wgrad;
  const W::Smem& L = p.smem;
  const int MT = p.co_t / 16;
  std::vector<float> partial(p.workspace_floats(), std::numeric_limits<float>::quiet_NaN());
  std::vector<float> smem(L.words);
  const long long blocks = static_cast<long long>(p.slices) * p.ci_tiles * p.co_tiles;
  for (long long b = 0; b < blocks; ++b) {
    const W::BlockCoords bc = W::decode_block(static_cast<unsigned>(b), p.co_tiles, p.ci_tiles);
    if (bug == Bug::DropLastSplit && p.slices > 1 && bc.slice == p.slices - 1) continue;
    const int co0 = bc.ct * p.co_t, ci0 = bc.it * L.ci_t, nci = std::min(L.ci_t, cin - ci0);
    const int ntiles = active_tap_groups(nci, k);
    std::fill(smem.begin(), smem.end(), std::numeric_limits<float>::quiet_NaN());
    float* dy_s = smem.data();
    float* x_s = dy_s + L.x_offset;
    int* tap_s = reinterpret_cast<int*>(dy_s + L.tap_offset);
    for (int i = 0; i < L.taps; ++i) {
      const int off = W::tap_offset(L, k, i) + (bug == Bug::TapOffByOne && i == 5 ? 1 : 0);
      std::memcpy(tap_s + i, &off, sizeof off);
    }
    // acc[warp][m][nt / 8][lane][r] (warp w owns n-tiles w, w+8, ...)
    const int ntw = W::ntiles_per_warp(k);
    std::vector<float> acc(size_t(W::kWarps) * MT * ntw * 32 * 4, 0.f);
    auto A = [&](int warp, int m, int i, int lane, int r) -> float& {
      return acc[((((size_t(warp) * MT + m) * ntw + i) * 32 + lane) * 4) + r];
    };
    const long long t_end = std::min(bc.slice * p.tiles_per_slice + p.tiles_per_slice, p.tiles);
    for (long long t = bc.slice * p.tiles_per_slice; t < t_end; ++t) {
      const W::TileCoords tc = W::decode_tile(t, p.tiles_x, p.tiles_y);
      for (int i = 0; i < p.co_t * W::kDyStride; ++i) dy_s[i] = W::stage_dy_value(dy, cout, h, w, co0, tc, i);
      for (int i = 0; i < L.ci_t * L.x_plane; ++i) {
        x_s[i] = W::stage_x_value(x, cin, h, w, k, L, ci0, nci, tc, i);
        if (bug == Bug::UnroundedOperand && x_s[i] != 0.f) {  // the same word without the TF32 rounding
          const int c = i / L.x_plane, rr = i % L.x_plane, gy = tc.y0 + rr / L.x_w - k / 2,
                    gx = tc.x0 + rr % L.x_w - k / 2;
          x_s[i] = x[(size_t(tc.img) * cin + ci0 + c) * h * w + size_t(gy) * w + gx];
        }
      }
      for (int row = 0; row < W::kTileH; ++row)
        for (int col0 = 0; col0 < W::kTileW; col0 += 8)
          for (int warp = 0; warp < W::kWarps; ++warp)
            for (int i = 0; warp + 8 * i < ntiles; ++i)
              for (int m = 0; m < MT; ++m) {
                WarpRegs regs;
                for (int lane = 0; lane < 32; ++lane) {
                  W::load_a(dy_s, m, lane, row, col0, regs.a[lane]);
                  W::load_b(x_s, L, lane, W::lane_tap(tap_s, lane, warp + 8 * i), row, col0, regs.b[lane]);
                  for (int r = 0; r < 4; ++r) regs.c[lane][r] = A(warp, m, i, lane, r);
                }
                emulate_mma(regs, bug);
                for (int lane = 0; lane < 32; ++lane)
                  for (int r = 0; r < 4; ++r) A(warp, m, i, lane, r) = regs.c[lane][r];
              }
    }
    float* out = partial.data() + size_t(bc.slice) * p.dw;
    for (int warp = 0; warp < W::kWarps; ++warp)
      for (int i = 0; warp + 8 * i < ntiles; ++i)
        for (int m = 0; m < MT; ++m)
          for (int lane = 0; lane < 32; ++lane)
            for (int r = 0; r < 4; ++r) {
              const size_t e = W::dw_index(cin, cout, k, co0, ci0, nci, m, warp + 8 * i, lane, r);
              if (e != size_t(-1)) out[e] = A(warp, m, i, lane, r);
            }
  }
  std::vector<float> dweight(p.dw);
  for (size_t e = 0; e < p.dw; ++e) {
    float sums[8] = {};
    for (int wp = 0; wp < 8; ++wp)
      for (int q = wp; q < p.slices; q += 8) sums[wp] += partial[size_t(q) * p.dw + e];
    float total = sums[0];
    for (int wp = 1; wp < 8; ++wp) total += sums[wp];
    dweight[e] = total;
  }
  return dweight;
}

// A backward-weights plan with the slice count forced (co_t as the plan picks it).
tf32wgrad::Plan forced_wgrad_plan(int n, int cin, int cout, int h, int w, int k, int slices) {
  tf32wgrad::Plan p = tf32wgrad::plan(n, cin, cout, h, w, k);
  p.tiles_per_slice = (p.tiles + slices - 1) / slices;
  p.slices = static_cast<int>((p.tiles + p.tiles_per_slice - 1) / p.tiles_per_slice);
  return p;
}

// A plan with co_t and the split count forced (the real plan() picks them from the grid size; the
// replay checks every variant on small shapes).
Plan forced_plan(int n, int cin, int cout, int h, int w, int k, int co_t, int splits) {
  Plan p = plan(n, cin, cout, h, w, k);
  p.co_t = co_t;
  p.co_tiles = ceil_div(cout, co_t);
  p.chunks_per_split = ceil_div(p.chunks, std::min(splits, p.chunks));
  p.splits = ceil_div(p.chunks, p.chunks_per_split);
  p.blocks = static_cast<long long>(n) * p.tiles_x * p.tiles_y * p.co_tiles * p.splits;
  p.smem = smem_layout(k, co_t);
  return p;
}

std::vector<float> rounded(std::vector<float> v) {
  for (float& x : v) x = tf32_round(x);
  return v;
}

// Elements outside factor*eps*sqrt(L)*mag (check_normalized's bound), NaN counted; for the bug cases.
size_t count_outside(const std::vector<float>& ref, const std::vector<float>& mag, const std::vector<float>& got,
                     double L, double factor = 6.0) {
  size_t bad = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double diff = std::fabs(double(got[i]) - ref[i]);
    bad += std::isnan(got[i]) || !(diff <= factor * FLT_EPSILON * std::sqrt(L) * mag[i] + 1e-30);
  }
  return bad;
}

struct Case {
  int n, cin, cout, h, w, k;
  bool bias, relu;
};

std::string describe(const Case& c) {
  return "n=" + std::to_string(c.n) + " cin=" + std::to_string(c.cin) + " cout=" + std::to_string(c.cout) +
         " h=" + std::to_string(c.h) + " w=" + std::to_string(c.w) + " k=" + std::to_string(c.k);
}

// The CPU references of a forward (FLIP false) or backward-data (FLIP true) case: the direct
// convolution on TF32-rounded operands (ref_tf32), on the original ones (ref), and the magnitude
// sum |terms| (mag). The layer is (c_in = cin, c_out = cout) forward and (c_in = cout, c_out = cin)
// backward, so that the kernel's "in" always has c.cin channels.
struct Refs {
  std::vector<float> in, weight, bias, ref, ref_tf32, mag;
};

template <bool FLIP>
Refs references(const Case& c, uint64_t seed) {
  Conv2dShape s;
  s.n = c.n, s.h = c.h, s.w = c.w, s.k = c.k, s.algo = Conv2dAlgo::Direct;
  s.c_in = FLIP ? c.cout : c.cin;
  s.c_out = FLIP ? c.cin : c.cout;
  const size_t plane = size_t(c.h) * c.w;
  Refs r;
  r.in = random_vector(c.n * c.cin * plane, seed + 1);
  r.weight = random_vector(size_t(c.cin) * c.cout * c.k * c.k, seed + 2);
  r.bias = random_vector(c.cout, seed + 3);
  const size_t out = c.n * c.cout * plane;
  r.ref.resize(out), r.ref_tf32.resize(out), r.mag.resize(out);
  std::vector<float> ws(cpu::conv2d_workspace_floats(s));
  const float* b = c.bias ? r.bias.data() : nullptr;
  const auto in_r = rounded(r.in), w_r = rounded(r.weight), ain = absolute(r.in), aw = absolute(r.weight),
             ab = absolute(r.bias);
  if constexpr (!FLIP) {
    cpu::conv2d_forward(s, r.in.data(), r.weight.data(), b, r.ref.data(), c.relu, ws.data());
    cpu::conv2d_forward(s, in_r.data(), w_r.data(), b, r.ref_tf32.data(), c.relu, ws.data());
    cpu::conv2d_forward(s, ain.data(), aw.data(), c.bias ? ab.data() : nullptr, r.mag.data(), false, ws.data());
  } else {  // backward data has no bias or ReLU
    cpu::conv2d_backward_data(s, r.in.data(), r.weight.data(), r.ref.data(), ws.data());
    cpu::conv2d_backward_data(s, in_r.data(), w_r.data(), r.ref_tf32.data(), ws.data());
    cpu::conv2d_backward_data(s, ain.data(), aw.data(), r.mag.data(), ws.data());
  }
  return r;
}

template <bool FLIP>
ConvArgs args_of(const Case& c, const Refs& r, float* out) {
  return {r.in.data(), r.weight.data(), !FLIP && c.bias ? r.bias.data() : nullptr, out, c.n, c.cin, c.cout,
          c.h, c.w, c.k, !FLIP && c.relu};
}

// Replays one case with plan p and checks it against both references.
template <bool FLIP>
void check_replay(const Case& c, const Plan& p, uint64_t seed) {
  INFO((FLIP ? "backward data " : "forward ") << describe(c) << " co_t=" << p.co_t << " splits=" << p.splits);
  const Refs r = references<FLIP>(c, seed);
  const ConvArgs a = args_of<FLIP>(c, r, nullptr);
  const std::vector<float> got = replay<FLIP>(a, p);
  const double L = double(c.cin) * c.k * c.k;
  // Same exact products (TF32 x TF32 fits in fp32), another summation order: fp32 order error.
  test::check_normalized("replay vs CPU on TF32-rounded operands", r.ref_tf32, r.mag, got, L);
  // Against the unrounded operands: each product is off by at most ~2 * 2^-11 of |x w| (two
  // roundings of half a TF32 ulp, 2^-10 relative), so |error| <= 2^-10 * mag plus order error.
  size_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i) bad += !(std::fabs(double(got[i]) - r.ref[i]) <= 0x1p-10 * r.mag[i] + 1e-30);
  CHECK(bad == 0);
}

}  // namespace

TEST_CASE("tf32_round: round to nearest, ties away from zero, 10 mantissa bits") {
  CHECK(tf32_round(1.0f) == 1.0f);
  CHECK(tf32_round(1.0f + 0x1p-12f) == 1.0f);                       // below half an ulp (2^-10)
  CHECK(tf32_round(1.0f + 0x1p-11f) == 1.0f + 0x1p-10f);            // a tie: away from zero
  CHECK(tf32_round(-(1.0f + 0x1p-11f)) == -(1.0f + 0x1p-10f));      // also for negatives
  CHECK(tf32_round(1.0f + 0x1p-11f - 0x1p-23f) == 1.0f);            // just below the tie
  CHECK(tf32_round(3.0f + 0x1p-9f + 0x1p-22f) == 3.0f + 0x1p-9f);   // representable part kept
  CHECK(tf32_round(0x1p-130f) == 0x1p-130f);                        // subnormal, already short
  CHECK(std::isinf(tf32_round(std::numeric_limits<float>::infinity())));
  CHECK(std::isnan(tf32_round(std::nanf(""))));
  CHECK(std::isinf(tf32_round(FLT_MAX)));                           // rounds up past the largest TF32
  const auto v = random_vector(1000, 7, -1e3f, 1e3f);
  for (float x : v) {
    const float r = tf32_round(x);
    uint32_t bits;
    std::memcpy(&bits, &r, sizeof bits);
    CHECK((bits & 0x1fffu) == 0);
    CHECK(std::fabs(r - x) <= 0x1p-11 * std::fabs(x));
  }
}

TEST_CASE("tf32 conv plan: channel tiles, splits and shared memory") {
  CHECK(pick_co_t(1) == 8);
  CHECK(pick_co_t(16) == 16);
  CHECK(pick_co_t(32) == 32);
  CHECK(pick_co_t(48) == 16);
  CHECK(pick_co_t(64) == 32);
  CHECK(pick_co_t(33) == 8);
  for (int k : {1, 3, 5, 7, 9, 11, 13}) {
    const Plan p = plan(16, 96, 32, 128, 128, k);
    CHECK(p.ok);
    CHECK(p.smem.bytes() <= kMaxSmemBytes);
    CHECK(p.co_t == (k <= 7 ? 32 : k == 9 ? 16 : 8));  // fewer channels per block for large kernels
  }
  CHECK_FALSE(plan(16, 96, 32, 64, 64, 15).ok);  // the caller falls back to the fp32 kernels
  // A big grid needs no split and keeps 32 channels per block; a small one splits the channels.
  const Plan big = plan(16, 96, 32, 128, 128, 7);
  CHECK(big.co_t == 32);
  CHECK(big.splits == 1);
  CHECK(big.workspace_floats() == 0);
  const Plan small = plan(16, 32, 64, 32, 32, 7);
  CHECK(small.co_t == 16);
  CHECK(small.splits == 2);  // 4 chunks of 8 channels, 128 blocks before splitting
  CHECK(small.workspace_floats() == 2 * small.out_floats);
  for (const Plan& p : {big, small}) {
    CHECK(p.splits * p.chunks_per_split >= p.chunks);
    CHECK((p.splits - 1) * p.chunks_per_split < p.chunks);  // no empty split
    CHECK(p.smem.taps % 8 == 0);
    CHECK(p.smem.w_offset % 4 == 0);  // float4-aligned weights
  }
}

TEST_CASE("tf32 conv replay: forward and backward data against the CPU, every block variant") {
  const Case cases[] = {
      {2, 3, 5, 13, 37, 3, true, true},     // odd everything, two column tiles
      {1, 17, 33, 9, 40, 7, true, false},   // 3 chunks (the last with 1 channel), 33 channels
      {3, 9, 16, 33, 5, 5, false, true},    // narrower than one m-tile, 2 row tiles
      {2, 20, 8, 11, 19, 1, true, true},    // 1x1
      {1, 4, 6, 2, 3, 7, true, false},      // image smaller than the kernel
      {1, 10, 12, 17, 21, 9, false, false}, // k = 9
      {1, 5, 3, 6, 35, 11, true, true},     // k = 11
      {1, 3, 2, 5, 9, 13, false, true},     // k = 13 (8 channels per block in the real plan)
  };
  uint64_t seed = 900;
  for (const Case& c : cases) {
    for (int co_t : {8, 16, 32})
      for (int splits : {1, 3}) {
        seed += 10;
        check_replay<false>(c, forced_plan(c.n, c.cin, c.cout, c.h, c.w, c.k, co_t, splits), seed);
        check_replay<true>(c, forced_plan(c.n, c.cin, c.cout, c.h, c.w, c.k, co_t, splits), seed + 5);
      }
    // And the plan the GPU will use for this shape.
    check_replay<false>(c, plan(c.n, c.cin, c.cout, c.h, c.w, c.k), seed + 7);
  }
}

TEST_CASE("tf32 conv replay: the comparison fails on deliberate bugs") {
  const Case c{2, 12, 20, 19, 37, 5, true, false};
  const Plan p = forced_plan(c.n, c.cin, c.cout, c.h, c.w, c.k, 16, 2);
  const Refs r = references<false>(c, 4242);
  const ConvArgs a = args_of<false>(c, r, nullptr);
  const double L = double(c.cin) * c.k * c.k;
  CHECK(count_outside(r.ref_tf32, r.mag, replay<false>(a, p), L) == 0);
  for (Bug bug : {Bug::ASwap12, Bug::BRowsSwapped, Bug::CColsSwapped, Bug::UnroundedOperand, Bug::DropLastSplit,
                  Bug::TapOffByOne}) {
    INFO("bug " << static_cast<int>(bug));
    CHECK(count_outside(r.ref_tf32, r.mag, replay<false>(a, p, bug), L) > 0);
  }
}

namespace {

struct WgradRefs {
  std::vector<float> x, dy, ref, ref_tf32, mag;
};

WgradRefs wgrad_references(const Case& c, uint64_t seed) {
  Conv2dShape s;
  s.n = c.n, s.c_in = c.cin, s.c_out = c.cout, s.h = c.h, s.w = c.w, s.k = c.k, s.algo = Conv2dAlgo::Direct;
  const size_t plane = size_t(c.h) * c.w, nw = size_t(c.cout) * c.cin * c.k * c.k;
  WgradRefs r;
  r.x = random_vector(c.n * c.cin * plane, seed + 1);
  r.dy = random_vector(c.n * c.cout * plane, seed + 2);
  r.ref.resize(nw), r.ref_tf32.resize(nw), r.mag.resize(nw);
  std::vector<float> ws(cpu::conv2d_workspace_floats(s));
  const auto xr = rounded(r.x), dyr = rounded(r.dy), ax = absolute(r.x), ady = absolute(r.dy);
  cpu::conv2d_backward_weights(s, r.x.data(), r.dy.data(), r.ref.data(), nullptr, ws.data());
  cpu::conv2d_backward_weights(s, xr.data(), dyr.data(), r.ref_tf32.data(), nullptr, ws.data());
  cpu::conv2d_backward_weights(s, ax.data(), ady.data(), r.mag.data(), nullptr, ws.data());
  return r;
}

}  // namespace

TEST_CASE("tf32 backward-weights plan: channel tiles, chunks, slices, shared memory") {
  namespace W = tf32wgrad;
  CHECK(W::ntiles(7) == 49);
  CHECK(W::ntiles_per_warp(7) == 7);
  CHECK(W::ntiles(1) == 8);  // 64 channels per chunk: one n-tile per warp
  CHECK(W::ntiles_per_warp(9) == 11);
  for (int k : {1, 3, 5, 7, 9}) {
    const W::Plan p = W::plan(16, 96, 32, 128, 128, k);
    CHECK(p.ok);
    CHECK(p.smem.bytes() <= W::kMaxSmemBytes);
    CHECK(p.co_t == (k == 9 ? 16 : 32));
    CHECK(p.slices >= 1);
    CHECK((p.slices - 1) * p.tiles_per_slice < p.tiles);  // no empty slice
    CHECK(p.workspace_floats() <= W::kMaxPartialFloats);
  }
  CHECK(W::plan(16, 16, 1, 128, 128, 1).co_t == 16);  // the output layer: one m-tile, 15 rows padding
  CHECK(W::plan(16, 16, 48, 64, 64, 7).co_t == 16);   // 48 = 3 x 16, not 2 x 32
  CHECK_FALSE(W::plan(16, 96, 32, 64, 64, 11).ok);    // no kernel: the fp32 one runs
  CHECK_FALSE(W::plan(16, 96, 32, 64, 64, 4).ok);
}

TEST_CASE("tf32 backward-weights replay against the CPU, every m-tile count and slicing") {
  const Case cases[] = {
      {2, 3, 5, 13, 37, 3, false, false},   // odd everything; 9 n-tiles (warp 0 owns two)
      {1, 17, 33, 9, 40, 7, false, false},  // 3 chunks, the last with 1 channel; 33 = 2 x 32 - 31
      {3, 9, 20, 33, 5, 5, false, false},   // narrower than a tile
      {2, 70, 8, 11, 19, 1, false, false},  // 1x1: 64-channel chunks, the second with 6
      {1, 4, 6, 2, 3, 7, false, false},     // image smaller than the kernel
      {1, 10, 12, 17, 21, 9, false, false}, // k = 9 (16 channels per block)
  };
  uint64_t seed = 7000;
  for (const Case& c : cases) {
    const WgradRefs r = wgrad_references(c, seed += 10);
    const double L = double(c.n) * c.h * c.w;
    for (int slices : {1, 2, 5}) {
      INFO("backward weights " << describe(c) << " slices=" << slices);
      const tf32wgrad::Plan p = forced_wgrad_plan(c.n, c.cin, c.cout, c.h, c.w, c.k, slices);
      REQUIRE(p.ok);
      const auto got = replay_wgrad(r.x.data(), r.dy.data(), c.n, c.cin, c.cout, c.h, c.w, c.k, p);
      test::check_normalized("replay vs CPU on TF32-rounded operands", r.ref_tf32, r.mag, got, L);
      size_t bad = 0;
      for (size_t i = 0; i < got.size(); ++i) bad += !(std::fabs(double(got[i]) - r.ref[i]) <= 0x1p-10 * r.mag[i] + 1e-30);
      CHECK(bad == 0);
    }
  }
}

TEST_CASE("tf32 backward-weights replay: the comparison fails on deliberate bugs") {
  // Small images (3 tiles, 135 pixels per dW element): the tight bound stays below the effect of
  // a missing rounding, which averages out over long reductions.
  const Case c{3, 12, 20, 5, 9, 5, false, false};
  const WgradRefs r = wgrad_references(c, 7777);
  const double L = double(c.n) * c.h * c.w;
  const tf32wgrad::Plan p = forced_wgrad_plan(c.n, c.cin, c.cout, c.h, c.w, c.k, 3);
  auto run = [&](Bug bug) {
    return count_outside(r.ref_tf32, r.mag, replay_wgrad(r.x.data(), r.dy.data(), c.n, c.cin, c.cout, c.h, c.w, c.k, p, bug), L);
  };
  CHECK(run(Bug::None) == 0);
  for (Bug bug : {Bug::ASwap12, Bug::BRowsSwapped, Bug::CColsSwapped, Bug::UnroundedOperand, Bug::DropLastSplit,
                  Bug::TapOffByOne}) {
    INFO("bug " << static_cast<int>(bug));
    CHECK(run(bug) > 0);
  }
}
