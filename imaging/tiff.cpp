// tiff.cpp: implementation of tiff.h. Reading goes through libtiff (every compression, tiles,
// BigTIFF, byte order). Writing is a small hand-written little-endian TIFF/BigTIFF writer, because
// ImageJ reads `images=N` planes contiguously from the first strip offset and libtiff's writer
// puts a directory between the planes; our layout is
//     header | pixel data of all planes, contiguous | IFD 0 (+ its values) | IFD 1 | ...
// uncompressed, one strip per page.
#include "imaging/tiff.h"

#include <sys/stat.h>
#include <tiffio.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <sstream>
#include <vector>

#include "imaging/atomic_file.h"
#include "kernels/error.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "tiff.cpp writes pixel data in host order and labels the file little-endian");

namespace isonet {

const char* sample_type_name(SampleType t) {
  switch (t) {
    case SampleType::U8: return "uint8";
    case SampleType::U16: return "uint16";
    case SampleType::F32: return "float32";
    case SampleType::I8: return "int8";
    case SampleType::I16: return "int16";
    case SampleType::U32: return "uint32";
    case SampleType::I32: return "int32";
    case SampleType::F64: return "float64";
  }
  return "?";
}

namespace {

// ---------------------------------------------------------------------------------------------
// libtiff messages. libtiff reports through process-wide handlers; ours append to a thread_local
// buffer so concurrent reads on different threads keep their messages apart, and nothing is
// printed to stderr. Warnings (ImageJ's private tags give "unknown field" warnings) are dropped.

thread_local std::string t_libtiff_errors;

void collect_error(const char* module, const char* fmt, va_list ap) {
  if (t_libtiff_errors.size() > 2000) return;  // a corrupt file can produce thousands
  char buf[512];
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  if (!t_libtiff_errors.empty()) t_libtiff_errors += "; ";
  if (module && *module) {
    t_libtiff_errors += module;
    t_libtiff_errors += ": ";
  }
  t_libtiff_errors += buf;
}

void drop_warning(const char*, const char*, va_list) {}

void install_libtiff_handlers() {
  static std::once_flag once;
  std::call_once(once, [] {
    TIFFSetErrorHandler(collect_error);
    TIFFSetWarningHandler(drop_warning);
  });
}

[[noreturn]] void read_fail(const std::string& path, const std::string& what) {
  std::string msg = "read_tiff " + path + ": " + what;
  if (!t_libtiff_errors.empty()) msg += " (libtiff: " + t_libtiff_errors + ")";
  t_libtiff_errors.clear();
  throw Error(msg);
}

struct TiffCloser {
  void operator()(TIFF* t) const { TIFFClose(t); }
};
using TiffPtr = std::unique_ptr<TIFF, TiffCloser>;

uint64_t file_size(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? uint64_t(st.st_size) : 0;
}

TiffPtr open_for_reading(const std::string& path) {
  install_libtiff_handlers();
  t_libtiff_errors.clear();
  struct stat st;
  if (stat(path.c_str(), &st) != 0) read_fail(path, std::string("cannot open: ") + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) read_fail(path, "not a regular file");
  // "m": no memory mapping, so a file truncated under us gives a read error, not SIGBUS.
  TiffPtr tif(TIFFOpen(path.c_str(), "rm"));
  if (!tif) read_fail(path, "not a readable TIFF file");
  if (!t_libtiff_errors.empty()) read_fail(path, "the first image directory is damaged");
  return tif;
}

size_t bytes_of(SampleType t) {
  switch (t) {
    case SampleType::U8:
    case SampleType::I8: return 1;
    case SampleType::U16:
    case SampleType::I16: return 2;
    case SampleType::F32:
    case SampleType::U32:
    case SampleType::I32: return 4;
    case SampleType::F64: return 8;
  }
  return 0;
}

// Converts n samples of type t (host byte order, any alignment) to float.
void to_float(SampleType t, const uint8_t* src, float* dst, size_t n) {
  auto conv = [&](auto tag) {
    using T = decltype(tag);
    for (size_t i = 0; i < n; ++i) {
      T v;
      std::memcpy(&v, src + i * sizeof(T), sizeof(T));
      dst[i] = static_cast<float>(v);
    }
  };
  switch (t) {
    case SampleType::U8: conv(uint8_t{}); break;
    case SampleType::I8: conv(int8_t{}); break;
    case SampleType::U16: conv(uint16_t{}); break;
    case SampleType::I16: conv(int16_t{}); break;
    case SampleType::U32: conv(uint32_t{}); break;
    case SampleType::I32: conv(int32_t{}); break;
    case SampleType::F32: conv(float{}); break;
    case SampleType::F64: conv(double{}); break;
  }
}

// ---------------------------------------------------------------------------------------------
// Page format: what must agree between all pages of a volume.

struct PageFormat {
  uint32_t width = 0, height = 0;
  SampleType type = SampleType::U8;
  bool tiled = false;
  uint32_t tile_w = 0, tile_h = 0;
  uint32_t rows_per_strip = 0;
  uint16_t compression = COMPRESSION_NONE;

