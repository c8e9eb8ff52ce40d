// Tests of the gRPC codec (grpc_codec.h): decoding typed and raw tensor data of
// every datatype, the errors for malformed requests, response encoding and the
// Status -> gRPC code mapping. The end-to-end protocol test is grpc_e2e_test.py.
#include "frontend/grpc_codec.h"

#include <gtest/gtest.h>

#include <cstring>

namespace hearth::frontend {

using namespace serving;
namespace {

using inference::ModelInferRequest;

ModelInferRequest one_input(const std::string& datatype, std::vector<int64_t> shape) {
  ModelInferRequest r;
  r.set_model_name("m");
  auto* in = r.add_inputs();
  in->set_name("x");
  in->set_datatype(datatype);
  for (int64_t d : shape) in->add_shape(d);
  return r;
}

Status decode_error(const ModelInferRequest& r) {
  auto d = decode_infer_request(r);
  EXPECT_FALSE(d.ok());
  return d.ok() ? Status() : d.status();
}

TEST(GrpcCodec, TypedFp32) {
  auto r = one_input("FP32", {2, 2});
  for (float v : {1.f, 2.f, 3.f, -4.5f}) r.mutable_inputs(0)->mutable_contents()->add_fp32_contents(v);
  r.set_id("abc");
  r.add_outputs()->set_name("y");
  auto d = decode_infer_request(r);
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(d->model_name, "m");
  EXPECT_EQ(d->id, "abc");
  EXPECT_EQ(d->requested_outputs, std::vector<std::string>{"y"});
  ASSERT_EQ(d->inputs.size(), 1u);
  const InferInput& in = d->inputs[0];
  EXPECT_EQ(in.shape, (Shape{2, 2}));
  EXPECT_EQ(in.data.dtype(), DataType::kFloat);
  ASSERT_EQ(in.data.numel(), 4);
  EXPECT_EQ(in.data.data<float>()[3], -4.5f);
}

TEST(GrpcCodec, TypedNarrowIntegersAndBool) {
  auto r = one_input("INT8", {3});
  for (int v : {-128, 0, 127}) r.mutable_inputs(0)->mutable_contents()->add_int_contents(v);
  auto d = decode_infer_request(r);
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(d->inputs[0].data.dtype(), DataType::kInt8);
  EXPECT_EQ(d->inputs[0].data.data<int8_t>()[0], -128);

  r.mutable_inputs(0)->mutable_contents()->set_int_contents(2, 128);
  Status s = decode_error(r);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("128"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("INT8"), std::string::npos) << s.message();

  auto u = one_input("UINT16", {1});
  u.mutable_inputs(0)->mutable_contents()->add_uint_contents(70000);
  EXPECT_EQ(decode_error(u).code(), StatusCode::kInvalidArgument);

  auto b = one_input("BOOL", {2});
  b.mutable_inputs(0)->mutable_contents()->add_bool_contents(true);
  b.mutable_inputs(0)->mutable_contents()->add_bool_contents(false);
  auto db = decode_infer_request(b);
  ASSERT_TRUE(db.ok()) << db.status().to_string();
  EXPECT_EQ(db->inputs[0].data.dtype(), DataType::kBool);
  EXPECT_TRUE(db->inputs[0].data.data<bool>()[0]);
  EXPECT_FALSE(db->inputs[0].data.data<bool>()[1]);
}

TEST(GrpcCodec, TypedUint64AndFp64) {
  auto r = one_input("UINT64", {1});
  r.mutable_inputs(0)->mutable_contents()->add_uint64_contents(~0ull);
  auto d = decode_infer_request(r);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->inputs[0].data.data<uint64_t>()[0], ~0ull);
  auto f = one_input("FP64", {1});
  f.mutable_inputs(0)->mutable_contents()->add_fp64_contents(0.125);
  auto df = decode_infer_request(f);
  ASSERT_TRUE(df.ok());
  EXPECT_EQ(df->inputs[0].data.data<double>()[0], 0.125);
}

TEST(GrpcCodec, RawFp16AndInt64) {
  ModelInferRequest r;
  r.set_model_name("m");
  auto* a = r.add_inputs();
  a->set_name("h");
  a->set_datatype("FP16");
  a->add_shape(2);
  auto* b = r.add_inputs();
  b->set_name("i");
  b->set_datatype("INT64");
  b->add_shape(1);
  uint16_t halves[2] = {0x3c00, 0xc000};  // 1.0, -2.0
  int64_t big = 1ll << 40;
  r.add_raw_input_contents(std::string(reinterpret_cast<const char*>(halves), sizeof(halves)));
  r.add_raw_input_contents(std::string(reinterpret_cast<const char*>(&big), sizeof(big)));
  auto d = decode_infer_request(r);
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(d->inputs[0].data.dtype(), DataType::kFloat16);
  EXPECT_EQ(std::memcmp(d->inputs[0].data.raw_data(), halves, sizeof(halves)), 0);
  EXPECT_EQ(d->inputs[1].data.data<int64_t>()[0], big);
}

TEST(GrpcCodec, Fp16HasNoTypedField) {
  auto r = one_input("FP16", {1});
  r.mutable_inputs(0)->mutable_contents()->add_fp32_contents(1.f);
  Status s = decode_error(r);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("raw_input_contents"), std::string::npos) << s.message();
}

