// KServe v2 REST codec (json_codec.h): JSON and Triton binary tensor data in
// both directions for every datatype, request/output parameters, every error
// with its message, exact float round trips, and a fuzz loop that feeds
// random and mutated bodies with random header lengths.
#include "frontend/json_codec.h"

#include <gtest/gtest.h>

#include <cfloat>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <thread>

#include <rapidjson/document.h>

namespace hearth::frontend {

using namespace serving;
namespace {

template <typename T>
std::string raw_bytes(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

std::string tensor_bytes(const Tensor& t) {
  return std::string(static_cast<const char*>(t.raw_data()), t.nbytes());
}

// A JSON header followed by binary blobs, as a client sends it.
struct Body {
  std::string bytes;
  size_t header_length;
};
Body with_binary(const std::string& json, const std::vector<std::string>& blobs) {
  Body b{json, json.size()};
  for (const std::string& blob : blobs) b.bytes += blob;
  return b;
}

Result<DecodedInferRequest> decode(const std::string& body) {
  return decode_infer_request(body, std::nullopt, "m", "");
}
Result<DecodedInferRequest> decode(const Body& body) {
  return decode_infer_request(body.bytes, body.header_length, "m", "");
}

// The InvalidArgument message of decoding `body`, or "OK" / the other code.
template <typename B>
std::string error_of(const B& body) {
  auto r = decode(body);
  if (r.ok()) return "OK";
  if (r.status().code() != StatusCode::kInvalidArgument) return r.status().to_string();
  return r.status().message();
}

InferResponse response_of(std::vector<InferOutput> outputs) {
  InferResponse res;
  res.model_name = "m";
  res.model_version = "1";
  res.outputs = std::move(outputs);
  return res;
}

// Encodes `outputs` as a response, then decodes that body as a request whose
// inputs are those outputs (the response's "outputs" key renamed "inputs"):
// both directions of the codec checked against each other.
Result<DecodedInferRequest> round_trip(const std::vector<InferOutput>& outputs, bool binary) {
  DecodedInferRequest how;
  how.binary_data_output = binary;
  EncodedInferResponse enc = encode_infer_response(response_of(outputs), how);
  EXPECT_EQ(enc.header_length.has_value(), binary);
  std::string body = enc.body;
  const size_t at = body.find("\"outputs\":");
  EXPECT_NE(at, std::string::npos);
  body.replace(at, 10, "\"inputs\":");
  std::optional<size_t> header_length;
  if (enc.header_length) header_length = *enc.header_length - 1;
  return decode_infer_request(body, header_length, "m", "");
}

std::vector<InferOutput> every_datatype() {
  std::vector<InferOutput> o;
  o.push_back({"bool", "BOOL", Tensor::from_vector<bool>({true, false, true}, {3})});
  o.push_back({"u8", "UINT8", Tensor::from_vector<uint8_t>({0, 255, 7}, {3})});
  o.push_back({"u16", "UINT16", Tensor::from_vector<uint16_t>({0, 65535}, {2})});
  o.push_back({"u32", "UINT32", Tensor::from_vector<uint32_t>({0, 4294967295u}, {2})});
  o.push_back({"u64", "UINT64", Tensor::from_vector<uint64_t>({0, std::numeric_limits<uint64_t>::max()}, {1, 2})});
  o.push_back({"i8", "INT8", Tensor::from_vector<int8_t>({-128, 127, 0}, {3})});
  o.push_back({"i16", "INT16", Tensor::from_vector<int16_t>({-32768, 32767}, {2})});
  o.push_back({"i32", "INT32", Tensor::from_vector<int32_t>({std::numeric_limits<int32_t>::min(), 5}, {2})});
  o.push_back({"i64", "INT64",
               Tensor::from_vector<int64_t>(
                   {std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max(), -1}, {3, 1})});
  std::vector<Float16> halves;
  for (uint16_t bits : {0x0000, 0x8000, 0x3C00, 0x7BFF, 0x0001, 0x03FF, 0x7C00, 0xFC00, 0x3555, 0xC900})
    halves.push_back(Float16{bits});
  o.push_back({"f16", "FP16", Tensor::from_vector<Float16>(halves, {2, 5})});
  std::vector<BFloat16> brains;
  for (uint16_t bits : {0x3F80, 0x7F7F, 0x0001, 0xFF80, 0x3DCD, 0x8000, 0xC2F7}) brains.push_back(BFloat16{bits});
  o.push_back({"bf16", "BF16", Tensor::from_vector<BFloat16>(brains, {7})});
  o.push_back({"f32", "FP32",
               Tensor::from_vector<float>({0.1f, -0.0f, FLT_MAX, -FLT_MIN, std::numeric_limits<float>::denorm_min(),
                                           1.0f / 3, INFINITY, -INFINITY, 16777216.0f, 3e-39f},
                                          {10})});
  o.push_back({"f64", "FP64",
               Tensor::from_vector<double>({0.1, 0.1 + 0.2, DBL_MAX, DBL_MIN, std::numeric_limits<double>::denorm_min(),
                                            -0.0, -INFINITY, 1e300, 2.0 / 3},
                                           {3, 3})});
  o.push_back({"empty", "FP32", Tensor(DataType::kFloat, {0, 4})});
  return o;
}

void expect_same_tensors(const std::vector<InferOutput>& want, const DecodedInferRequest& got) {
  ASSERT_EQ(got.request.inputs.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    const InferInput& in = got.request.inputs[i];
    SCOPED_TRACE(want[i].name);
    EXPECT_EQ(in.name, want[i].name);
    EXPECT_EQ(in.datatype, want[i].datatype);
    EXPECT_EQ(in.shape, want[i].data.shape());
    EXPECT_EQ(in.data.dtype(), want[i].data.dtype());
    EXPECT_EQ(in.data.numel(), want[i].data.numel());
    EXPECT_EQ(tensor_bytes(in.data), tensor_bytes(want[i].data));  // bit exact, -0 included
  }
}

TEST(JsonCodec, round_trips_every_datatype_as_json) {
  auto outputs = every_datatype();
  auto r = round_trip(outputs, false);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  expect_same_tensors(outputs, *r);
}

TEST(JsonCodec, round_trips_every_datatype_as_binary) {
  auto outputs = every_datatype();
  auto r = round_trip(outputs, true);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  expect_same_tensors(outputs, *r);
}

TEST(JsonCodec, writes_floats_shortest_for_their_own_width) {
  auto res = response_of({{"y", "FP32", Tensor::from_vector<float>({0.1f, 1e10f, NAN, -INFINITY, -0.0f}, {5})},
                          {"h", "FP16", Tensor::from_vector<Float16>({Float16{0x3C00}, Float16{0x7E00}}, {2})},
                          {"d", "FP64", Tensor::from_vector<double>({0.1, 1e-300}, {2})}});
  EXPECT_EQ(encode_infer_response(res, {}).body,
            R"({"model_name":"m","model_version":"1","outputs":[)"
            R"({"name":"y","datatype":"FP32","shape":[5],"data":[0.1,1e+10,NaN,-Infinity,-0]},)"
            R"({"name":"h","datatype":"FP16","shape":[2],"data":[1,NaN]},)"
            R"({"name":"d","datatype":"FP64","shape":[2],"data":[0.1,1e-300]}]})");
}

TEST(JsonCodec, random_floats_and_doubles_round_trip_exactly) {
  std::mt19937_64 rng(42);
  std::vector<float> floats;
  std::vector<double> doubles;
  while (floats.size() < 200000) {
    uint32_t bits = static_cast<uint32_t>(rng());
    float f;
    std::memcpy(&f, &bits, 4);
    if (std::isfinite(f)) floats.push_back(f);
  }
  while (doubles.size() < 50000) {
    uint64_t bits = rng();
    double d;
    std::memcpy(&d, &bits, 8);
    if (std::isfinite(d)) doubles.push_back(d);
  }
  // Floats as numpy's float32 -> tolist() sends them: the double nearest each float.
  std::string as_double = "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[3],\"data\":[";
  char buf[64];
  for (float f : {floats[0], floats[1], floats[2]})
    as_double += std::string(buf, std::to_chars(buf, buf + 64, static_cast<double>(f)).ptr) + ",";
  as_double.back() = ']';
  as_double += "}]}";
  std::vector<InferOutput> outputs = {{"f", "FP32", Tensor::from_vector<float>(floats, {200000})},
                                      {"d", "FP64", Tensor::from_vector<double>(doubles, {50000})}};
  auto r = round_trip(outputs, false);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  expect_same_tensors(outputs, *r);
  auto d = decode(as_double);
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(d->request.inputs[0].data.data<float>()[i], floats[i]);
}

// Short decimals as clients write them ("-0.8311", "2.5e-7", float midpoints
// such as 16777217) must read exactly as std::from_chars rounds them.
TEST(JsonCodec, decimal_text_is_correctly_rounded) {
  std::mt19937_64 rng(7);
  std::vector<std::string> texts = {"16777217", "16777219", "-16777217", "0.1", "1e22", "1e23", "9007199254740993",
                                    "3.4028235e38", "1.17549435e-38", "0.000001", "123456789012345678", "-0"};
  while (texts.size() < 20000) {
    std::string t = rng() % 2 ? "-" : "";
    const int digits = 1 + static_cast<int>(rng() % 20);
    for (int i = 0; i < digits; ++i) t += static_cast<char>('0' + (i == 0 ? 1 + rng() % 9 : rng() % 10));
    if (rng() % 2) t.insert(t.size() - static_cast<size_t>(rng() % digits), ".");
    if (t.back() == '.') t += "5";
    if (rng() % 2) t += "e" + std::to_string(static_cast<int>(rng() % 61) - 30);
    float in_range;
    if (std::from_chars(t.data(), t.data() + t.size(), in_range).ec == std::errc()) texts.push_back(t);
  }
  for (const char* type : {"FP32", "FP64"}) {
    std::string body = str_cat(R"({"inputs":[{"name":"x","shape":[)", texts.size(), R"(],"datatype":")", type,
                               R"(","data":[)");
    for (const std::string& t : texts) body += t + ",";
    body.back() = ']';
    body += "}]}";
    auto r = decode(body);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    const Tensor& t = r->request.inputs[0].data;
    for (size_t i = 0; i < texts.size(); ++i) {
      const char* s = texts[i].data();
      if (std::string(type) == "FP32") {
        float want;
        ASSERT_EQ(std::from_chars(s, s + texts[i].size(), want).ec, std::errc()) << texts[i];
        ASSERT_EQ(std::memcmp(&t.data<float>()[i], &want, 4), 0) << texts[i];
      } else {
        double want;
        ASSERT_EQ(std::from_chars(s, s + texts[i].size(), want).ec, std::errc()) << texts[i];
        ASSERT_EQ(std::memcmp(&t.data<double>()[i], &want, 8), 0) << texts[i];
      }
    }
  }
}

TEST(JsonCodec, decodes_triton_binary_example_and_mixed_inputs) {
  std::string json = R"({"model_name":"mymodel","inputs":[)"
                     R"({"name":"input0","shape":[2,2],"datatype":"UINT32","parameters":{"binary_data_size":16}},)"
                     R"({"name":"json","shape":[1,2],"datatype":"INT64","data":[[-5,6]]},)"
                     R"({"name":"input1","shape":[3],"datatype":"BOOL","parameters":{"binary_data_size":3}}],)"
                     R"("outputs":[{"name":"output0","parameters":{"binary_data":true}}]})";
  Body body = with_binary(json, {raw_bytes<uint32_t>({1, 2, 3, 0xFFFFFFFF}), std::string("\x01\x00\x07", 3)});
  auto r = decode(body);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  const auto& in = r->request.inputs;
  ASSERT_EQ(in.size(), 3u);
  EXPECT_EQ(in[0].shape, (Shape{2, 2}));
  EXPECT_EQ(tensor_bytes(in[0].data), raw_bytes<uint32_t>({1, 2, 3, 0xFFFFFFFF}));
  EXPECT_EQ(in[1].data.data<int64_t>()[0], -5);
  EXPECT_EQ(in[1].data.data<int64_t>()[1], 6);
  ASSERT_EQ(in[2].data.dtype(), DataType::kBool);
  EXPECT_TRUE(in[2].data.data<bool>()[0]);
  EXPECT_FALSE(in[2].data.data<bool>()[1]);
  EXPECT_TRUE(in[2].data.data<bool>()[2]);  // any non-zero byte is true
  EXPECT_EQ(r->request.requested_outputs, std::vector<std::string>{"output0"});
  EXPECT_EQ(r->binary_outputs, std::vector<std::string>{"output0"});
  EXPECT_FALSE(r->binary_data_output);
}

TEST(JsonCodec, decodes_request_and_output_parameters) {
  auto r = decode(R"({"id":"7","parameters":{"timeout":1500,"binary_data_output":true,"priority":3,"x":"y",)"
                  R"("routing_key":"tenant-7"},)"
                  R"("inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1],"parameters":{"other":1}}],)"
                  R"("outputs":[{"name":"a"},{"name":"b","parameters":{"binary_data":false}},)"
                  R"({"name":"c","parameters":{"binary_data":true,"other":2}}]})");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->request.id, "7");
  EXPECT_EQ(r->request.model_name, "m");
  EXPECT_EQ(r->request.timeout_us, 1500u);
  EXPECT_EQ(r->request.routing_key, "tenant-7");
  EXPECT_TRUE(r->binary_data_output);
  EXPECT_EQ(r->request.requested_outputs, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(r->json_outputs, std::vector<std::string>{"b"});
  EXPECT_EQ(r->binary_outputs, std::vector<std::string>{"c"});
}