  std::string describe() const {
    return std::to_string(width) + "x" + std::to_string(height) + " " + sample_type_name(type);
  }
};

const char* photometric_name(uint16_t p) {
  switch (p) {
    case PHOTOMETRIC_RGB: return "RGB";
    case PHOTOMETRIC_PALETTE: return "palette (indexed colour)";
    case PHOTOMETRIC_MASK: return "transparency mask";
    case PHOTOMETRIC_SEPARATED: return "separated (CMYK)";
    case PHOTOMETRIC_YCBCR: return "YCbCr";
    case PHOTOMETRIC_CIELAB: return "CIE L*a*b*";
    default: return "unsupported photometric interpretation";
  }
}

PageFormat read_page_format(TIFF* tif, const std::string& path, int page) {
  const std::string where = "page " + std::to_string(page) + ": ";
  PageFormat f;
  if (!TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &f.width) || !TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &f.height)) {
    read_fail(path, where + "ImageWidth/ImageLength missing");
  }
  if (f.width == 0 || f.height == 0) read_fail(path, where + "empty image (width or height 0)");
  uint16_t spp = 1, bits = 0, format = SAMPLEFORMAT_UINT, photometric = PHOTOMETRIC_MINISBLACK;
  TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &spp);
  TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &bits);
  TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLEFORMAT, &format);
  bool has_photometric = TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &photometric);
  if (spp > 1) {
    read_fail(path, where + std::to_string(spp) + " samples per pixel (" +
                        (has_photometric && photometric == PHOTOMETRIC_RGB ? "RGB" : "multi-channel") +
                        " image): only single-channel grayscale volumes are supported, split the channels first");
  }
  if (has_photometric && photometric != PHOTOMETRIC_MINISBLACK && photometric != PHOTOMETRIC_MINISWHITE) {
    read_fail(path, where + photometric_name(photometric) + " image (photometric " + std::to_string(photometric) +
                        "): only grayscale intensity images are supported, convert to grayscale first");
  }
  uint32_t depth = 1;
  if (TIFFGetField(tif, TIFFTAG_IMAGEDEPTH, &depth) && depth > 1) {
    read_fail(path, where + "SGI ImageDepth " + std::to_string(depth) + " volumes in one directory are not supported");
  }
  if (format == SAMPLEFORMAT_VOID) format = SAMPLEFORMAT_UINT;  // "undefined" data: read as unsigned
  bool ok = true;
  if (format == SAMPLEFORMAT_UINT && bits == 8) f.type = SampleType::U8;
  else if (format == SAMPLEFORMAT_UINT && bits == 16) f.type = SampleType::U16;
  else if (format == SAMPLEFORMAT_UINT && bits == 32) f.type = SampleType::U32;
  else if (format == SAMPLEFORMAT_INT && bits == 8) f.type = SampleType::I8;
  else if (format == SAMPLEFORMAT_INT && bits == 16) f.type = SampleType::I16;
  else if (format == SAMPLEFORMAT_INT && bits == 32) f.type = SampleType::I32;
  else if (format == SAMPLEFORMAT_IEEEFP && bits == 32) f.type = SampleType::F32;
  else if (format == SAMPLEFORMAT_IEEEFP && bits == 64) f.type = SampleType::F64;
  else ok = false;
  if (!ok) {
    const char* kind = format == SAMPLEFORMAT_INT ? "signed integer"
                       : format == SAMPLEFORMAT_IEEEFP ? "floating point"
                       : format == SAMPLEFORMAT_UINT ? "unsigned integer" : "complex";
    read_fail(path, where + std::to_string(bits) + "-bit " + kind +
                        " samples are not supported (supported: 8/16/32-bit integer, 32/64-bit float)");
  }
  TIFFGetFieldDefaulted(tif, TIFFTAG_COMPRESSION, &f.compression);
  f.tiled = TIFFIsTiled(tif);
  if (f.tiled) {
    if (!TIFFGetField(tif, TIFFTAG_TILEWIDTH, &f.tile_w) || !TIFFGetField(tif, TIFFTAG_TILELENGTH, &f.tile_h) ||
        f.tile_w == 0 || f.tile_h == 0) {
      read_fail(path, where + "tiled image without a valid tile size");
    }
  } else {
    TIFFGetFieldDefaulted(tif, TIFFTAG_ROWSPERSTRIP, &f.rows_per_strip);
    if (f.rows_per_strip == 0 || f.rows_per_strip > f.height) f.rows_per_strip = f.height;
  }
  if (!TIFFIsCODECConfigured(f.compression)) {
    read_fail(path, where + "compression scheme " + std::to_string(f.compression) + " is not supported by this libtiff");
  }
  return f;
}

bool is_reduced_resolution(TIFF* tif) {
  uint32_t subfile = 0;
  return TIFFGetField(tif, TIFFTAG_SUBFILETYPE, &subfile) && (subfile & FILETYPE_REDUCEDIMAGE);
}

// Decodes the current directory into out [height, width].
void read_page_pixels(TIFF* tif, const PageFormat& f, float* out, const std::string& path, int page) {
  const size_t bps = bytes_of(f.type);
  const std::string where = "page " + std::to_string(page) + ": ";
  if (f.tiled) {
    tmsize_t tile_bytes = TIFFTileSize(tif);
    if (tile_bytes <= 0 || size_t(tile_bytes) < size_t(f.tile_w) * f.tile_h * bps) read_fail(path, where + "bad tile size");
    std::vector<uint8_t> buf(tile_bytes);
    std::vector<float> row(f.tile_w);
    for (uint32_t y0 = 0; y0 < f.height; y0 += f.tile_h) {
      for (uint32_t x0 = 0; x0 < f.width; x0 += f.tile_w) {
        ttile_t tile = TIFFComputeTile(tif, x0, y0, 0, 0);
        if (TIFFReadEncodedTile(tif, tile, buf.data(), tile_bytes) < 0) {
          read_fail(path, where + "cannot decode tile " + std::to_string(tile) + " (damaged or truncated file)");
        }
        uint32_t rows = std::min(f.tile_h, f.height - y0), cols = std::min(f.tile_w, f.width - x0);
        for (uint32_t r = 0; r < rows; ++r) {
          to_float(f.type, buf.data() + size_t(r) * f.tile_w * bps, out + size_t(y0 + r) * f.width + x0, cols);
        }
      }
    }
    return;
  }
  const size_t row_bytes = size_t(f.width) * bps;
  tmsize_t strip_bytes = TIFFStripSize(tif);
  if (strip_bytes <= 0 || size_t(strip_bytes) < row_bytes) read_fail(path, where + "bad strip size");
  std::vector<uint8_t> buf(strip_bytes);
  uint32_t nstrips = TIFFNumberOfStrips(tif);
  uint32_t needed = (f.height + f.rows_per_strip - 1) / f.rows_per_strip;
  if (nstrips < needed) read_fail(path, where + "has " + std::to_string(nstrips) + " strips, needs " + std::to_string(needed));
  for (uint32_t s = 0; s < needed; ++s) {
    uint32_t y0 = s * f.rows_per_strip, rows = std::min(f.rows_per_strip, f.height - y0);
    tmsize_t got = TIFFReadEncodedStrip(tif, s, buf.data(), tmsize_t(rows * row_bytes));
    if (got < 0 || size_t(got) < rows * row_bytes) {
      read_fail(path, where + "cannot decode strip " + std::to_string(s) + " (damaged or truncated file)");
    }
    to_float(f.type, buf.data(), out + size_t(y0) * f.width, size_t(rows) * f.width);
  }
}

