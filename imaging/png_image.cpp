// png_image.cpp: implementation of png_image.h. libpng reports errors through longjmp; every
// libpng call sits in a function whose C++ objects all exist before its setjmp, so a longjmp
// skips no destructor; the error text is copied out and thrown after libpng has cleaned up.
#include "imaging/png_image.h"

#include <png.h>

#include <algorithm>
#include <cmath>
#include <cerrno>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <memory>

#include "imaging/atomic_file.h"
#include "imaging/normalize.h"
#include "kernels/error.h"

namespace isonet {

namespace {

void require_2d(const Volume& image, const char* op) {
  ISONET_CHECK(image.nz == 1 && image.ny > 0 && image.nx > 0 && image.data.size() == image.plane(), op,
               ": expected a 2D image (nz == 1), got shape ", image.shape_str());
}

}  // namespace

Volume slice_xy(const Volume& v, int z) {
  ISONET_CHECK(z >= 0 && z < v.nz, "slice_xy: plane ", z, " outside ", v.shape_str());
  Volume s(1, v.ny, v.nx);
  std::copy(v.plane_ptr(z), v.plane_ptr(z) + v.plane(), s.data.begin());
  s.voxel = v.voxel;
  return s;
}

Volume slice_xz(const Volume& v, int y) {
  ISONET_CHECK(y >= 0 && y < v.ny, "slice_xz: row ", y, " outside ", v.shape_str());
  Volume s(1, v.nz, v.nx);
  for (int z = 0; z < v.nz; ++z)
    for (int x = 0; x < v.nx; ++x) s.at(0, z, x) = v.at(z, y, x);
  s.voxel = VoxelSize{1.0, v.voxel.z, v.voxel.x, v.voxel.unit};
  return s;
}

Volume slice_yz(const Volume& v, int x) {
  ISONET_CHECK(x >= 0 && x < v.nx, "slice_yz: column ", x, " outside ", v.shape_str());
  Volume s(1, v.nz, v.ny);
  for (int z = 0; z < v.nz; ++z)
    for (int y = 0; y < v.ny; ++y) s.at(0, z, y) = v.at(z, y, x);
  s.voxel = VoxelSize{1.0, v.voxel.z, v.voxel.y, v.voxel.unit};
  return s;
}

IntensityRange percentile_range(const Volume& v, double p_lo, double p_hi) {
  ISONET_CHECK(p_lo >= 0 && p_lo <= p_hi && p_hi <= 100, "percentile_range: need 0 <= p_lo <= p_hi <= 100, got ",
               p_lo, ", ", p_hi);
  std::vector<float> finite;
  finite.reserve(v.data.size());
  for (float x : v.data)
    if (std::isfinite(x)) finite.push_back(x);
  ISONET_CHECK(!finite.empty(), "percentile_range: no finite values in ", v.shape_str());
  IntensityRange r;
  r.lo = percentile_nearest_rank(finite, p_lo);
  r.hi = percentile_nearest_rank(finite, p_hi);
  return r;
}

Gray8 to_gray8(const Volume& image, IntensityRange range) {
  require_2d(image, "to_gray8");
  Gray8 g;
  g.height = image.ny;
  g.width = image.nx;
  g.pixels.resize(image.plane());
  const double span = double(range.hi) - double(range.lo);
  for (size_t i = 0; i < g.pixels.size(); ++i) {
    double x = image.data[i];
    double t = (span > 0 && std::isfinite(x)) ? (x - range.lo) / span : 0.0;
    g.pixels[i] = uint8_t(std::lround(std::clamp(t, 0.0, 1.0) * 255.0));
  }
  return g;
}

Gray8 compose_grid(const std::vector<Gray8>& panels, int columns, int gap, uint8_t gap_value) {
  ISONET_CHECK(!panels.empty(), "compose_grid: no panels");
  ISONET_CHECK(columns >= 1 && gap >= 0, "compose_grid: need columns >= 1 and gap >= 0, got ", columns, ", ", gap);
  const int n = int(panels.size()), cols = std::min(columns, n), rows = (n + cols - 1) / cols;
  std::vector<int> col_w(cols, 0), row_h(rows, 0);
  for (int i = 0; i < n; ++i) {
    const Gray8& p = panels[i];
    ISONET_CHECK(p.height > 0 && p.width > 0 && p.pixels.size() == size_t(p.height) * p.width,
                 "compose_grid: panel ", i, " is malformed (", p.height, "x", p.width, ")");
    col_w[i % cols] = std::max(col_w[i % cols], p.width);
    row_h[i / cols] = std::max(row_h[i / cols], p.height);
  }
  Gray8 g;
  for (int w : col_w) g.width += w;
  for (int h : row_h) g.height += h;
  g.width += gap * (cols - 1);
  g.height += gap * (rows - 1);
  // Cells larger than their panel are filled with the gap value too (they are not image).
  g.pixels.assign(size_t(g.height) * g.width, gap_value);
  int y0 = 0;
  for (int r = 0; r < rows; ++r) {
    int x0 = 0;
    for (int c = 0; c < cols && r * cols + c < n; ++c) {
      const Gray8& p = panels[r * cols + c];
      for (int y = 0; y < p.height; ++y) {
        std::copy_n(p.pixels.data() + size_t(y) * p.width, p.width, g.pixels.data() + size_t(y0 + y) * g.width + x0);
      }
      x0 += col_w[c] + gap;
    }
    y0 += row_h[r] + gap;
  }
  return g;
}

namespace {

struct PngMessage {
  char text[256] = {0};
};

void png_error_fn(png_structp png, png_const_charp msg) {
  auto* m = static_cast<PngMessage*>(png_get_error_ptr(png));
  if (m) std::snprintf(m->text, sizeof m->text, "%s", msg ? msg : "unknown libpng error");
  png_longjmp(png, 1);
}
void png_warning_fn(png_structp, png_const_charp) {}

// Encodes `image` to `file`; returns false with msg filled on a libpng error.
bool encode_png(FILE* file, const Gray8& image, PngMessage& msg) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &msg, png_error_fn, png_warning_fn);
  if (!png) {
    std::snprintf(msg.text, sizeof msg.text, "png_create_write_struct failed");
    return false;
  }
  png_infop info = png_create_info_struct(png);
  if (!info) {
    png_destroy_write_struct(&png, nullptr);
    std::snprintf(msg.text, sizeof msg.text, "png_create_info_struct failed");
    return false;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return false;
  }
  png_init_io(png, file);
  png_set_IHDR(png, info, png_uint_32(image.width), png_uint_32(image.height), 8, PNG_COLOR_TYPE_GRAY,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < image.height; ++y) {
    png_write_row(png, image.pixels.data() + size_t(y) * image.width);
  }
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return true;
}