// Triton's classification extension is refused by name: the raw tensor a
// client asked to have classified would break it.
TEST(JsonCodec, refuses_the_classification_extension) {
  auto r = decode(R"({"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}],)"
                  R"("outputs":[{"name":"probs","parameters":{"classification":3}}]})");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("output 'probs': the classification extension"), std::string::npos)
      << r.status().message();
}

TEST(JsonCodec, decodes_nested_data_row_major) {
  auto r = decode(R"({"inputs":[{"name":"x","shape":[2,2],"datatype":"INT32","data":[[1,2],[3,4]]}]})");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->request.inputs[0].data.numel(), 4);
  EXPECT_EQ(r->request.inputs[0].data.data<int32_t>()[2], 3);
}

TEST(JsonCodec, binary_output_default_with_per_output_override) {
  auto res = response_of({{"a", "FP32", Tensor::from_vector<float>({1.5f, -2}, {2})},
                          {"b", "INT32", Tensor::from_vector<int32_t>({7}, {1})},
                          {"c", "INT64", Tensor::from_vector<int64_t>({9, 10}, {1, 2})}});
  DecodedInferRequest how;
  how.binary_data_output = true;
  how.json_outputs = {"b"};
  EncodedInferResponse enc = encode_infer_response(res, how);
  ASSERT_TRUE(enc.header_length.has_value());
  const std::string json = enc.body.substr(0, *enc.header_length);
  EXPECT_EQ(json, R"({"model_name":"m","model_version":"1","outputs":[)"
                  R"({"name":"a","datatype":"FP32","shape":[2],"parameters":{"binary_data_size":8}},)"
                  R"({"name":"b","datatype":"INT32","shape":[1],"data":[7]},)"
                  R"({"name":"c","datatype":"INT64","shape":[1,2],"parameters":{"binary_data_size":16}}]})");
  rapidjson::Document doc;
  doc.Parse(json.data(), json.size());
  EXPECT_FALSE(doc.HasParseError());
  EXPECT_EQ(enc.body.substr(*enc.header_length), raw_bytes<float>({1.5f, -2}) + raw_bytes<int64_t>({9, 10}));

  // Without the default only the outputs that asked are binary.
  DecodedInferRequest one;
  one.binary_outputs = {"c"};
  enc = encode_infer_response(res, one);
  ASSERT_TRUE(enc.header_length.has_value());
  EXPECT_NE(enc.body.find(R"("name":"a","datatype":"FP32","shape":[2],"data":[1.5,-2]})"), std::string::npos);
  EXPECT_EQ(enc.body.substr(*enc.header_length), raw_bytes<int64_t>({9, 10}));

  // Nothing binary: plain JSON, no header length.
  enc = encode_infer_response(res, {});
  EXPECT_FALSE(enc.header_length.has_value());
  EXPECT_EQ(enc.body.find("binary_data_size"), std::string::npos);
}

