// test_tensor.cpp: tensor ownership, explicit copies, shape errors and device selection.
#include "nn/tensor.h"

#include "kernels/error.h"
#include "test_util.h"

using namespace isonet;

TEST_CASE("tensor: from_vector, clone and to_vector round trip on the CPU") {
  std::vector<float> v = test::random_vector(2 * 3 * 5 * 7, 1);
  Tensor t = Tensor::from_vector({2, 3, 5, 7}, v);
  CHECK(t.numel() == v.size());
  Tensor c = t.clone();
  CHECK(c.data() != t.data());
  CHECK(c.to_vector() == v);
  Tensor moved = std::move(c);
  CHECK(c.data() == nullptr);
  CHECK(moved.to_vector() == v);
}

TEST_CASE("tensor: shape mismatches are refused with both shapes named") {
  Tensor a = Tensor::zeros({1, 2, 3, 4});
  Tensor b = Tensor::zeros({1, 2, 4, 3});
  CHECK_THROWS_WITH_AS(a.copy_from(b), doctest::Contains("expected shape [1,2,3,4], got [1,2,4,3]"), Error);
  CHECK_THROWS_AS(Tensor::from_vector({1, 1, 2, 2}, {1.f, 2.f, 3.f}), Error);
}

TEST_CASE("device: auto falls back to the CPU, and cuda without a device is a clear error") {
  CHECK(select_device("cpu") == Device::CPU);
  CHECK_THROWS_AS(select_device("tpu"), Error);
  if (!cuda_available()) {
    CHECK(select_device("auto") == Device::CPU);
    CHECK_THROWS_WITH_AS(select_device("cuda"), doctest::Contains("--device cuda"), Error);
  } else {
    CHECK(select_device("auto") == Device::CUDA);
  }
}

TEST_CASE("device: host allocations are accounted and released") {
  size_t before = device_bytes_in_use(Device::CPU);
  {
    Tensor t({4, 4, 4, 4});
    CHECK(device_bytes_in_use(Device::CPU) == before + t.bytes());
  }
  CHECK(device_bytes_in_use(Device::CPU) == before);
}
