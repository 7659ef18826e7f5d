// bench_ops_cuda.cu: per-op GPU benchmark of our CUDA kernels on IsoNet-2's shapes (batch 16,
// 128x128 patches and the pooled 64x64 / 32x32 levels), against cuDNN (conv, pooling) and cuBLAS
// (1x1 conv as a batched GEMM). Times are CUDA-event medians after warm-up; each row states the
// throughput (GFLOP/s or GB/s) and the fraction of the device ceiling measured here once: a large
// device-to-device copy for bandwidth and a big cuBLAS SGEMM in plain fp32 (no TF32) for FLOPs.
// cuDNN runs in fp32 with CUDNN_FMA_MATH (no tensor cores: the fair fp32 reference) and, as an
// extra column, with CUDNN_DEFAULT_MATH (which may use TF32 tensor cores; the math it used is
// printed). Rows marked (FFT) time our frequency-domain path (Conv2dAlgo::Fft) for forward and
// backward data of the k > 1 layers against the same cuDNN reference; rows marked (TF32) time our
// tensor-core kernels (Conv2dMath::Tf32) against cuDNN's default math, with a TF32 cuBLAS SGEMM
// as their ceiling. It reports; it never fails on a time.
//   bench_ops_cuda [--out results.md] [--reps N]
#include <cublas_v2.h>
#include <cudnn.h>
#include <cufft.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "kernels/adam.h"
#include "kernels/add.h"
#include "kernels/concat.h"
#include "kernels/conv2d.h"
#include "kernels/conv2d_fft.h"
#include "kernels/cuda_check.h"
#include "kernels/device.h"
#include "kernels/dropout.h"
#include "kernels/maxpool2d.h"
#include "kernels/psnr_loss.h"
#include "kernels/relu.h"
#include "kernels/rng.h"
#include "kernels/upsample2d.h"

using namespace isonet;

namespace {

int g_reps = 20;  // timed repeats per measurement (median reported)
constexpr int kWarmup = 3;

// ---------------------------------------------------------------------------------------------
// Device buffers and timing
// ---------------------------------------------------------------------------------------------

// Uniform values in [lo, hi) from the counter-based hash (no host transfer).
__global__ void fill_kernel(float* p, size_t n, uint64_t seed, float lo, float hi) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    p[i] = lo + (hi - lo) * (counter_random_u32(seed, 0, i) * (1.0f / 4294967296.0f));
}

struct Buf {
  float* p = nullptr;
  size_t n = 0;
  explicit Buf(size_t count, uint64_t seed = 1, float lo = -1.f, float hi = 1.f) : n(std::max<size_t>(count, 1)) {
    CUDA_CHECK("bench alloc", cudaMalloc(&p, n * sizeof(float)));
    fill_kernel<<<1024, 256>>>(p, n, seed, lo, hi);
    CUDA_CHECK_LAUNCH("bench fill");
  }
  ~Buf() { cudaFree(p); }
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
  operator float*() const { return p; }
};