TEST(JsonCodec, encodes_response_and_error) {
  auto res = response_of({{"y", "INT64", Tensor::from_vector<int64_t>({1, -2}, {1, 2})}});
  res.id = "r\"1\n";
  EXPECT_EQ(encode_infer_response(res, {}).body,
            R"({"model_name":"m","model_version":"1","id":"r\"1\n","outputs":[)"
            R"({"name":"y","datatype":"INT64","shape":[1,2],"data":[1,-2]}]})");
  EXPECT_EQ(encode_error("say \"hi\"\\ \x01"), R"({"error":"say \"hi\"\\ \u0001"})");
}

TEST(JsonCodec, names_the_input_and_what_disagrees) {
  const std::string fp32 = R"({"inputs":[{"name":"x","shape":[2,3],"datatype":"FP32","parameters":)";
  EXPECT_EQ(error_of(with_binary(fp32 + R"({"binary_data_size":12}}]})", {std::string(12, 'a')})),
            "input 'x': binary_data_size 12 but shape [2,3] of FP32 needs 24 bytes");
  EXPECT_EQ(error_of(with_binary(
                R"({"inputs":[{"name":"b","shape":[4611686018427387904,8],"datatype":"INT8","parameters":)"
                R"({"binary_data_size":0}}]})",
                {})),
            "input 'b': binary_data_size 0 but shape [4611686018427387904,8] of INT8 needs more than 2^64 bytes");
  EXPECT_EQ(error_of(with_binary(fp32 + R"({"binary_data_size":24}}]})", {std::string(20, 'a')})),
            "input 'x': binary_data_size 24 but only 20 bytes of binary data are left after the JSON header and "
            "earlier binary inputs");
  EXPECT_EQ(error_of(with_binary(fp32 + R"({"binary_data_size":24}}]})", {std::string(25, 'a')})),
            "the body has 25 bytes of binary data after the JSON header but the inputs' binary_data_size add up to 24");
  EXPECT_EQ(error_of(with_binary(R"({"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]})", {"xx"})),
            "the body has 2 bytes of binary data after the JSON header but the inputs' binary_data_size add up to 0");
  EXPECT_EQ(error_of(fp32 + R"({"binary_data_size":24}}]})"),
            "input 'x': binary_data_size 24 but the request has no Inference-Header-Content-Length header, so no "
            "binary data");
  EXPECT_EQ(error_of(with_binary(fp32 + R"({"binary_data_size":24},"data":[1,2,3,4,5,6]}]})", {std::string(24, 'a')})),
            "input 'x': has both 'data' and binary_data_size 24; send one of them");
  EXPECT_EQ(error_of(R"({"inputs":[{"name":"x","shape":[1],"datatype":"FP32"}]})"),
            "input 'x': has neither 'data' nor a binary_data_size parameter");
  EXPECT_EQ(error_of(fp32 + R"({"binary_data_size":-24}}]})"),
            "input 'x': parameter binary_data_size must be a non-negative integer");
  EXPECT_EQ(error_of(fp32 + R"({"binary_data_size":"24"}}]})"),
            "input 'x': parameter binary_data_size must be a non-negative integer");
  EXPECT_EQ(error_of(fp32 + R"([]}]})"), "input 'x': 'parameters' must be an object");
  Body too_long{"{}", 3};
  EXPECT_EQ(error_of(too_long), "Inference-Header-Content-Length 3 is larger than the 2-byte body");
}

