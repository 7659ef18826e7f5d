// fft_util.h: the two FFT helpers shared by the FFT convolution of images (imaging/fft_convolve)
// and the frequency-domain conv layer (kernels/conv2d_fft): fast transform sizes and the lock
// that serializes FFTW's planner.
#pragma once
#include <mutex>

namespace isonet {

// Smallest n' >= n whose only prime factors are 2, 3, 5 and 7 (fast for FFTW and cuFFT).
int next_fast_fft_size(int n);

// FFTW's planner keeps global state: creating and destroying plans must hold this lock
// (executing a plan with the new-array interface is thread-safe and needs no lock).
std::mutex& fftw_planner_mutex();

}  // namespace isonet
