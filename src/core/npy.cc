#include "core/npy.h"

#include <cstring>
#include <fstream>
#include <regex>

namespace hearth {

namespace {

const char kMagic[] = "\x93NUMPY";

std::string descr_of(DataType t) {
  switch (t) {
    case DataType::kFloat: return "<f4";
    case DataType::kDouble: return "<f8";
    case DataType::kFloat16: return "<f2";
    case DataType::kInt8: return "|i1";
    case DataType::kUInt8: return "|u1";
    case DataType::kInt16: return "<i2";
    case DataType::kUInt16: return "<u2";
    case DataType::kInt32: return "<i4";
    case DataType::kUInt32: return "<u4";
    case DataType::kInt64: return "<i8";
    case DataType::kUInt64: return "<u8";
    case DataType::kBool: return "|b1";
    default: return "";
  }
}

Result<DataType> dtype_of_descr(const std::string& d, const std::string& what) {
  static const std::pair<const char*, DataType> kTable[] = {
      {"f4", DataType::kFloat}, {"f8", DataType::kDouble}, {"f2", DataType::kFloat16}, {"i1", DataType::kInt8},
      {"u1", DataType::kUInt8}, {"i2", DataType::kInt16},  {"u2", DataType::kUInt16},  {"i4", DataType::kInt32},
      {"u4", DataType::kUInt32}, {"i8", DataType::kInt64}, {"u8", DataType::kUInt64},  {"b1", DataType::kBool}};
  if (d.size() == 3 && (d[0] == '<' || d[0] == '|' || d[0] == '=')) {
    for (const auto& [code, t] : kTable)
      if (d.substr(1) == code) return t;
  }
  return unimplemented(what, ": unsupported .npy dtype '", d, "' (little-endian numeric or bool only)");
}

}  // namespace

Result<Tensor> parse_npy(const std::string& bytes, const std::string& what) {
  if (bytes.size() < 10 || std::memcmp(bytes.data(), kMagic, 6) != 0) {
    return invalid_argument(what, ": not a .npy file (bad magic)");
  }
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t header_len, offset;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) return invalid_argument(what, ": truncated .npy header");
    uint32_t len;
    std::memcpy(&len, bytes.data() + 8, 4);
    header_len = len;
    offset = 12;
  } else {
    return invalid_argument(what, ": unsupported .npy format version ", major);
  }
  if (offset + header_len > bytes.size()) return invalid_argument(what, ": truncated .npy header");
  std::string header = bytes.substr(offset, header_len);
  std::smatch m;
  if (!std::regex_search(header, m, std::regex("'descr'\\s*:\\s*'([^']*)'"))) {
    return invalid_argument(what, ": .npy header has no descr");
  }
  HEARTH_ASSIGN_OR_RETURN(DataType dtype, dtype_of_descr(m[1], what));
  if (std::regex_search(header, m, std::regex("'fortran_order'\\s*:\\s*True"))) {
    return unimplemented(what, ": Fortran-ordered .npy arrays are not supported (save with C order)");
  }
  if (!std::regex_search(header, m, std::regex("'shape'\\s*:\\s*\\(([^)]*)\\)"))) {
    return invalid_argument(what, ": .npy header has no shape");
  }
  Shape shape;
  std::string dims = m[1];
  std::regex num("\\d+");
  for (auto it = std::sregex_iterator(dims.begin(), dims.end(), num); it != std::sregex_iterator(); ++it) {
    if (it->str().size() > 15) return invalid_argument(what, ": .npy dimension too large");
    shape.push_back(std::stoll(it->str()));
  }
  const size_t data_offset = offset + header_len;
  auto checked = checked_nbytes(dtype, shape);
  if (!checked.ok()) return checked.status().with_context(what);
  const size_t nbytes = *checked;
  if (bytes.size() - data_offset != nbytes) {
    return invalid_argument(what, ": .npy data is ", bytes.size() - data_offset, " bytes but shape ", shape_str(shape),
                            " of ", dtype_name(dtype), " needs ", nbytes);
  }
  Tensor t(dtype, shape);
  if (nbytes) std::memcpy(t.raw_data(), bytes.data() + data_offset, nbytes);
  return t;
}

Result<Tensor> read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found("cannot open '", path, "'");
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return parse_npy(bytes, path);
}

std::string serialize_npy(const Tensor& t) {
  std::string header = "{'descr': '" + descr_of(t.dtype()) + "', 'fortran_order': False, 'shape': (";
  for (size_t i = 0; i < t.rank(); ++i) header += std::to_string(t.dim(i)) + (t.rank() == 1 || i + 1 < t.rank() ? ", " : "");
  if (t.rank() == 1) header.resize(header.size() - 1);
  header += "), }";
  // Pad so that the data starts on a 64-byte boundary; header ends with '\n'.
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::string out(kMagic, 6);
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>((header.size() >> 8) & 0xff);
  out += header;
  out.append(static_cast<const char*>(t.raw_data()), t.nbytes());
  return out;
}

Status write_npy(const std::string& path, const Tensor& t) {
  if (descr_of(t.dtype()).empty()) return unimplemented("cannot write ", dtype_name(t.dtype()), " to .npy");
  std::ofstream out(path, std::ios::binary);
  if (!out) return not_found("cannot write '", path, "'");
  std::string bytes = serialize_npy(t);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) return data_loss("failed writing '", path, "'");
  return ok_status();
}

}  // namespace hearth
