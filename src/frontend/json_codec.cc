// Decoding of KServe v2 REST inference requests: the JSON header and Triton's
// binary tensor data that may follow it. Every size is checked against the
// bytes actually present before anything is allocated or copied.
//
// RapidJSON parses in situ on a per-thread copy of the JSON with the iterative
// parser (hostile nesting cannot exhaust the stack) and numbers kept as raw
// text: RapidJSON 1.1.0's own number conversion has known crashes
// (CVE-2024-38517, its issue #1251) and converts FP32 via double, so numbers
// are converted here with std::from_chars, exactly, into the type each value
// must have.
#include "frontend/json_codec.h"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <system_error>
#include <type_traits>
#include <utility>

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

namespace hearth::frontend {

using namespace serving;  // the core these front ends serve

namespace {

namespace rj = rapidjson;
using Pool = rj::MemoryPoolAllocator<rj::CrtAllocator>;
using Document = rj::GenericDocument<rj::UTF8<>, Pool, Pool>;
using Value = rj::GenericValue<rj::UTF8<>, Pool>;
using Reader = rj::GenericReader<rj::UTF8<>, rj::UTF8<>, Pool>;

static_assert(std::endian::native == std::endian::little, "binary tensor data is little-endian");

constexpr unsigned kParseFlags =
    rj::kParseInsituFlag | rj::kParseIterativeFlag | rj::kParseNanAndInfFlag | rj::kParseNumbersAsStringsFlag;
constexpr int kMaxNesting = 32;
// RapidJSON counts fraction digits in an int; far below that limit.
constexpr size_t kMaxJsonBytes = size_t{1} << 30;
// A number is stored in the DOM as a Uint64: its offset in the parse buffer
// above kLengthBits bits of length.
constexpr unsigned kLengthBits = 24;
constexpr uint64_t kLengthMask = (uint64_t{1} << kLengthBits) - 1;

// Per-thread parse memory, reused so a typical request parses without heap
// allocation; bigger bodies spill into heap chunks that die with the parse.
struct ParseScratch {
  alignas(16) char values[64 << 10];
  alignas(16) char document_stack[64 << 10];
  alignas(16) char reader_stack[4 << 10];
  std::string text;  // the mutable copy of the JSON that in-situ parsing needs
};

ParseScratch& parse_scratch() {
  thread_local std::unique_ptr<ParseScratch> scratch(new ParseScratch);
  return *scratch;
}

// Keeps the per-thread text buffer from holding on to a huge body's memory.
struct TextRelease {
  std::string& text;
  ~TextRelease() {
    if (text.capacity() > (size_t{4} << 20)) std::string().swap(text);
  }
};

// Forwards parse events to the document, storing each number (raw text, thanks
// to kParseNumbersAsStringsFlag) as a Uint64 that locates its text in the
// buffer. Every number in the DOM is such a Uint64 and no JSON string can pass
// for a number.
struct RawNumberHandler {
  Document& doc;
  const char* base;
  bool Null() { return doc.Null(); }
  bool Bool(bool b) { return doc.Bool(b); }
  bool Int(int) { return false; }  // never called with kParseNumbersAsStringsFlag
  bool Uint(unsigned) { return false; }
  bool Int64(int64_t) { return false; }
  bool Uint64(uint64_t) { return false; }
  bool Double(double) { return false; }
  bool RawNumber(const char* str, rj::SizeType length, bool) {
    const uint64_t offset = static_cast<uint64_t>(str - base);
    if (length > kLengthMask) return false;
    return doc.Uint64((offset << kLengthBits) | length);
  }
  bool String(const char* str, rj::SizeType length, bool copy) { return doc.String(str, length, copy); }
  bool StartObject() { return doc.StartObject(); }
  bool Key(const char* str, rj::SizeType length, bool copy) { return doc.Key(str, length, copy); }
  bool EndObject(rj::SizeType n) { return doc.EndObject(n); }
  bool StartArray() { return doc.StartArray(); }
  bool EndArray(rj::SizeType n) { return doc.EndArray(n); }
};

// The binary tensor data after the JSON header, consumed in input order.
struct BinaryData {
  bool present = false;  // Inference-Header-Content-Length was given
  std::string_view bytes;
  size_t used = 0;
};

const Value* member(const Value& object, const char* key) {
  auto it = object.FindMember(key);
  return it == object.MemberEnd() ? nullptr : &it->value;
}

std::string as_string(const Value& v) { return std::string(v.GetString(), v.GetStringLength()); }

template <typename T>
constexpr bool is_float_like = std::is_floating_point_v<T> || std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>;

// Smallest magnitude that rounds to infinity in each 16-bit float type (the
// largest finite value plus half an ulp).
template <typename T>
constexpr float overflow_limit() {
  if constexpr (std::is_same_v<T, Float16>) return 65520.0f;
  else return 0x1.ffp127f;
}

// Why a JSON value did not convert to an element type.
enum class Bad { kNone, kType, kSyntax, kRange };

// Parses `text` entirely as T with std::from_chars; std::errc() on success.
template <typename T>
std::errc parse_all(std::string_view text, T& out) {
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  if (ec == std::errc() && ptr != text.data() + text.size()) return std::errc::invalid_argument;
  return ec;
}

// Decodes one request: a walk over the DOM that converts numbers from their
// raw text and consumes the binary data in input order.
class RequestDecoder {
 public:
  RequestDecoder(const char* text, BinaryData binary) : text_(text), binary_(binary) {}

