// tiff.h: TIFF volumes through libtiff. Reads uint8, uint16 and float32 (2D or 3D ZYX, strips
// or tiles, any compression libtiff decodes, classic or BigTIFF) into a float32 Volume with its
// voxel size (ImageJ `spacing=`/`unit=` for z, XResolution/YResolution for x and y). Writes
// ImageJ hyperstacks with all planes' pixel data contiguous (so ImageJ and tifffile read them),
// BigTIFF when the data exceed what classic TIFF can address. Writes go to a temporary file that
// is renamed into place, so a failure never leaves a half-written output.
#pragma once
#include <string>

#include "imaging/volume.h"

namespace isonet {

enum class SampleType { U8, U16, F32 };

const char* sample_type_name(SampleType t);

struct TiffInfo {
  int nz = 0, ny = 0, nx = 0;
  SampleType type = SampleType::F32;
  VoxelSize voxel;
  bool bigtiff = false;
  bool tiled = false;
  int compression = 1;  // libtiff COMPRESSION_* value
  std::string description;  // ImageDescription of the first page
};

// Reads only the header information. Throws isonet::Error naming the file and the problem.
TiffInfo read_tiff_info(const std::string& path);

// Reads the whole volume. Refuses (with a message saying what was found) multi-channel or
// multi-timepoint hyperstacks, RGB/palette images, and unsupported sample formats; corrupt or
// truncated files give an error naming the file, never a crash.
Volume read_tiff(const std::string& path);

// Writes `v` as an ImageJ hyperstack of the given sample type. For U8/U16 the values are
// rounded and clamped to the type's range (the caller scales). Atomic (temp file + rename).
void write_tiff(const std::string& path, const Volume& v, SampleType type = SampleType::F32);

}  // namespace isonet
