// concat.cu: CUDA kernels for channel concatenation (U-Net skips) and its backward (a split).
// In NCHW an image of the output is a's channels followed by b's, so both directions are one
// elementwise pass over the output's index space that picks the source/destination per element.
// float4 when the channel plane is a multiple of 4 (a pack never straddles a/b) and all pointers
// are 16-byte aligned.
#include "kernels/concat.h"

#include "kernels/cuda_launch.h"
#include "kernels/op_checks.h"

namespace isonet::gpu {

namespace {
// Where output element i lives: in a (offset into a) or in b (offset into b).
struct ConcatIndex {
  size_t na, nb;  // floats per image of a and of b: c_a*h*w, c_b*h*w
  __device__ __forceinline__ bool in_a(size_t i, size_t* off) const {
    const size_t img = i / (na + nb), r = i - img * (na + nb);
    if (r < na) {
      *off = img * na + r;
      return true;
    }
    *off = img * nb + (r - na);
    return false;
  }
};

// a [n,c_a,h,w], b [n,c_b,h,w] -> y [n,c_a+c_b,h,w]
__global__ void concat_forward_kernel(ConcatIndex ix, const float* a, const float* b, float* y, size_t count,
                                      bool vec4) {
  detail::elementwise(count, vec4, [&](size_t i, auto width) {
    constexpr int W = decltype(width)::value;
    size_t off;
    const float* src = ix.in_a(i, &off) ? a : b;
    detail::store_pack<W>(y + i, detail::load_pack<W>(src + off));
  });
}

// dy [n,c_a+c_b,h,w] -> da [n,c_a,h,w], db [n,c_b,h,w]; a null destination is skipped.
__global__ void concat_backward_kernel(ConcatIndex ix, const float* dy, float* da, float* db, size_t count,
                                       bool vec4) {
  detail::elementwise(count, vec4, [&](size_t i, auto width) {
    constexpr int W = decltype(width)::value;
    size_t off;
    float* dst = ix.in_a(i, &off) ? da : db;
    if (dst) detail::store_pack<W>(dst + off, detail::load_pack<W>(dy + i));
  });
}

ConcatIndex concat_index(const ConcatShape& s) {
  const size_t plane = static_cast<size_t>(s.h) * s.w;
  return {static_cast<size_t>(s.c_a) * plane, static_cast<size_t>(s.c_b) * plane};
}

size_t concat_count(const ConcatShape& s) {
  return static_cast<size_t>(s.n) * (static_cast<size_t>(s.c_a) + s.c_b) * s.h * s.w;
}

bool plane_vec4(const ConcatShape& s) { return (static_cast<size_t>(s.h) * s.w) % 4 == 0; }
}  // namespace

void concat_forward(const ConcatShape& s, const float* a, const float* b, float* y, cudaStream_t stream) {
  const char* op = "concat_forward (cuda)";
  check_concat_shape(s, op);
  check_not_null(a, op, "a");
  check_not_null(b, op, "b");
  check_not_null(y, op, "y");
  const size_t count = concat_count(s);
  const bool vec4 = plane_vec4(s) && detail::aligned16(a) && detail::aligned16(b) && detail::aligned16(y);
  concat_forward_kernel<<<detail::grid_for_elementwise(count), detail::kBlock, 0, stream>>>(concat_index(s), a, b,
                                                                                            y, count, vec4);
  CUDA_CHECK_LAUNCH(op);
}

void concat_backward(const ConcatShape& s, const float* dy, float* da, float* db, cudaStream_t stream) {
  const char* op = "concat_backward (cuda)";
  check_concat_shape(s, op);
  check_not_null(dy, op, "dy");
  if (!da && !db) return;  // neither input wants a gradient
  const size_t count = concat_count(s);
  const bool vec4 = plane_vec4(s) && detail::aligned16(dy) && (!da || detail::aligned16(da)) &&
                    (!db || detail::aligned16(db));
  concat_backward_kernel<<<detail::grid_for_elementwise(count), detail::kBlock, 0, stream>>>(concat_index(s), dy,
                                                                                             da, db, count, vec4);
  CUDA_CHECK_LAUNCH(op);
}

}  // namespace isonet::gpu