// ---------------------------------------------------------------------------------------------
// Metadata: ImageJ description, resolution, BoundingBox.

std::map<std::string, std::string> parse_imagej(const std::string& desc) {
  std::map<std::string, std::string> kv;
  std::istringstream in(desc);
  std::string line;
  while (std::getline(in, line)) {
    size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string key = line.substr(0, eq), value = line.substr(eq + 1);
    while (!value.empty() && (value.back() == '\r' || value.back() == ' ')) value.pop_back();
    kv.emplace(key, value);  // first occurrence wins
  }
  return kv;
}

bool parse_number(const std::string& s, double& out) {
  if (s.empty()) return false;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str()) return false;
  out = v;
  return true;
}

std::string normalize_unit(std::string u) {
  if (u == "micron" || u == "microns" || u == "um" || u == "\\u00B5m" || u == "\\u00b5m" || u == "\xC2\xB5m" ||
      u == "\xCE\xBCm" || u == "\\u03BCm" || u == "\\u03bcm" || u == "\xB5m") {
    return "um";
  }
  if (u == "pixel" || u == "pixels") return "px";
  return u;
}

// The attributes of the first <Pixels ...> element of an OME-XML description (name -> value).
std::map<std::string, std::string> ome_pixels_attributes(const std::string& desc) {
  std::map<std::string, std::string> attrs;
  size_t p = desc.find("<Pixels ");
  if (p == std::string::npos) p = desc.find(":Pixels ");  // a namespace prefix, e.g. <ome:Pixels
  if (p == std::string::npos) return attrs;
  const size_t end = desc.find('>', p);
  if (end == std::string::npos) return attrs;
  const std::string element = desc.substr(p, end - p);
  for (size_t i = 0; (i = element.find("=\"", i)) != std::string::npos;) {
    size_t k = i;
    while (k > 0 && element[k - 1] != ' ' && element[k - 1] != '\n' && element[k - 1] != '\t') --k;
    const size_t close = element.find('"', i + 2);
    if (close == std::string::npos) break;
    attrs.emplace(element.substr(k, i - k), element.substr(i + 2, close - i - 2));
    i = close + 1;
  }
  return attrs;
}

// An OME PhysicalSize in um from its value and unit attribute (default um); 0 when unusable.
double ome_length_um(const std::map<std::string, std::string>& attrs, const std::string& name) {
  auto it = attrs.find(name);
  double v = 0;
  if (it == attrs.end() || !parse_number(it->second, v) || !std::isfinite(v) || v <= 0) return 0;
  auto unit = attrs.find(name + "Unit");
  const std::string u = unit == attrs.end() ? "um" : normalize_unit(unit->second);
  if (u == "um") return v;
  if (u == "nm") return v * 1e-3;
  if (u == "mm") return v * 1e3;
  return 0;  // another unit: leave the size unknown rather than guess
}

struct Metadata {
  VoxelSize voxel;
  bool has_z = false, has_xy = false, imagej = false;
  long imagej_images = 0;     // ImageJ images= (0 when absent)
  long channels = 1, frames = 1;  // of a hyperstack: ImageJ channels= / frames=, OME SizeC / SizeT
  std::string plane_order = "CZT";  // storage order of the planes, fastest first (ImageJ's; OME's DimensionOrder)
  std::string container = "ImageJ hyperstack";  // for messages
  double bounding_box_z = 0;  // z extent of a BoundingBox description (0 when absent)
  std::string description;
};

