// conv2d_cpu.h: internal to the CPU conv. The threading rule and the bias gradient shared by the
// spatial paths (conv2d.cpp, conv2d_direct.cpp) and the frequency-domain path (conv2d_fft.cpp),
// so that every algorithm follows the one convention of conv2d.h (one team per call, the team's
// size fixed at the first call, small problems on the calling thread). Defined in conv2d.cpp.
#pragma once
#include "kernels/conv2d.h"

namespace isonet::cpu {

// Threads of every conv call's team: omp_get_max_threads() as seen by the first call, fixed from
// then on (a workspace sized earlier stays valid if omp_set_num_threads is called later).
int conv_threads();

// Team size of a call whose work is `macs` multiply-adds of the direct kernels (or the time of
// that many, for the FFT path's cost model): conv_threads(), or 1 below the parallel threshold.
int conv_team_size(double macs);

// dbias [c_out] = sum over n, h, w of dy [n,c_out,h,w], accumulated in double (n*h*w terms, 262144
// for a batch of 16 128x128 patches), on a team of `threads`.
void conv_bias_gradient(const Conv2dShape& s, const float* dy, float* dbias, int threads);

}  // namespace isonet::cpu
