// nn_toy_data.h: a learnable toy restoration problem shared by the network tests (CPU training
// run, CUDA/CPU parity): deblurring and contrast restoration of smooth random images.
#pragma once
#include <algorithm>
#include <vector>

#include "nn/tensor.h"
#include "test_util.h"

namespace isonet::test {

// A learnable toy problem: targets are smooth random images in [0, 1] (3x3 means of uniform
// noise), inputs the same images blurred along x by a 5-tap box (a crude anisotropic blur, as in
// the paper's training pairs) at half the contrast, so that the identity is a poor answer
// (about 11.6 dB) and the residual IsoNet-2 has something to learn too.
inline void toy_pair(int n, int h, int w, uint64_t seed, Tensor& inputs, Tensor& targets) {
  std::vector<float> noise = test::random_vector(size_t(n) * h * w, seed, 0.f, 1.f);
  std::vector<float> t(noise.size()), x(noise.size());
  auto at = [&](std::vector<float>& v, int b, int i, int j) -> float& {
    return v[(size_t(b) * h + std::clamp(i, 0, h - 1)) * w + std::clamp(j, 0, w - 1)];
  };
  for (int b = 0; b < n; ++b)
    for (int i = 0; i < h; ++i)
      for (int j = 0; j < w; ++j) {
        float s = 0;
        for (int di = -1; di <= 1; ++di)
          for (int dj = -1; dj <= 1; ++dj) s += at(noise, b, i + di, j + dj);
        at(t, b, i, j) = s / 9.f;
      }
  for (int b = 0; b < n; ++b)
    for (int i = 0; i < h; ++i)
      for (int j = 0; j < w; ++j) {
        float s = 0;
        for (int dj = -2; dj <= 2; ++dj) s += at(t, b, i, j + dj);
        at(x, b, i, j) = 0.5f * s / 5.f;
      }
  inputs = Tensor::from_vector({n, 1, h, w}, x);
  targets = Tensor::from_vector({n, 1, h, w}, t);
}

}  // namespace isonet::test