// Median milliseconds of f() over g_reps runs, each bracketed by CUDA events on the default stream.
double time_ms(const std::function<void()>& f) {
  cudaEvent_t a, b;
  CUDA_CHECK("bench events", cudaEventCreate(&a));
  CUDA_CHECK("bench events", cudaEventCreate(&b));
  for (int i = 0; i < kWarmup; ++i) f();
  CUDA_CHECK("bench warm-up", cudaDeviceSynchronize());
  std::vector<float> t(g_reps);
  for (int i = 0; i < g_reps; ++i) {
    CUDA_CHECK("bench timing", cudaEventRecord(a));
    f();
    CUDA_CHECK("bench timing", cudaEventRecord(b));
    CUDA_CHECK("bench timing", cudaEventSynchronize(b));
    CUDA_CHECK("bench timing", cudaEventElapsedTime(&t[i], a, b));
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// ---------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------

struct Ceilings {
  double gbps = 0;         // device-to-device copy, (read + write) bytes / s
  double gflops = 0;       // cuBLAS SGEMM, fp32 without TF32
  double tf32_gflops = 0;  // cuBLAS SGEMM with TF32 tensor cores (CUBLAS_TF32_TENSOR_OP_MATH)
};

struct Row {
  std::string op, shape;
  double ours_ms = 0;
  std::string ref_name;    // "" when there is no reference
  double ref_ms = 0;
  double work = 0;         // FLOPs (compute rows) or bytes (memory rows)
  bool flops = true;
  bool tf32 = false;       // a TF32 tensor-core row: its ceiling is the TF32 SGEMM
  std::string extra;       // e.g. cuDNN default-math time
};

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string table(const std::vector<Row>& rows, const Ceilings& c) {
  std::string s =
      "| op | shape | ours ms | reference | ref ms | speed vs ref (ref/ours) | ours GFLOP/s or GB/s | % of ceiling | "
      "cuDNN default math |\n|---|---|---|---|---|---|---|---|---|\n";
  for (const Row& r : rows) {
    const double rate = r.work / (r.ours_ms * 1e-3) / 1e9;
    const double ceiling = !r.flops ? c.gbps : r.tf32 ? c.tf32_gflops : c.gflops;
    s += "| " + r.op + " | " + r.shape + " | " + fmt("%.4f", r.ours_ms) + " | " + (r.ref_name.empty() ? "-" : r.ref_name) +
         " | " + (r.ref_name.empty() ? "-" : fmt("%.4f", r.ref_ms)) + " | " +
         (r.ref_name.empty() ? "-" : fmt("%.2fx", r.ref_ms / r.ours_ms)) + " | " +
         fmt("%.1f", rate) + (r.flops ? " GFLOP/s" : " GB/s") + " | " +
         (ceiling > 0 ? fmt("%.1f%%", 100.0 * rate / ceiling) : "-") + " | " + (r.extra.empty() ? "-" : r.extra) +
         " |\n";
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Ceilings
// ---------------------------------------------------------------------------------------------

Ceilings measure_ceilings(cublasHandle_t blas) {
  Ceilings c;
  {
    const size_t n = size_t(256) << 20;  // 1 GiB per buffer
    Buf src(n), dst(n, 2);
    const double ms = time_ms([&] {
      CUDA_CHECK("bench copy", cudaMemcpyAsync(dst.p, src.p, n * sizeof(float), cudaMemcpyDeviceToDevice));
    });
    c.gbps = 2.0 * n * sizeof(float) / (ms * 1e-3) / 1e9;
  }
  {
    const int n = 8192;
    Buf a(size_t(n) * n, 3), b(size_t(n) * n, 4), d(size_t(n) * n, 5);
    // Plain fp32: CUBLAS_DEFAULT_MATH never uses TF32 for SGEMM (CUBLAS_TF32_TENSOR_OP_MATH would).
    CUBLAS_CHECK("bench cublas math", cublasSetMathMode(blas, CUBLAS_DEFAULT_MATH));
    const float one = 1.f, zero = 0.f;
    const double ms = time_ms([&] {
      CUBLAS_CHECK("bench sgemm", cublasSgemm(blas, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, a, n, b, n, &zero, d, n));
    });
    c.gflops = 2.0 * n * double(n) * n / (ms * 1e-3) / 1e9;
    CUBLAS_CHECK("bench cublas math", cublasSetMathMode(blas, CUBLAS_TF32_TENSOR_OP_MATH));
    const double tf32_ms = time_ms([&] {
      CUBLAS_CHECK("bench sgemm", cublasSgemm(blas, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, a, n, b, n, &zero, d, n));
    });
    CUBLAS_CHECK("bench cublas math", cublasSetMathMode(blas, CUBLAS_DEFAULT_MATH));
    c.tf32_gflops = 2.0 * n * double(n) * n / (tf32_ms * 1e-3) / 1e9;
  }
  return c;
}

// ---------------------------------------------------------------------------------------------
// cuDNN helpers (legacy v7-style API, still in cuDNN 9)
// ---------------------------------------------------------------------------------------------

const char* math_name(cudnnMathType_t m) {
  switch (m) {
    case CUDNN_DEFAULT_MATH: return "default";
    case CUDNN_TENSOR_OP_MATH: return "tensor-op";
    case CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION: return "tensor-op+conversion(TF32)";
    case CUDNN_FMA_MATH: return "FMA";
  }
  return "?";
}

struct CudnnConv {
  cudnnTensorDescriptor_t x, y;
  cudnnFilterDescriptor_t w;
  cudnnConvolutionDescriptor_t conv;
  CudnnConv(const Conv2dShape& s, cudnnMathType_t math) {
    const char* op = "bench cuDNN descriptors";
    CUDNN_CHECK(op, cudnnCreateTensorDescriptor(&x));
    CUDNN_CHECK(op, cudnnCreateTensorDescriptor(&y));
    CUDNN_CHECK(op, cudnnCreateFilterDescriptor(&w));
    CUDNN_CHECK(op, cudnnCreateConvolutionDescriptor(&conv));
    CUDNN_CHECK(op, cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, s.n, s.c_in, s.h, s.w));
    CUDNN_CHECK(op, cudnnSetTensor4dDescriptor(y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, s.n, s.c_out, s.h, s.w));
    CUDNN_CHECK(op, cudnnSetFilter4dDescriptor(w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, s.c_out, s.c_in, s.k, s.k));
    CUDNN_CHECK(op, cudnnSetConvolution2dDescriptor(conv, s.k / 2, s.k / 2, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION,
                                                    CUDNN_DATA_FLOAT));
    CUDNN_CHECK(op, cudnnSetConvolutionMathType(conv, math));
  }
  ~CudnnConv() {
    cudnnDestroyTensorDescriptor(x);
    cudnnDestroyTensorDescriptor(y);
    cudnnDestroyFilterDescriptor(w);
    cudnnDestroyConvolutionDescriptor(conv);
  }
};

// Best cuDNN time (ms) and a label for one conv direction under one math mode; ms < 0 if no algorithm ran.
struct CudnnResult {
  double ms = -1;
  std::string label;
};

constexpr size_t kCudnnWorkspaceBytes = size_t(512) << 20;

template <class Perf>
bool pick(const Perf* perf, int count, Perf* best) {
  for (int i = 0; i < count; ++i)
    if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= kCudnnWorkspaceBytes) {
      *best = perf[i];  // cuDNN sorts by time
      return true;
    }
  return false;
}

enum class Dir { Forward, BackwardData, BackwardFilter };

CudnnResult cudnn_conv(cudnnHandle_t h, const Conv2dShape& s, cudnnMathType_t math, Dir dir, float* x, float* w,
                       float* y, void* ws) {
  CudnnConv d(s, math);
  const float one = 1.f, zero = 0.f;
  CudnnResult r;
  int count = 0;
  const char* op = "bench cuDNN conv";
  if (dir == Dir::Forward) {
    cudnnConvolutionFwdAlgoPerf_t perf[16], best;
    CUDNN_CHECK(op, cudnnFindConvolutionForwardAlgorithmEx(h, d.x, x, d.w, w, d.conv, d.y, y, 16, &count, perf, ws,
                                                           kCudnnWorkspaceBytes));
    if (!pick(perf, count, &best)) return r;
    r.ms = time_ms([&] {
      CUDNN_CHECK(op, cudnnConvolutionForward(h, &one, d.x, x, d.w, w, d.conv, best.algo, ws, best.memory, &zero,
                                              d.y, y));
    });
    r.label = "fwd algo " + std::to_string(int(best.algo)) + ", " + math_name(best.mathType);
  } else if (dir == Dir::BackwardData) {
    cudnnConvolutionBwdDataAlgoPerf_t perf[16], best;
    CUDNN_CHECK(op, cudnnFindConvolutionBackwardDataAlgorithmEx(h, d.w, w, d.y, y, d.conv, d.x, x, 16, &count, perf,
                                                                ws, kCudnnWorkspaceBytes));
    if (!pick(perf, count, &best)) return r;
    r.ms = time_ms([&] {
      CUDNN_CHECK(op, cudnnConvolutionBackwardData(h, &one, d.w, w, d.y, y, d.conv, best.algo, ws, best.memory,
                                                   &zero, d.x, x));
    });
    r.label = "bwd-data algo " + std::to_string(int(best.algo)) + ", " + math_name(best.mathType);
  } else {
    cudnnConvolutionBwdFilterAlgoPerf_t perf[16], best;
    CUDNN_CHECK(op, cudnnFindConvolutionBackwardFilterAlgorithmEx(h, d.x, x, d.y, y, d.conv, d.w, w, 16, &count,
                                                                  perf, ws, kCudnnWorkspaceBytes));
    if (!pick(perf, count, &best)) return r;
    r.ms = time_ms([&] {
      CUDNN_CHECK(op, cudnnConvolutionBackwardFilter(h, &one, d.x, x, d.y, y, d.conv, best.algo, ws, best.memory,
                                                     &zero, d.w, w));
    });
    r.label = "bwd-filter algo " + std::to_string(int(best.algo)) + ", " + math_name(best.mathType);
  }
  return r;
}

std::string conv_shape(const Conv2dShape& s) {
  return std::to_string(s.n) + "x" + std::to_string(s.c_in) + "->" + std::to_string(s.c_out) + " " +
         std::to_string(s.h) + "x" + std::to_string(s.w) + " k" + std::to_string(s.k);
}

// ---------------------------------------------------------------------------------------------
// Benchmarks
// ---------------------------------------------------------------------------------------------

void bench_conv(std::vector<Row>& rows, cudnnHandle_t dnn, void* dnn_ws, const Conv2dShape& s) {
  const size_t plane = size_t(s.h) * s.w;
  Buf x(s.n * s.c_in * plane, 11), w(size_t(s.c_out) * s.c_in * s.k * s.k, 12, -0.1f, 0.1f),
      y(s.n * s.c_out * plane, 13), dw(size_t(s.c_out) * s.c_in * s.k * s.k, 14), db(s.c_out, 15);
  // The frequency-domain path (Conv2dAlgo::Fft, kernels/conv2d_fft.cu) for the k > 1 layers; its
  // workspace also covers the direct kernels. Sizing it creates the cuFFT plans (untimed).
  Conv2dShape sf = s;
  sf.algo = Conv2dAlgo::Fft;
  const bool fft = s.k > 1;
  // The TF32 tensor-core kernels (Conv2dMath::Tf32, kernels/conv2d_tf32.cu), all three passes.
  Conv2dShape st = s;
  st.math = Conv2dMath::Tf32;
  Buf ws(std::max({gpu::conv2d_workspace_floats(fft ? sf : s), gpu::conv2d_workspace_floats(st)}), 16);
  const double flops = 2.0 * s.n * plane * s.c_out * double(s.c_in) * s.k * s.k;
  const std::string shape = conv_shape(s);
  struct Dirn {
    const char* name;
    Dir dir;
    std::function<void()> ours;
    std::function<void()> ours_fft;   // empty: no FFT variant
    std::function<void()> ours_tf32;  // empty: no TF32 variant
  } dirs[] = {
      {"conv2d forward", Dir::Forward, [&] { gpu::conv2d_forward(s, x, w, nullptr, y, false, ws, nullptr); },
       [&] { gpu::conv2d_forward(sf, x, w, nullptr, y, false, ws, nullptr); },
       [&] { gpu::conv2d_forward(st, x, w, nullptr, y, false, ws, nullptr); }},
      {"conv2d backward data", Dir::BackwardData, [&] { gpu::conv2d_backward_data(s, y, w, x, ws, nullptr); },
       [&] { gpu::conv2d_backward_data(sf, y, w, x, ws, nullptr); },
       [&] { gpu::conv2d_backward_data(st, y, w, x, ws, nullptr); }},
      {"conv2d backward weights", Dir::BackwardFilter,
       [&] { gpu::conv2d_backward_weights(s, x, y, dw, nullptr, ws, nullptr); }, nullptr,
       [&] { gpu::conv2d_backward_weights(st, x, y, dw, nullptr, ws, nullptr); }},
  };
  for (auto& d : dirs) {
    Row r;
    r.op = d.name;
    r.shape = shape;
    r.work = flops;
    r.ours_ms = time_ms(d.ours);
    CudnnResult def;  // cuDNN with its default math (TF32 allowed): the reference of the TF32 row
    if (dnn) {
      try {
        CudnnResult fma = cudnn_conv(dnn, s, CUDNN_FMA_MATH, d.dir, x, w, y, dnn_ws);
        if (fma.ms > 0) {
          r.ref_name = "cuDNN " + fma.label;
          r.ref_ms = fma.ms;
        }
        def = cudnn_conv(dnn, s, CUDNN_DEFAULT_MATH, d.dir, x, w, y, dnn_ws);
        if (def.ms > 0) r.extra = fmt("%.4f ms", def.ms) + " (" + def.label + ")";
      } catch (const std::exception& e) {
        std::fprintf(stderr, "cuDNN %s %s: %s\n", d.name, shape.c_str(), e.what());
      }
    }
    rows.push_back(r);
    if (fft && d.ours_fft) {
      // Same cuDNN reference as the direct row above (measured once); GFLOP/s are the direct
      // convolution's FLOPs per second (effective rate), so the rows compare directly.
      Row f = r;
      f.op = std::string(d.name) + " (FFT)";
      f.ours_ms = time_ms(d.ours_fft);
      rows.push_back(f);
    }
    if (d.ours_tf32) {
      // Against cuDNN's default math (which may use TF32 tensor cores; the math it used is named).
      Row t = r;
      t.op = std::string(d.name) + " (TF32)";
      t.ours_ms = time_ms(d.ours_tf32);
      t.ref_name = def.ms > 0 ? "cuDNN " + def.label : "";
      t.ref_ms = def.ms;
      t.tf32 = true;
      t.extra = "";
      rows.push_back(t);
    }
  }
  // Ours with the fused bias + ReLU epilogue (what the network runs), and dbias included.
  Row fused;
  fused.op = "conv2d forward +bias+ReLU";
  fused.shape = shape;
  fused.work = flops;
  fused.ours_ms = time_ms([&] { gpu::conv2d_forward(s, x, w, db, y, true, ws, nullptr); });
  rows.push_back(fused);
  if (fft) {
    Row f = fused;
    f.op = "conv2d forward +bias+ReLU (FFT)";
    f.ours_ms = time_ms([&] { gpu::conv2d_forward(sf, x, w, db, y, true, ws, nullptr); });
    rows.push_back(f);
  }
  Row ft = fused;
  ft.op = "conv2d forward +bias+ReLU (TF32)";
  ft.tf32 = true;
  ft.ours_ms = time_ms([&] { gpu::conv2d_forward(st, x, w, db, y, true, ws, nullptr); });
  rows.push_back(ft);
  Row wb;
  wb.op = "conv2d backward weights +dbias";
  wb.shape = shape;
  wb.work = flops;
  wb.ours_ms = time_ms([&] { gpu::conv2d_backward_weights(s, x, y, dw, db, ws, nullptr); });
  rows.push_back(wb);
}

// The cuFFT share of the FFT path: the three batched transforms of a forward (weights R2C, x R2C,
// y C2R) and of a backward data (weights R2C, dy R2C, dx C2R) at conv2d_fft_size(s), on buffers of
// the same sizes; the rest of the (FFT) row's time is our kernels (scatter, product, crop). Tells
// the next optimization step where the time goes.
void bench_fft_transforms(std::vector<Row>& rows, const Conv2dShape& s) {
  const Conv2dFftSize sz = conv2d_fft_size(s);
  const char* op = "bench cuFFT transforms";
  const long long wplanes = (long long)s.c_out * s.c_in, in_planes = (long long)s.n * s.c_in,
                  out_planes = (long long)s.n * s.c_out;
  const long long most = std::max({wplanes, in_planes, out_planes});
  Buf real(size_t(most) * sz.ph * sz.pw, 61), spec(2 * size_t(most) * sz.bins(), 62);
  auto plan = [&](cufftType type, long long batch) {
    cufftHandle h;
    int n[2] = {sz.ph, sz.pw};
    const bool r2c = type == CUFFT_R2C;
    const int rd = sz.ph * sz.pw, cd = sz.bins();
    CUFFT_CHECK(op, cufftPlanMany(&h, 2, n, nullptr, 1, r2c ? rd : cd, nullptr, 1, r2c ? cd : rd, type, int(batch)));
    return h;
  };
  cufftHandle w_r2c = plan(CUFFT_R2C, wplanes), in_r2c = plan(CUFFT_R2C, in_planes),
              out_r2c = plan(CUFFT_R2C, out_planes), in_c2r = plan(CUFFT_C2R, in_planes),
              out_c2r = plan(CUFFT_C2R, out_planes);
  auto r2c = [&](cufftHandle h) { CUFFT_CHECK(op, cufftExecR2C(h, real.p, reinterpret_cast<cufftComplex*>(spec.p))); };
  // C2R overwrites its input: refill is not needed for timing (any finite data costs the same).
  auto c2r = [&](cufftHandle h) { CUFFT_CHECK(op, cufftExecC2R(h, reinterpret_cast<cufftComplex*>(spec.p), real.p)); };
  const double flops = 2.0 * s.n * double(s.h) * s.w * s.c_out * double(s.c_in) * s.k * s.k;
  const std::string shape = conv_shape(s) + " P=" + std::to_string(sz.ph) + "x" + std::to_string(sz.pw);
  Row f;
  f.op = "conv2d forward (FFT): cuFFT part";
  f.shape = shape;
  f.work = flops;
  f.ours_ms = time_ms([&] { r2c(w_r2c), r2c(in_r2c), c2r(out_c2r); });
  rows.push_back(f);
  Row b = f;
  b.op = "conv2d backward data (FFT): cuFFT part";
  b.ours_ms = time_ms([&] { r2c(w_r2c), r2c(out_r2c), c2r(in_c2r); });
  rows.push_back(b);
  for (cufftHandle h : {w_r2c, in_r2c, out_r2c, in_c2r, out_c2r}) cufftDestroy(h);
}

// 1x1 convolution as a batched GEMM: per image, Y [c_out, hw] = W [c_out, c_in] * X [c_in, hw]. In
// cuBLAS's column-major view: Y^T (hw x c_out) = X^T (hw x c_in) * W^T (c_in x c_out).
void bench_conv1x1_gemm(std::vector<Row>& rows, cublasHandle_t blas, const Conv2dShape& s) {
  const size_t plane = size_t(s.h) * s.w;
  Buf x(s.n * s.c_in * plane, 21), w(size_t(s.c_out) * s.c_in, 22), y(s.n * s.c_out * plane, 23);
  Buf ws(gpu::conv2d_workspace_floats(s), 24);
  Row r;
  r.op = "conv2d 1x1 forward vs GEMM";
  r.shape = conv_shape(s);
  r.work = 2.0 * s.n * plane * s.c_out * double(s.c_in);
  r.ours_ms = time_ms([&] { gpu::conv2d_forward(s, x, w, nullptr, y, false, ws, nullptr); });
  const float one = 1.f, zero = 0.f;
  r.ref_ms = time_ms([&] {
    CUBLAS_CHECK("bench gemm 1x1", cublasSgemmStridedBatched(
                                       blas, CUBLAS_OP_N, CUBLAS_OP_N, int(plane), s.c_out, s.c_in, &one, x,
                                       int(plane), (long long)(s.c_in * plane), w, s.c_in, 0, &zero, y, int(plane),
                                       (long long)(s.c_out * plane), s.n));
  });
  r.ref_name = "cuBLAS SgemmStridedBatched (fp32)";
  rows.push_back(r);
}

struct CudnnPool {
  cudnnPoolingDescriptor_t pool;
  cudnnTensorDescriptor_t x, y;
  explicit CudnnPool(const Pool2dShape& s) {
    const char* op = "bench cuDNN pooling";
    CUDNN_CHECK(op, cudnnCreatePoolingDescriptor(&pool));
    CUDNN_CHECK(op, cudnnSetPooling2dDescriptor(pool, CUDNN_POOLING_MAX, CUDNN_PROPAGATE_NAN, 2, 2, 0, 0, 2, 2));
    CUDNN_CHECK(op, cudnnCreateTensorDescriptor(&x));
    CUDNN_CHECK(op, cudnnCreateTensorDescriptor(&y));
    CUDNN_CHECK(op, cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, s.n, s.c, s.h, s.w));
    CUDNN_CHECK(op, cudnnSetTensor4dDescriptor(y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, s.n, s.c, s.out_h(),
                                               s.out_w()));
  }
  ~CudnnPool() {
    cudnnDestroyPoolingDescriptor(pool);
    cudnnDestroyTensorDescriptor(x);
    cudnnDestroyTensorDescriptor(y);
  }
};

void bench_pool(std::vector<Row>& rows, cudnnHandle_t dnn, const Pool2dShape& s) {
  const size_t in = size_t(s.n) * s.c * s.h * s.w, out = size_t(s.n) * s.c * s.out_h() * s.out_w();
  Buf x(in, 31), y(out, 32), dy(out, 33), dx(in, 34);
  int32_t* arg = nullptr;
  CUDA_CHECK("bench alloc", cudaMalloc(&arg, out * sizeof(int32_t)));
  const std::string shape = std::to_string(s.n) + "x" + std::to_string(s.c) + " " + std::to_string(s.h) + "x" +
                            std::to_string(s.w);
  Row f, b;
  f.op = "maxpool2d forward (+argmax)";
  b.op = "maxpool2d backward";
  f.shape = b.shape = shape;
  f.flops = b.flops = false;
  f.work = 4.0 * in + 8.0 * out;   // read x, write y and argmax
  b.work = 8.0 * out + 4.0 * in;   // read dy and argmax, write dx
  f.ours_ms = time_ms([&] { gpu::maxpool2d_forward(s, x, y, arg, nullptr); });
  b.ours_ms = time_ms([&] { gpu::maxpool2d_backward(s, dy, arg, dx, nullptr); });
  if (dnn) {
    try {
      CudnnPool d(s);
      const float one = 1.f, zero = 0.f;
      f.ref_ms = time_ms([&] {
        CUDNN_CHECK("bench cuDNN pool fwd", cudnnPoolingForward(dnn, d.pool, &one, d.x, x, &zero, d.y, y));
      });
      f.ref_name = "cuDNN pooling fwd (no argmax)";
      b.ref_ms = time_ms([&] {
        CUDNN_CHECK("bench cuDNN pool bwd",
                    cudnnPoolingBackward(dnn, d.pool, &one, d.y, y, d.y, dy, d.x, x, &zero, d.x, dx));
      });
      b.ref_name = "cuDNN pooling bwd (reads x, y)";
    } catch (const std::exception& e) {
      std::fprintf(stderr, "cuDNN pooling %s: %s\n", shape.c_str(), e.what());
    }
  }
  rows.push_back(f);
  rows.push_back(b);
  cudaFree(arg);
}

Row mem_row(const std::string& op, const std::string& shape, double bytes, const std::function<void()>& f) {
  Row r;
  r.op = op;
  r.shape = shape;
  r.flops = false;
  r.work = bytes;
  r.ours_ms = time_ms(f);
  return r;
}

void bench_memory_ops(std::vector<Row>& rows) {
  // One IsoNet-2 activation at full resolution: 16 x 16 x 128 x 128.
  const size_t count = size_t(16) * 16 * 128 * 128;
  const std::string act = "16x16x128x128";
  Buf a(count, 41), b(count, 42), c(count, 43);
  rows.push_back(mem_row("relu forward", act, 8.0 * count, [&] { gpu::relu_forward(a, c, count, nullptr); }));
  rows.push_back(mem_row("relu backward", act, 12.0 * count, [&] { gpu::relu_backward(a, b, c, count, nullptr); }));
  rows.push_back(mem_row("add forward", act, 12.0 * count, [&] { gpu::add_forward(a, b, c, count, nullptr); }));
  rows.push_back(mem_row("add accumulate", act, 12.0 * count, [&] { gpu::add_accumulate(a, c, count, nullptr); }));
  DropoutParams d;
  rows.push_back(mem_row("dropout forward", act, 8.0 * count, [&] { gpu::dropout_forward(d, a, c, count, nullptr); }));

  {  // upsample 16x64x32x32 -> 64x64, and its backward
    Upsample2dShape s;
    s.n = 16, s.c = 64, s.h = 32, s.w = 32;
    const size_t in = size_t(s.n) * s.c * s.h * s.w;
    Buf x(in, 44), y(4 * in, 45);
    rows.push_back(mem_row("upsample2d forward", "16x64 32x32->64x64", 20.0 * in,
                           [&] { gpu::upsample2d_forward(s, x, y, nullptr); }));
    rows.push_back(mem_row("upsample2d backward", "16x64 64x64->32x32", 20.0 * in,
                           [&] { gpu::upsample2d_backward(s, y, x, nullptr); }));
  }
  {  // concat 64 + 32 channels at 64x64 (IsoNet-2's second decoder level)
    ConcatShape s;
    s.n = 16, s.c_a = 64, s.c_b = 32, s.h = 64, s.w = 64;
    const size_t na = size_t(s.n) * s.c_a * 4096, nb = size_t(s.n) * s.c_b * 4096;
    Buf xa(na, 46), xb(nb, 47), y(na + nb, 48);
    rows.push_back(mem_row("concat forward", "16x(64+32) 64x64", 8.0 * (na + nb),
                           [&] { gpu::concat_forward(s, xa, xb, y, nullptr); }));
    rows.push_back(mem_row("concat backward", "16x(64+32) 64x64", 8.0 * (na + nb),
                           [&] { gpu::concat_backward(s, y, xa, xb, nullptr); }));
  }
  {  // PSNR loss on a batch of 16 128x128 outputs
    PsnrLossShape s;
    s.n = 16, s.per_patch = 128 * 128;
    const size_t n = s.n * s.per_patch;
    Buf y(n, 49, 0.f, 1.f), t(n, 50, 0.f, 1.f), g(n, 51), loss(1), psnr(s.n), ws(gpu::psnr_loss_workspace_floats(s));
    rows.push_back(mem_row("psnr loss forward", "16x1x128x128", 8.0 * n,
                           [&] { gpu::psnr_loss_forward(s, y, t, loss, psnr, ws, nullptr); }));
    rows.push_back(mem_row("psnr loss backward", "16x1x128x128", 20.0 * n,
                           [&] { gpu::psnr_loss_backward(s, y, t, g, ws, nullptr); }));
  }
  {  // Adam over IsoNet-2's parameters (~315k) and over 16M parameters (bandwidth)
    AdamParams ap;
    for (size_t n : {size_t(314417), size_t(16) << 20}) {
      Buf p(n, 52), gr(n, 53), m(n, 54, 0.f, 0.f), v(n, 55, 0.f, 0.f);
      long step = 1;
      rows.push_back(mem_row("adam update", std::to_string(n) + " params", 28.0 * n,
                             [&] { gpu::adam_update(ap, step++, p, gr, m, v, n, nullptr); }));
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string out_path;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--out") && i + 1 < argc) {
      out_path = argv[++i];
    } else if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) {
      g_reps = std::max(1, std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr, "usage: %s [--out results.md] [--reps N]\n", argv[0]);
      return 2;
    }
  }
  if (!cuda_available()) {
    std::printf("bench_ops_cuda: no CUDA device, nothing to measure\n");
    return 0;
  }
  try {
    cudaDeviceProp prop{};
    CUDA_CHECK("bench device", cudaGetDeviceProperties(&prop, 0));
    cublasHandle_t blas;
    CUBLAS_CHECK("bench cublas", cublasCreate(&blas));
    cudnnHandle_t dnn = nullptr;
    if (cudnnCreate(&dnn) != CUDNN_STATUS_SUCCESS) {
      std::fprintf(stderr, "bench_ops_cuda: cuDNN unavailable, reference columns left empty\n");
      dnn = nullptr;
    }
    void* dnn_ws = nullptr;
    if (dnn) CUDA_CHECK("bench alloc", cudaMalloc(&dnn_ws, kCudnnWorkspaceBytes));

    const Ceilings ceil = measure_ceilings(blas);
    std::printf("device: %s (%d SMs), ceilings: copy %.0f GB/s, SGEMM fp32 %.0f GFLOP/s, TF32 %.0f GFLOP/s\n",
                prop.name, prop.multiProcessorCount, ceil.gbps, ceil.gflops, ceil.tf32_gflops);

    std::vector<Row> rows;
    // IsoNet-2 (batch 16): C16 7x7 @128 - M - C32 @64 - M - C64 @32 - U - C32 @64 - U - C16 @128 - C1 1x1.
    // The decoder convs see the skip concatenation (64+32 and 32+16 input channels); the plain
    // 64->32 and 32->16 shapes are measured too.
    const int layers[][5] = {{1, 16, 128, 128, 7},  {16, 32, 64, 64, 7},  {32, 64, 32, 32, 7},
                             {96, 32, 64, 64, 7},   {64, 32, 64, 64, 7},  {48, 16, 128, 128, 7},
                             {32, 16, 128, 128, 7}, {16, 1, 128, 128, 1}};
    for (const auto& l : layers) {
      Conv2dShape s;
      s.n = 16, s.c_in = l[0], s.c_out = l[1], s.h = l[2], s.w = l[3], s.k = l[4];
      bench_conv(rows, dnn, dnn_ws, s);
      if (s.k > 1) bench_fft_transforms(rows, s);
    }
    {
      Conv2dShape s;
      s.n = 16, s.c_in = 16, s.c_out = 1, s.h = 128, s.w = 128, s.k = 1;
      bench_conv1x1_gemm(rows, blas, s);
      s.c_in = 32, s.c_out = 64, s.h = 64, s.w = 64;
      bench_conv1x1_gemm(rows, blas, s);
    }
    {
      Pool2dShape p;
      p.n = 16, p.c = 16, p.h = 128, p.w = 128;
      bench_pool(rows, dnn, p);
      p.c = 32, p.h = 64, p.w = 64;
      bench_pool(rows, dnn, p);
    }
    bench_memory_ops(rows);

    std::string report = "# bench_ops_cuda\n\n";
    report += std::string("device: ") + prop.name + " (" + std::to_string(prop.multiProcessorCount) + " SMs)  \n";
    report += "ceilings (measured here): device copy " + fmt("%.0f", ceil.gbps) +
              " GB/s (read+write); cuBLAS SGEMM 8192^3 fp32 (CUBLAS_DEFAULT_MATH, no TF32) " +
              fmt("%.0f", ceil.gflops) + " GFLOP/s; cuBLAS SGEMM 8192^3 with TF32 tensor cores "
              "(CUBLAS_TF32_TENSOR_OP_MATH) " + fmt("%.0f", ceil.tf32_gflops) + " GFLOP/s  \n";
    report += "times: median of " + std::to_string(g_reps) + " runs after " + std::to_string(kWarmup) +
              " warm-ups (CUDA events). Reference for convs: cuDNN fp32 with CUDNN_FMA_MATH (no tensor cores), "
              "fastest algorithm from cudnnFind*AlgorithmEx; the last column is cuDNN with CUDNN_DEFAULT_MATH, "
              "which may use TF32 tensor cores (the math it used is shown). Ours: forward without bias/ReLU and "
              "backward weights without dbias when compared; the fused variants are listed separately. Rows "
              "marked (FFT) run our frequency-domain path (Conv2dAlgo::Fft: cuFFT + our kernels, "
              "kernels/conv2d_fft.cu) against the same cuDNN time as the direct row above them; their "
              "GFLOP/s count the direct convolution's FLOPs (effective rate). Rows marked (TF32) run our "
              "tensor-core kernels (Conv2dMath::Tf32, kernels/conv2d_tf32.cu) against cuDNN with its default "
              "math (the math it used is named); their ceiling is the TF32 SGEMM.\n\n";
    report += table(rows, ceil);
    std::printf("\n%s", report.c_str());
    if (!out_path.empty()) {
      std::ofstream f(out_path);
      f << report;
      if (!f) std::fprintf(stderr, "bench_ops_cuda: could not write %s\n", out_path.c_str());
    }
    if (dnn_ws) cudaFree(dnn_ws);
    if (dnn) cudnnDestroy(dnn);
    cublasDestroy(blas);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_ops_cuda: %s\n", e.what());
    return 1;
  }
  return 0;
}
