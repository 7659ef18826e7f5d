// training_tolerance.h: how far two training runs of the same model, data and dropout masks may
// drift apart when they compute the convolutions differently (CPU vs CUDA direct sums, or the
// frequency domain vs the direct sums), and the checks that apply those bounds. Shared by
// test_cuda_model_parity.cpp, test_nn_conv_algo.cpp and test_cuda_app.cpp. Step-1 gradients use
// one bound for both (1e-4 of the tensor's largest gradient + 1e-3 relative, as in
// test_torch_reference.cpp), a normwise one for TF32; TrainingTolerance bounds the later steps.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "nn/parameters.h"
#include "test_util.h"

namespace isonet::test {

struct TrainingTolerance {
  double loss_abs, loss_rel;  // |L_a - L_b| <= loss_abs + loss_rel * |L_a| at every step (dB)
  double weight_rms;          // rms of the final weight differences
  double above_fraction;      // fraction of final weights that may differ by more than 1e-3
};

// Direct sums in different orders (CPU vs CUDA): ~1e-6 relative per element. Measured on the CPU
// with a 1-ulp perturbation of the initial weights standing in for the GPU's reordering (20
// IsoNet-2 steps on the toy problem): losses agree to ~1e-5, weights rms ~4e-7, 2 of 314k
// elements above 1e-4. The bounds leave >= 25x margin and stay ~1000x below how far training
// moves the weights (rms ~1e-2).
constexpr TrainingTolerance kReorderTolerance{1e-3, 1e-4, 1e-5, 1e-3};

// Frequency domain vs direct sums: the FFT's rounding is ~1e-6 of a plane's NORM (conv2d_fft.h),
// not of each element, so gradients that the direct sums give as ~0 (dead ReLUs, dropped units)
// come out at ~1e-8, Adam's epsilon, and the first update already moves those weights by up to
// ~0.6 lr. Measured on the CPU (test_nn_conv_algo.cpp, 20 IsoNet-2 steps at lr 5e-3 on the toy
// problem, 4 x 16x20): losses up to 7e-3 dB apart (|L| ~ 19), weights rms 5.1e-4, max 4.5e-2,
// 1.2% of them beyond 1e-3 (IsoNet-1, 5 steps: 3e-4 dB, rms 5e-6, none beyond 1e-3) with the AVX2
// direct kernels; with the im2col + OpenBLAS direct path (a build without -march=x86-64-v3) the
// losses drift further, up to 3.1e-2 dB (step 17), weights rms 4.7e-4, 1.3% beyond 1e-3. The
// bounds leave ~3-4x margin over both and are still 10x below how far training moves the weights
// (rms ~2.4e-2).
constexpr TrainingTolerance kFftTolerance{1e-1, 1e-3, 2e-3, 5e-2};

// TF32 tensor-core convs on the GPU (Conv2dMath::Tf32) vs fp32: every conv operand loses 13
// mantissa bits (relative 2^-11 each), so every gradient carries ~1e-3 relative noise instead of
// ~1e-6, and Adam turns the sign flips of small gradients into lr-sized steps from the first
// update on. Measured on the CPU with the GPU kernels' rounding emulated (tf32_emulation.h;
// test_nn_conv_algo.cpp, 20 IsoNet-2 steps at lr 5e-3 on the toy problem, 4 x 16x20): step-1
// gradients normwise 2.2e-3 at worst (enc2.weight), losses up to 4.2e-2 dB apart (|L| ~ 19-24),
// weights rms 5.7e-4, max 5.3e-2, 0.25% of them beyond 1e-3. The GPU adds only its summation
// order and the tensor cores' truncating accumulation (~1e-6 relative, far below the rounding).
// Bounds ~4x above the measurement; still 10x below how far training moves the weights (rms
// ~2.4e-2) and 100x below a wrong op's normwise gradient error (~1).
constexpr TrainingTolerance kTf32Tolerance{5e-2, 5e-3, 2.5e-3, 1e-2};
constexpr double kTf32Step1Normwise = 1e-2;

// Step-1 gradients of run b against run a, normwise per tensor: ||g_b - g_a|| <= rel * ||g_a||
// (for TF32 runs, whose elementwise error is relative to each conv's sum of |terms|, not to the
// gradient element).
inline void check_step1_gradients_normwise(const ParamLayout& layout, const std::vector<float>& ga,
                                           const std::vector<float>& gb, double rel) {
  for (size_t i = 0; i < layout.size(); ++i) {
    const size_t off = layout.offset(i), cnt = layout.spec(i).numel();
    double diff2 = 0, norm2 = 0;
    for (size_t j = 0; j < cnt; ++j) {
      const double d = double(gb[off + j]) - ga[off + j];
      diff2 += d * d;
      norm2 += double(ga[off + j]) * ga[off + j];
    }
    INFO("gradient of " << layout.spec(i).name << ": relative normwise difference " << std::sqrt(diff2 / norm2));
    CHECK(std::sqrt(diff2) <= rel * std::sqrt(norm2));  // NaN fails
  }
}

// Step-1 gradients of run b against run a ([layout.total_floats()] each), tensor by tensor:
// 1e-4 of the tensor's largest |gradient| in a + 1e-3 relative (~100x the observed differences).
inline void check_step1_gradients(const ParamLayout& layout, const std::vector<float>& ga,
                                  const std::vector<float>& gb) {
  for (size_t i = 0; i < layout.size(); ++i) {
    const size_t off = layout.offset(i), cnt = layout.spec(i).numel();
    float scale = 0;
    for (size_t j = 0; j < cnt; ++j) scale = std::max(scale, std::fabs(ga[off + j]));
    CHECK_CLOSE_ARRAYS("gradient of " << layout.spec(i).name, ga.data() + off, gb.data() + off, cnt, 1e-4 * scale,
                       1e-3);
  }
}

// The losses of one step (dB): b finite and within tol of a.
inline void check_step_loss(double la, double lb, const TrainingTolerance& tol) {
  CHECK(std::isfinite(lb));
  CHECK(std::fabs(la - lb) <= tol.loss_abs + tol.loss_rel * std::fabs(la));
}

// The final weights of both runs after `steps` Adam steps of learning rate lr, from `initial`:
// rms and fraction within tol; any single element at most a sign flip (2 lr) per step apart; and
// run a moved its weights by an rms above min_moved (so the comparison means something).
inline void check_final_weights(const std::vector<float>& wa, const std::vector<float>& wb,
                                const std::vector<float>& initial, int steps, double lr, double min_moved,
                                const TrainingTolerance& tol) {
  REQUIRE(wb.size() == wa.size());
  const WeightDiff d = weight_diff(wa, wb), moved = weight_diff(wa, initial);
  INFO("final weights: rms diff " << d.rms << ", max diff " << d.max << ", " << d.above
                                  << " elements beyond 1e-3; training moved them by rms " << moved.rms);
  CHECK(d.rms <= tol.weight_rms);
  CHECK(d.max <= steps * 2 * lr);
  CHECK(double(d.above) <= tol.above_fraction * wa.size());
  CHECK(moved.rms > min_moved);
}

}  // namespace isonet::test
