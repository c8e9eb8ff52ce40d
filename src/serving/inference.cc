// Validation and execution of protocol-neutral inference requests.
#include "serving/inference.h"


namespace hearth::serving {

namespace {

struct DatatypeName {
  const char* name;
  DataType type;
};

constexpr DatatypeName kDatatypes[] = {
    {"BOOL", DataType::kBool},     {"UINT8", DataType::kUInt8},   {"UINT16", DataType::kUInt16},
    {"UINT32", DataType::kUInt32}, {"UINT64", DataType::kUInt64}, {"INT8", DataType::kInt8},
    {"INT16", DataType::kInt16},   {"INT32", DataType::kInt32},   {"INT64", DataType::kInt64},
    {"FP16", DataType::kFloat16},  {"FP32", DataType::kFloat},    {"FP64", DataType::kDouble},
    {"BF16", DataType::kBFloat16},
};

}  // namespace

Result<DataType> datatype_from_kserve(const std::string& name) {
  for (const auto& d : kDatatypes)
    if (name == d.name) return d.type;
  if (name == "BYTES") return unimplemented("datatype BYTES is not supported (the engine has no string tensors)");
  return invalid_argument("unknown datatype '", name, "'");
}

std::string kserve_datatype(DataType type) {
  for (const auto& d : kDatatypes)
    if (type == d.type) return d.name;
  return "";
}

}  // namespace hearth::serving
