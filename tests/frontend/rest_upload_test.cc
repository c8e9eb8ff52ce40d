// Model upload over REST: Triton's load with "config" and "file:" parameters
// (base64), refusals naming the parameter, and inference on what was uploaded.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "frontend/rest_api.h"
#include "repository/upload_test_util.h"
#include "security/crypto.h"
#include "serving/serving_test_util.h"

namespace hearth::frontend::test {
namespace {

using namespace serving::test;  // ServerTest
using repository::test::kReluConfig;
using repository::test::listing;
using repository::test::relu_bytes;

TEST_F(ServerTest, rest_load_with_parameters) {
  auto server = start(explicit_mode());
  ASSERT_TRUE(server);
  RestApi api(*server);
  nlohmann::json body;
  body["parameters"]["config"] = kReluConfig;
  body["parameters"]["file:1/model.onnx"] = security::base64_encode(relu_bytes());
  HttpReply ok = api.handle_sync("POST", "/v2/repository/models/up/load", body.dump());
  EXPECT_EQ(ok.status, 200) << ok.body;
  HttpReply infer = api.handle_sync("POST", "/v2/models/up/infer",
                                    R"({"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[-1,2,-3,4]}]})");
  EXPECT_EQ(infer.status, 200) << infer.body;
  const auto before = listing(dir_.path());
  auto refused = [&](const std::string& key, const nlohmann::json& value, const std::string& why) {
    nlohmann::json b;
    b["parameters"]["config"] = kReluConfig;
    b["parameters"]["file:2/model.onnx"] = security::base64_encode(relu_bytes());
    b["parameters"][key] = value;
    HttpReply r = api.handle_sync("POST", "/v2/repository/models/up/load", b.dump());
    EXPECT_EQ(r.status, 400) << key;
    EXPECT_NE(r.body.find(why), std::string::npos) << key << ": " << r.body;
  };
  refused("file:../x", "eA==", "'..' is not allowed");
  refused("file:1/../../etc/passwd", "eA==", "'..' is not allowed");
  refused("file:/abs", "eA==", "absolute path");
  refused("file:1/.hidden", "eA==", "may not start with '.'");
  refused("file:01/model.onnx", "eA==", "not a positive integer");
  refused("file:2/w.bin", "not base64!", "not valid base64");
  refused("file:2/w.bin", 5, "must be a base64 string");
  refused("unload_dependents", true, "load parameter 'unload_dependents' is not supported");
  refused("config", 7, "parameter 'config' must be");
  EXPECT_EQ(listing(dir_.path()), before);
}

}  // namespace
}  // namespace hearth::frontend::test
