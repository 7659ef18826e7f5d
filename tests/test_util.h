// test_util.h: helpers shared by the tests: seeded random fills, tolerance comparison that
// prints the first mismatches and the max error, poisoning, GPU skipping and fixture paths.
#pragma once
#include <doctest/doctest.h>

#include <dirent.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iterator>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/device.h"
#include "kernels/error.h"

namespace isonet::test {

inline std::vector<float> random_vector(size_t count, uint64_t seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(count);
  for (auto& x : v) x = dist(rng);
  return v;
}

// Comparison result: |ref - got| <= atol + rtol*|ref| for every element; NaN never passes.
struct CloseReport {
  bool ok = true;
  size_t bad = 0;
  double max_abs = 0, max_rel = 0;
  std::string first;  // description of the first mismatches
};

inline CloseReport compare_close(const float* ref, const float* got, size_t count, double atol, double rtol) {
  CloseReport r;
  for (size_t i = 0; i < count; ++i) {
    double a = ref[i], b = got[i];
    double diff = std::fabs(a - b);
    bool nan = std::isnan(a) || std::isnan(b) || std::isinf(b) != std::isinf(a);
    if (!nan) {
      r.max_abs = std::max(r.max_abs, diff);
      if (std::fabs(a) > 0) r.max_rel = std::max(r.max_rel, diff / std::fabs(a));
    }
    if (nan || diff > atol + rtol * std::fabs(a)) {
      r.ok = false;
      if (r.bad++ < 5) {
        char buf[160];
        std::snprintf(buf, sizeof buf, "  [%zu] ref=%.9g got=%.9g diff=%.3g\n", i, a, b, diff);
        r.first += buf;
      }
    }
  }
  return r;
}

// CHECK that two arrays agree within tolerances (what: a label for the failure message).
#define CHECK_CLOSE_ARRAYS(what, ref, got, count, atol, rtol)                                          \
  do {                                                                                                 \
    auto rep_ = ::isonet::test::compare_close((ref), (got), (count), (atol), (rtol));                  \
    INFO(what << ": " << rep_.bad << " of " << (count) << " elements outside atol=" << (atol)         \
              << " rtol=" << (rtol) << ", max abs err " << rep_.max_abs << ", max rel err "           \
              << rep_.max_rel << "\n"                                                                 \
              << rep_.first);                                                                          \
    CHECK(rep_.ok);                                                                                    \
  } while (0)

// Poison value for outputs: a quiet NaN, so an unwritten element fails any comparison.
inline float poison_value() { return std::nanf(""); }

// GPU tests call this first; without a device it prints the CTest skip marker and returns false.
inline bool gpu_or_skip() {
  if (cuda_available()) return true;
  std::printf("ISONET_SKIPPED_NO_GPU: %s\n",
              built_with_cuda() ? "no usable CUDA device" : "built without the CUDA backend");
  return false;
}

// Path inside the source tree (tests run with the source tree as working directory).
inline std::string source_path(const std::string& rel) {
  const char* root = std::getenv("ISONET_SOURCE_DIR");
  return root ? std::string(root) + "/" + rel : rel;
}


// A fresh directory under /tmp for one test case, removed with its files at the end.
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/isonet_test_XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() { std::system(("rm -rf '" + path + "'").c_str()); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return path + "/" + name; }
  // Names of the entries in the directory (to check that nothing half-written was left behind).
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    if (DIR* d = opendir(path.c_str())) {
      while (dirent* e = readdir(d)) {
        std::string n = e->d_name;
        if (n != "." && n != "..") names.push_back(n);
      }
      closedir(d);
    }
    return names;
  }
};

// A Python interpreter that can import `modules` (e.g. "numpy, tifffile"), or "" when none can:
// $ISONET_PYTHON first, then Debian's /usr/bin/python3 (the python3 earlier on PATH may be
// another installation without these packages), then python3. Tests that need one skip without.
inline std::string find_python(const std::string& modules) {
  std::vector<std::string> candidates;
  if (const char* p = std::getenv("ISONET_PYTHON")) candidates.push_back(p);
  candidates.push_back("/usr/bin/python3");
  candidates.push_back("python3");
  for (const std::string& py : candidates) {
    if (std::system((py + " -c 'import " + modules + "' >/dev/null 2>&1").c_str()) == 0) return py;
  }
  return "";
}

// The `isonet` program of this build tree (../apps/isonet next to the test programs), or "".
inline std::string isonet_program() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "";
  const std::string exe(buf, size_t(n));
  const std::string prog = exe.substr(0, exe.rfind('/')) + "/../apps/isonet";
  return access(prog.c_str(), X_OK) == 0 ? prog : "";
}

// The message of the isonet::Error that f throws, or "" when it throws none.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

inline bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// The whole file at `path` as text ("" when it cannot be read).
inline std::string read_text(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Float32 arrays as raw little-endian files, the exchange format of the Python reference scripts.
inline void write_raw_floats(const std::string& path, const std::vector<float>& values) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(values.data()), std::streamsize(values.size() * sizeof(float)));
  REQUIRE(out.good());
}

inline std::vector<float> read_raw_floats(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<float> values(bytes.size() / sizeof(float));
  std::copy_n(bytes.data(), values.size() * sizeof(float), reinterpret_cast<char*>(values.data()));
  return values;
}

// How far two weight vectors of the same length are apart (NaN counts as infinitely far).
struct WeightDiff {
  double rms = 0, max = 0;
  size_t above = 0;  // elements differing by more than 1e-3
};

inline WeightDiff weight_diff(const std::vector<float>& a, const std::vector<float>& b) {
  WeightDiff d;
  for (size_t i = 0; i < a.size(); ++i) {
    double e = std::fabs(double(a[i]) - b[i]);
    if (std::isnan(e)) e = INFINITY;
    d.rms += e * e;
    d.max = std::max(d.max, e);
    d.above += e > 1e-3;
  }
  d.rms = std::sqrt(d.rms / double(a.size()));
  return d;
}

}  // namespace isonet::test
