// tiff.h: TIFF volumes through libtiff. Reads uint8, uint16 and float32 (also int8, int16, uint32,
// int32 and float64, converted to float32), 2D or 3D ZYX (pages = Z), strips or tiles, any
// compression libtiff decodes, classic or BigTIFF, into a float32 Volume with its voxel size
// (ImageJ `spacing=`/`unit=` for z, XResolution/YResolution for x and y). Writes ImageJ hyperstacks
// with all planes' pixel data contiguous (so ImageJ and tifffile read them), BigTIFF when the data
// exceed what classic TIFF can address. Writes go to a temporary file that is renamed into place,
// so a failure never leaves a half-written output.
//
// Voxel-size conventions when reading (what the `train` command relies on):
//  - z: ImageJ `spacing=` (has_z_spacing = true). Else a `BoundingBox x0 x1 y0 y1 z0 z1`
//    description (cudaDecon/LLSpy style) gives size = extent / count along each axis.
//  - y, x: 1 / YResolution, 1 / XResolution (pixels per unit), in the ImageJ `unit=` when the
//    description has one, or in centimetres when ResolutionUnit is CENTIMETER (converted to um).
//    A resolution in inches without an ImageJ unit is taken as a display DPI and ignored.
//  - OME-TIFF: PhysicalSizeZ / PhysicalSizeY / PhysicalSizeX of the OME-XML <Pixels> element, in
//    their unit attributes (um by default; nm and mm converted), never the resolution tags.
//  - units 'micron', 'um', 'µm' and ImageJ's escaped '\u00B5m' all become "um"; other units are
//    kept as written.
//  - missing values are 1.0; when neither the z spacing nor the lateral size is known the unit
//    is "px". The has_* flags say what the file actually stated.
#pragma once
#include <string>

#include "imaging/volume.h"

namespace isonet {

// Sample type of a file. write_tiff writes U8, U16 and F32; the others are read only.
enum class SampleType { U8, U16, F32, I8, I16, U32, I32, F64 };

const char* sample_type_name(SampleType t);  // "uint8", "uint16", "float32", ...

struct TiffInfo {
  int nz = 0, ny = 0, nx = 0;  // nz = planes of the (selected) volume: full-resolution pages / (channels * frames)
  int channels = 1, frames = 1;  // of an ImageJ hyperstack (channels= and frames=)
  SampleType type = SampleType::F32;
  VoxelSize voxel;
  bool has_z_spacing = false;  // the file stated a z step (ImageJ spacing= or BoundingBox)
  bool has_xy_size = false;    // the file stated a lateral pixel size (resolution with a unit)
  bool imagej = false;         // ImageDescription starts with "ImageJ="
  bool bigtiff = false;
  bool tiled = false;
  int compression = 1;      // libtiff COMPRESSION_* value of the first page
  std::string description;  // ImageDescription of the first page
};

// Which volume of a hyperstack to read: the ZYX stack of one channel at one time point. ImageJ
// hyperstacks state channels= / frames= (planes stored channel fastest, then slice, then frame);
// OME-TIFF states SizeC / SizeT and the plane order (DimensionOrder). -1: the file must have only
// one channel (frame).
struct TiffSelection {
  int channel = -1;
  int frame = -1;
};

// Reads only the header information (nz = planes of one selected volume; channels and frames of
// the file; no selection is needed here). Throws isonet::Error naming the file and the problem.
TiffInfo read_tiff_info(const std::string& path, const TiffSelection& select = {});

// Reads the whole volume. Refuses (with a message saying what was found) a hyperstack with several
// channels or time points unless `select` picks one, OME-TIFF with several images (series),
// RGB/palette images, pages of differing size or type, and unsupported sample formats; corrupt or
// truncated files give an error naming the file, never a crash. Reduced-resolution pages
// (thumbnails, NewSubfileType bit 0) are skipped. `info`, when given, receives the same
// information read_tiff_info returns.
Volume read_tiff(const std::string& path, TiffInfo* info = nullptr, const TiffSelection& select = {});

struct TiffWriteOptions {
  SampleType type = SampleType::F32;  // U8, U16 or F32
  bool force_bigtiff = false;         // BigTIFF even when classic TIFF would do (tests, tools)
};

// Writes `v` as an ImageJ hyperstack (description `ImageJ=1.11a images= slices= hyperstack=true
// mode=grayscale unit= spacing= loop=false min= max=` as tifffile writes it; XResolution and
// YResolution = 1/voxel size as the closest 32-bit rationals, ResolutionUnit none; unit "um" is
// written as ImageJ's "micron"; an uncalibrated volume (unit "px", sizes 1) gets no unit/spacing). For U8/U16 the values are rounded (half away from zero) and
// clamped to the type's range (the caller scales); NaN is refused for integer types. BigTIFF is
// used when the file would pass 4 GiB (ImageJ cannot open BigTIFF; tifffile and Fiji's
// Bio-Formats can). Atomic (temp file in the same directory + rename).
void write_tiff(const std::string& path, const Volume& v, const TiffWriteOptions& options);
void write_tiff(const std::string& path, const Volume& v, SampleType type = SampleType::F32);

}  // namespace isonet
