// stream.h: names cudaStream_t without including the CUDA headers, so that op headers can be
// included from plain C++ (CPU-only builds too). This is the same typedef the CUDA runtime uses.
#pragma once
struct CUstream_st;
typedef struct CUstream_st* cudaStream_t;
