// RestApi routing without sockets: status codes and {"error"} bodies for the
// KServe v2 endpoints, and a good request answered right after each bad one.
#include "serving/rest_api.h"

#include <gtest/gtest.h>

#include "serving_test_util.h"

namespace hearth::serving {
namespace {

using hearth::testing::TempDir;
using hearth::testing::write_file;
using hearth::testing::write_relu_model;

constexpr const char* kGoodBody = R"({"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[-1,2,-3,4]}]})";

class RestApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    write_relu_model(dir_.path() / "relu" / "2");
    write_file(dir_.path() / "broken" / "1" / "model.onnx", "garbage");
    auto r = ModelRepository::open(dir_.path().string());
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    repo_ = std::move(r).value();
    api_ = std::make_unique<RestApi>(*repo_);
  }

  HttpReply get(const std::string& target) { return api_->handle("GET", target, ""); }
  HttpReply post(const std::string& target, const std::string& body) { return api_->handle("POST", target, body); }

  TempDir dir_;
  std::unique_ptr<ModelRepository> repo_;
  std::unique_ptr<RestApi> api_;
};

TEST_F(RestApiTest, server_metadata_and_health) {
  HttpReply meta = get("/v2");
  EXPECT_EQ(meta.status, 200);
  EXPECT_EQ(meta.body, R"({"name":"hearth","version":"0.1.0","extensions":[]})");
  EXPECT_EQ(get("/v2/health/live").status, 200);
  EXPECT_EQ(get("/v2/health/ready").status, 200);
}

TEST_F(RestApiTest, model_metadata_marks_dynamic_dims) {
  HttpReply r = get("/v2/models/relu");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body,
            R"({"name":"relu","versions":["2"],"platform":"onnxruntime_onnx",)"
            R"("inputs":[{"name":"x","datatype":"FP32","shape":[-1,4]}],)"
            R"("outputs":[{"name":"y","datatype":"FP32","shape":[-1,4]}]})");
  EXPECT_EQ(get("/v2/models/relu/versions/2").status, 200);
  EXPECT_EQ(get("/v2/models/relu/versions/1").status, 404);
  EXPECT_EQ(get("/v2/models/relu/ready").status, 200);
  EXPECT_EQ(get("/v2/models/relu/versions/2/ready").status, 200);
}

TEST_F(RestApiTest, infers_with_and_without_version) {
  for (const char* target : {"/v2/models/relu/infer", "/v2/models/relu/versions/2/infer"}) {
    HttpReply r = post(target, kGoodBody);
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.body,
              R"({"model_name":"relu","model_version":"2","outputs":[{"name":"y","datatype":"FP32",)"
              R"("shape":[1,4],"data":[0.0,2.0,0.0,4.0]}]})");
  }
}

TEST_F(RestApiTest, bad_requests_get_errors_and_the_next_good_request_works) {
  struct Case {
    std::string method, target, body;
    int status;
  };
  const Case cases[] = {
      {"POST", "/v2/models/relu/infer", "{not json", 400},
      {"POST", "/v2/models/relu/infer", R"({"inputs":[{"name":"x","shape":[1,4],"datatype":"INT32","data":[1,2,3,4]}]})", 400},
      {"POST", "/v2/models/relu/infer", R"({"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3]}]})", 400},
      {"POST", "/v2/models/relu/infer", R"({"inputs":[{"name":"q","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]})", 400},
      {"POST", "/v2/models/relu/infer", R"({"inputs":[{"name":"x","shape":[1,4],"datatype":"BYTES","data":["a"]}]})", 400},
      {"POST", "/v2/models/nope/infer", kGoodBody, 404},
      {"POST", "/v2/models/../infer", kGoodBody, 400},
      {"POST", "/v2/models/%2e%2e%2frelu/infer", kGoodBody, 400},
      {"POST", "/v2/models/relu/versions/..%2f2/infer", kGoodBody, 400},
      {"POST", "/v2/models/relu/versions/7/infer", kGoodBody, 404},
      {"POST", "/v2/models/broken/infer", kGoodBody, 503},
      {"GET", "/v2/models/broken/ready", "", 503},
      {"GET", "/v2/models/broken", "", 503},
      {"GET", "/v2/models/relu/infer", "", 405},
      {"GET", "/v2/models/relu/bogus", "", 404},
      {"GET", "/v3", "", 404},
      {"GET", "/v2/models/%zz", "", 400},
  };
  for (const Case& c : cases) {
    HttpReply r = api_->handle(c.method, c.target, c.body);
    EXPECT_EQ(r.status, c.status) << c.method << " " << c.target << " " << c.body << " -> " << r.body;
    EXPECT_EQ(r.body.rfind("{\"error\":\"", 0), 0u) << r.body;
    EXPECT_EQ(post("/v2/models/relu/infer", kGoodBody).status, 200);
  }
}

TEST(HttpStatus, maps_status_codes) {
  EXPECT_EQ(http_status_for(invalid_argument("x")), 400);
  EXPECT_EQ(http_status_for(unimplemented("x")), 400);
  EXPECT_EQ(http_status_for(not_found("x")), 404);
  EXPECT_EQ(http_status_for(resource_exhausted("x")), 413);
  EXPECT_EQ(http_status_for(Status(StatusCode::kUnavailable, "x")), 503);
  EXPECT_EQ(http_status_for(internal_error("x")), 500);
}

}  // namespace
}  // namespace hearth::serving