TEST(JsonCodec, rejects_bad_parameters) {
  const std::string in = R"("inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}])";
  EXPECT_EQ(error_of("{\"parameters\":{\"timeout\":\"5\"}," + in + "}"),
            "request parameter timeout must be a non-negative integer (microseconds)");
  EXPECT_EQ(error_of("{\"parameters\":{\"timeout\":-1}," + in + "}"),
            "request parameter timeout must be a non-negative integer (microseconds)");
  EXPECT_EQ(error_of("{\"parameters\":{\"timeout\":1.5}," + in + "}"),
            "request parameter timeout must be a non-negative integer (microseconds)");
  EXPECT_EQ(error_of("{\"parameters\":{\"binary_data_output\":1}," + in + "}"),
            "request parameter binary_data_output must be true or false");
  EXPECT_EQ(error_of("{\"parameters\":[]," + in + "}"), "the request's 'parameters' must be an object");
  EXPECT_EQ(error_of("{\"parameters\":{\"routing_key\":7}," + in + "}"),
            "request parameter routing_key must be a string of at most 256 bytes");
  EXPECT_EQ(error_of("{\"parameters\":{\"routing_key\":\"" + std::string(257, 'k') + "\"}," + in + "}"),
            "request parameter routing_key must be a string of at most 256 bytes");
  EXPECT_EQ(error_of("{" + in + R"(,"outputs":[{"name":"y","parameters":{"binary_data":"yes"}}]})"),
            "output 'y': parameter binary_data must be true or false");
  EXPECT_EQ(error_of("{" + in + R"(,"outputs":[{"name":"y","parameters":1}]})"),
            "output 'y': 'parameters' must be an object");
}