  Status decode(const Value& doc, DecodedInferRequest& out) {
    if (!doc.IsObject()) return invalid_argument("the request body must be a JSON object");
    if (const Value* id = member(doc, "id")) {
      if (!id->IsString()) return invalid_argument("'id' must be a string");
      out.request.id = as_string(*id);
    }
    HEARTH_RETURN_IF_ERROR(decode_request_parameters(doc, out));
    HEARTH_RETURN_IF_ERROR(decode_inputs(doc, out.request));
    return decode_outputs(doc, out);
  }

 private:
  std::string_view number_text(const Value& v) const {
    const uint64_t packed = v.GetUint64();
    return std::string_view(text_ + (packed >> kLengthBits), packed & kLengthMask);
  }

  // `v` as a non-negative integer; false for any other value.
  bool as_uint64(const Value& v, uint64_t& out) const {
    return v.IsNumber() && parse_all(number_text(v), out) == std::errc();
  }

  template <typename T>
  Bad convert(const Value& v, T& out) const;
  template <typename T>
  Bad convert_float(const Value& v, T& out) const;
  template <typename T>
  Status conversion_error(Bad bad, const Value& v, std::string_view datatype) const;
  template <typename T>
  Status fill(const Value& v, T* dst, size_t& i, std::string_view datatype) const;
  Result<Tensor> decode_json_data(const Value& data, DataType type, std::string_view datatype) const;
  Result<Tensor> take_binary_data(uint64_t size, DataType type, const InferInput& in);
  Status decode_shape(const Value& v, Shape& shape) const;
  Result<std::optional<uint64_t>> binary_data_size(const Value& input) const;
  Status decode_input_fields(const Value& v, InferInput& in);
  Status decode_inputs(const Value& doc, InferRequest& request);
  Status decode_outputs(const Value& doc, DecodedInferRequest& out) const;
  Status decode_request_parameters(const Value& doc, DecodedInferRequest& out) const;

