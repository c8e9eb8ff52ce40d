// Request validation and execution (inference.h) and the JSON codec: every
// malformed request is a 400-class Status naming the problem, never a crash.
#include "serving/inference.h"

#include <gtest/gtest.h>

#include "serving/json_codec.h"
#include "serving_test_util.h"

namespace hearth::serving {
namespace {

using hearth::testing::TempDir;
using hearth::testing::write_relu_model;

class InferenceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    write_relu_model(dir_.path() / "relu" / "1");
    auto r = ModelRepository::open(dir_.path().string());
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    repo_ = std::move(r).value();
  }

  // A valid request for relu: x = [[-1, 2, -3, 4]] as FP32 [1,4].
  static InferRequest good_request() {
    InferRequest req;
    req.model_name = "relu";
    req.inputs.push_back({"x", "FP32", {1, 4}, Tensor::from_vector<float>({-1, 2, -3, 4}, {4})});
    return req;
  }

  Status run(const InferRequest& req) { return infer(*repo_, req).status(); }

  TempDir dir_;
  std::unique_ptr<ModelRepository> repo_;
};

TEST_F(InferenceTest, runs_a_valid_request) {
  InferRequest req = good_request();
  req.id = "42";
  auto res = infer(*repo_, req);
  ASSERT_TRUE(res.ok()) << res.status().to_string();
  EXPECT_EQ(res->model_name, "relu");
  EXPECT_EQ(res->model_version, "1");
  EXPECT_EQ(res->id, "42");
  ASSERT_EQ(res->outputs.size(), 1u);
  EXPECT_EQ(res->outputs[0].name, "y");
  EXPECT_EQ(res->outputs[0].datatype, "FP32");
  EXPECT_EQ(res->outputs[0].data.shape(), (Shape{1, 4}));
  const float* y = res->outputs[0].data.data<float>();
  EXPECT_EQ(y[0], 0.0f);
  EXPECT_EQ(y[1], 2.0f);
  EXPECT_EQ(y[2], 0.0f);
  EXPECT_EQ(y[3], 4.0f);
}

TEST_F(InferenceTest, rejects_wrong_datatype) {
  InferRequest req = good_request();
  req.inputs[0] = {"x", "INT64", {1, 4}, Tensor::from_vector<int64_t>({1, 2, 3, 4}, {4})};
  Status s = run(req);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("FP32"), std::string::npos) << s.message();
}

TEST_F(InferenceTest, rejects_shape_that_disagrees_with_data_length) {
  InferRequest req = good_request();
  req.inputs[0].shape = {2, 4};
  Status s = run(req);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("needs 8 elements but data has 4"), std::string::npos) << s.message();
  req.inputs[0].shape = {1 << 30, 1 << 30, 1 << 30, 4};  // must not overflow
  req.inputs[0].shape.resize(2);
  EXPECT_EQ(run(req).code(), StatusCode::kInvalidArgument);
}

TEST_F(InferenceTest, rejects_wrong_rank_and_fixed_dim) {
  InferRequest req = good_request();
  req.inputs[0].shape = {4};
  EXPECT_EQ(run(req).code(), StatusCode::kInvalidArgument);
  req.inputs[0].shape = {2, 2};
  EXPECT_EQ(run(req).code(), StatusCode::kInvalidArgument);
  req.inputs[0].shape = {-1, 4};
  EXPECT_EQ(run(req).code(), StatusCode::kInvalidArgument);
}

