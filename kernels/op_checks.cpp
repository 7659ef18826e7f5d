// op_checks.cpp: host-side helpers used by BOTH the CPU twins and the CUDA launchers: shape and
// parameter validation (errors name the op), the dropout keep rule and scale, and Adam's per-step
// scalars. Keeping them here (never in a .cu file) gives the two backends one definition.
#include "kernels/op_checks.h"

#include <climits>
#include <cmath>

#include "kernels/adam.h"
#include "kernels/concat.h"
#include "kernels/conv2d.h"
#include "kernels/dropout.h"
#include "kernels/error.h"
#include "kernels/maxpool2d.h"
#include "kernels/psnr_loss.h"
#include "kernels/rng.h"
#include "kernels/upsample2d.h"

namespace isonet {

void check_not_null(const void* p, const char* op, const char* name) {
  ISONET_CHECK(p != nullptr, op, ": ", name, " is a null pointer");
}

// One spatial plane must be indexable by int (BLAS dimensions and the int32 argmax are int).
static void check_plane(long long h, long long w, const char* op) {
  ISONET_CHECK(h * w <= INT_MAX, op, ": plane ", h, "x", w, " is too large (more than 2^31-1 elements)");
}

void check_conv2d_shape(const Conv2dShape& s, const char* op) {
  ISONET_CHECK(s.n >= 1 && s.c_in >= 1 && s.c_out >= 1 && s.h >= 1 && s.w >= 1, op,
               ": sizes must be positive, got n=", s.n, " c_in=", s.c_in, " c_out=", s.c_out, " h=", s.h,
               " w=", s.w);
  ISONET_CHECK(s.k >= 1 && s.k % 2 == 1, op, ": kernel size must be odd and positive ('same' padding k/2), got k=",
               s.k);
  check_plane(s.h, s.w, op);
  // The im2col matrix has c*k*k rows; keep it addressable by int for BLAS.
  long long rows = static_cast<long long>(s.c_in > s.c_out ? s.c_in : s.c_out) * s.k * s.k;
  ISONET_CHECK(rows <= INT_MAX, op, ": c*k*k = ", rows, " is too large");
}

void check_pool2d_shape(const Pool2dShape& s, const char* op) {
  ISONET_CHECK(s.n >= 1 && s.c >= 1, op, ": sizes must be positive, got n=", s.n, " c=", s.c);
  ISONET_CHECK(s.h >= 2 && s.w >= 2, op, ": 2x2 pooling needs h, w >= 2, got h=", s.h, " w=", s.w);
  check_plane(s.h, s.w, op);
}

void check_upsample2d_shape(const Upsample2dShape& s, const char* op) {
  ISONET_CHECK(s.n >= 1 && s.c >= 1 && s.h >= 1 && s.w >= 1, op, ": sizes must be positive, got n=", s.n,
               " c=", s.c, " h=", s.h, " w=", s.w);
  check_plane(2LL * s.h, 2LL * s.w, op);
}

void check_concat_shape(const ConcatShape& s, const char* op) {
  ISONET_CHECK(s.n >= 1 && s.c_a >= 1 && s.c_b >= 1 && s.h >= 1 && s.w >= 1, op,
               ": sizes must be positive, got n=", s.n, " c_a=", s.c_a, " c_b=", s.c_b, " h=", s.h, " w=", s.w);
}

void check_dropout_params(const DropoutParams& d, const char* op) {
  // Written so that NaN fails too.
  ISONET_CHECK(d.p >= 0.f && d.p < 1.f, op, ": drop probability must be in [0, 1), got p=", d.p);
}

float dropout_scale(const DropoutParams& d) { return 1.0f / (1.0f - d.p); }

bool dropout_keep(const DropoutParams& d, uint64_t index) {
  return counter_random_u32(d.seed, d.step, index) >= dropout_threshold(d.p);
}

void check_psnr_loss_shape(const PsnrLossShape& s, const char* op) {
  ISONET_CHECK(s.n >= 1 && s.per_patch >= 1, op, ": sizes must be positive, got n=", s.n,
               " per_patch=", s.per_patch);
}

AdamStepScalars adam_step_scalars(const AdamParams& a, long step) {
  const char* op = "adam_update";
  ISONET_CHECK(step >= 1, op, ": step is 1-based, got step=", step);
  ISONET_CHECK(std::isfinite(a.lr) && a.lr >= 0.f, op, ": learning rate must be finite and >= 0, got ", a.lr);
  ISONET_CHECK(a.beta1 >= 0.f && a.beta1 < 1.f, op, ": beta1 must be in [0, 1), got ", a.beta1);
  ISONET_CHECK(a.beta2 >= 0.f && a.beta2 < 1.f, op, ": beta2 must be in [0, 1), got ", a.beta2);
  ISONET_CHECK(std::isfinite(a.eps) && a.eps >= 0.f, op, ": eps must be finite and >= 0, got ", a.eps);
  // In double: 1 - beta2^t is ~1e-3 at t=1 and would lose digits in float.
  double bc1 = 1.0 - std::pow(static_cast<double>(a.beta1), static_cast<double>(step));
  double bc2 = 1.0 - std::pow(static_cast<double>(a.beta2), static_cast<double>(step));
  AdamStepScalars r;
  r.step_size = static_cast<float>(static_cast<double>(a.lr) / bc1);
  r.inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
  return r;
}

}  // namespace isonet