TEST(JsonCodec, checks_values_against_the_datatype) {
  auto one = [](const char* datatype, const char* value) {
    return error_of(str_cat(R"({"inputs":[{"name":"x","shape":[1],"datatype":")", datatype, R"(","data":[)", value,
                            "]}]}"));
  };
  EXPECT_EQ(one("UINT8", "300"), "input 'x': data[0]: integer 300 is out of range for UINT8");
  EXPECT_EQ(one("INT8", "-129"), "input 'x': data[0]: integer -129 is out of range for INT8");
  EXPECT_EQ(one("INT64", "9223372036854775808"),
            "input 'x': data[0]: integer 9223372036854775808 is out of range for INT64");
  EXPECT_EQ(one("UINT64", "18446744073709551615"), "OK");
  EXPECT_EQ(one("UINT32", "-1"), "input 'x': data[0]: expected a non-negative integer, not -1");
  EXPECT_EQ(one("INT8", "1.5"), "input 'x': data[0]: expected an integer, not 1.5");
  EXPECT_EQ(one("INT8", "1e2"), "input 'x': data[0]: expected an integer, not 1e2");
  EXPECT_EQ(one("INT8", "\"1\""), "input 'x': data[0]: expected an integer");
  EXPECT_EQ(one("FP32", "\"1\""), "input 'x': data[0]: expected a number");
  EXPECT_EQ(one("BOOL", "1"), "input 'x': data[0]: expected true or false");
  EXPECT_EQ(one("FP32", "1e39"), "input 'x': data[0]: 1e39 is out of range for FP32");
  EXPECT_EQ(one("FP16", "65520"), "input 'x': data[0]: 65520 is out of range for FP16");
  EXPECT_EQ(one("FP16", "65519"), "OK");
  EXPECT_EQ(one("BF16", "3.4e38"), "input 'x': data[0]: 3.4e38 is out of range for BF16");
  EXPECT_EQ(one("FP64", "1.8e308"), "input 'x': data[0]: 1.8e308 is out of range for FP64");
  EXPECT_EQ(one("FP32", "NaN"), "OK");
  EXPECT_EQ(one("FP32", "-Infinity"), "OK");
  EXPECT_EQ(one("WHAT", "1"), "input 'x': unknown datatype 'WHAT'");
  // Too small for FP32 rounds to a signed zero, as rounding gives.
  auto tiny = decode(R"({"inputs":[{"name":"x","shape":[2],"datatype":"FP32","data":[1e-50,-1e-50]}]})");
  ASSERT_TRUE(tiny.ok()) << tiny.status().to_string();
  EXPECT_EQ(tiny->request.inputs[0].data.data<float>()[0], 0.0f);
  EXPECT_TRUE(std::signbit(tiny->request.inputs[0].data.data<float>()[1]));
  // Integers are read exactly, not through a double.
  auto big = decode(R"({"inputs":[{"name":"x","shape":[1],"datatype":"INT64","data":[9007199254740993]}]})");
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(big->request.inputs[0].data.data<int64_t>()[0], 9007199254740993);
}

