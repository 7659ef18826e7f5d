// imaging_test_util.h: helpers shared by the imaging tests: seeded random volumes and the adjoint
// identity of a convolver (<Ax, y> == <x, A^T y>).
#pragma once
#include <cmath>

#include "imaging/fft_convolve.h"
#include "imaging/volume.h"
#include "test_util.h"

namespace isonet::test {

// Volume [nz,ny,nx] of uniform values in [lo, hi) drawn from `seed`.
inline Volume random_volume(int nz, int ny, int nx, uint64_t seed, float lo, float hi) {
  Volume v(nz, ny, nx);
  v.data = random_vector(v.size(), seed, lo, hi);
  return v;
}

// For x, y of the convolver's image size: |<Ax, y> - <x, A^T y>| and sum |terms| (the scale the
// difference is judged against; a wrong flip or offset makes it O(1) of that scale).
struct AdjointGap {
  double gap = 0, scale = 0;
};
inline AdjointGap adjoint_gap(FftConvolver& conv, const Volume& x, const Volume& y) {
  std::vector<float> ax(x.size()), aty(y.size());
  conv.convolve(x.data.data(), ax.data());
  conv.correlate(y.data.data(), aty.data());
  double lhs = 0, rhs = 0, scale = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    lhs += double(ax[i]) * y.data[i];
    rhs += double(x.data[i]) * aty[i];
    scale += std::fabs(double(ax[i]) * y.data[i]);
  }
  return {std::fabs(lhs - rhs), scale};
}

}  // namespace isonet::test
