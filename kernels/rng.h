// rng.h: counter-based random numbers keyed on (seed, step, element index), never on thread ids,
// so CPU and GPU draw bit-identical values and a dropout mask can be recomputed in the backward.
// The mixer is SplitMix64's finalizer (Steele, Lea, Flood 2014), applied to each key in turn.
#pragma once
#include <cstdint>

#include "kernels/hostdevice.h"

namespace isonet {

ISONET_HD uint64_t mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// 32 uniformly distributed bits for element `index` of draw `step` under `seed`.
ISONET_HD uint32_t counter_random_u32(uint64_t seed, uint64_t step, uint64_t index) {
  return static_cast<uint32_t>(mix64(mix64(mix64(seed) ^ step) ^ index) >> 32);
}

// Integer threshold for keeping an element with probability (1 - drop_probability):
// keep when counter_random_u32(...) >= threshold. Computed in double on the host, once.
inline uint32_t dropout_threshold(float drop_probability) {
  double t = static_cast<double>(drop_probability) * 4294967296.0;
  if (t <= 0.0) return 0u;
  if (t >= 4294967295.0) return 4294967295u;
  return static_cast<uint32_t>(t);
}

}  // namespace isonet
