// volume.h: the image type shared by all of imaging/: a ZYX float32 volume on the host with its
// voxel size carried alongside (conventions in ../shared/DESIGN.md section 5). A 2D image is a
// volume with nz == 1.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace isonet {

struct VoxelSize {
  double z = 1.0, y = 1.0, x = 1.0;  // physical size of one voxel along each axis
  std::string unit = "um";            // as written to/read from ImageJ metadata
};

struct Volume {
  int nz = 0, ny = 0, nx = 0;
  std::vector<float> data;  // [nz, ny, nx], x fastest
  VoxelSize voxel;

  Volume() = default;
  Volume(int nz_, int ny_, int nx_, float fill = 0.f) : nz(nz_), ny(ny_), nx(nx_), data(size_t(nz_) * ny_ * nx_, fill) {}

  size_t size() const { return data.size(); }
  size_t plane() const { return size_t(ny) * nx; }
  size_t index(int z, int y, int x) const { return (size_t(z) * ny + y) * nx + x; }
  float& at(int z, int y, int x) { return data[index(z, y, x)]; }
  float at(int z, int y, int x) const { return data[index(z, y, x)]; }
  float* plane_ptr(int z) { return data.data() + size_t(z) * plane(); }
  const float* plane_ptr(int z) const { return data.data() + size_t(z) * plane(); }
  std::string shape_str() const;  // "(Z,Y,X)"
};

// Throws isonet::Error naming `what` if any value is NaN or Inf (first offending index given).
void require_finite(const Volume& v, const char* what);

}  // namespace isonet
