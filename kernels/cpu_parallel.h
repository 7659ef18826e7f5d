// cpu_parallel.h: when the CPU twins hand elementwise work to OpenMP. Below this many elements a
// parallel region (a few microseconds to wake the team) costs more than the loop itself.
#pragma once
#include <cstddef>

namespace isonet::cpu {
constexpr size_t kParallelMinElements = size_t(1) << 15;
}  // namespace isonet::cpu