// Decodes a grayscale PNG; returns false with msg filled on error. `out` is sized here.
bool decode_png(FILE* file, Gray8& out, PngMessage& msg) {
  std::vector<png_bytep> rows;  // created before setjmp: a longjmp must not skip a destructor
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &msg, png_error_fn, png_warning_fn);
  if (!png) {
    std::snprintf(msg.text, sizeof msg.text, "png_create_read_struct failed");
    return false;
  }
  png_infop info = png_create_info_struct(png);
  if (!info) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    std::snprintf(msg.text, sizeof msg.text, "png_create_info_struct failed");
    return false;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  png_init_io(png, file);
  png_read_info(png, info);
  png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
  int color = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
  if (color != PNG_COLOR_TYPE_GRAY || depth > 8) {
    std::snprintf(msg.text, sizeof msg.text, "not an 8-bit grayscale PNG (color type %d, bit depth %d)", color, depth);
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  if (depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  if (uint64_t(w) * h > (uint64_t(1) << 31)) {
    std::snprintf(msg.text, sizeof msg.text, "image too large (%ux%u)", unsigned(w), unsigned(h));
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  out.width = int(w);
  out.height = int(h);
  out.pixels.resize(size_t(w) * h);
  rows.resize(h);
  for (png_uint_32 y = 0; y < h; ++y) rows[y] = out.pixels.data() + size_t(y) * w;
  png_read_image(png, rows.data());
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  return true;
}

}  // namespace

void write_png(const std::string& path, const Gray8& image) {
  ISONET_CHECK(image.height > 0 && image.width > 0 && image.pixels.size() == size_t(image.height) * image.width,
               "write_png ", path, ": malformed image (", image.height, "x", image.width, ", ", image.pixels.size(),
               " pixels)");
  AtomicFile out(path);
  PngMessage msg;
  if (!encode_png(out.file(), image, msg)) fail("write_png ", path, ": ", msg.text);
  out.commit();
}

Gray8 read_png_gray(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), std::fclose);
  if (!file) fail("read_png ", path, ": cannot open: ", std::strerror(errno));
  unsigned char sig[8];
  if (std::fread(sig, 1, 8, file.get()) != 8 || png_sig_cmp(sig, 0, 8) != 0) fail("read_png ", path, ": not a PNG file");
  std::rewind(file.get());
  Gray8 g;
  PngMessage msg;
  if (!decode_png(file.get(), g, msg)) fail("read_png ", path, ": ", msg.text);
  return g;
}

}  // namespace isonet
