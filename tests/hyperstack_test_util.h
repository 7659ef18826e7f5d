// hyperstack_test_util.h: ImageJ hyperstacks (several channels and time points in one TIFF, as Fiji
// saves them) written with libtiff for the tests of channel/time-point selection (test_tiff,
// test_app_inputs). Planes are stored channel fastest, then slice, then frame (ImageJ's order).
#pragma once
#include <tiffio.h>

#include <cstdint>
#include <string>
#include <vector>

#include "test_util.h"

namespace isonet::test {

// The value of pixel (y, x) of channel c, slice z, frame t: each volume is recognizable.
inline uint16_t hyperstack_value(int c, int z, int t, int y, int x) {
  return uint16_t(1000 * t + 100 * c + 10 * z + (y + x) % 10);
}

// Writes channels x slices x frames planes of ny x nx uint16 (or only the first `pages` of them,
// for a truncated file), z spacing 0.5 um, pixels 0.1 um.
inline void write_imagej_hyperstack(const std::string& path, int channels, int slices, int frames, int ny, int nx,
                                    int pages = -1) {
  const int total = channels * slices * frames;
  if (pages < 0) pages = total;
  const std::string description = "ImageJ=1.53t\nimages=" + std::to_string(total) + "\nchannels=" +
                                  std::to_string(channels) + "\nslices=" + std::to_string(slices) + "\nframes=" +
                                  std::to_string(frames) + "\nhyperstack=true\nmode=grayscale\nunit=micron\n"
                                  "spacing=0.5\nloop=false\n";
  TIFF* t = TIFFOpen(path.c_str(), "w");
  REQUIRE(t != nullptr);
  std::vector<uint16_t> plane(size_t(ny) * nx);
  for (int p = 0; p < pages; ++p) {
    const int c = p % channels, z = (p / channels) % slices, f = p / (channels * slices);
    for (int y = 0; y < ny; ++y)
      for (int x = 0; x < nx; ++x) plane[size_t(y) * nx + x] = hyperstack_value(c, z, f, y, x);
    REQUIRE(TIFFSetField(t, TIFFTAG_IMAGEWIDTH, uint32_t(nx)));
    REQUIRE(TIFFSetField(t, TIFFTAG_IMAGELENGTH, uint32_t(ny)));
    REQUIRE(TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, uint16_t(16)));
    REQUIRE(TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, uint16_t(1)));
    REQUIRE(TIFFSetField(t, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK));
    REQUIRE(TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG));
    REQUIRE(TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, uint32_t(ny)));
    REQUIRE(TIFFSetField(t, TIFFTAG_XRESOLUTION, 10.0f));
    REQUIRE(TIFFSetField(t, TIFFTAG_YRESOLUTION, 10.0f));
    if (p == 0) REQUIRE(TIFFSetField(t, TIFFTAG_IMAGEDESCRIPTION, description.c_str()));
    REQUIRE(TIFFWriteEncodedStrip(t, 0, plane.data(), tmsize_t(plane.size() * 2)) >= 0);
    REQUIRE(TIFFWriteDirectory(t));
  }
  TIFFClose(t);
}

}  // namespace isonet::test