Metadata read_metadata(TIFF* tif, const std::string& path, const PageFormat& f) {
  Metadata m;
  char* desc = nullptr;
  if (TIFFGetField(tif, TIFFTAG_IMAGEDESCRIPTION, &desc) && desc) m.description = desc;
  const std::string& d = m.description;
  std::string unit;
  bool have_unit = false;

  if (d.rfind("ImageJ=", 0) == 0) {
    m.imagej = true;
    auto kv = parse_imagej(d);
    auto count = [&](const char* key) -> long {
      auto it = kv.find(key);
      return it == kv.end() ? 1 : std::strtol(it->second.c_str(), nullptr, 10);
    };
    m.channels = count("channels");
    m.frames = count("frames");
    // A bound that keeps channels * frames * pages far from overflow; real files have a few.
    if (m.channels < 1 || m.frames < 1 || m.channels > 100000 || m.frames > 100000)
      read_fail(path, "ImageJ description states channels=" + std::to_string(m.channels) + " and frames=" +
                          std::to_string(m.frames) + " (damaged description)");
    if (kv.count("images")) m.imagej_images = count("images");
    double spacing;
    if (kv.count("spacing") && parse_number(kv["spacing"], spacing) && std::isfinite(spacing) && spacing > 0) {
      m.voxel.z = spacing;
      m.has_z = true;
    }
    if (kv.count("unit")) {
      unit = normalize_unit(kv["unit"]);
      have_unit = true;
    }
  } else if (d.find("<OME") != std::string::npos) {
    m.container = "OME-TIFF";
    size_t images = 0;
    for (size_t p = 0; (p = d.find("<Image ", p)) != std::string::npos; ++p) ++images;
    if (images > 1)
      read_fail(path, "OME-TIFF with " + std::to_string(images) +
                          " images (series): only single-series files are supported, save one series per file");
    const auto attrs = ome_pixels_attributes(d);
    auto size = [&](const char* key) {
      auto it = attrs.find(key);
      return it == attrs.end() ? 1L : std::strtol(it->second.c_str(), nullptr, 10);
    };
    m.channels = size("SizeC");
    m.frames = size("SizeT");
    if (m.channels < 1 || m.frames < 1 || m.channels > 100000 || m.frames > 100000)
      read_fail(path, "OME-XML states SizeC=" + std::to_string(m.channels) + " and SizeT=" +
                          std::to_string(m.frames) + " (damaged description)");
    // Samples per pixel > 1 (interleaved RGB channels) are refused with the page format.
    auto order = attrs.find("DimensionOrder");
    if (order != attrs.end()) {
      const std::string o = order->second;
      if (o.size() != 5 || o.compare(0, 2, "XY") != 0 || o.find('Z') == std::string::npos ||
          o.find('C') == std::string::npos || o.find('T') == std::string::npos)
        read_fail(path, "OME-XML DimensionOrder \"" + o + "\" is not one of XY + an order of Z, C, T");
      m.plane_order = o.substr(2);
    } else {
      m.plane_order = "ZCT";  // the OME schema's default
    }
    const double z = ome_length_um(attrs, "PhysicalSizeZ"), y = ome_length_um(attrs, "PhysicalSizeY"),
                 x = ome_length_um(attrs, "PhysicalSizeX");
    if (z > 0) {
      m.voxel.z = z;
      m.has_z = true;
    }
    if (x > 0 && y > 0) {
      m.voxel.x = x;
      m.voxel.y = y;
      m.has_xy = true;
    }
    if (m.has_z || m.has_xy) {
      unit = "um";
      have_unit = true;
    }
  } else if (d.rfind("BoundingBox ", 0) == 0) {
    // cudaDecon/LLSpy: "BoundingBox x0 x1 y0 y1 z0 z1" in um; size = extent / count (the
    // convention under which the data README's sizes for pycudadecon_lls_psf.tif come out).
    double b[6];
    std::istringstream in(d.substr(12));
    if (in >> b[0] >> b[1] >> b[2] >> b[3] >> b[4] >> b[5] && b[1] > b[0] && b[3] > b[2]) {
      m.voxel.x = (b[1] - b[0]) / f.width;
      m.voxel.y = (b[3] - b[2]) / f.height;
      m.has_xy = true;
      unit = "um";
      have_unit = true;
      m.bounding_box_z = b[5] - b[4];
    }
  }

  // (OME-XML's PhysicalSizeX/Y are the pixel size there; writers leave the resolution tags at 1.)
  if (!m.has_xy && m.container != "OME-TIFF") {
    float xres = 0, yres = 0;
    uint16_t res_unit = RESUNIT_NONE;
    bool has_res = TIFFGetField(tif, TIFFTAG_XRESOLUTION, &xres) && TIFFGetField(tif, TIFFTAG_YRESOLUTION, &yres) &&
                   std::isfinite(xres) && std::isfinite(yres) && xres > 0 && yres > 0;
    TIFFGetField(tif, TIFFTAG_RESOLUTIONUNIT, &res_unit);
    if (has_res && have_unit && unit != "px") {
      m.voxel.x = 1.0 / xres;
      m.voxel.y = 1.0 / yres;
      m.has_xy = true;
    } else if (has_res && !have_unit && res_unit == RESUNIT_CENTIMETER) {
      m.voxel.x = 1e4 / xres;
      m.voxel.y = 1e4 / yres;
      unit = "um";
      have_unit = true;
      m.has_xy = true;
    }
    // Inches without an ImageJ unit: a display DPI (72, 300...), not a pixel size.
  }
  m.voxel.unit = (m.has_xy || m.has_z) && have_unit ? unit : "px";
  return m;
}

// ---------------------------------------------------------------------------------------------
// The reader: one sequential pass over the directories (TIFFSetDirectory(k) would walk the IFD
// chain from the start each time, quadratic in the number of pages).

// The planes of one channel and one time point of a hyperstack: plane p of the file (counting
// full-resolution pages, or the planes of a single-IFD ImageJ file) is split into its channel,
// slice and frame along `order`, fastest first ("CZT": ImageJ's and tifffile's; OME's
// DimensionOrder otherwise).
struct PlanePick {
  std::string order = "CZT";
  long channels = 1, frames = 1;
  int channel = 0, frame = 0;
  long slices = 0;  // Z, from the total plane count
  bool keep(long p) const {
    long c = 0, t = 0;
    for (char axis : order) {
      const long n = axis == 'C' ? channels : axis == 'Z' ? slices : frames;
      if (axis == 'C') c = p % n;
      if (axis == 'T') t = p % n;
      p /= n;
    }
    return c == channel && t == frame;
  }
};