TEST_F(InferenceTest, rejects_unknown_missing_and_duplicate_inputs) {
  InferRequest req = good_request();
  req.inputs[0].name = "nope";
  EXPECT_EQ(run(req).code(), StatusCode::kInvalidArgument);
  req.inputs.clear();
  Status missing = run(req);
  EXPECT_EQ(missing.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(missing.message().find("missing input 'x'"), std::string::npos);
  req = good_request();
  req.inputs.push_back(req.inputs[0]);
  EXPECT_EQ(run(req).code(), StatusCode::kInvalidArgument);
}

TEST_F(InferenceTest, rejects_unknown_requested_output_and_unknown_model) {
  InferRequest req = good_request();
  req.requested_outputs = {"nope"};
  EXPECT_EQ(run(req).code(), StatusCode::kInvalidArgument);
  req.requested_outputs = {"y"};
  EXPECT_TRUE(run(req).ok());
  req.model_name = "missing";
  EXPECT_EQ(run(req).code(), StatusCode::kNotFound);
  req.model_name = "../relu";
  EXPECT_EQ(run(req).code(), StatusCode::kInvalidArgument);
}

TEST(KserveDatatypes, map_both_ways_and_refuse_bytes) {
  for (const char* name : {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16",
                           "FP32", "FP64"}) {
    auto t = datatype_from_kserve(name);
    ASSERT_TRUE(t.ok()) << name;
    EXPECT_EQ(kserve_datatype(*t), name);
  }
  EXPECT_EQ(datatype_from_kserve("BYTES").status().code(), StatusCode::kUnimplemented);
  EXPECT_EQ(datatype_from_kserve("FLOAT").status().code(), StatusCode::kInvalidArgument);
}

TEST(JsonCodec, decodes_nested_data_row_major) {
  auto r = decode_infer_request(
      R"({"id":"7","inputs":[{"name":"x","shape":[2,2],"datatype":"INT32","data":[[1,2],[3,4]]}],)"
      R"("outputs":[{"name":"y"}]})",
      "m", "");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->id, "7");
  ASSERT_EQ(r->inputs.size(), 1u);
  EXPECT_EQ(r->inputs[0].data.dtype(), DataType::kInt32);
  EXPECT_EQ(r->inputs[0].data.numel(), 4);
  EXPECT_EQ(r->inputs[0].data.data<int32_t>()[2], 3);
  EXPECT_EQ(r->requested_outputs, std::vector<std::string>{"y"});
}

TEST(JsonCodec, rejects_malformed_bodies) {
  const char* bodies[] = {
      "{bad",
      "[]",
      R"({"inputs":{}})",
      R"({"inputs":[{"shape":[1],"datatype":"FP32","data":[1]}]})",
      R"({"inputs":[{"name":"x","datatype":"FP32","data":[1]}]})",
      R"({"inputs":[{"name":"x","shape":[-1],"datatype":"FP32","data":[1]}]})",
      R"({"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":["a"]}]})",
      R"({"inputs":[{"name":"x","shape":[1],"datatype":"UINT8","data":[300]}]})",
      R"({"inputs":[{"name":"x","shape":[1],"datatype":"INT8","data":[1.5]}]})",
      R"({"inputs":[{"name":"x","shape":[1],"datatype":"BOOL","data":[1]}]})",
      R"({"inputs":[{"name":"x","shape":[1],"datatype":"WHAT","data":[1]}]})",
      R"({"id":5,"inputs":[]})",
  };
  for (const char* body : bodies) {
    auto r = decode_infer_request(body, "m", "");
    EXPECT_FALSE(r.ok()) << body;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << body << " -> " << r.status().to_string();
  }
  auto bytes = decode_infer_request(R"({"inputs":[{"name":"x","shape":[1],"datatype":"BYTES","data":["a"]}]})", "m", "");
  EXPECT_EQ(bytes.status().code(), StatusCode::kUnimplemented);
}

TEST(JsonCodec, survives_deep_nesting) {
  std::string deep = R"({"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":)" + std::string(100000, '[') +
                     "1" + std::string(100000, ']') + "}]}";
  EXPECT_EQ(decode_infer_request(deep, "m", "").status().code(), StatusCode::kInvalidArgument);
  std::string unbalanced(200000, '[');
  EXPECT_EQ(decode_infer_request(unbalanced, "m", "").status().code(), StatusCode::kInvalidArgument);
}

TEST(JsonCodec, encodes_response_and_error) {
  InferResponse res;
  res.model_name = "m";
  res.model_version = "1";
  res.outputs.push_back({"y", "INT64", Tensor::from_vector<int64_t>({1, -2}, {1, 2})});
  EXPECT_EQ(encode_infer_response(res),
            R"({"model_name":"m","model_version":"1","outputs":[{"name":"y","datatype":"INT64","shape":[1,2],"data":[1,-2]}]})");
  EXPECT_EQ(encode_error("say \"hi\""), R"({"error":"say \"hi\""})");
}

}  // namespace
}  // namespace hearth::serving
