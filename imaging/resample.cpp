// resample.cpp: implementation of resample.h (tap tables + one strided apply loop for all axes).
#include "imaging/resample.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "kernels/error.h"
#include "kernels/log.h"

namespace isonet {

namespace {

// Slack for "is this an integer": positions and lengths computed as k*S or j/S in double carry
// relative errors ~1e-16; 1e-9 is far above that and far below any meaningful fractional offset.
constexpr double kSnap = 1e-9;

void check_factor(double factor, const char* op) {
  ISONET_CHECK(std::isfinite(factor) && factor >= 1.0, op, ": factor must be a finite number >= 1, got ", factor,
               " (downsampling the restored grid is not supported; an axial factor < 1 means the z step is "
               "finer than the pixel size)");
}

// Keys (1981) cubic convolution kernel with a = -0.5.
double keys_weight(double s) {
  const double a = -0.5;
  s = std::fabs(s);
  if (s <= 1.0) return ((a + 2.0) * s - (a + 3.0)) * s * s + 1.0;
  if (s < 2.0) return ((a * s - 5.0 * a) * s + 8.0 * a) * s - 4.0 * a;
  return 0.0;
}

void check_axis(const Volume& v, int axis, const char* op) {
  ISONET_CHECK(axis >= 0 && axis <= 2, op, ": axis must be 0 (z), 1 (y) or 2 (x), got ", axis);
  ISONET_CHECK(v.nz > 0 && v.ny > 0 && v.nx > 0 && v.size() == size_t(v.nz) * v.ny * v.nx, op,
               ": empty or inconsistent volume ", v.shape_str());
}

int axis_len(const Volume& v, int axis) { return axis == kAxisZ ? v.nz : axis == kAxisY ? v.ny : v.nx; }

// Applies a sampler along `axis` of v: views v as [outer, n, inner].
Volume apply_along(const Volume& v, int axis, const AxisSampler& s) {
  Volume out;
  out.voxel = v.voxel;
  out.nz = axis == kAxisZ ? s.n_out() : v.nz;
  out.ny = axis == kAxisY ? s.n_out() : v.ny;
  out.nx = axis == kAxisX ? s.n_out() : v.nx;
  out.data.resize(size_t(out.nz) * out.ny * out.nx);
  size_t outer = axis == kAxisZ ? 1 : axis == kAxisY ? size_t(v.nz) : size_t(v.nz) * v.ny;
  size_t inner = axis == kAxisZ ? v.plane() : axis == kAxisY ? size_t(v.nx) : 1;
  s.apply(v.data.data(), out.data.data(), outer, inner);
  return out;
}

double& voxel_along(VoxelSize& vs, int axis) { return axis == kAxisZ ? vs.z : axis == kAxisY ? vs.y : vs.x; }

}  // namespace

const char* interp_name(Interp i) { return i == Interp::Linear ? "linear" : "cubic"; }

Interp parse_interp(const char* name) {
  std::string s(name ? name : "");
  if (s == "linear") return Interp::Linear;
  if (s == "cubic" || s == "bicubic") return Interp::Cubic;
  fail("interpolation: unknown method '", s, "' (expected linear or cubic)");
}

int upsampled_length(int n, double factor) {
  check_factor(factor, "upsampled_length");
  ISONET_CHECK(n > 0, "upsampled_length: length must be positive, got ", n);
  double len = std::ceil(double(n) * factor - kSnap);
  ISONET_CHECK(len < 2147483647.0, "upsampled_length: ", n, " samples times ", factor, " overflows");
  return int(len);
}

int subsampled_length(int n, double factor) {
  check_factor(factor, "subsampled_length");
  ISONET_CHECK(n > 0, "subsampled_length: length must be positive, got ", n);
  return int(std::floor(double(n - 1) / factor + kSnap)) + 1;
}

void AxisSampler::set_taps(int j, double pos, Interp interp) {
  int* idx = &idx_[size_t(j) * kTaps];
  float* w = &w_[size_t(j) * kTaps];
  double r = std::round(pos);
  if (std::fabs(pos - r) < kSnap) pos = r;  // exact hit on an input sample
  double base = std::floor(pos);
  double t = pos - base;
  int b = int(base);
  auto clamp = [&](int i) { return std::min(std::max(i, 0), n_in_ - 1); };
  if (interp == Interp::Linear) {
    idx[0] = clamp(b);
    idx[1] = clamp(b + 1);
    w[0] = float(1.0 - t);
    w[1] = float(t);
    idx[2] = idx[3] = idx[0];
    w[2] = w[3] = 0.f;
  } else {
    for (int k = 0; k < kTaps; ++k) {
      idx[k] = clamp(b - 1 + k);
      w[k] = float(keys_weight(t - double(k - 1)));
    }
  }
}

AxisSampler AxisSampler::upsample(int n_in, double factor, Interp interp, int n_out) {
  if (n_out < 0) n_out = upsampled_length(n_in, factor);
  check_factor(factor, "upsample");
  ISONET_CHECK(n_in > 0 && n_out > 0, "upsample: lengths must be positive (in ", n_in, ", out ", n_out, ")");
  AxisSampler s(n_in, n_out);
  for (int j = 0; j < n_out; ++j) s.set_taps(j, double(j) / factor, interp);
  return s;
}

AxisSampler AxisSampler::subsample(int n_in, double factor) {
  int n_out = subsampled_length(n_in, factor);
  AxisSampler s(n_in, n_out);
  for (int k = 0; k < n_out; ++k) s.set_taps(k, double(k) * factor, Interp::Linear);
  return s;
}

void AxisSampler::apply(const float* in, float* out, size_t outer, size_t inner) const {
  ISONET_CHECK(in != out, "AxisSampler::apply: output must not alias the input");
  const long long total = (long long)outer * n_out_;
  // One output line (n_out_ index j of block o) per iteration: each is a weighted sum of at most
  // 4 input lines of `inner` contiguous floats, so the inner loop vectorizes for y and z.
#pragma omp parallel for schedule(static) if (total * (long long)inner > 65536)
  for (long long oj = 0; oj < total; ++oj) {
    size_t o = size_t(oj / n_out_);
    int j = int(oj % n_out_);
    const int* idx = &idx_[size_t(j) * kTaps];
    const float* w = &w_[size_t(j) * kTaps];
    const float* src = in + o * size_t(n_in_) * inner;
    float* dst = out + (o * size_t(n_out_) + j) * inner;
    const float *s0 = src + idx[0] * inner, *s1 = src + idx[1] * inner, *s2 = src + idx[2] * inner,
                *s3 = src + idx[3] * inner;
    const float w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
    for (size_t i = 0; i < inner; ++i) dst[i] = w0 * s0[i] + w1 * s1[i] + w2 * s2[i] + w3 * s3[i];
  }
}

Volume upsample_axis(const Volume& v, int axis, double factor, Interp interp, int out_len) {
  check_axis(v, axis, "upsample_axis");
  check_factor(factor, "upsample_axis");
  AxisSampler s = AxisSampler::upsample(axis_len(v, axis), factor, interp, out_len);
  Volume out = apply_along(v, axis, s);
  voxel_along(out.voxel, axis) /= factor;
  return out;
}

Volume subsample_axis(const Volume& v, int axis, double factor) {
  check_axis(v, axis, "subsample_axis");
  check_factor(factor, "subsample_axis");
  Volume out = apply_along(v, axis, AxisSampler::subsample(axis_len(v, axis), factor));
  voxel_along(out.voxel, axis) *= factor;
  return out;
}

Volume upsample_axial(const Volume& v, double factor, Interp interp) {
  check_axis(v, kAxisZ, "upsample_axial");
  check_factor(factor, "upsample_axial");
  const VoxelSize& vs = v.voxel;
  auto differs = [](double a, double b) { return std::fabs(a - b) > 0.01 * std::max(std::fabs(a), std::fabs(b)); };
  if (differs(vs.y, vs.x)) {
    std::ostringstream os;
    os << "upsample_axial: warning: lateral pixels are not square (y " << vs.y << ", x " << vs.x << " " << vs.unit
       << "); the restored voxel is " << vs.x << " along z and x but " << vs.y << " along y";
    log_info(os.str());
  }
  if (differs(vs.z / factor, vs.x)) {
    std::ostringstream os;
    os << "upsample_axial: warning: factor " << factor << " does not match the metadata (z step " << vs.z
       << " / pixel " << vs.x << " = " << vs.z / vs.x << "); using the factor given";
    log_info(os.str());
  }
  Volume out = upsample_axis(v, kAxisZ, factor, interp);
  out.voxel.z = vs.x;
  return out;
}

}  // namespace isonet
