// RapidJSON codec for KServe v2 REST inference bodies. Parsing is iterative
// (no recursion in the parser) and our own flattening is depth-limited, so a
// hostile body cannot exhaust the stack.
#include "serving/json_codec.h"

#include <cmath>
#include <limits>
#include <type_traits>

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace hearth::serving {

namespace {

namespace rj = rapidjson;
using Writer = rj::Writer<rj::StringBuffer, rj::UTF8<>, rj::UTF8<>, rj::CrtAllocator, rj::kWriteNanAndInfFlag>;

constexpr int kMaxNesting = 32;

// Collects the scalar leaves of a (possibly nested) JSON array in row-major order.
Status flatten(const rj::Value& v, int depth, std::vector<const rj::Value*>& out) {
  if (!v.IsArray()) {
    out.push_back(&v);
    return ok_status();
  }
  if (depth > kMaxNesting) return invalid_argument("data is nested deeper than ", kMaxNesting, " levels");
  for (const auto& e : v.GetArray()) HEARTH_RETURN_IF_ERROR(flatten(e, depth + 1, out));
  return ok_status();
}

// Converts one JSON scalar to T, refusing values that do not fit.
template <typename T>
Status convert(const rj::Value& v, T& out) {
  if constexpr (std::is_same_v<T, bool>) {
    if (!v.IsBool()) return invalid_argument("expected true or false");
    out = v.GetBool();
  } else if constexpr (std::is_floating_point_v<T> || std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>) {
    if (!v.IsNumber()) return invalid_argument("expected a number");
    double d = v.GetDouble();
    if constexpr (std::is_same_v<T, Float16>) {
      out.bits = float_to_half(static_cast<float>(d));
    } else if constexpr (std::is_same_v<T, BFloat16>) {
      out.bits = float_to_bfloat16(static_cast<float>(d));
    } else {
      out = static_cast<T>(d);
    }
  } else if constexpr (std::is_signed_v<T>) {
    if (!v.IsInt64()) return invalid_argument("expected an integer");
    int64_t x = v.GetInt64();
    if (x < std::numeric_limits<T>::min() || x > std::numeric_limits<T>::max())
      return invalid_argument("integer ", x, " is out of range");
    out = static_cast<T>(x);
  } else {
    if (!v.IsUint64()) return invalid_argument("expected a non-negative integer");
    uint64_t x = v.GetUint64();
    if (x > std::numeric_limits<T>::max()) return invalid_argument("integer ", x, " is out of range");
    out = static_cast<T>(x);
  }
  return ok_status();
}

// Builds the flat data tensor of one input from its JSON "data" member.
Result<Tensor> decode_data(const rj::Value& data, DataType type) {
  std::vector<const rj::Value*> leaves;
  HEARTH_RETURN_IF_ERROR(flatten(data, 0, leaves));
  Tensor t(type, {static_cast<int64_t>(leaves.size())});
  return dispatch_all(
      type,
      [&](auto tag) -> Result<Tensor> {
        using T = decltype(tag);
        T* dst = t.data<T>();
        for (size_t i = 0; i < leaves.size(); ++i) {
          Status s = convert<T>(*leaves[i], dst[i]);
          if (!s.ok()) return s.with_context(str_cat("data[", i, "]"));
        }
        return t;
      },
      [&]() -> Result<Tensor> { return unimplemented("datatype ", dtype_name(type), " cannot be decoded"); });
}

Result<Shape> decode_shape(const rj::Value& v) {
  if (!v.IsArray()) return invalid_argument("'shape' must be an array of integers");
  Shape shape;
  for (const auto& d : v.GetArray()) {
    if (!d.IsInt64() || d.GetInt64() < 0) return invalid_argument("'shape' must hold non-negative integers");
    shape.push_back(d.GetInt64());
  }
  return shape;
}

Result<InferInput> decode_input(const rj::Value& v) {
  if (!v.IsObject()) return invalid_argument("each input must be an object");
  auto name = v.FindMember("name");
  if (name == v.MemberEnd() || !name->value.IsString()) return invalid_argument("input without a string 'name'");
  InferInput in;
  in.name = name->value.GetString();
  std::string ctx = str_cat("input '", in.name, "'");
  auto datatype = v.FindMember("datatype");
  auto shape = v.FindMember("shape");
  auto data = v.FindMember("data");
  if (datatype == v.MemberEnd() || !datatype->value.IsString())
    return invalid_argument(ctx, ": missing string 'datatype'");
  if (shape == v.MemberEnd()) return invalid_argument(ctx, ": missing 'shape'");
  if (data == v.MemberEnd()) return invalid_argument(ctx, ": missing 'data' (binary data is not supported)");
  in.datatype = datatype->value.GetString();
  auto type = datatype_from_kserve(in.datatype);
  if (!type.ok()) return type.status().with_context(ctx);
  auto s = decode_shape(shape->value);
  if (!s.ok()) return s.status().with_context(ctx);
  in.shape = *s;
  auto t = decode_data(data->value, *type);
  if (!t.ok()) return t.status().with_context(ctx);
  in.data = std::move(t).value();
  return in;
}

Status decode_outputs(const rj::Value& v, std::vector<std::string>& names) {
  if (!v.IsArray()) return invalid_argument("'outputs' must be an array");
  for (const auto& o : v.GetArray()) {
    if (!o.IsObject()) return invalid_argument("each requested output must be an object");
    auto name = o.FindMember("name");
    if (name == o.MemberEnd() || !name->value.IsString())
      return invalid_argument("requested output without a string 'name'");
    names.push_back(name->value.GetString());
  }
  return ok_status();
}

void write_data(Writer& w, const Tensor& t) {
  const int64_t n = t.numel();
  dispatch_all(
      t.dtype(),
      [&](auto tag) {
        using T = decltype(tag);
        const T* p = t.data<T>();
        for (int64_t i = 0; i < n; ++i) {
          if constexpr (std::is_same_v<T, bool>) {
            w.Bool(p[i]);
          } else if constexpr (std::is_same_v<T, Float16>) {
            w.Double(half_to_float(p[i].bits));
          } else if constexpr (std::is_same_v<T, BFloat16>) {
            w.Double(bfloat16_to_float(p[i].bits));
          } else if constexpr (std::is_floating_point_v<T>) {
            w.Double(static_cast<double>(p[i]));
          } else if constexpr (std::is_signed_v<T>) {
            w.Int64(static_cast<int64_t>(p[i]));
          } else {
            w.Uint64(static_cast<uint64_t>(p[i]));
          }
        }
        return 0;
      },
      [] { return 0; });
}

}  // namespace

Result<InferRequest> decode_infer_request(const std::string& body, const std::string& name,
                                          const std::string& version) {
  rj::Document doc;
  doc.Parse<rj::kParseIterativeFlag | rj::kParseNanAndInfFlag>(body.data(), body.size());
  if (doc.HasParseError())
    return invalid_argument("malformed JSON at offset ", doc.GetErrorOffset(), ": ",
                            rj::GetParseError_En(doc.GetParseError()));
  if (!doc.IsObject()) return invalid_argument("the request body must be a JSON object");
  InferRequest request;
  request.model_name = name;
  request.model_version = version;
  auto id = doc.FindMember("id");
  if (id != doc.MemberEnd()) {
    if (!id->value.IsString()) return invalid_argument("'id' must be a string");
    request.id = id->value.GetString();
  }
  auto inputs = doc.FindMember("inputs");
  if (inputs == doc.MemberEnd() || !inputs->value.IsArray())
    return invalid_argument("the request needs an 'inputs' array");
  for (const auto& v : inputs->value.GetArray()) {
    HEARTH_ASSIGN_OR_RETURN(InferInput in, decode_input(v));
    request.inputs.push_back(std::move(in));
  }
  auto outputs = doc.FindMember("outputs");
  if (outputs != doc.MemberEnd()) HEARTH_RETURN_IF_ERROR(decode_outputs(outputs->value, request.requested_outputs));
  return request;
}

std::string encode_infer_response(const InferResponse& response) {
  rj::StringBuffer buffer;
  Writer w(buffer);
  w.StartObject();
  w.Key("model_name");
  w.String(response.model_name.c_str(), static_cast<rj::SizeType>(response.model_name.size()));
  w.Key("model_version");
  w.String(response.model_version.c_str(), static_cast<rj::SizeType>(response.model_version.size()));
  if (!response.id.empty()) {
    w.Key("id");
    w.String(response.id.c_str(), static_cast<rj::SizeType>(response.id.size()));
  }
  w.Key("outputs");
  w.StartArray();
  for (const InferOutput& o : response.outputs) {
    w.StartObject();
    w.Key("name");
    w.String(o.name.c_str(), static_cast<rj::SizeType>(o.name.size()));
    w.Key("datatype");
    w.String(o.datatype.c_str(), static_cast<rj::SizeType>(o.datatype.size()));
    w.Key("shape");
    w.StartArray();
    for (int64_t d : o.data.shape()) w.Int64(d);
    w.EndArray();
    w.Key("data");
    w.StartArray();
    write_data(w, o.data);
    w.EndArray();
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return std::string(buffer.GetString(), buffer.GetSize());
}

std::string encode_error(const std::string& message) {
  rj::StringBuffer buffer;
  Writer w(buffer);
  w.StartObject();
  w.Key("error");
  w.String(message.c_str(), static_cast<rj::SizeType>(message.size()));
  w.EndObject();
  return std::string(buffer.GetString(), buffer.GetSize());
}

}  // namespace hearth::serving
