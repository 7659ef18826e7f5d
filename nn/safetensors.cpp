// safetensors.cpp: the safetensors reader and atomic writer (see safetensors.h).
#include "nn/safetensors.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unistd.h>

#include "kernels/error.h"

namespace isonet {

namespace {

using json = nlohmann::json;

// The format and this code are little-endian; so is every machine we build for (x86-64, aarch64).
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors I/O assumes a little-endian host");

[[noreturn]] void file_error(const std::string& path, const std::string& problem) {
  fail("safetensors file '", path, "': ", problem);
}

uint64_t element_count(const std::vector<int64_t>& shape) {
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

std::vector<int64_t> parse_shape(const std::string& path, const std::string& name, const json& j) {
  if (!j.is_array()) file_error(path, "tensor '" + name + "': 'shape' is not an array");
  std::vector<int64_t> shape;
  uint64_t count = 1;  // kept below 2^50 so that byte counts cannot overflow
  for (const json& d : j) {
    if (!d.is_number_integer() || d.get<int64_t>() < 0)
      file_error(path, "tensor '" + name + "': shape entries must be non-negative integers, got " + j.dump());
    const uint64_t v = d.get<uint64_t>();
    if (v > (uint64_t(1) << 50) || (v > 0 && count > (uint64_t(1) << 50) / v))
      file_error(path, "tensor '" + name + "': shape " + j.dump() + " is implausibly large");
    count *= v;
    shape.push_back(static_cast<int64_t>(v));
  }
  return shape;
}

struct Entry {
  std::string name;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;
};

}  // namespace

std::string shape_string(const std::vector<int64_t>& shape) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? "," : "") << shape[i];
  os << "]";
  return os.str();
}

