// png_image.h: 8-bit grayscale PNG previews of volumes: orthogonal slices, intensity scaling
// (fixed range or percentiles), a grid of panels with gaps, and atomic PNG writing via libpng.
// Used by `isonet preview` and by reports; not a general image library.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "imaging/volume.h"

namespace isonet {

// An 8-bit grayscale image, rows top to bottom.
struct Gray8 {
  int height = 0, width = 0;
  std::vector<uint8_t> pixels;  // [height, width]
};

// Orthogonal slices of a volume as 2D images (Volume with nz == 1):
// xy at plane z -> [ny, nx]; xz at row y -> [nz, nx]; yz at column x -> [nz, ny].
Volume slice_xy(const Volume& v, int z);
Volume slice_xz(const Volume& v, int y);
Volume slice_yz(const Volume& v, int x);

struct IntensityRange {
  float lo = 0.f, hi = 1.f;
};
// The p_lo and p_hi percentiles (0..100, nearest rank) of the finite values of `v`.
IntensityRange percentile_range(const Volume& v, double p_lo = 0.5, double p_hi = 99.8);

// Maps a 2D image (nz == 1) to 8 bits: lo -> 0, hi -> 255, linear, clamped, rounded; NaN -> 0.
// hi <= lo maps everything to 0.
Gray8 to_gray8(const Volume& image, IntensityRange range);

// Panels laid out row-major in `columns` columns, each grid cell as large as the largest panel
// of its row/column, panels at the top-left of their cell, `gap` pixels of gap_value between
// cells (and none around the border).
Gray8 compose_grid(const std::vector<Gray8>& panels, int columns, int gap = 2, uint8_t gap_value = 255);

// Atomic write (temp file + rename); libpng errors become isonet::Error naming the file.
void write_png(const std::string& path, const Gray8& image);
// Reads an 8-bit (or lower) grayscale PNG; other formats are refused. For tests and tools.
Gray8 read_png_gray(const std::string& path);

}  // namespace isonet