// ImageJ files over 4 GiB have a single IFD and images=N planes stored contiguously after the
// first strip; read those planes directly (uncompressed, strips contiguous), keeping the picked ones.
void read_imagej_contiguous(TIFF* tif, const PageFormat& f, long images, const PlanePick& pick, const std::string& path,
                            Volume* out) {
  if (f.tiled || f.compression != COMPRESSION_NONE) {
    read_fail(path, "ImageJ says images=" + std::to_string(images) +
                        " but the file has one compressed or tiled page: cannot read the other planes");
  }
  uint64_t *offsets = nullptr, *counts = nullptr;
  if (!TIFFGetField(tif, TIFFTAG_STRIPOFFSETS, &offsets) || !TIFFGetField(tif, TIFFTAG_STRIPBYTECOUNTS, &counts) ||
      !offsets || !counts) {
    read_fail(path, "strip offsets missing");
  }
  uint32_t nstrips = TIFFNumberOfStrips(tif);
  for (uint32_t s = 1; s < nstrips; ++s) {
    if (offsets[s] != offsets[s - 1] + counts[s - 1]) {
      read_fail(path, "ImageJ says images=" + std::to_string(images) + " but the strips are not contiguous");
    }
  }
  if (!out) return;
  const size_t bps = bytes_of(f.type), plane_bytes = size_t(f.width) * f.height * bps;
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), std::fclose);
  if (!file) read_fail(path, std::string("cannot open: ") + std::strerror(errno));
  if (fseeko(file.get(), 0, SEEK_END) != 0) read_fail(path, "cannot seek");
  uint64_t file_size = uint64_t(ftello(file.get()));
  if (offsets[0] + plane_bytes * uint64_t(images) > file_size) {
    read_fail(path, "ImageJ says images=" + std::to_string(images) + " but the file ends after " +
                        std::to_string((file_size - std::min(file_size, offsets[0])) / plane_bytes) +
                        " planes (truncated file)");
  }
  if (fseeko(file.get(), off_t(offsets[0]), SEEK_SET) != 0) read_fail(path, "cannot seek");
  std::vector<uint8_t> buf(plane_bytes);
  const bool swap = TIFFIsByteSwapped(tif);
  int kept = 0;
  for (long p = 0; p < images; ++p) {
    if (!pick.keep(p)) {
      if (fseeko(file.get(), off_t(plane_bytes), SEEK_CUR) != 0) read_fail(path, "cannot seek");
      continue;
    }
    if (std::fread(buf.data(), 1, plane_bytes, file.get()) != plane_bytes) read_fail(path, "short read (truncated file)");
    if (swap && bps > 1) {
      for (size_t i = 0; i < plane_bytes; i += bps) std::reverse(buf.begin() + i, buf.begin() + i + bps);
    }
    to_float(f.type, buf.data(), out->plane_ptr(kept++), size_t(f.width) * f.height);
  }
}

// Which planes to read: checks the selection against the file's channels and frames (when pixels
// are read, a file with several must be given one) and that the plane count divides into them.
PlanePick pick_planes(const Metadata& meta, const TiffSelection& select, long total_planes, bool reading,
                      const std::string& path) {
  PlanePick pick;
  pick.order = meta.plane_order;
  pick.channels = meta.channels;
  pick.frames = meta.frames;
  auto choose = [&](int wanted, long count, const char* what, const char* plural) {
    if (wanted >= count || wanted < -1)
      read_fail(path, std::string(what) + " " + std::to_string(wanted) + " does not exist: the file has " +
                          std::to_string(count) + " " + plural + " (0.." + std::to_string(count - 1) + ")");
    if (wanted < 0 && count > 1 && reading)
      read_fail(path, meta.container + " with " + std::to_string(count) + " " + plural + ": select one (0.." +
                          std::to_string(count - 1) + ")");
    return wanted < 0 ? 0 : wanted;
  };
  pick.channel = choose(select.channel, pick.channels, "channel", "channels");
  pick.frame = choose(select.frame, pick.frames, "time point", "time points (frames)");
  const long per_volume = pick.channels * pick.frames;
  if (total_planes % per_volume != 0)
    read_fail(path, meta.container + ": " + std::to_string(total_planes) + " planes, not a multiple of its " +
                        std::to_string(pick.channels) + " channels x " + std::to_string(pick.frames) +
                        " time points (truncated or damaged hyperstack)");
  pick.slices = total_planes / per_volume;
  return pick;
}

