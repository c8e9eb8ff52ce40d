// Where a model's external data (tensors stored outside the .onnx file) comes
// from: files under a folder on disk, or, for a model opened from an
// encrypted package, files held in memory and keyed by their relative
// location. When neither is given, external data is refused.
#pragma once

#include <map>
#include <string>
#include <string_view>

namespace hearth {

struct ExternalData {
  std::string base_dir;                                  // "" = not from disk
  // Not owned (nor the bytes the views point to); null = not from memory.
  const std::map<std::string, std::string_view>* files = nullptr;
};

}  // namespace hearth
