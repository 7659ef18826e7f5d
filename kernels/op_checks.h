// op_checks.h: small precondition helpers shared by the public entries of the CPU and CUDA ops.
// The per-op shape checks (check_conv2d_shape, check_pool2d_shape, ...) are declared in each op's
// header; all of them are defined in op_checks.cpp so both backends validate identically.
#pragma once

namespace isonet {

// Throws isonet::Error "<op>: <name> is a null pointer" when p is null.
void check_not_null(const void* p, const char* op, const char* name);

}  // namespace isonet