// Reads the header information and, when `out` is given, the pixels of the selected volume.
TiffInfo read_impl(const std::string& path, Volume* out, const TiffSelection& select) {
  TiffPtr holder = open_for_reading(path);
  TIFF* tif = holder.get();
  // Skip leading reduced-resolution pages (thumbnails) to find the first full page.
  int dir = 0;
  while (is_reduced_resolution(tif)) {
    if (!TIFFReadDirectory(tif)) read_fail(path, "contains only reduced-resolution (thumbnail) pages");
    ++dir;
  }
  const PageFormat first = read_page_format(tif, path, dir);
  Metadata meta = read_metadata(tif, path, first);

  TiffInfo info;
  info.ny = int(first.height);
  info.nx = int(first.width);
  if (first.width > uint32_t(std::numeric_limits<int>::max()) || first.height > uint32_t(std::numeric_limits<int>::max())) {
    read_fail(path, "image too large (" + first.describe() + ")");
  }
  info.type = first.type;
  info.imagej = meta.imagej;
  info.bigtiff = TIFFIsBigTIFF(tif);
  info.tiled = first.tiled;
  info.compression = first.compression;
  info.description = meta.description;

  const tdir_t ndirs = TIFFNumberOfDirectories(tif);
  if (ndirs == 0) read_fail(path, "cannot count the image directories");
  // TIFFNumberOfDirectories moved nothing, but re-establish the current directory explicitly.
  if (!TIFFSetDirectory(tif, tdir_t(dir))) read_fail(path, "cannot return to the first page");

  const size_t plane = size_t(first.width) * first.height;
  const bool contiguous_imagej = meta.imagej && meta.imagej_images > 1 && ndirs - dir == 1;
  // Every full-resolution page (thumbnails are rare and only ever leading or trailing), or the
  // planes of a single-IFD ImageJ file; with several channels or frames, the picked ones only.
  const long total_planes = contiguous_imagej ? meta.imagej_images : long(ndirs - dir);
  const bool hyperstack = meta.channels > 1 || meta.frames > 1;
  const PlanePick pick = pick_planes(meta, select, hyperstack && meta.imagej_images > 0 ? meta.imagej_images
                                                                                          : total_planes,
                                     out != nullptr, path);
  info.channels = int(meta.channels);
  info.frames = int(meta.frames);
  const size_t max_pages = size_t(hyperstack ? pick.slices : total_planes);
  // Plausibility of the stated size before allocating: a corrupt header must not make us
  // allocate (and zero) gigabytes. Uncompressed pages need their bytes in the file; compressed
  // data are allowed a decompression ratio of 1e5 (deflate tops out near 1000, LZW near 1300).
  // Pages are appended one at a time, so only pages that exist are ever allocated.
  const uint64_t page_bytes = uint64_t(plane) * bytes_of(first.type);
  const uint64_t file_bytes = file_size(path);
  const uint64_t allowed = first.compression == COMPRESSION_NONE ? file_bytes : file_bytes * 100000ull;
  auto grow = [&](size_t pages_needed) {
    if (!out) return;
    if (page_bytes * pages_needed > allowed) {
      read_fail(path, "the header describes " + std::to_string(pages_needed) + " pages of " + first.describe() + " (" +
                          std::to_string(page_bytes * pages_needed) + " bytes) but the file has " +
                          std::to_string(file_bytes) + " bytes (truncated or damaged file)");
    }
    try {
      out->data.resize(plane * pages_needed);
    } catch (const std::bad_alloc&) {
      read_fail(path, "not enough memory for " + std::to_string(pages_needed) + " pages of " + first.describe());
    }
  };
  if (out) {
    out->data.clear();
    if (page_bytes * max_pages <= allowed) out->data.reserve(plane * max_pages);
    out->ny = info.ny;
    out->nx = info.nx;
  }

  int pages = 0;  // planes of the picked volume read (or counted)
  long page = 0;  // full-resolution pages seen
  if (contiguous_imagej) {
    grow(max_pages);
    read_imagej_contiguous(tif, first, meta.imagej_images, pick, path, out);
    pages = int(max_pages);
    page = total_planes;
  } else {
    for (;;) {
      if (!is_reduced_resolution(tif)) {
        PageFormat f = page == 0 ? first : read_page_format(tif, path, dir);
        if (f.width != first.width || f.height != first.height || f.type != first.type) {
          read_fail(path, "page " + std::to_string(dir) + " is " + f.describe() + " but page 0 is " + first.describe() +
                              ": pages of differing size or type cannot form a volume");
        }
        if (!hyperstack || pick.keep(page)) {
          grow(size_t(pages) + 1);
          if (out) read_page_pixels(tif, f, out->data.data() + plane * pages, path, dir);
          ++pages;
        }
        ++page;
      }
      if (TIFFLastDirectory(tif)) break;
      if (!TIFFReadDirectory(tif)) read_fail(path, "cannot read image directory " + std::to_string(dir + 1));
      ++dir;
    }
  }
  if (!t_libtiff_errors.empty()) read_fail(path, "libtiff reported errors while reading");
  if (hyperstack && page != pick.channels * pick.frames * pick.slices)
    read_fail(path, meta.container + ": " + std::to_string(page) + " pages, but its description says " +
                        std::to_string(pick.channels) + " channels x " + std::to_string(pick.slices) + " slices x " +
                        std::to_string(pick.frames) + " time points (truncated or damaged hyperstack)");
  info.nz = pages;
  if (meta.bounding_box_z > 0 && !meta.has_z) {
    meta.voxel.z = meta.bounding_box_z / pages;
    meta.has_z = true;
  }
  info.voxel = meta.voxel;
  info.has_z_spacing = meta.has_z;
  info.has_xy_size = meta.has_xy;
  if (!info.has_z_spacing && !info.has_xy_size) info.voxel = VoxelSize{1.0, 1.0, 1.0, "px"};
  if (out) {
    out->nz = pages;
    out->data.resize(plane * pages);
    out->voxel = info.voxel;
  }
  return info;
}

}  // namespace

TiffInfo read_tiff_info(const std::string& path, const TiffSelection& select) {
  return read_impl(path, nullptr, select);
}

Volume read_tiff(const std::string& path, TiffInfo* info, const TiffSelection& select) {
  Volume v;
  TiffInfo i = read_impl(path, &v, select);
  if (info) *info = i;
  return v;
}

// =============================================================================================
// Writer.

namespace {

// Little-endian byte buffer.
struct Bytes {
  std::vector<uint8_t> b;
  void u16(uint16_t v) { for (int i = 0; i < 2; ++i) b.push_back(uint8_t(v >> (8 * i))); }
  void u32(uint32_t v) { for (int i = 0; i < 4; ++i) b.push_back(uint8_t(v >> (8 * i))); }
  void u64(uint64_t v) { for (int i = 0; i < 8; ++i) b.push_back(uint8_t(v >> (8 * i))); }
  void pad_to(size_t alignment) { while (b.size() % alignment) b.push_back(0); }
};

enum TiffType : uint16_t { T_ASCII = 2, T_SHORT = 3, T_LONG = 4, T_RATIONAL = 5, T_LONG8 = 16 };

// One IFD with its out-of-line values, serialized for a known file offset.
class IfdBuilder {
 public:
  explicit IfdBuilder(bool big) : big_(big) {}
  void add_short(uint16_t tag, uint16_t v) { Bytes x; x.u16(v); add(tag, T_SHORT, 1, x.b); }
  void add_long(uint16_t tag, uint32_t v) { Bytes x; x.u32(v); add(tag, T_LONG, 1, x.b); }
  // LONG in classic TIFF, LONG8 in BigTIFF (strip offsets and byte counts).
  void add_offset(uint16_t tag, uint64_t v) {
    Bytes x;
    if (big_) x.u64(v); else x.u32(uint32_t(v));
    add(tag, big_ ? T_LONG8 : T_LONG, 1, x.b);
  }
  void add_rational(uint16_t tag, uint32_t num, uint32_t den) { Bytes x; x.u32(num); x.u32(den); add(tag, T_RATIONAL, 1, x.b); }
  void add_ascii(uint16_t tag, const std::string& s) {
    std::vector<uint8_t> x(s.begin(), s.end());
    x.push_back(0);
    add(tag, T_ASCII, x.size(), x);
  }

