// NumPy .npy files (format versions 1-3, little-endian, C order) <-> Tensor.
// Hand-written: Debian ships no C++ .npy library; the format is tiny.
#pragma once

#include <string>

#include "core/status.h"
#include "core/tensor.h"

namespace hearth {

Result<Tensor> read_npy(const std::string& path);
// Parses .npy bytes held in memory; `what` names the source in errors.
Result<Tensor> parse_npy(const std::string& bytes, const std::string& what);
Status write_npy(const std::string& path, const Tensor& t);
std::string serialize_npy(const Tensor& t);

}  // namespace hearth