TEST(JsonCodec, rejects_malformed_bodies) {
  const char* bodies[] = {
      "{bad",
      "[]",
      "",
      R"({"inputs":{}})",
      R"({"inputs":[{"shape":[1],"datatype":"FP32","data":[1]}]})",
      R"({"inputs":[{"name":"x","datatype":"FP32","data":[1]}]})",
      R"({"inputs":[{"name":"x","shape":[-1],"datatype":"FP32","data":[1]}]})",
      R"({"inputs":[{"name":"x","shape":[1.0],"datatype":"FP32","data":[1]}]})",
      R"({"inputs":[{"name":"x","shape":["1"],"datatype":"FP32","data":[1]}]})",
      R"({"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":["a"]}]})",
      R"({"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[NaN.2e2]}]})",
      R"({"id":5,"inputs":[]})",
      R"({"inputs":[]}{})",
      R"({"inputs":[],"outputs":[{"name":1}]})",
      R"({"inputs":[],"outputs":{}})",
  };
  for (const char* body : bodies) {
    auto r = decode(body);
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << body << " -> " << r.status().to_string();
  }
  EXPECT_EQ(error_of(std::string("{\"inputs\":[]}\0{", 15)), "malformed JSON at offset 13: a NUL byte");
  auto bytes = decode(R"({"inputs":[{"name":"x","shape":[1],"datatype":"BYTES","data":["a"]}]})");
  EXPECT_EQ(bytes.status().code(), StatusCode::kUnimplemented);
}