  // Size in bytes of the IFD and its values, padded to a multiple of 8 (as when followed by
  // another IFD).
  size_t size() const { return serialize(0, 1).size(); }

  std::vector<uint8_t> serialize(uint64_t at, uint64_t next_ifd) const {
    const size_t inline_bytes = big_ ? 8 : 4, entry_bytes = big_ ? 20 : 12;
    const size_t head = (big_ ? 8 : 2) + entries_.size() * entry_bytes + (big_ ? 8 : 4);
    Bytes out, values;
    if (big_) out.u64(entries_.size()); else out.u16(uint16_t(entries_.size()));
    for (const Entry& e : entries_) {
      out.u16(e.tag);
      out.u16(e.type);
      if (big_) out.u64(e.count); else out.u32(uint32_t(e.count));
      if (e.value.size() <= inline_bytes) {
        std::vector<uint8_t> v = e.value;
        v.resize(inline_bytes, 0);
        out.b.insert(out.b.end(), v.begin(), v.end());
      } else {
        values.pad_to(2);  // values start on a word boundary
        uint64_t where = at + head + values.b.size();
        if (big_) out.u64(where); else out.u32(uint32_t(where));
        values.b.insert(values.b.end(), e.value.begin(), e.value.end());
      }
    }
    if (big_) out.u64(next_ifd); else out.u32(uint32_t(next_ifd));
    out.b.insert(out.b.end(), values.b.begin(), values.b.end());
    if (next_ifd != 0) out.pad_to(8);  // the next IFD starts 8-aligned; the file ends unpadded
    return out.b;
  }