TEST(GrpcCodec, RawErrorsNameTheInput) {
  auto r = one_input("FP32", {1, 4});
  r.add_raw_input_contents(std::string(12, '\0'));
  Status s = decode_error(r);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("input 'x'"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("12 bytes"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("16"), std::string::npos) << s.message();

  auto huge = one_input("FP32", {1ll << 40, 1ll << 40});
  huge.add_raw_input_contents("");
  EXPECT_EQ(decode_error(huge).code(), StatusCode::kInvalidArgument);

  auto neg = one_input("FP32", {-1, 4});
  neg.add_raw_input_contents("");
  EXPECT_NE(decode_error(neg).message().find("negative"), std::string::npos);
}

TEST(GrpcCodec, MissingDataAndBadDatatype) {
  auto r = one_input("FP32", {2});
  EXPECT_NE(decode_error(r).message().find("no data"), std::string::npos);
  auto bytes = one_input("BYTES", {1});
  bytes.mutable_inputs(0)->mutable_contents()->add_bytes_contents("a");
  EXPECT_EQ(decode_error(bytes).code(), StatusCode::kUnimplemented);
  auto unknown = one_input("FLOAT", {1});
  EXPECT_NE(decode_error(unknown).message().find("FLOAT"), std::string::npos);
  auto empty = one_input("FP32", {0, 4});
  EXPECT_TRUE(decode_infer_request(empty).ok());
  ModelInferRequest noname;
  EXPECT_EQ(decode_error(noname).code(), StatusCode::kInvalidArgument);
}

TEST(GrpcCodec, TimeoutParameter) {
  auto r = one_input("FP32", {0});
  (*r.mutable_parameters())["timeout"].set_int64_param(2500);
  auto d = decode_infer_request(r);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->timeout_us, 2500u);
  (*r.mutable_parameters())["timeout"].set_int64_param(-1);
  EXPECT_EQ(decode_error(r).code(), StatusCode::kInvalidArgument);
  (*r.mutable_parameters())["timeout"].set_double_param(1.5);
  EXPECT_EQ(decode_error(r).code(), StatusCode::kInvalidArgument);
}

TEST(GrpcCodec, RoutingKeyParameter) {
  auto r = one_input("FP32", {0});
  (*r.mutable_parameters())["routing_key"].set_string_param("tenant-7");
  auto d = decode_infer_request(r);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->routing_key, "tenant-7");
  (*r.mutable_parameters())["routing_key"].set_int64_param(7);
  EXPECT_EQ(decode_error(r).code(), StatusCode::kInvalidArgument);
  (*r.mutable_parameters())["routing_key"].set_string_param(std::string(257, 'k'));
  EXPECT_EQ(decode_error(r).code(), StatusCode::kInvalidArgument);
}

TEST(GrpcCodec, EncodeResponseIsRaw) {
  InferResponse resp;
  resp.model_name = "m";
  resp.model_version = "2";
  resp.id = "q";
  resp.outputs.push_back({"y", "FP32", Tensor::from_vector<float>({1.f, 2.f, 3.f, 4.f, 5.f, 6.f}, {2, 3})});
  inference::ModelInferResponse out;
  encode_infer_response(resp, &out);
  EXPECT_EQ(out.model_version(), "2");
  EXPECT_EQ(out.id(), "q");
  ASSERT_EQ(out.outputs_size(), 1);
  EXPECT_EQ(out.outputs(0).name(), "y");
  EXPECT_EQ(out.outputs(0).datatype(), "FP32");
  EXPECT_EQ(std::vector<int64_t>(out.outputs(0).shape().begin(), out.outputs(0).shape().end()),
            (std::vector<int64_t>{2, 3}));
  ASSERT_EQ(out.raw_output_contents_size(), 1);
  ASSERT_EQ(out.raw_output_contents(0).size(), 24u);
  float last;
  std::memcpy(&last, out.raw_output_contents(0).data() + 20, 4);
  EXPECT_EQ(last, 6.f);
}

TEST(GrpcCodec, StatusMapping) {
  EXPECT_EQ(to_grpc_status(ok_status()).error_code(), grpc::StatusCode::OK);
  EXPECT_EQ(to_grpc_status(invalid_argument("a")).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(to_grpc_status(unimplemented("a")).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(to_grpc_status(out_of_range("a")).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(to_grpc_status(not_found("a")).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(to_grpc_status(Status(StatusCode::kUnavailable, "a")).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(to_grpc_status(resource_exhausted("a")).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(to_grpc_status(Status(StatusCode::kDeadlineExceeded, "a")).error_code(),
            grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_EQ(to_grpc_status(Status(StatusCode::kCancelled, "a")).error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_EQ(to_grpc_status(failed_precondition("a")).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(to_grpc_status(data_loss("a")).error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_EQ(to_grpc_status(invalid_argument("input 'x' bad")).error_message(), "input 'x' bad");
}

}  // namespace
}  // namespace hearth::frontend
