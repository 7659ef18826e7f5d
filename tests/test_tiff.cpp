// test_tiff.cpp: TIFF reading and writing (imaging/tiff.h) and PNG previews (imaging/png_image.h):
// the real data files with the shapes and voxel sizes their README states, round trips of every
// written type, rounding/clamping, BigTIFF, ImageJ's contiguous single-IFD layout, LZW/PackBits
// written by libtiff, damaged files, atomic writes, and interop with Python's tifffile both ways.
#include <dirent.h>
#include <sys/stat.h>
#include <tiffio.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "imaging/png_image.h"
#include "imaging/tiff.h"
#include "kernels/error.h"
#include "libtiff_test_util.h"
#include "imaging_test_util.h"
#include "test_util.h"

using namespace isonet;

namespace {

using test::contains;
using test::error_of;
using test::random_volume;

using test::TempDir;

std::vector<char> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<char>(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const char* data, size_t n) {
  std::ofstream out(path, std::ios::binary);
  out.write(data, std::streamsize(n));
  REQUIRE(out.good());
}

using test::read_raw_floats;

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

const std::string kReal = "../shared/data/real/";

std::string python_with_tifffile() { return test::find_python("numpy, tifffile"); }

int run_interop(const std::string& python, const std::string& args) {
  std::string cmd = python + " " + test::source_path("scripts/tiff_interop.py") + " " + args;
  return std::system(cmd.c_str());
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Real data.

TEST_CASE("tiff: the real data files read with the shapes, types and voxel sizes of their README") {
  struct Expect {
    const char* file;
    int nz, ny, nx;
    SampleType type;
    double z, xy;       // README values
    double z_tol, xy_tol;  // half a unit of the README's last digit (it rounds)
    bool calibrated;
  };
  const Expect table[] = {
      {"neubias_golgi_bfa.tif", 25, 137, 147, SampleType::U16, 0.388, 0.351, 5e-4, 5e-4, true},
      {"neubias_spots.tif", 17, 88, 89, SampleType::U16, 0.40, 0.094, 5e-3, 5e-4, true},
      {"neubias_chromosomes.tif", 40, 152, 126, SampleType::U16, 0.15, 0.034, 5e-3, 5e-4, true},
      {"neubias_nuclei_autothresh.tif", 37, 118, 132, SampleType::U8, 4.0, 0.83, 5e-2, 5e-3, true},
      {"pycudadecon_lls_psf.tif", 61, 128, 128, SampleType::U16, 0.10, 0.101, 5e-3, 5e-4, true},
      {"flowdec_bead25_data.tif", 64, 64, 64, SampleType::F32, 1.0, 1.0, 0, 0, false},
      {"flowdec_bead25_kernel.tif", 64, 64, 64, SampleType::F32, 1.0, 1.0, 0, 0, false},
  };
  for (const Expect& e : table) {
    INFO(e.file);
    TiffInfo info;
    Volume v = read_tiff(test::source_path(kReal + e.file), &info);
    CHECK(v.nz == e.nz);
    CHECK(v.ny == e.ny);
    CHECK(v.nx == e.nx);
    CHECK(v.size() == size_t(e.nz) * e.ny * e.nx);
    CHECK(info.type == e.type);
    CHECK(info.has_z_spacing == e.calibrated);
    CHECK(info.has_xy_size == e.calibrated);
    CHECK(std::fabs(v.voxel.z - e.z) <= e.z_tol);
    CHECK(std::fabs(v.voxel.y - e.xy) <= e.xy_tol);
    CHECK(std::fabs(v.voxel.x - e.xy) <= e.xy_tol);
    CHECK(v.voxel.unit == (e.calibrated ? "um" : "px"));
    // read_tiff_info agrees with read_tiff without reading pixels.
    TiffInfo only = read_tiff_info(test::source_path(kReal + e.file));
    CHECK(only.nz == info.nz);
    CHECK(only.voxel.z == info.voxel.z);
    // Not all zero and finite (values are compared to tifffile in the interop case).
    double sum = 0;
    for (float x : v.data) sum += x;
    CHECK(std::isfinite(sum));
    CHECK(sum > 0);
  }
}

// ---------------------------------------------------------------------------------------------
// Writing and round trips.

TEST_CASE("tiff: float32 round trip is exact with voxel size, unit and ImageJ flags") {
  TempDir dir;
  Volume v = random_volume(5, 17, 23, 11, -3.f, 7.f);
  v.data[3] = 1e-30f;  // a denormal-ish and extreme values survive bit for bit
  v.data[4] = -3.4e38f;
  v.voxel = VoxelSize{0.7, 0.13, 0.11, "um"};
  write_tiff(dir.file("a.tif"), v);
  TiffInfo info;
  Volume r = read_tiff(dir.file("a.tif"), &info);
  REQUIRE(r.nz == 5);
  REQUIRE(r.ny == 17);
  REQUIRE(r.nx == 23);
  CHECK(r.data == v.data);
  CHECK(info.type == SampleType::F32);
  CHECK(info.imagej);
  CHECK_FALSE(info.bigtiff);
  CHECK(info.has_z_spacing);
  CHECK(info.has_xy_size);
  CHECK(r.voxel.unit == "um");
  CHECK(r.voxel.z == 0.7);  // spacing= is written with round-trip precision
  // libtiff returns XResolution as a 32-bit float: 1 part in 2^24 relative.
  CHECK(std::fabs(r.voxel.y - 0.13) <= 1e-7 * 0.13);
  CHECK(std::fabs(r.voxel.x - 0.11) <= 1e-7 * 0.11);
  CHECK(info.description.find("spacing=0.7\n") != std::string::npos);
  CHECK(info.description.find("unit=micron\n") != std::string::npos);
  CHECK(info.description.find("images=5\nslices=5\n") != std::string::npos);
  CHECK(dir.entries().size() == 1);  // no temp file left behind
}

TEST_CASE("tiff: uint8 and uint16 writes round half away from zero and clamp") {
  TempDir dir;
  const std::vector<float> in = {-3.f, -0.4f, 0.49f, 0.5f, 1.5f, 2.5f, 254.5f, 255.2f, 300.f, 65534.5f, 65535.4f, 7e4f, 1e30f};
  Volume v(1, 1, int(in.size()));
  v.data = in;
  v.voxel = VoxelSize{1, 1, 1, "px"};
  write_tiff(dir.file("u8.tif"), v, SampleType::U8);
  write_tiff(dir.file("u16.tif"), v, SampleType::U16);
  TiffInfo i8, i16;
  Volume r8 = read_tiff(dir.file("u8.tif"), &i8), r16 = read_tiff(dir.file("u16.tif"), &i16);
  CHECK(i8.type == SampleType::U8);
  CHECK(i16.type == SampleType::U16);
  const std::vector<float> want8 = {0, 0, 0, 1, 2, 3, 255, 255, 255, 255, 255, 255, 255};
  const std::vector<float> want16 = {0, 0, 0, 1, 2, 3, 255, 255, 300, 65535, 65535, 65535, 65535};
  CHECK(r8.data == want8);
  CHECK(r16.data == want16);
  // An uncalibrated volume reads back uncalibrated.
  CHECK_FALSE(i8.has_z_spacing);
  CHECK_FALSE(i8.has_xy_size);
  CHECK(r8.voxel.unit == "px");
  // Integer round trip of in-range integers is exact for a 3D random volume.
  Volume q = random_volume(3, 9, 14, 5, 0.f, 65535.f);
  for (float& x : q.data) x = std::round(x);
  write_tiff(dir.file("q.tif"), q, SampleType::U16);
  CHECK(read_tiff(dir.file("q.tif")).data == q.data);
}

TEST_CASE("tiff: NaN cannot be written as an integer type, and the failure leaves no file") {
  TempDir dir;
  Volume v = random_volume(2, 4, 5, 2, 0.f, 100.f);
  v.at(1, 2, 3) = std::nanf("");
  write_bytes(dir.file("keep.tif"), "old", 3);  // an existing target survives a failed write
  CHECK_THROWS_WITH_AS(write_tiff(dir.file("keep.tif"), v, SampleType::U16),
                       doctest::Contains("NaN at (z,y,x)=(1,2,3)"), Error);
  CHECK(read_bytes(dir.file("keep.tif")) == std::vector<char>{'o', 'l', 'd'});
  CHECK(dir.entries().size() == 1);  // temp file removed
  // Float32 keeps NaN (ImageJ shows it as NaN); min/max in the description skip it.
  write_tiff(dir.file("nan.tif"), v, SampleType::F32);
  Volume r = read_tiff(dir.file("nan.tif"));
  CHECK(std::isnan(r.at(1, 2, 3)));
  CHECK(r.at(0, 0, 0) == v.at(0, 0, 0));
}

TEST_CASE("tiff: writing refuses bad inputs with clear errors") {
  TempDir dir;
  Volume v = random_volume(2, 3, 4, 3, 0.f, 1.f);
  CHECK_THROWS_WITH_AS(write_tiff(dir.file("no/such/dir/x.tif"), v), doctest::Contains("temporary file"), Error);
  CHECK_THROWS_WITH_AS(write_tiff(dir.file("x.tif"), v, SampleType::I16), doctest::Contains("cannot write int16"), Error);
  Volume bad = v;
  bad.voxel.z = 0;
  CHECK_THROWS_WITH_AS(write_tiff(dir.file("x.tif"), bad), doctest::Contains("voxel size"), Error);
  Volume empty;
  CHECK_THROWS_AS(write_tiff(dir.file("x.tif"), empty), Error);
  CHECK(dir.entries().empty());
}

TEST_CASE("tiff: a 2D image (nz == 1) round trips") {
  TempDir dir;
  Volume v = random_volume(1, 31, 19, 4, 0.f, 1000.f);
  v.voxel = VoxelSize{1.0, 0.25, 0.5, "nm"};
  write_tiff(dir.file("2d.tif"), v);
  TiffInfo info;
  Volume r = read_tiff(dir.file("2d.tif"), &info);
  CHECK(r.nz == 1);
  CHECK(r.ny == 31);
  CHECK(r.nx == 19);
  CHECK(r.data == v.data);
  CHECK(r.voxel.unit == "nm");
  CHECK(std::fabs(r.voxel.x - 0.5) <= 1e-7 * 0.5);  // float XResolution
  CHECK(std::fabs(r.voxel.y - 0.25) <= 1e-7 * 0.25);
}

TEST_CASE("tiff: forced BigTIFF round trips") {
  TempDir dir;
  Volume v = random_volume(4, 13, 11, 6, -1.f, 1.f);
  v.voxel = VoxelSize{2.0, 0.3, 0.3, "um"};
  TiffWriteOptions o;
  o.force_bigtiff = true;
  write_tiff(dir.file("big.tif"), v, o);
  TiffInfo info;
  Volume r = read_tiff(dir.file("big.tif"), &info);
  CHECK(info.bigtiff);
  CHECK(r.data == v.data);
  CHECK(r.voxel.z == 2.0);
  o.type = SampleType::U16;
  write_tiff(dir.file("big16.tif"), v, o);
  CHECK(read_tiff_info(dir.file("big16.tif")).type == SampleType::U16);
}

// The bytes of `v` written by us (classic TIFF, planes contiguous) with the IFD chain cut after
// page 0: the layout ImageJ uses for files over 4 GiB (one IFD, images=N planes after its strip).
std::vector<char> single_ifd_bytes(const TempDir& dir, const Volume& v) {
  write_tiff(dir.file("full.tif"), v, SampleType::F32);
  std::vector<char> b = read_bytes(dir.file("full.tif"));
  uint32_t ifd0;
  std::memcpy(&ifd0, b.data() + 4, 4);
  uint16_t entries;
  std::memcpy(&entries, b.data() + ifd0, 2);
  const uint32_t zero = 0;
  std::memcpy(b.data() + ifd0 + 2 + 12 * entries, &zero, 4);
  return b;
}

TEST_CASE("tiff: ImageJ's single-IFD layout (images=N planes after the first strip) is read") {
  TempDir dir;
  Volume v = random_volume(6, 7, 9, 8, 0.f, 500.f);
  v.voxel = VoxelSize{1.5, 0.2, 0.2, "um"};
  std::vector<char> b = single_ifd_bytes(dir, v);
  write_bytes(dir.file("single.tif"), b.data(), b.size());
  TiffInfo info;
  Volume r = read_tiff(dir.file("single.tif"), &info);
  CHECK(r.nz == 6);
  CHECK(r.data == v.data);
  // The same file cut short is refused with the number of planes present.
  write_bytes(dir.file("short.tif"), b.data(), 8 + 4 * 7 * 9 * 3 + 10);
  CHECK_THROWS_AS(read_tiff(dir.file("short.tif")), Error);
}

TEST_CASE("tiff: one channel and time point of an ImageJ hyperstack, chosen; refusals list the choices") {
  TempDir dir;
  const int C = 3, Z = 4, T = 2, ny = 5, nx = 6;
  const std::string path = dir.file("hyper.tif");
  test::write_imagej_hyperstack(path, C, Z, T, ny, nx);
  // The header alone needs no choice: the counts, and the planes of one volume.
  const TiffInfo header = read_tiff_info(path);
  CHECK(header.channels == C);
  CHECK(header.frames == T);
  CHECK(header.nz == Z);
  for (int c : {0, 2})
    for (int t : {0, 1}) {
      TiffInfo info;
      const Volume v = read_tiff(path, &info, TiffSelection{c, t});
      REQUIRE(v.nz == Z);
      CHECK(info.nz == Z);
      CHECK(v.voxel.z == doctest::Approx(0.5));
      CHECK(v.voxel.x == doctest::Approx(0.1));
      bool same = true;
      for (int z = 0; z < Z; ++z)
        for (int y = 0; y < ny; ++y)
          for (int x = 0; x < nx; ++x) same &= v.at(z, y, x) == float(test::hyperstack_value(c, z, t, y, x));
      CHECK_MESSAGE(same, "channel ", c, " frame ", t);
    }
  // Pixels need a choice where there are several, and a choice that exists.
  const std::string no_channel = error_of([&] { read_tiff(path, nullptr, TiffSelection{-1, 0}); });
  CHECK(contains(no_channel, "hyper.tif"));
  CHECK(contains(no_channel, "3 channels: select one (0..2)"));
  CHECK(contains(error_of([&] { read_tiff(path, nullptr, TiffSelection{0, -1}); }),
                 "2 time points (frames): select one (0..1)"));
  CHECK(contains(error_of([&] { read_tiff(path, nullptr, TiffSelection{3, 0}); }),
                 "channel 3 does not exist: the file has 3 channels (0..2)"));
  CHECK(contains(error_of([&] { read_tiff(path, nullptr, TiffSelection{0, 2}); }), "time point 2 does not exist"));
  // A plain volume takes channel 0 / frame 0 (or none) and refuses others.
  Volume plain = random_volume(3, 4, 5, 2, 0.f, 9.f);
  write_tiff(dir.file("plain.tif"), plain);
  CHECK(read_tiff(dir.file("plain.tif"), nullptr, TiffSelection{0, 0}).data == plain.data);
  CHECK(contains(error_of([&] { read_tiff(dir.file("plain.tif"), nullptr, TiffSelection{1, -1}); }),
                 "channel 1 does not exist: the file has 1 channels"));
  // A hyperstack cut short is refused, not read as a shorter volume.
  test::write_imagej_hyperstack(dir.file("cut.tif"), C, Z, T, ny, nx, C * Z * T - 1);
  CHECK(contains(error_of([&] { read_tiff(dir.file("cut.tif"), nullptr, TiffSelection{0, 0}); }),
                 "truncated or damaged hyperstack"));
}

TEST_CASE("tiff: damaged hyperstack descriptions (ImageJ and OME) never crash: a volume or an isonet::Error") {
  // Characters of the description replaced by digits, signs, quotes, brackets and axis letters,
  // read with every selection from -1 to 3: counts, orders and sizes that contradict the pages.
  TempDir dir;
  const int C = 2, Z = 3, T = 2, ny = 6, nx = 5;
  std::vector<uint16_t> data(size_t(C) * Z * T * ny * nx);
  for (size_t i = 0; i < data.size(); ++i) data[i] = uint16_t(i);
  test::LibtiffPages imagej, ome;
  imagej.description = "ImageJ=1.53t\nimages=12\nchannels=2\nslices=3\nframes=2\nhyperstack=true\nunit=micron\n"
                       "spacing=0.5\n";
  ome.description = "<?xml version=\"1.0\"?><OME><Image ID=\"Image:0\"><Pixels ID=\"Pixels:0\" "
                    "DimensionOrder=\"XYZCT\" Type=\"uint16\" SizeX=\"5\" SizeY=\"6\" SizeZ=\"3\" SizeC=\"2\" "
                    "SizeT=\"2\" PhysicalSizeX=\"0.1\" PhysicalSizeY=\"0.1\" PhysicalSizeZ=\"0.5\"></Pixels></Image></OME>";
  const std::string alphabet = "0123456789-+.=\"<> \nCZTXYe";
  std::mt19937 rng(5);
  int reads = 0, errors = 0;
  for (const test::LibtiffPages* base : {&imagej, &ome}) {
    for (int trial = 0; trial < 120; ++trial) {
      test::LibtiffPages how = *base;
      const int n = 1 + int(rng() % 3);
      for (int k = 0; k < n; ++k) how.description[rng() % how.description.size()] = alphabet[rng() % alphabet.size()];
      test::write_with_libtiff(dir.file("bad.tif"), data, C * Z * T, ny, nx, how);
      const TiffSelection select{int(rng() % 5) - 1, int(rng() % 5) - 1};
      try {
        const Volume r = read_tiff(dir.file("bad.tif"), nullptr, select);
        CHECK(r.size() == size_t(r.nz) * r.ny * r.nx);
        CHECK(r.nz >= 1);
        ++reads;
      } catch (const Error&) {
        ++errors;
      }
    }
  }
  MESSAGE("damaged hyperstack descriptions: " << reads << " read, " << errors << " refused");
  CHECK(reads + errors == 240);
  CHECK(reads > 0);  // many damages leave a readable file (e.g. in the unit or the version)
}

TEST_CASE("tiff: a hyperstack in ImageJ's single-IFD layout gives the chosen channel") {
  // The single-IFD layout, declared to hold 3 channels (the description keeps its length:
  // "hyperstack=true" becomes "channels=3\nx=ab").
  TempDir dir;
  Volume v = random_volume(12, 5, 7, 4, 0.f, 100.f);
  v.voxel = VoxelSize{1.5, 0.2, 0.2, "um"};
  std::vector<char> b = single_ifd_bytes(dir, v);
  const std::string from = "hyperstack=true", to = "channels=3\nx=ab";
  auto at = std::search(b.begin(), b.end(), from.begin(), from.end());
  REQUIRE(at != b.end());
  std::copy(to.begin(), to.end(), at);
  write_bytes(dir.file("single.tif"), b.data(), b.size());
  TiffInfo info;
  const Volume r = read_tiff(dir.file("single.tif"), &info, TiffSelection{1, -1});
  CHECK(info.channels == 3);
  REQUIRE(r.nz == 4);  // planes 1, 4, 7, 10
  for (int z = 0; z < 4; ++z)
    CHECK(std::equal(r.plane_ptr(z), r.plane_ptr(z) + 35, v.plane_ptr(3 * z + 1)));
}

TEST_CASE("tiff: LZW (with predictor) and PackBits written by libtiff, several strips per page") {
  TempDir dir;
  const int nz = 3, ny = 29, nx = 37;  // 29 rows in strips of 8: the last strip is short
  std::mt19937 rng(9);
  std::vector<uint16_t> data(size_t(nz) * ny * nx);
  for (size_t i = 0; i < data.size(); ++i) data[i] = uint16_t((i % 300) * 7 + rng() % 50);  // compressible
  std::vector<float> want(data.begin(), data.end());
  struct Case { const char* name; uint16_t comp, pred; };
  for (Case c : {Case{"lzw.tif", COMPRESSION_LZW, 2}, Case{"packbits.tif", COMPRESSION_PACKBITS, 1},
                 Case{"deflate.tif", COMPRESSION_ADOBE_DEFLATE, 2}}) {
    INFO(c.name);
    test::LibtiffPages how;
    how.compression = c.comp;
    how.predictor = c.pred;
    how.rows_per_strip = 8;
    test::write_with_libtiff(dir.file(c.name), data, nz, ny, nx, how);
    TiffInfo info;
    Volume r = read_tiff(dir.file(c.name), &info);
    CHECK(info.compression == c.comp);
    CHECK(r.nz == nz);
    CHECK(r.data == want);
  }
}

// ---------------------------------------------------------------------------------------------
// Damaged and foreign files.

TEST_CASE("tiff: missing, empty, garbage and truncated files give errors naming the file") {
  TempDir dir;
  CHECK_THROWS_WITH_AS(read_tiff(dir.file("missing.tif")), doctest::Contains("missing.tif: cannot open"), Error);
  CHECK_THROWS_WITH_AS(read_tiff(dir.path), doctest::Contains("not a regular file"), Error);
  write_bytes(dir.file("empty.tif"), "", 0);
  CHECK_THROWS_WITH_AS(read_tiff(dir.file("empty.tif")), doctest::Contains("empty.tif"), Error);
  write_bytes(dir.file("text.tif"), "hello, this is not a TIFF file\n", 31);
  CHECK_THROWS_WITH_AS(read_tiff(dir.file("text.tif")), doctest::Contains("not a readable TIFF"), Error);
  std::vector<char> junk(4096);
  std::mt19937 rng(3);
  for (char& c : junk) c = char(rng());
  write_bytes(dir.file("junk.tif"), junk.data(), junk.size());
  CHECK_THROWS_AS(read_tiff(dir.file("junk.tif")), Error);
  // A valid header pointing at an IFD beyond the end of the file.
  const char header[] = {'I', 'I', 42, 0, 0x10, 0x27, 0, 0};
  write_bytes(dir.file("dangling.tif"), header, 8);
  CHECK_THROWS_AS(read_tiff(dir.file("dangling.tif")), Error);

  // Truncated copies of a real file (IFDs are spread through ImageJ files) and of one of ours
  // (pixel data first, IFDs at the end).
  Volume ours = random_volume(4, 21, 17, 10, 0.f, 1.f);
  write_tiff(dir.file("ours.tif"), ours, SampleType::U16);
  for (std::string src : {test::source_path(kReal + "neubias_spots.tif"), dir.file("ours.tif")}) {
    std::vector<char> b = read_bytes(src);
    REQUIRE(b.size() > 2000);
    for (size_t len : {size_t(4), size_t(9), size_t(200), b.size() / 3, b.size() / 2, b.size() - 700, b.size() - 100}) {
      INFO(src << " cut to " << len << " of " << b.size() << " bytes");
      write_bytes(dir.file("cut.tif"), b.data(), len);
      CHECK_THROWS_WITH_AS(read_tiff(dir.file("cut.tif")), doctest::Contains("cut.tif"), Error);
    }
  }
}

TEST_CASE("tiff: randomly damaged directories never crash: a volume or an isonet::Error") {
  TempDir dir;
  Volume v = random_volume(3, 10, 12, 12, 0.f, 1.f);
  v.voxel = VoxelSize{1.0, 0.5, 0.5, "um"};
  write_tiff(dir.file("src.tif"), v, SampleType::U16);
  const std::vector<char> good = read_bytes(dir.file("src.tif"));
  uint32_t ifd0;
  std::memcpy(&ifd0, good.data() + 4, 4);
  std::mt19937 rng(77);
  int errors = 0, reads = 0;
  for (int trial = 0; trial < 150; ++trial) {
    std::vector<char> b = good;
    // Damage 1-4 bytes of the directory area (entries, offsets, counts, description).
    int n = 1 + int(rng() % 4);
    for (int k = 0; k < n; ++k) b[ifd0 + rng() % (b.size() - ifd0)] = char(rng());
    write_bytes(dir.file("bad.tif"), b.data(), b.size());
    try {
      Volume r = read_tiff(dir.file("bad.tif"));
      CHECK(r.size() == size_t(r.nz) * r.ny * r.nx);
      ++reads;
    } catch (const Error&) {
      ++errors;
    }
  }
  MESSAGE("damaged directories: " << reads << " read, " << errors << " refused");
  CHECK(errors + reads == 150);
}

// ---------------------------------------------------------------------------------------------
// Interop with Python's tifffile.

TEST_CASE("tiff: tifffile reads our files (shape, dtype, values, ImageJ metadata, resolution)") {
  std::string py = python_with_tifffile();
  if (py.empty()) {
    MESSAGE("SKIPPED: python3 with numpy and tifffile not found");
    return;
  }
  TempDir dir;
  struct Case { const char* name; int nz, ny, nx; SampleType type; bool big; const char* dtype; };
  for (Case c : {Case{"f32", 5, 17, 23, SampleType::F32, false, "float32"},
                 Case{"u16", 7, 12, 9, SampleType::U16, false, "uint16"},
                 Case{"u8", 3, 8, 31, SampleType::U8, false, "uint8"},
                 Case{"f32_2d", 1, 19, 15, SampleType::F32, false, "float32"},
                 Case{"f32_big", 4, 6, 5, SampleType::F32, true, "float32"}}) {
    INFO(c.name);
    Volume v = random_volume(c.nz, c.ny, c.nx, 20, 0.f, c.type == SampleType::U8 ? 255.f : 60000.f);
    if (c.type != SampleType::F32)
      for (float& x : v.data) x = std::round(x);
    v.voxel = VoxelSize{0.35, 0.0715, 0.0715, "um"};
    TiffWriteOptions o;
    o.type = c.type;
    o.force_bigtiff = c.big;
    std::string tif = dir.file(std::string(c.name) + ".tif"), prefix = dir.file(c.name);
    write_tiff(tif, v, o);
    REQUIRE(run_interop(py, "read '" + tif + "' '" + prefix + "'") == 0);
    nlohmann::json j = read_json(prefix + ".json");
    std::vector<int> shape = c.nz > 1 ? std::vector<int>{c.nz, c.ny, c.nx} : std::vector<int>{c.ny, c.nx};
    CHECK(j["shape"].get<std::vector<int>>() == shape);
    CHECK(j["dtype"] == c.dtype);
    CHECK(j["is_imagej"] == true);
    CHECK(j["is_bigtiff"] == c.big);
    CHECK(j["axes"] == (c.nz > 1 ? "ZYX" : "YX"));
    CHECK(j["pages"] == c.nz);
    // ImageJ reads images=N planes contiguously from the first strip offset.
    CHECK_FALSE(j["dataoffset"].is_null());
    CHECK(j["dataoffset"] == j["first_strip"]);
    const nlohmann::json& ij = j["imagej"];
    CHECK(ij["spacing"].get<double>() == 0.35);
    CHECK(ij["unit"] == "micron");
    if (c.nz > 1) {
      CHECK(ij["images"] == c.nz);
      CHECK(ij["slices"] == c.nz);
      CHECK(ij["hyperstack"] == true);
    }
    // Resolution is a rational equal to 1/0.0715 to double precision (continued fractions).
    double xres = j["xres"][0].get<double>() / j["xres"][1].get<double>();
    CHECK(std::fabs(1.0 / xres - 0.0715) <= 1e-12);
    std::vector<float> got = read_raw_floats(prefix + ".raw");
    REQUIRE(got.size() == v.size());
    CHECK(got == v.data);
  }
}

TEST_CASE("tiff: we read tifffile's files identically (hyperstacks one volume at a time); refusals name what was found") {
  std::string py = python_with_tifffile();
  if (py.empty()) {
    MESSAGE("SKIPPED: python3 with numpy and tifffile not found");
    return;
  }
  TempDir dir;
  REQUIRE(run_interop(py, "write '" + dir.path + "'") == 0);
  nlohmann::json index = read_json(dir.file("index.json"));
  REQUIRE(index["read"].size() >= 10);
  for (const auto& name_j : index["read"]) {
    std::string name = name_j.get<std::string>();
    INFO(name);
    nlohmann::json e = read_json(dir.file(name + ".json"));
    TiffInfo info;
    Volume r = read_tiff(dir.file(name + ".tif"), &info);
    std::vector<int> shape = e["shape"].get<std::vector<int>>();
    CHECK(r.nz == shape[0]);
    CHECK(r.ny == shape[1]);
    CHECK(r.nx == shape[2]);
    CHECK(r.data == read_raw_floats(dir.file(name + ".raw")));
    CHECK(info.has_z_spacing == e["has_z"].get<bool>());
    CHECK(info.has_xy_size == e["has_xy"].get<bool>());
    CHECK(r.voxel.unit == e["unit"].get<std::string>());
    CHECK(r.voxel.z == e["z"].get<double>());
    // XResolution via libtiff's float: 1e-7 relative.
    CHECK(std::fabs(r.voxel.y - e["y"].get<double>()) <= 1e-7 * e["y"].get<double>());
    CHECK(std::fabs(r.voxel.x - e["x"].get<double>()) <= 1e-7 * e["x"].get<double>());
  }
  CHECK(read_tiff_info(dir.file("bigtiff_f32.tif")).bigtiff);
  CHECK(read_tiff_info(dir.file("tiled_deflate_u16.tif")).tiled);
  for (const auto& item : index["refuse"].items()) {  // no structured binding: clang 14 cannot capture one in INFO
    const std::string name = item.key();
    const std::string needle = item.value().get<std::string>();
    INFO(name);
    CHECK_THROWS_WITH_AS(read_tiff(dir.file(name + ".tif")), doctest::Contains(needle.c_str()), Error);
  }
  REQUIRE(index["select"].size() == 4);
  for (const auto& item : index["select"].items()) {  // [file, channel, frame] -> expected volume
    const std::string name = item.key();
    INFO(name);
    const auto& how = item.value();
    TiffInfo info;
    const Volume r = read_tiff(dir.file(how[0].get<std::string>() + ".tif"), &info,
                               TiffSelection{how[1].get<int>(), how[2].get<int>()});
    const nlohmann::json e = read_json(dir.file(name + ".json"));
    CHECK(r.nz == e["shape"][0].get<int>());
    CHECK(r.data == read_raw_floats(dir.file(name + ".raw")));
    CHECK(info.has_z_spacing == e["has_z"].get<bool>());
    CHECK(info.has_xy_size == e["has_xy"].get<bool>());
    CHECK(r.voxel.z == doctest::Approx(e["z"].get<double>()).epsilon(1e-9));
    CHECK(r.voxel.x == doctest::Approx(e["x"].get<double>()).epsilon(1e-9));
    CHECK(r.voxel.unit == e["unit"].get<std::string>());
  }
  // Without a choice, the OME file names what it holds.
  CHECK_THROWS_WITH_AS(read_tiff(dir.file("ome_tczyx.tif")), doctest::Contains("OME-TIFF with 2 channels"), Error);
}

TEST_CASE("tiff: the real files' pixels equal what tifffile reads") {
  std::string py = python_with_tifffile();
  if (py.empty()) {
    MESSAGE("SKIPPED: python3 with numpy and tifffile not found");
    return;
  }
  TempDir dir;
  for (const char* f : {"neubias_golgi_bfa.tif", "neubias_nuclei_autothresh.tif", "pycudadecon_lls_psf.tif",
                        "flowdec_bead25_data.tif"}) {
    INFO(f);
    std::string path = test::source_path(kReal + f);
    REQUIRE(run_interop(py, "read '" + path + "' '" + dir.file("ref") + "'") == 0);
    CHECK(read_tiff(path).data == read_raw_floats(dir.file("ref.raw")));
  }
}

// ---------------------------------------------------------------------------------------------
// PNG previews.

TEST_CASE("png: orthogonal slices, scaling, grid and a write/read round trip") {
  TempDir dir;
  Volume v(5, 6, 7);
  for (int z = 0; z < 5; ++z)
    for (int y = 0; y < 6; ++y)
      for (int x = 0; x < 7; ++x) v.at(z, y, x) = float(100 * z + 10 * y + x);
  Volume xy = slice_xy(v, 2), xz = slice_xz(v, 3), yz = slice_yz(v, 4);
  CHECK(xy.ny == 6);
  CHECK(xy.nx == 7);
  CHECK(xz.ny == 5);
  CHECK(xz.nx == 7);
  CHECK(yz.ny == 5);
  CHECK(yz.nx == 6);
  CHECK(xy.at(0, 1, 2) == 212.f);
  CHECK(xz.at(0, 4, 6) == 436.f);
  CHECK(yz.at(0, 1, 5) == 154.f);
  CHECK_THROWS_AS(slice_xy(v, 5), Error);

  // Linear map lo -> 0, hi -> 255, rounded, clamped; NaN -> 0.
  Volume img(1, 1, 6);
  img.data = {0.f, 1.f, 2.f, 0.5f, 5.f, std::nanf("")};
  Gray8 g = to_gray8(img, IntensityRange{0.f, 2.f});
  CHECK(g.pixels == std::vector<uint8_t>{0, 128, 255, 64, 255, 0});  // 127.5 -> 128, 63.75 -> 64

  // Percentiles by nearest rank over 0..100 (101 values): p-th percentile is p.
  Volume ramp(1, 1, 101);
  for (int i = 0; i < 101; ++i) ramp.data[i] = float(100 - i);
  IntensityRange r = percentile_range(ramp, 2, 99.8);
  CHECK(r.lo == 2.f);
  CHECK(r.hi == 100.f);  // rank round(0.998*100) = 100

  // xy | xz / yz in two columns, gap 2: widths max(7,6)=7 and 7 -> 16; heights 6 and 5 -> 13.
  Gray8 a = to_gray8(xy, IntensityRange{0.f, 500.f}), b = to_gray8(xz, IntensityRange{0.f, 500.f}),
        c = to_gray8(yz, IntensityRange{0.f, 500.f});
  Gray8 grid = compose_grid({a, b, c}, 2, 2, 255);
  CHECK(grid.width == 7 + 2 + 7);
  CHECK(grid.height == 6 + 2 + 5);
  CHECK(grid.pixels[0] == a.pixels[0]);
  CHECK(grid.pixels[size_t(7)] == 255);  // gap column
  CHECK(grid.pixels[9 + size_t(grid.width) * 3] == b.pixels[3 * 7]);  // panel b at x=9
  CHECK(grid.pixels[size_t(grid.width) * 8 + 5] == c.pixels[5]);     // panel c at y=8
  CHECK(grid.pixels[size_t(grid.width) * 8 + 6] == 255);             // c is 6 wide in a 7-wide cell

  write_png(dir.file("grid.png"), grid);
  Gray8 back = read_png_gray(dir.file("grid.png"));
  CHECK(back.width == grid.width);
  CHECK(back.height == grid.height);
  CHECK(back.pixels == grid.pixels);
  CHECK(dir.entries().size() == 1);
  write_bytes(dir.file("bad.png"), "\x89PNG\r\n\x1a\n garbage", 17);
  CHECK_THROWS_WITH_AS(read_png_gray(dir.file("bad.png")), doctest::Contains("bad.png"), Error);
  CHECK_THROWS_AS(write_png(dir.file("none/x.png"), grid), Error);
}