TEST(JsonCodec, survives_deep_nesting_and_parser_number_bugs) {
  std::string deep = R"({"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":)" + std::string(100000, '[') +
                     "1" + std::string(100000, ']') + "}]}";
  EXPECT_EQ(decode(deep).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(decode(std::string(200000, '[')).status().code(), StatusCode::kInvalidArgument);
  // RapidJSON 1.1.0 crashes converting these itself (CVE-2024-38517, its issue #1251).
  for (const char* number : {"0.0000000001e-2147483639", "128.74836467836484838364836483643636483648e-336",
                             "1e-2147483649", "0.1e99999999999"}) {
    for (const char* type : {"FP32", "FP64", "INT64", "FP16"}) {
      auto r = decode(str_cat(R"({"inputs":[{"name":"x","shape":[1],"datatype":")", type, R"(","data":[)", number,
                              "]}],\"parameters\":{\"timeout\":", number, "}}"));
      EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << number << " " << type;
    }
  }
}

TEST(JsonCodec, decodes_large_inputs_beyond_the_scratch_memory) {
  std::string body = R"({"inputs":[{"name":"x","shape":[100000],"datatype":"FP32","data":[)";
  for (int i = 0; i < 100000; ++i) body += std::to_string(i) + (i + 1 < 100000 ? "," : "]}]}");
  auto r = decode(body);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->request.inputs[0].data.numel(), 100000);
  EXPECT_EQ(r->request.inputs[0].data.data<float>()[99999], 99999.0f);
  EXPECT_EQ(decode(R"({"inputs":[]})")->request.inputs.size(), 0u);  // the per-thread scratch is reusable
}

TEST(JsonCodec, decodes_concurrently) {
  auto worker = [](int seed, bool* ok) {
    for (int i = 0; i < 500; ++i) {
      int v = seed * 1000 + i;
      auto r = decode(str_cat(R"({"id":")", v, R"(","inputs":[{"name":"x","shape":[2],"datatype":"INT32","data":[)",
                              v, ",", -v, "]}]}"));
      *ok = *ok && r.ok() && r->request.id == std::to_string(v) && r->request.inputs[0].data.data<int32_t>()[1] == -v;
    }
  };
  bool ok[4] = {true, true, true, true};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) threads.emplace_back(worker, t, &ok[t]);
  for (auto& t : threads) t.join();
  for (bool b : ok) EXPECT_TRUE(b);
}

// Mutates request bodies for the fuzz loop: byte flips, JSON tokens,
// deletions, duplications, occasionally pure noise; and picks header lengths.
class Mutator {
 public:
  explicit Mutator(unsigned seed) : rng_(seed) {}

  size_t pick(size_t n) { return n == 0 ? 0 : static_cast<size_t>(rng_() % n); }

