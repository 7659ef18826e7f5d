// hostdevice.h: ISONET_HD marks small helpers compiled for both the CPU twin and the CUDA kernel,
// so both sides share one definition (the dropout hash, index math).
#pragma once
#ifdef __CUDACC__
#define ISONET_HD __host__ __device__ __forceinline__
#else
#define ISONET_HD inline
#endif
