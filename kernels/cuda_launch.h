// cuda_launch.h: small launch helpers shared by the CUDA kernels (.cu files only): grid sizing for
// grid-stride loops, the grid-stride loop itself, float4 packs for vectorized elementwise kernels,
// and a deterministic block reduction (a fixed shuffle tree, so results are identical run to run).
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "kernels/cuda_check.h"

namespace isonet::gpu::detail {

// Threads per block of the elementwise and reduction kernels (a multiple of 32).
constexpr int kBlock = 256;

// Blocks for a grid-stride loop over `items` work items, one per thread per pass. Capped: beyond
// ~16M threads a grid-stride loop is as fast and the grid stays far below the 2^31-1 limit.
inline unsigned grid_for(size_t items, int block = kBlock) {
  const size_t blocks = (items + static_cast<size_t>(block) - 1) / static_cast<size_t>(block);
  return static_cast<unsigned>(std::clamp<size_t>(blocks, 1, 65536));
}

// True when p is 16-byte aligned (float4 loads/stores are legal).
inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// Calls f(i) for every i in [0, count), spreading the indices over the whole grid.
template <class F>
__device__ __forceinline__ void grid_stride(size_t count, F&& f) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride) f(i);
}

// W consecutive floats held in registers; W = 4 is one float4 access.
template <int W>
struct Pack {
  float v[W];
};
template <int W>
using Width = std::integral_constant<int, W>;

template <int W>
__device__ __forceinline__ Pack<W> load_pack(const float* p) {
  Pack<W> r;
  if constexpr (W == 4) {
    const float4 q = *reinterpret_cast<const float4*>(p);
    r.v[0] = q.x, r.v[1] = q.y, r.v[2] = q.z, r.v[3] = q.w;
  } else {
    static_assert(W == 1, "packs are 1 or 4 floats");
    r.v[0] = *p;
  }
  return r;
}

template <int W>
__device__ __forceinline__ void store_pack(float* p, const Pack<W>& r) {
  if constexpr (W == 4) {
    *reinterpret_cast<float4*>(p) = make_float4(r.v[0], r.v[1], r.v[2], r.v[3]);
  } else {
    static_assert(W == 1, "packs are 1 or 4 floats");
    *p = r.v[0];
  }
}

// Elementwise driver: calls f(i, Width<4>{}) for the float4 chunks [i, i+4) when vec4 (every
// pointer the kernel touches is 16-byte aligned), then f(i, Width<1>{}) for the scalar tail (or
// for everything when !vec4). Each index is handled by exactly one thread, so in-place ops are safe.
template <class F>
__device__ __forceinline__ void elementwise(size_t count, bool vec4, F&& f) {
  const size_t n4 = vec4 ? count / 4 : 0;
  grid_stride(n4, [&](size_t i) { f(4 * i, Width<4>{}); });
  const size_t tail = count - 4 * n4;
  grid_stride(tail, [&](size_t i) { f(4 * n4 + i, Width<1>{}); });
}

// Blocks for elementwise(): one float4 per thread per pass.
inline unsigned grid_for_elementwise(size_t count) { return grid_for((count + 3) / 4); }

// Global -> shared staging by the whole block: smem[i] = load(i) for i in [0, count). Each thread
// first issues kStageBatch independent global loads, then stores them, so their latencies overlap
// instead of adding up (one load-store pair per iteration would wait a full memory round trip
// each time). Used by the tiled convolution kernels.
constexpr int kStageBatch = 8;
template <class Load>
__device__ __forceinline__ void stage_shared(float* smem, int count, Load&& load) {
  for (int base = threadIdx.x; base < count; base += kStageBatch * blockDim.x) {
    float v[kStageBatch];
#pragma unroll
    for (int j = 0; j < kStageBatch; ++j) {
      const int i = base + j * blockDim.x;
      v[j] = i < count ? load(i) : 0.f;
    }
#pragma unroll
    for (int j = 0; j < kStageBatch; ++j) {
      const int i = base + j * blockDim.x;
      if (i < count) smem[i] = v[j];
    }
  }
}

// Deterministic reduction of one value per thread over the block (blockDim.x a multiple of 32,
// at most 1024): a fixed shuffle tree per warp, then warp 0 combines the per-warp results in
// order. The result is valid in thread 0. scratch: 32 T in shared memory. Ends with a barrier, so
// the same scratch can be reused by the next call.
template <class T, class Op>
__device__ __forceinline__ T block_reduce(T v, Op op, T identity, T* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v = op(v, __shfl_down_sync(0xffffffffu, v, off));
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  if (warp == 0) {
    const int nwarps = static_cast<int>(blockDim.x >> 5);
    v = lane < nwarps ? scratch[lane] : identity;
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) v = op(v, __shfl_down_sync(0xffffffffu, v, off));
  }
  __syncthreads();
  return v;
}

struct SumOp {
  template <class T>
  __device__ __forceinline__ T operator()(T a, T b) const {
    return a + b;
  }
};

// Max where a NaN wins (and stays): the rule of the CPU twins (max pooling, PSNR's target max).
struct NanMaxOp {
  __device__ __forceinline__ float operator()(float a, float b) const {
    return (isnan(a) || b <= a) ? a : b;  // b NaN: b <= a is false, so b is returned
  }
};

}  // namespace isonet::gpu::detail
