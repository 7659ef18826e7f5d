// volume.cpp: implementation of volume.h.
#include "imaging/volume.h"

#include <cmath>

#include "kernels/error.h"

namespace isonet {

std::string Volume::shape_str() const {
  return "(" + std::to_string(nz) + "," + std::to_string(ny) + "," + std::to_string(nx) + ")";
}

void require_finite(const Volume& v, const char* what) {
  for (size_t i = 0; i < v.data.size(); ++i) {
    if (!std::isfinite(v.data[i])) {
      size_t x = i % v.nx, y = (i / v.nx) % v.ny, z = i / v.plane();
      fail(what, ": non-finite value ", v.data[i], " at (z,y,x)=(", z, ",", y, ",", x,
           "); clean the input (NaN/Inf are not valid intensities)");
    }
  }
}

}  // namespace isonet