void write_safetensors(const std::string& path, const SafetensorsFile& file) {
  json header = json::object();
  uint64_t offset = 0;
  for (const auto& [name, t] : file.tensors) {
    ISONET_CHECK(name != "__metadata__", "safetensors: '__metadata__' cannot name a tensor");
    ISONET_CHECK(element_count(t.shape) == t.data.size(), "safetensors: tensor '", name, "' has shape ",
                 shape_string(t.shape), " but ", t.data.size(), " values");
    const uint64_t bytes = t.data.size() * sizeof(float);
    header[name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  if (!file.metadata.empty()) header["__metadata__"] = file.metadata;
  std::string text = header.dump();
  // Pad the header with spaces so the data section starts 8-byte aligned (as the reference writer does).
  text.append((8 - text.size() % 8) % 8, ' ');
  const uint64_t n = text.size();

  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail("writing '", path, "': cannot create '", tmp, "': ", std::strerror(errno));
  // Remember the errno of the first failing call; later calls may overwrite it.
  int err = 0;
  auto check = [&](bool ok) {
    if (!ok && !err) err = errno ? errno : EIO;
  };
  check(std::fwrite(&n, sizeof n, 1, f) == 1);
  check(std::fwrite(text.data(), 1, text.size(), f) == text.size());
  for (const auto& [name, t] : file.tensors)
    check(std::fwrite(t.data.data(), sizeof(float), t.data.size(), f) == t.data.size());
  check(std::fflush(f) == 0);
  check(::fsync(::fileno(f)) == 0);  // the rename must not expose a file whose data is not on disk
  check(std::fclose(f) == 0);
  if (err) {
    std::remove(tmp.c_str());
    fail("writing '", path, "': ", std::strerror(err));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    std::remove(tmp.c_str());
    fail("writing '", path, "': cannot rename the temporary file into place: ", std::strerror(e));
  }
}

SafetensorsFile read_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) file_error(path, std::string("cannot open: ") + std::strerror(errno));
  const uint64_t file_size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  if (file_size < 8) file_error(path, "truncated: " + std::to_string(file_size) + " bytes, shorter than the 8-byte header length");
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  if (n > file_size - 8)
    file_error(path, "header length " + std::to_string(n) + " exceeds the file size (" + std::to_string(file_size) +
                         " bytes): truncated or not a safetensors file");
  if (n > kSafetensorsMaxHeaderBytes) file_error(path, "header length " + std::to_string(n) + " is implausibly large");
  if (n < 2) file_error(path, "header length " + std::to_string(n) + " is too small for a JSON object");
  std::string text(n, '\0');
  if (!in.read(text.data(), static_cast<std::streamsize>(n))) file_error(path, "cannot read the header");
  if (text[0] != '{') file_error(path, "header does not start with '{' (not a safetensors file?)");

  json header;
  try {
    header = json::parse(text);
  } catch (const json::parse_error& e) {
    file_error(path, std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) file_error(path, "header is not a JSON object");

  SafetensorsFile out;
  std::vector<Entry> entries;
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      if (!value.is_object()) file_error(path, "__metadata__ is not an object");
      for (const auto& [k, v] : value.items()) {
        if (!v.is_string()) file_error(path, "__metadata__ value of '" + k + "' is not a string");
        out.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    if (!value.is_object()) file_error(path, "tensor '" + name + "': entry is not an object");
    if (!value.contains("dtype") || !value["dtype"].is_string())
      file_error(path, "tensor '" + name + "': missing string 'dtype'");
    const std::string dtype = value["dtype"].get<std::string>();
    if (dtype != "F32") file_error(path, "tensor '" + name + "' has dtype " + dtype + "; only F32 is supported");
    if (!value.contains("shape")) file_error(path, "tensor '" + name + "': missing 'shape'");
    Entry e;
    e.name = name;
    e.shape = parse_shape(path, name, value["shape"]);
    const json& off = value.contains("data_offsets") ? value["data_offsets"] : json();
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      file_error(path, "tensor '" + name + "': 'data_offsets' must be two non-negative integers");
    e.begin = off[0].get<uint64_t>();
    e.end = off[1].get<uint64_t>();
    if (e.end < e.begin) file_error(path, "tensor '" + name + "': data_offsets end before begin");
    if (e.end - e.begin != element_count(e.shape) * sizeof(float))
      file_error(path, "tensor '" + name + "': shape " + shape_string(e.shape) + " needs " +
                           std::to_string(element_count(e.shape) * sizeof(float)) + " bytes but data_offsets span " +
                           std::to_string(e.end - e.begin));
    entries.push_back(std::move(e));
  }

  // The data section must be covered exactly: in range, no overlap, no hole, nothing after.
  const uint64_t data_size = file_size - 8 - n;
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.begin < b.begin; });
  uint64_t covered = 0;
  for (const Entry& e : entries) {
    if (e.end > data_size)
      file_error(path, "tensor '" + e.name + "': data_offsets [" + std::to_string(e.begin) + ", " +
                           std::to_string(e.end) + ") run past the end of the data (" + std::to_string(data_size) +
                           " bytes): truncated file?");
    if (e.begin < covered) file_error(path, "tensor '" + e.name + "': data overlaps the previous tensor");
    if (e.begin > covered && e.end > e.begin)
      file_error(path, "hole in the data section before tensor '" + e.name + "'");
    covered = std::max(covered, e.end);
  }
  if (covered != data_size)
    file_error(path, std::to_string(data_size - covered) + " trailing bytes after the last tensor");

  const uint64_t data_start = 8 + n;
  for (const Entry& e : entries) {
    SafeTensor t;
    t.shape = e.shape;
    t.data.resize(element_count(e.shape));
    in.seekg(static_cast<std::streamoff>(data_start + e.begin));
    if (!t.data.empty() && !in.read(reinterpret_cast<char*>(t.data.data()), static_cast<std::streamsize>(e.end - e.begin)))
      file_error(path, "cannot read the data of tensor '" + e.name + "'");
    out.tensors[e.name] = std::move(t);
  }
  return out;
}

}  // namespace isonet