  const char* text_;
  BinaryData binary_;
};

// FP16/BF16/FP32/FP64 from a number's text, correctly rounded once (FP16 and
// BF16 via float). Values past the type's range are refused; values too small
// for it become zero, as rounding gives.
template <typename T>
Bad RequestDecoder::convert_float(const Value& v, T& out) const {
  if (!v.IsNumber()) return Bad::kType;
  const std::string_view text = number_text(v);
  using Parsed = std::conditional_t<std::is_same_v<T, double>, double, float>;
  Parsed x;
  const std::errc ec = parse_all(text, x);
  if (ec == std::errc::result_out_of_range) {
    double d;
    if (!std::is_same_v<Parsed, float> || parse_all(text, d) != std::errc() || std::fabs(d) >= 1) return Bad::kRange;
    x = static_cast<Parsed>(d);  // underflow: rounds to a signed zero
  } else if (ec != std::errc()) {
    return Bad::kSyntax;
  }
  if constexpr (std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>) {
    if (std::isfinite(x) && std::fabs(x) >= overflow_limit<T>()) return Bad::kRange;
    out.bits = std::is_same_v<T, Float16> ? float_to_half(x) : float_to_bfloat16(x);
  } else {
    out = x;
  }
  return Bad::kNone;
}

// Converts one JSON scalar to T, refusing values that do not fit. No
// allocation: conversion_error() builds the message for a failure.
template <typename T>
Bad RequestDecoder::convert(const Value& v, T& out) const {
  if constexpr (std::is_same_v<T, bool>) {
    if (!v.IsBool()) return Bad::kType;
    out = v.GetBool();
    return Bad::kNone;
  } else if constexpr (is_float_like<T>) {
    return convert_float(v, out);
  } else {
    if (!v.IsNumber()) return Bad::kType;
    std::conditional_t<std::is_signed_v<T>, int64_t, uint64_t> x;
    const std::errc ec = parse_all(number_text(v), x);
    if (ec == std::errc::result_out_of_range || (ec == std::errc() && !std::in_range<T>(x))) return Bad::kRange;
    if (ec != std::errc()) return Bad::kSyntax;
    out = static_cast<T>(x);
    return Bad::kNone;
  }
}

template <typename T>
Status RequestDecoder::conversion_error(Bad bad, const Value& v, std::string_view datatype) const {
  const char* expected = std::is_same_v<T, bool> ? "expected true or false"
                         : is_float_like<T>      ? "expected a number"
                         : std::is_signed_v<T>   ? "expected an integer"
                                                 : "expected a non-negative integer";
  if (bad == Bad::kType) return invalid_argument(expected);
  const std::string_view text = number_text(v);
  if (bad == Bad::kRange)
    return invalid_argument(is_float_like<T> ? "" : "integer ", text, " is out of range for ", datatype);
  return invalid_argument(expected, ", not ", text);
}

// Counts the scalars of a possibly nested array (a lone scalar counts one).
Status count_leaves(const Value& v, int depth, size_t& n) {
  if (!v.IsArray()) {
    ++n;
    return ok_status();
  }
  if (depth >= kMaxNesting) return invalid_argument("'data' is nested deeper than ", kMaxNesting, " levels");
  for (const Value& e : v.GetArray()) {
    if (e.IsArray()) HEARTH_RETURN_IF_ERROR(count_leaves(e, depth + 1, n));
    else ++n;
  }
  return ok_status();
}

// Writes the scalars of `v` in row-major order to dst[i...]; count_leaves has
// already bounded the depth and sized dst.
template <typename T>
Status RequestDecoder::fill(const Value& v, T* dst, size_t& i, std::string_view datatype) const {
  auto error = [&](Bad bad, const Value& e) {
    return conversion_error<T>(bad, e, datatype).with_context(str_cat("data[", i, "]"));
  };
  if (!v.IsArray()) {
    const Bad bad = convert<T>(v, dst[i]);
    if (bad != Bad::kNone) return error(bad, v);
    ++i;
    return ok_status();
  }
  for (const Value& e : v.GetArray()) {
    if (e.IsArray()) {
      HEARTH_RETURN_IF_ERROR(fill(e, dst, i, datatype));
      continue;
    }
    const Bad bad = convert<T>(e, dst[i]);
    if (bad != Bad::kNone) return error(bad, e);
    ++i;
  }
  return ok_status();
}

// Builds the flat data tensor of one input from its JSON "data" member.
Result<Tensor> RequestDecoder::decode_json_data(const Value& data, DataType type, std::string_view datatype) const {
  size_t n = 0;
  HEARTH_RETURN_IF_ERROR(count_leaves(data, 0, n));
  Tensor t(type, {static_cast<int64_t>(n)});
  return dispatch_all(
      type,
      [&](auto tag) -> Result<Tensor> {
        using T = decltype(tag);
        size_t i = 0;
        HEARTH_RETURN_IF_ERROR(fill<T>(data, t.data<T>(), i, datatype));
        return t;
      },
      [&]() -> Result<Tensor> { return unimplemented("datatype ", dtype_name(type), " cannot be decoded"); });
}

// Bytes that `shape` of elements of `element_size` occupies; nullopt past 2^64.
std::optional<uint64_t> shape_bytes(const Shape& shape, uint64_t element_size) {
  uint64_t n = element_size;
  bool overflow = false;
  for (int64_t d : shape) {
    if (d == 0) return 0;
    overflow = overflow || __builtin_mul_overflow(n, static_cast<uint64_t>(d), &n);
  }
  if (overflow) return std::nullopt;
  return n;
}

// Takes the next `size` bytes of binary data as the input's tensor.
Result<Tensor> RequestDecoder::take_binary_data(uint64_t size, DataType type, const InferInput& in) {
  if (!binary_.present)
    return invalid_argument("binary_data_size ", size,
                            " but the request has no Inference-Header-Content-Length header, so no binary data");
  const uint64_t element_size = dtype_size(type);
  const std::optional<uint64_t> need = shape_bytes(in.shape, element_size);
  if (!need || *need != size)
    return invalid_argument("binary_data_size ", size, " but shape ", shape_str(in.shape), " of ", in.datatype,
                            " needs ", need ? std::to_string(*need) : std::string("more than 2^64"), " bytes");
  const size_t left = binary_.bytes.size() - binary_.used;
  if (size > left)
    return invalid_argument("binary_data_size ", size, " but only ", left,
                            " bytes of binary data are left after the JSON header and earlier binary inputs");
  const char* src = binary_.bytes.data() + binary_.used;
  binary_.used += size;
  Tensor t(type, {static_cast<int64_t>(size / element_size)});
  if (type == DataType::kBool) {
    bool* dst = t.data<bool>();
    for (uint64_t i = 0; i < size; ++i) dst[i] = src[i] != 0;  // any non-zero byte is true
  } else if (size > 0) {
    std::memcpy(t.raw_data(), src, size);
  }
  return t;
}

Status RequestDecoder::decode_shape(const Value& v, Shape& shape) const {
  if (!v.IsArray()) return invalid_argument("'shape' must be an array of integers");
  shape.reserve(v.Size());
  for (const Value& d : v.GetArray()) {
    uint64_t dim;
    if (!as_uint64(d, dim) || dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      return invalid_argument("'shape' must hold non-negative integers");
    shape.push_back(static_cast<int64_t>(dim));
  }
  return ok_status();
}

// The input's "binary_data_size" parameter; nullopt when it has none.
Result<std::optional<uint64_t>> RequestDecoder::binary_data_size(const Value& input) const {
  const Value* params = member(input, "parameters");
  if (params == nullptr) return std::optional<uint64_t>();
  if (!params->IsObject()) return invalid_argument("'parameters' must be an object");
  const Value* size = member(*params, "binary_data_size");
  if (size == nullptr) return std::optional<uint64_t>();
  uint64_t n;
  if (!as_uint64(*size, n)) return invalid_argument("parameter binary_data_size must be a non-negative integer");
  return std::optional<uint64_t>(n);
}

// Everything of one input after its name; the caller adds the name as context.
Status RequestDecoder::decode_input_fields(const Value& v, InferInput& in) {
  const Value* datatype = member(v, "datatype");
  if (datatype == nullptr || !datatype->IsString()) return invalid_argument("missing string 'datatype'");
  in.datatype = as_string(*datatype);
  HEARTH_ASSIGN_OR_RETURN(DataType type, datatype_from_kserve(in.datatype));
  const Value* shape = member(v, "shape");
  if (shape == nullptr) return invalid_argument("missing 'shape'");
  HEARTH_RETURN_IF_ERROR(decode_shape(*shape, in.shape));
  HEARTH_ASSIGN_OR_RETURN(std::optional<uint64_t> binary_size, binary_data_size(v));
  const Value* data = member(v, "data");
  if (data != nullptr && binary_size)
    return invalid_argument("has both 'data' and binary_data_size ", *binary_size, "; send one of them");
  if (binary_size) {
    HEARTH_ASSIGN_OR_RETURN(in.data, take_binary_data(*binary_size, type, in));
  } else {
    if (data == nullptr) return invalid_argument("has neither 'data' nor a binary_data_size parameter");
    HEARTH_ASSIGN_OR_RETURN(in.data, decode_json_data(*data, type, in.datatype));
  }
  return ok_status();
}

Status RequestDecoder::decode_inputs(const Value& doc, InferRequest& request) {
  const Value* inputs = member(doc, "inputs");
  if (inputs == nullptr || !inputs->IsArray()) return invalid_argument("the request needs an 'inputs' array");
  request.inputs.reserve(inputs->Size());
  for (const Value& v : inputs->GetArray()) {
    if (!v.IsObject()) return invalid_argument("each input must be an object");
    const Value* name = member(v, "name");
    if (name == nullptr || !name->IsString()) return invalid_argument("input without a string 'name'");
    InferInput& in = request.inputs.emplace_back();
    in.name = as_string(*name);
    Status s = decode_input_fields(v, in);
    if (!s.ok()) return s.with_context(str_cat("input '", in.name, "'"));
  }
  if (binary_.used != binary_.bytes.size())
    return invalid_argument("the body has ", binary_.bytes.size(),
                            " bytes of binary data after the JSON header but the inputs' binary_data_size add up to ",
                            binary_.used);
  return ok_status();
}

Status RequestDecoder::decode_outputs(const Value& doc, DecodedInferRequest& out) const {
  const Value* outputs = member(doc, "outputs");
  if (outputs == nullptr) return ok_status();
  if (!outputs->IsArray()) return invalid_argument("'outputs' must be an array");
  for (const Value& o : outputs->GetArray()) {
    if (!o.IsObject()) return invalid_argument("each requested output must be an object");
    const Value* name = member(o, "name");
    if (name == nullptr || !name->IsString()) return invalid_argument("requested output without a string 'name'");
    std::string output = as_string(*name);
    if (const Value* params = member(o, "parameters")) {
      if (!params->IsObject()) return invalid_argument("output '", output, "': 'parameters' must be an object");
      if (const Value* binary = member(*params, "binary_data")) {
        if (!binary->IsBool())
          return invalid_argument("output '", output, "': parameter binary_data must be true or false");
        (binary->GetBool() ? out.binary_outputs : out.json_outputs).push_back(output);
      }
      // Triton's classification extension (tritonclient's class_count) would turn the
      // tensor into "score:index[:label]" strings; answering the raw tensor instead
      // would break the client, so it is refused by name until it is served.
      if (member(*params, "classification") != nullptr)
        return unimplemented("output '", output,
                             "': the classification extension (parameter 'classification', tritonclient's "
                             "class_count) is not supported by Hearth yet; ask for the raw tensor");
    }
    out.request.requested_outputs.push_back(std::move(output));
  }
  return ok_status();
}

Status RequestDecoder::decode_request_parameters(const Value& doc, DecodedInferRequest& out) const {
  const Value* params = member(doc, "parameters");
  if (params == nullptr) return ok_status();
  if (!params->IsObject()) return invalid_argument("the request's 'parameters' must be an object");
  if (const Value* timeout = member(*params, "timeout")) {
    if (!as_uint64(*timeout, out.request.timeout_us))
      return invalid_argument("request parameter timeout must be a non-negative integer (microseconds)");
  }
  if (const Value* key = member(*params, "routing_key")) {
    if (!key->IsString() || key->GetStringLength() > kMaxRoutingKeyBytes)
      return invalid_argument("request parameter routing_key must be a string of at most ", kMaxRoutingKeyBytes, " bytes");
    out.request.routing_key.assign(key->GetString(), key->GetStringLength());
  }
  if (const Value* binary = member(*params, "binary_data_output")) {
    if (!binary->IsBool()) return invalid_argument("request parameter binary_data_output must be true or false");
    out.binary_data_output = binary->GetBool();
  }
  return ok_status();
}

}  // namespace

Result<DecodedInferRequest> decode_infer_request(std::string_view body, std::optional<size_t> header_length,
                                                 const std::string& name, const std::string& version) {
  if (header_length && *header_length > body.size())
    return invalid_argument("Inference-Header-Content-Length ", *header_length, " is larger than the ", body.size(),
                            "-byte body");
  const std::string_view json = header_length ? body.substr(0, *header_length) : body;
  if (json.size() > kMaxJsonBytes) return invalid_argument("the JSON part of the body is larger than 1 GiB");
  if (const void* nul = std::memchr(json.data(), '\0', json.size()))
    return invalid_argument("malformed JSON at offset ", static_cast<const char*>(nul) - json.data(), ": a NUL byte");

  ParseScratch& scratch = parse_scratch();
  TextRelease release{scratch.text};
  scratch.text.assign(json);
  Pool values(scratch.values, sizeof scratch.values);
  Pool document_stack(scratch.document_stack, sizeof scratch.document_stack);
  Pool reader_stack(scratch.reader_stack, sizeof scratch.reader_stack);
  // Room for the values a body of mostly numbers holds, so big arrays do not
  // regrow (and copy) the parse stack.
  const size_t stack_capacity = std::clamp(json.size() * 2, sizeof scratch.document_stack / 2, size_t{64} << 20);
  Document doc(&values, stack_capacity, &document_stack);
  rj::ParseResult parsed;
  auto generate = [&](Document& d) {
    Reader reader(&reader_stack, sizeof scratch.reader_stack / 2);
    rj::GenericInsituStringStream<rj::UTF8<>> stream(scratch.text.data());
    RawNumberHandler handler{d, scratch.text.data()};
    parsed = reader.Parse<kParseFlags>(stream, handler);
    return !parsed.IsError();
  };
  doc.Populate(generate);
  if (parsed.IsError())
    return invalid_argument("malformed JSON at offset ", parsed.Offset(), ": ", rj::GetParseError_En(parsed.Code()));

  DecodedInferRequest out;
  out.request.model_name = name;
  out.request.model_version = version;
  RequestDecoder decoder(scratch.text.data(), {header_length.has_value(), body.substr(json.size())});
  HEARTH_RETURN_IF_ERROR(decoder.decode(doc, out));
  return out;
}

}  // namespace hearth::frontend
