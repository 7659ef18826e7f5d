// safetensors.h: reading and writing the safetensors container (huggingface/safetensors), float32
// tensors only. Layout: 8-byte little-endian header length N, N bytes of JSON
//   {"<name>": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {"<key>": "<string value>", ...}}
// (possibly padded with spaces), then the raw little-endian data; offsets are relative to the
// start of the data section. The reader validates everything and names the file and the problem
// in its isonet::Error: header length against the file size, JSON syntax, field types, dtype,
// shape against byte size, offsets in range, no overlaps, no holes and no trailing bytes.
// The writer is atomic: it writes a temporary file next to the target and renames it.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace isonet {

struct SafeTensor {
  std::vector<int64_t> shape;
  std::vector<float> data;  // row-major, prod(shape) values
};

struct SafetensorsFile {
  std::map<std::string, SafeTensor> tensors;
  std::map<std::string, std::string> metadata;
};

// Headers longer than this are refused (a corrupt length would otherwise allocate gigabytes).
constexpr uint64_t kSafetensorsMaxHeaderBytes = 100ull << 20;

void write_safetensors(const std::string& path, const SafetensorsFile& file);
SafetensorsFile read_safetensors(const std::string& path);

// "[2,1,16,16]"
std::string shape_string(const std::vector<int64_t>& shape);

}  // namespace isonet