 private:
  struct Entry {
    uint16_t tag, type;
    uint64_t count;
    std::vector<uint8_t> value;
  };
  void add(uint16_t tag, uint16_t type, uint64_t count, std::vector<uint8_t> value) {
    entries_.push_back({tag, type, count, std::move(value)});
    // Tags must be in ascending order; callers add them in order, keep it robust anyway.
    std::stable_sort(entries_.begin(), entries_.end(), [](const Entry& a, const Entry& b) { return a.tag < b.tag; });
  }
  bool big_;
  std::vector<Entry> entries_;
};

// Shortest decimal that reads back as the same double.
std::string format_double(double v) {
  char buf[40];
  for (int prec : {6, 10, 15, 17}) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

// Best rational approximation num/den of x > 0 with both in [1, 2^32-1] (continued fractions).
void best_rational(double x, uint32_t& num, uint32_t& den) {
  const double limit = 4294967295.0;
  double h0 = 0, h1 = 1, k0 = 1, k1 = 0;  // convergents h/k
  double r = x;
  for (int i = 0; i < 64; ++i) {
    double a = std::floor(r);
    double h2 = a * h1 + h0, k2 = a * k1 + k0;
    if (h2 > limit || k2 > limit) break;
    h0 = h1; h1 = h2; k0 = k1; k1 = k2;
    double frac = r - a;
    if (frac < 1e-15 || std::fabs(h1 / k1 - x) <= 1e-16 * x) break;
    r = 1.0 / frac;
  }
  if (h1 < 1 || k1 < 1) {  // x below 1/2^32 or above 2^32: clamp
    h1 = std::max(1.0, std::min(limit, std::round(x)));
    k1 = 1;
  }
  num = uint32_t(h1);
  den = uint32_t(k1);
}

std::string imagej_unit(const std::string& unit) { return unit == "um" ? "micron" : unit; }

}  // namespace

void write_tiff(const std::string& path, const Volume& v, SampleType type) {
  TiffWriteOptions o;
  o.type = type;
  write_tiff(path, v, o);
}

void write_tiff(const std::string& path, const Volume& v, const TiffWriteOptions& options) {
  const SampleType type = options.type;
  if (type != SampleType::U8 && type != SampleType::U16 && type != SampleType::F32) {
    fail("write_tiff ", path, ": cannot write ", sample_type_name(type), " (write uint8, uint16 or float32)");
  }
  if (v.nz <= 0 || v.ny <= 0 || v.nx <= 0 || v.data.size() != size_t(v.nz) * v.ny * v.nx) {
    fail("write_tiff ", path, ": bad volume shape ", v.shape_str(), " with ", v.data.size(), " values");
  }
  const VoxelSize& vs = v.voxel;
  for (double s : {vs.z, vs.y, vs.x}) {
    if (!(std::isfinite(s) && s > 0)) {
      fail("write_tiff ", path, ": voxel size (", vs.z, ",", vs.y, ",", vs.x, ") must be positive and finite");
    }
  }
  const bool calibrated = !(vs.unit == "px" && vs.z == 1.0 && vs.y == 1.0 && vs.x == 1.0);
  for (char c : vs.unit) {
    if (c == '\n' || c == '=' || c == '\0') fail("write_tiff ", path, ": unit '", vs.unit, "' contains '=' or a newline");
  }

  const size_t bps = bytes_of(type), plane = v.plane(), plane_bytes = plane * bps;
  const uint64_t data_bytes = uint64_t(plane_bytes) * uint64_t(v.nz);

  // Convert plane by plane into the output buffer; min/max of what is stored for the description.
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  std::vector<uint8_t> buf(plane_bytes);
  auto convert_plane = [&](int z) {
    const float* src = v.plane_ptr(z);
    const double top = type == SampleType::U8 ? 255.0 : 65535.0;
    for (size_t i = 0; i < plane; ++i) {
      float x = src[i];
      if (type == SampleType::F32) {
        std::memcpy(buf.data() + i * 4, &x, 4);
        if (std::isfinite(x)) { lo = std::min(lo, double(x)); hi = std::max(hi, double(x)); }
        continue;
      }
      if (std::isnan(x)) {
        fail("write_tiff ", path, ": NaN at (z,y,x)=(", z, ",", i / v.nx, ",", i % v.nx, ") cannot be stored as ",
             sample_type_name(type));
      }
      double q = std::floor(std::min(top, std::max(0.0, double(x))) + 0.5);
      q = std::min(q, top);
      lo = std::min(lo, q);
      hi = std::max(hi, q);
      if (type == SampleType::U8) buf[i] = uint8_t(q);
      else { uint16_t s = uint16_t(q); std::memcpy(buf.data() + i * 2, &s, 2); }
    }
  };

  // Description (min/max filled in after the data pass; its length does not change the layout
  // because the IFDs follow the data).
  auto description = [&]() {
    std::string d = "ImageJ=1.11a\n";
    if (v.nz > 1) {
      d += "images=" + std::to_string(v.nz) + "\nslices=" + std::to_string(v.nz) + "\nhyperstack=true\nmode=grayscale\n";
    }
    if (calibrated) d += "unit=" + imagej_unit(vs.unit) + "\nspacing=" + format_double(vs.z) + "\n";
    if (v.nz > 1) d += "loop=false\n";
    if (lo <= hi) d += "min=" + format_double(lo) + "\nmax=" + format_double(hi) + "\n";
    return d;
  };

  uint32_t xnum, xden, ynum, yden;
  best_rational(1.0 / vs.x, xnum, xden);
  best_rational(1.0 / vs.y, ynum, yden);

  auto build_ifd = [&](bool big, int z, uint64_t data_offset, const std::string& desc) {
    IfdBuilder ifd(big);
    ifd.add_long(TIFFTAG_SUBFILETYPE, 0);
    ifd.add_long(TIFFTAG_IMAGEWIDTH, uint32_t(v.nx));
    ifd.add_long(TIFFTAG_IMAGELENGTH, uint32_t(v.ny));
    ifd.add_short(TIFFTAG_BITSPERSAMPLE, uint16_t(bps * 8));
    ifd.add_short(TIFFTAG_COMPRESSION, COMPRESSION_NONE);
    ifd.add_short(TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
    if (z == 0) ifd.add_ascii(TIFFTAG_IMAGEDESCRIPTION, desc);
    ifd.add_offset(TIFFTAG_STRIPOFFSETS, data_offset + uint64_t(z) * plane_bytes);
    ifd.add_short(TIFFTAG_SAMPLESPERPIXEL, 1);
    ifd.add_long(TIFFTAG_ROWSPERSTRIP, uint32_t(v.ny));
    ifd.add_offset(TIFFTAG_STRIPBYTECOUNTS, plane_bytes);
    ifd.add_rational(TIFFTAG_XRESOLUTION, xnum, xden);
    ifd.add_rational(TIFFTAG_YRESOLUTION, ynum, yden);
    ifd.add_short(TIFFTAG_RESOLUTIONUNIT, RESUNIT_NONE);
    ifd.add_short(TIFFTAG_SAMPLEFORMAT, type == SampleType::F32 ? SAMPLEFORMAT_IEEEFP : SAMPLEFORMAT_UINT);
    return ifd;
  };

  // Layout. Classic TIFF addresses 4 GiB; leave room for the description's final length.
  const uint64_t classic_limit = 0xFFFFFFFFull - (1u << 20);
  const uint64_t desc_reserve = description().size() + 64;
  auto ifd_bytes = [&](bool big) {
    return uint64_t(build_ifd(big, 1, 0, "").size()) * uint64_t(v.nz - 1) + build_ifd(big, 0, 0, "").size() + desc_reserve;
  };
  const bool big = options.force_bigtiff || 8 + data_bytes + 8 + ifd_bytes(false) > classic_limit;
  if (!big && plane_bytes > 0xFFFFFFFFull) fail("write_tiff ", path, ": internal error: plane too large for classic TIFF");
  const uint64_t data_offset = big ? 16 : 8;
  const uint64_t first_ifd = (data_offset + data_bytes + 7) / 8 * 8;

  AtomicFile out(path);
  Bytes header;
  header.b = {'I', 'I'};
  if (big) {
    header.u16(43);
    header.u16(8);
    header.u16(0);
    header.u64(first_ifd);
  } else {
    header.u16(42);
    header.u32(uint32_t(first_ifd));
  }
  out.write(header.b.data(), header.b.size());
  for (int z = 0; z < v.nz; ++z) {
    convert_plane(z);
    out.write(buf.data(), plane_bytes);
  }
  std::vector<uint8_t> zeros(first_ifd - data_offset - data_bytes, 0);
  out.write(zeros.data(), zeros.size());

  const std::string desc = description();
  uint64_t at = first_ifd;
  for (int z = 0; z < v.nz; ++z) {
    IfdBuilder ifd = build_ifd(big, z, data_offset, desc);
    uint64_t size = ifd.size();
    uint64_t next = z + 1 < v.nz ? at + size : 0;
    if (!big && next + size > 0xFFFFFFFFull) fail("write_tiff ", path, ": internal error: classic TIFF overflow");
    std::vector<uint8_t> bytes = ifd.serialize(at, next);
    out.write(bytes.data(), bytes.size());
    at += size;
  }
  out.commit();
}

}  // namespace isonet
