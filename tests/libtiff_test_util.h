// libtiff_test_util.h: TIFF files written with libtiff itself (not our writer) for the reader's
// tests (test_tiff, test_app_inputs): compressed and multi-strip pages, and ImageJ hyperstacks
// (several channels and time points in one file, as Fiji saves them; planes stored channel
// fastest, then slice, then frame).
#pragma once
#include <tiffio.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "test_util.h"

namespace isonet::test {

struct LibtiffPages {
  uint16_t compression = COMPRESSION_NONE;
  uint16_t predictor = 1;       // 1: none
  uint32_t rows_per_strip = 0;  // 0: the whole page in one strip
  float resolution = 0;         // X/YResolution in pixels per unit (0: no tag)
  std::string description;      // ImageDescription of page 0 ("" = none)
};

// Writes data [nz, ny, nx] as nz uint16 pages.
inline void write_with_libtiff(const std::string& path, const std::vector<uint16_t>& data, int nz, int ny, int nx,
                               const LibtiffPages& how = {}) {
  const uint32_t rows_per_strip = how.rows_per_strip ? how.rows_per_strip : uint32_t(ny);
  TIFF* t = TIFFOpen(path.c_str(), "w");
  REQUIRE(t != nullptr);
  for (int z = 0; z < nz; ++z) {
    REQUIRE(TIFFSetField(t, TIFFTAG_IMAGEWIDTH, uint32_t(nx)));
    REQUIRE(TIFFSetField(t, TIFFTAG_IMAGELENGTH, uint32_t(ny)));
    REQUIRE(TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, uint16_t(16)));
    REQUIRE(TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, uint16_t(1)));
    REQUIRE(TIFFSetField(t, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK));
    REQUIRE(TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG));
    REQUIRE(TIFFSetField(t, TIFFTAG_COMPRESSION, how.compression));
    if (how.predictor != 1) REQUIRE(TIFFSetField(t, TIFFTAG_PREDICTOR, how.predictor));
    REQUIRE(TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, rows_per_strip));
    if (how.resolution > 0) {
      REQUIRE(TIFFSetField(t, TIFFTAG_XRESOLUTION, how.resolution));
      REQUIRE(TIFFSetField(t, TIFFTAG_YRESOLUTION, how.resolution));
    }
    if (z == 0 && !how.description.empty()) REQUIRE(TIFFSetField(t, TIFFTAG_IMAGEDESCRIPTION, how.description.c_str()));
    for (uint32_t y0 = 0; y0 < uint32_t(ny); y0 += rows_per_strip) {
      const uint32_t rows = std::min<uint32_t>(rows_per_strip, ny - y0);
      std::vector<uint16_t> strip(data.begin() + (size_t(z) * ny + y0) * nx,
                                  data.begin() + (size_t(z) * ny + y0 + rows) * nx);
      REQUIRE(TIFFWriteEncodedStrip(t, y0 / rows_per_strip, strip.data(), tmsize_t(strip.size() * 2)) >= 0);
    }
    REQUIRE(TIFFWriteDirectory(t));
  }
  TIFFClose(t);
}

// The value of pixel (y, x) of channel c, slice z, frame t: each volume is recognizable.
inline uint16_t hyperstack_value(int c, int z, int t, int y, int x) {
  return uint16_t(1000 * t + 100 * c + 10 * z + (y + x) % 10);
}

// Writes an ImageJ hyperstack of channels x slices x frames planes of ny x nx uint16 (or only the
// first `pages` of them, for a truncated file), z spacing 0.5 um, pixels 0.1 um.
inline void write_imagej_hyperstack(const std::string& path, int channels, int slices, int frames, int ny, int nx,
                                    int pages = -1) {
  const int total = channels * slices * frames;
  if (pages < 0) pages = total;
  std::vector<uint16_t> data(size_t(pages) * ny * nx);
  for (int p = 0; p < pages; ++p) {
    const int c = p % channels, z = (p / channels) % slices, f = p / (channels * slices);
    for (int y = 0; y < ny; ++y)
      for (int x = 0; x < nx; ++x) data[(size_t(p) * ny + y) * nx + x] = hyperstack_value(c, z, f, y, x);
  }
  LibtiffPages how;
  how.resolution = 10.f;
  how.description = "ImageJ=1.53t\nimages=" + std::to_string(total) + "\nchannels=" + std::to_string(channels) +
                    "\nslices=" + std::to_string(slices) + "\nframes=" + std::to_string(frames) +
                    "\nhyperstack=true\nmode=grayscale\nunit=micron\nspacing=0.5\nloop=false\n";
  write_with_libtiff(path, data, pages, ny, nx, how);
}

}  // namespace isonet::test