  void mutate(std::string& b, bool allow_noise) {
    static const char* kTokens[] = {"[", "]", "{", "}", ",", ":", "\"", "\\", "1e-2147483639", "-", "0.", "NaN",
                                    "1e99", "9223372036854775808", "\"binary_data_size\":", "\"data\":", "[[[",
                                    "-0", "\"inputs\":", "\"shape\":[", "true", "null", "\"timeout\":", "\xff"};
    switch (pick(allow_noise ? 6 : 5)) {
      case 0:
        if (!b.empty()) b[pick(b.size())] = static_cast<char>(rng_());
        break;
      case 1: b.insert(pick(b.size() + 1), kTokens[pick(std::size(kTokens))]); break;
      case 2:
        if (!b.empty()) b.erase(pick(b.size()), pick(8));
        break;
      case 3:
        if (!b.empty()) {
          const std::string part = b.substr(pick(b.size()), pick(16));
          b.insert(pick(b.size() + 1), part);
        }
        break;
      case 4: break;  // keep the body (the header length may still vary)
      default:
        b.assign(pick(64), '\0');
        for (char& c : b) c = static_cast<char>(rng_());
    }
  }

  std::optional<size_t> header_length(size_t body_size, size_t seed_length) {
    switch (pick(4)) {
      case 0: return std::nullopt;
      case 1: return seed_length;
      case 2: return pick(body_size + 8);
      default: return std::min(body_size, seed_length + pick(5));
    }
  }

 private:
  std::mt19937 rng_;
};

// Random and mutated bodies with random header lengths: decoding must return
// (OK or an error), never crash, and what it accepts must encode.
TEST(JsonCodec, fuzzed_bodies_never_crash) {
  std::vector<Body> seeds = {
      with_binary(R"({"id":"a","parameters":{"timeout":5,"binary_data_output":true},"inputs":[)"
                  R"({"name":"a","shape":[2,2],"datatype":"FP32","parameters":{"binary_data_size":16}},)"
                  R"({"name":"b","shape":[3],"datatype":"BOOL","parameters":{"binary_data_size":3}},)"
                  R"({"name":"c","shape":[2],"datatype":"INT64","data":[[1],[2]]}],)"
                  R"("outputs":[{"name":"y","parameters":{"binary_data":false}}]})",
                  {std::string(16, '\x3f'), std::string("\x01\x00\x01", 3)}),
      with_binary(R"({"inputs":[{"name":"x","shape":[2],"datatype":"FP16","data":[1.5,-2e-7]},)"
                  R"({"name":"y","shape":[1],"datatype":"BF16","data":[NaN]},)"
                  R"({"name":"z","shape":[2],"datatype":"UINT16","parameters":{"binary_data_size":4}}]})",
                  {"\xff\xff\x00\x01"}),
      with_binary(R"({"inputs":[{"name":"d","shape":[1,3],"datatype":"FP64","data":[1e300,-0.0,Infinity]},)"
                  R"({"name":"u","shape":[1],"datatype":"UINT64","data":[18446744073709551615]}]})",
                  {}),
  };
  // HEARTH_FUZZ_ITERATIONS runs longer campaigns (e.g. under sanitizers).
  const char* env = std::getenv("HEARTH_FUZZ_ITERATIONS");
  const int iterations = env != nullptr ? std::atoi(env) : 20000;
  Mutator mutator(1234);
  int accepted = 0;
  for (int iter = 0; iter < iterations; ++iter) {
    const Body& seed = seeds[mutator.pick(seeds.size())];
    std::string b = seed.bytes;
    for (size_t m = 1 + mutator.pick(4); m > 0; --m) mutator.mutate(b, iter % 10 == 0);
    auto r = decode_infer_request(b, mutator.header_length(b.size(), seed.header_length), "m", "");
    if (!r.ok()) {
      EXPECT_NE(r.status().code(), StatusCode::kInternal) << r.status().to_string();
      continue;
    }
    ++accepted;
    InferResponse res = response_of({});
    for (const InferInput& in : r->request.inputs) {
      ASSERT_TRUE(in.data.defined());
      res.outputs.push_back({in.name, in.datatype, in.data});
    }
    EncodedInferResponse enc = encode_infer_response(res, *r);
    EXPECT_GE(enc.body.size(), enc.header_length.value_or(0));
  }
  EXPECT_GT(accepted, iterations / 200);  // the mutations kept enough valid bodies to reach the encoder
}

}  // namespace
}  // namespace hearth::frontend
