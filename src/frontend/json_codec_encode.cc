// Encoding of KServe v2 REST inference responses and error bodies. The JSON is
// written straight into one reserved std::string (its shape is fixed, so no
// DOM or writer state is needed); numbers go through std::to_chars, which gives
// the shortest text that reads back as the same value of the element's own
// width (FP32 as float, so 0.1f is "0.1", not 0.10000000149011612). Binary
// outputs (Triton's binary tensor data extension) are appended raw after it.
#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "frontend/json_codec.h"

namespace hearth::frontend {

using namespace serving;  // the core these front ends serve

namespace {

static_assert(std::endian::native == std::endian::little, "binary tensor data is little-endian");

// Longest text of one element: "-2.2250738585072014e-308" is 24 characters.
constexpr size_t kMaxNumberChars = 32;
// Elements written per buffer growth, so a huge output never over-reserves much.
constexpr size_t kChunk = 4096;

// Appends `s` as a JSON string literal, escaped as RapidJSON's Writer does:
// quote, backslash and control characters; other bytes pass through.
void append_string(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  out.push_back('"');
  size_t start = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s.data() + start, i - start);
    start = i + 1;
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        out += "\\u00";
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 0xF]);
    }
  }
  out.append(s.data() + start, s.size() - start);
  out.push_back('"');
}

char* write_literal(char* p, const char* s) {
  const size_t n = std::strlen(s);
  std::memcpy(p, s, n);
  return p + n;
}

// Writes a float or double shortest round-trip for its own type.
template <typename F>
char* write_float(char* p, F v) {
  if (std::isnan(v)) return write_literal(p, "NaN");
  if (std::isinf(v)) return write_literal(p, v < 0 ? "-Infinity" : "Infinity");
  return std::to_chars(p, p + kMaxNumberChars, v).ptr;
}

// Writes one element at p (room for kMaxNumberChars) and returns the new end.
template <typename T>
char* write_number(char* p, T v) {
  if constexpr (std::is_same_v<T, bool>) {
    return write_literal(p, v ? "true" : "false");
  } else if constexpr (std::is_same_v<T, Float16>) {
    return write_float(p, half_to_float(v.bits));
  } else if constexpr (std::is_same_v<T, BFloat16>) {
    return write_float(p, bfloat16_to_float(v.bits));
  } else if constexpr (std::is_floating_point_v<T>) {
    return write_float(p, v);
  } else {
    return std::to_chars(p, p + kMaxNumberChars, v).ptr;
  }
}

// Appends the elements of `t` as a flat JSON array.
void append_data(std::string& out, const Tensor& t) {
  out.push_back('[');
  dispatch_all(
      t.dtype(),
      [&](auto tag) {
        using T = decltype(tag);
        const T* values = t.data<T>();
        const size_t n = static_cast<size_t>(t.numel());
        for (size_t begin = 0; begin < n; begin += kChunk) {
          const size_t end = std::min(n, begin + kChunk);
          const size_t old_size = out.size();
          out.resize(old_size + (end - begin) * (kMaxNumberChars + 1));
          char* p = out.data() + old_size;
          for (size_t i = begin; i < end; ++i) {
            if (i > 0) *p++ = ',';
            p = write_number(p, values[i]);
          }
          out.resize(static_cast<size_t>(p - out.data()));
        }
        return 0;
      },
      [] { return 0; });
  out.push_back(']');
}

void append_shape(std::string& out, const Shape& shape) {
  out.push_back('[');
  char buf[kMaxNumberChars];
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) out.push_back(',');
    out.append(buf, std::to_chars(buf, buf + sizeof buf, shape[i]).ptr);
  }
  out.push_back(']');
}

bool contains(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

bool is_binary(const InferOutput& output, const DecodedInferRequest& how) {
  if (contains(how.binary_outputs, output.name)) return true;
  return how.binary_data_output && !contains(how.json_outputs, output.name);
}

// Generous guess of the encoded size, so the body is allocated once.
size_t estimate_size(const InferResponse& response, const std::vector<bool>& binary) {
  size_t n = 64 + response.model_name.size() + response.model_version.size() + response.id.size();
  for (size_t i = 0; i < response.outputs.size(); ++i) {
    const InferOutput& o = response.outputs[i];
    n += 96 + o.name.size() + o.datatype.size() + 21 * o.data.shape().size();
    const size_t elements = o.data.defined() ? static_cast<size_t>(o.data.numel()) : 0;
    n += binary[i] ? o.data.nbytes() : elements * 12;
  }
  return n;
}

void append_output(std::string& out, const InferOutput& o, bool binary) {
  out += "{\"name\":";
  append_string(out, o.name);
  out += ",\"datatype\":";
  append_string(out, o.datatype);
  out += ",\"shape\":";
  append_shape(out, o.data.shape());
  if (binary) {
    char buf[kMaxNumberChars];
    out += ",\"parameters\":{\"binary_data_size\":";
    out.append(buf, std::to_chars(buf, buf + sizeof buf, o.data.defined() ? o.data.nbytes() : 0).ptr);
    out += "}}";
  } else {
    out += ",\"data\":";
    append_data(out, o.data);
    out.push_back('}');
  }
}

}  // namespace

EncodedInferResponse encode_infer_response(const InferResponse& response, const DecodedInferRequest& how) {
  std::vector<bool> binary(response.outputs.size());
  bool any_binary = false;
  for (size_t i = 0; i < binary.size(); ++i) {
    binary[i] = is_binary(response.outputs[i], how);
    any_binary = any_binary || binary[i];
  }
  EncodedInferResponse encoded;
  std::string& out = encoded.body;
  out.reserve(estimate_size(response, binary));
  out += "{\"model_name\":";
  append_string(out, response.model_name);
  out += ",\"model_version\":";
  append_string(out, response.model_version);
  if (!response.id.empty()) {
    out += ",\"id\":";
    append_string(out, response.id);
  }
  out += ",\"outputs\":[";
  for (size_t i = 0; i < response.outputs.size(); ++i) {
    if (i > 0) out.push_back(',');
    append_output(out, response.outputs[i], binary[i]);
  }
  out += "]}";
  if (!any_binary) return encoded;
  encoded.header_length = out.size();
  for (size_t i = 0; i < response.outputs.size(); ++i) {
    const Tensor& t = response.outputs[i].data;
    if (binary[i] && t.defined() && t.nbytes() > 0) out.append(static_cast<const char*>(t.raw_data()), t.nbytes());
  }
  return encoded;
}

std::string encode_error(const std::string& message) {
  std::string out;
  out.reserve(message.size() + 16);
  out += "{\"error\":";
  append_string(out, message);
  out.push_back('}');
  return out;
}

}  // namespace hearth::frontend
