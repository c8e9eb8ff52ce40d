// RestApi routing without sockets, over a real InferenceServer: status codes,
// {"error"} bodies, X-Request-Id and Retry-After headers, the KServe v2
// documents, Triton's extensions (config, statistics, repository), and a good
// request answered right after each bad one.
#include "frontend/rest_api.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <strings.h>

#include <atomic>
#include <cstring>
#include <future>
#include <mutex>

#include "serving/serving_test_util.h"
#include "serving/version_router.h"

namespace hearth::frontend {

using namespace serving;
using namespace repository;
namespace {

using hearth::testing::TempDir;
using hearth::testing::write_file;
using hearth::testing::write_relu_model;

constexpr const char* kGoodBody = R"({"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[-1,2,-3,4]}]})";

std::string header(const HttpReply& r, const std::string& name) {
  for (const auto& [k, v] : r.headers)
    if (strcasecmp(k.c_str(), name.c_str()) == 0) return v;
  return "";
}

int header_count(const HttpReply& r, const std::string& name) {
  int n = 0;
  for (const auto& kv : r.headers) n += strcasecmp(kv.first.c_str(), name.c_str()) == 0;
  return n;
}

rapidjson::Document parse(const std::string& body) {
  rapidjson::Document d;
  d.Parse(body.c_str(), body.size());
  EXPECT_FALSE(d.HasParseError()) << body;
  return d;
}

// The "data" of output `i` of an infer reply, as doubles.
std::vector<double> output_data(const rapidjson::Document& d, size_t i = 0) {
  std::vector<double> out;
  if (!d.IsObject() || !d.HasMember("outputs") || d["outputs"].Size() <= i) return out;
  const auto& o = d["outputs"][static_cast<rapidjson::SizeType>(i)];
  if (!o.HasMember("data")) return out;
  for (const auto& v : o["data"].GetArray()) out.push_back(v.GetDouble());
  return out;
}

class RestApiTest : public ::testing::Test {
 protected:
  void start(ServerOptions options = {}) {
    options.model_repository = dir_.path().string();
    options.total_threads = 1;
    auto s = InferenceServer::create(options);
    ASSERT_TRUE(s.ok()) << s.status().to_string();
    server_ = std::move(s).value();
    api_ = std::make_unique<RestApi>(*server_);
  }
  void SetUp() override {
    write_relu_model(dir_.path() / "relu" / "2");
    write_file(dir_.path() / "broken" / "1" / "model.onnx", "garbage");
  }

  HttpReply get(const std::string& target) { return api_->handle_sync("GET", target); }
  HttpReply post(const std::string& target, const std::string& body) { return api_->handle_sync("POST", target, body); }

  TempDir dir_;
  std::unique_ptr<InferenceServer> server_;
  std::unique_ptr<RestApi> api_;
};

TEST_F(RestApiTest, server_metadata_and_health) {
  start();
  HttpReply meta = get("/v2");
  EXPECT_EQ(meta.status, 200);
  EXPECT_EQ(meta.content_type, "application/json");
  auto d = parse(meta.body);
  EXPECT_STREQ(d["name"].GetString(), "hearth");
  EXPECT_STREQ(d["version"].GetString(), "0.1.0");
  ASSERT_TRUE(d["extensions"].IsArray());
  EXPECT_GT(d["extensions"].Size(), 0u);
  EXPECT_EQ(get("/v2/health/live").status, 200);
  // Strict readiness: "broken" should load but cannot, so the server is not ready (400).
  HttpReply ready = get("/v2/health/ready");
  EXPECT_EQ(ready.status, 400);
  EXPECT_EQ(ready.body.rfind("{\"error\":\"", 0), 0u) << ready.body;
  EXPECT_EQ(api_->handle_sync("POST", "/v2/health/live").status, 405);
}

TEST_F(RestApiTest, ready_when_every_model_loads) {
  std::filesystem::remove_all(dir_.path() / "broken");
  start();
  EXPECT_EQ(get("/v2/health/ready").status, 200);
}

TEST_F(RestApiTest, model_metadata_marks_dynamic_dims) {
  start();
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
  EXPECT_EQ(get("/v2/models/relu/").status, 200);  // trailing slash
  EXPECT_EQ(get("/v2/models/nope/ready").status, 404);
  EXPECT_EQ(get("/v2/models/broken/ready").status, 400);
}

TEST_F(RestApiTest, infers_with_and_without_version) {
  start();
  for (const char* target : {"/v2/models/relu/infer", "/v2/models/relu/versions/2/infer"}) {
    HttpReply r = post(target, kGoodBody);
    ASSERT_EQ(r.status, 200) << r.body;
    auto d = parse(r.body);
    EXPECT_STREQ(d["model_name"].GetString(), "relu");
    EXPECT_STREQ(d["model_version"].GetString(), "2");
    ASSERT_EQ(d["outputs"].Size(), 1u);
    EXPECT_STREQ(d["outputs"][0]["name"].GetString(), "y");
    EXPECT_STREQ(d["outputs"][0]["datatype"].GetString(), "FP32");
    EXPECT_EQ(d["outputs"][0]["shape"][0].GetInt(), 1);
    EXPECT_EQ(d["outputs"][0]["shape"][1].GetInt(), 4);
    EXPECT_EQ(output_data(d), (std::vector<double>{0, 2, 0, 4}));
  }
  HttpReply with_id = post("/v2/models/relu/infer",
                           R"({"id":"abc","inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]})");
  ASSERT_EQ(with_id.status, 200) << with_id.body;
  EXPECT_STREQ(parse(with_id.body)["id"].GetString(), "abc");
}

TEST_F(RestApiTest, binary_tensor_extension_round_trips) {
  start();
  const std::string json =
      R"({"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","parameters":{"binary_data_size":16}}],)"
      R"("outputs":[{"name":"y","parameters":{"binary_data":true}}]})";
  const float in[4] = {-1.5f, 2.5f, -3.5f, 4.5f};
  std::string body = json + std::string(reinterpret_cast<const char*>(in), sizeof(in));
  HttpReply r = api_->handle_sync("POST", "/v2/models/relu/infer", body,
                                  {{"Inference-Header-Content-Length", std::to_string(json.size())}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.content_type, "application/octet-stream");
  const std::string hl = header(r, "Inference-Header-Content-Length");
  ASSERT_FALSE(hl.empty());
  const size_t n = std::stoul(hl);
  ASSERT_EQ(r.body.size(), n + 16);
  float out[4];
  std::memcpy(out, r.body.data() + n, sizeof(out));
  EXPECT_EQ(std::vector<float>(out, out + 4), (std::vector<float>{0, 2.5f, 0, 4.5f}));
  auto d = parse(r.body.substr(0, n));
  EXPECT_EQ(d["outputs"][0]["parameters"]["binary_data_size"].GetInt(), 16);
}

TEST_F(RestApiTest, bad_requests_get_errors_and_the_next_good_request_works) {
  start();
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
      {"POST", "/v2/models/relu/infer",
       R"({"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}],"outputs":[{"name":"zz"}]})", 400},
      {"POST", "/v2/models/nope/infer", kGoodBody, 404},
      {"POST", "/v2/models/../infer", kGoodBody, 400},
      {"POST", "/v2/models/%2e%2e%2frelu/infer", kGoodBody, 400},
      {"POST", "/v2/models/relu/versions/..%2f2/infer", kGoodBody, 400},
      {"POST", "/v2/models/relu/versions/7/infer", kGoodBody, 404},
      {"POST", "/v2/models/broken/infer", kGoodBody, 503},
      {"GET", "/v2/models/broken/ready", "", 400},
      {"GET", "/v2/models/broken", "", 503},
      {"GET", "/v2/models/relu/infer", "", 405},
      {"POST", "/v2/models/relu", "", 405},
      {"GET", "/v2/models/relu/bogus", "", 404},
      {"GET", "/v2/models/relu/ready/extra", "", 404},
      {"GET", "/v3", "", 404},
      {"GET", "/v2/nothing", "", 404},
      {"GET", "/v2/models/%zz", "", 400},
      {"GET", "/v2/repository/index", "", 405},
      {"POST", "/v2/repository/index", "[1]", 400},
      {"POST", "/v2/repository/index", R"({"ready":"yes"})", 400},
      {"POST", "/v2/repository/models/relu/load", "", 400},    // not explicit mode
      {"POST", "/v2/repository/models/relu/unload", "", 400},  // not explicit mode
      {"POST", "/v2/repository/models/relu/reload", "", 404},
  };
  for (const Case& c : cases) {
    HttpReply r = api_->handle_sync(c.method, c.target, c.body);
    EXPECT_EQ(r.status, c.status) << c.method << " " << c.target << " " << c.body << " -> " << r.body;
    EXPECT_EQ(r.body.rfind("{\"error\":\"", 0), 0u) << c.target << " -> " << r.body;
    EXPECT_FALSE(header(r, "X-Request-Id").empty()) << c.target;
    EXPECT_EQ(header_count(r, "Retry-After"), c.status == 503 ? 1 : 0) << c.target;
    EXPECT_EQ(post("/v2/models/relu/infer", kGoodBody).status, 200);
  }
}

TEST_F(RestApiTest, repository_index_body_numbers_are_not_converted) {
  start();
  // Numbers RapidJSON 1.1 cannot convert safely (CVE-2024-38517): read as text, no crash.
  for (const char* body : {R"({"x":[0.0000000001e-2147483639]})",
                           R"({"x":128.74836467836484838364836483643636483648e-336})"}) {
    HttpReply r = api_->handle_sync("POST", "/v2/repository/index", body);
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_NE(r.body.find("\"relu\""), std::string::npos) << r.body;
  }
}

TEST_F(RestApiTest, request_id_is_echoed_or_made_up) {
  start();
  HttpReply a = api_->handle_sync("GET", "/v2", "", {{"x-request-id", "client-42"}});
  EXPECT_EQ(header(a, "X-Request-Id"), "client-42");
  EXPECT_EQ(header_count(a, "X-Request-Id"), 1);
  HttpReply err = api_->handle_sync("POST", "/v2/models/relu/infer", "{bad", {{"X-Request-Id", "client-43"}});
  EXPECT_EQ(err.status, 400);
  EXPECT_EQ(header(err, "X-Request-Id"), "client-43");
  HttpReply ok = api_->handle_sync("POST", "/v2/models/relu/infer", kGoodBody, {{"X-Request-Id", "client-44"}});
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(header(ok, "X-Request-Id"), "client-44");
  std::string x = header(get("/v2"), "X-Request-Id");
  std::string y = header(get("/v2"), "X-Request-Id");
  EXPECT_FALSE(x.empty());
  EXPECT_NE(x, y);
}

TEST_F(RestApiTest, config_document) {
  write_file(dir_.path() / "relu" / "config.pbtxt",
             "max_batch_size: 4\ndynamic_batching { max_queue_delay_microseconds: 100 }\n");
  start();
  HttpReply r = get("/v2/models/relu/config");
  ASSERT_EQ(r.status, 200) << r.body;
  auto d = parse(r.body);
  EXPECT_STREQ(d["name"].GetString(), "relu");
  EXPECT_STREQ(d["platform"].GetString(), "onnxruntime_onnx");
  EXPECT_EQ(d["max_batch_size"].GetInt(), 4);
  ASSERT_EQ(d["input"].Size(), 1u);
  EXPECT_STREQ(d["input"][0]["name"].GetString(), "x");
  EXPECT_STREQ(d["input"][0]["data_type"].GetString(), "TYPE_FP32");
  ASSERT_TRUE(d["input"][0]["dims"].IsArray());
  EXPECT_EQ(d["input"][0]["dims"][0].GetInt64(), 4);  // a number, not "4"
  EXPECT_EQ(d["dynamic_batching"]["max_queue_delay_microseconds"].GetInt64(), 100);
  EXPECT_EQ(get("/v2/models/relu/versions/2/config").status, 200);
  EXPECT_EQ(get("/v2/models/relu/versions/3/config").status, 404);
  EXPECT_EQ(get("/v2/models/nope/config").status, 404);
  EXPECT_EQ(get("/v2/models/broken/config").status, 503);
}

TEST_F(RestApiTest, statistics_documents) {
  start();
  ASSERT_EQ(post("/v2/models/relu/infer", kGoodBody).status, 200);
  ASSERT_EQ(post("/v2/models/relu/infer", kGoodBody).status, 200);
  HttpReply one = get("/v2/models/relu/stats");
  ASSERT_EQ(one.status, 200) << one.body;
  auto d = parse(one.body);
  ASSERT_EQ(d["model_stats"].Size(), 1u);
  const auto& s = d["model_stats"][0];
  EXPECT_STREQ(s["name"].GetString(), "relu");
  EXPECT_STREQ(s["version"].GetString(), "2");
  EXPECT_EQ(s["inference_count"].GetUint64(), 2u);
  EXPECT_EQ(s["execution_count"].GetUint64(), 2u);
  EXPECT_EQ(s["inference_stats"]["success"]["count"].GetUint64(), 2u);
  EXPECT_GT(s["last_inference"].GetUint64(), 0u);
  EXPECT_EQ(get("/v2/models/relu/versions/2/stats").status, 200);
  EXPECT_EQ(get("/v2/models/relu/versions/9/stats").status, 404);
  EXPECT_EQ(get("/v2/models/nope/stats").status, 404);
  HttpReply all = get("/v2/models/stats");
  ASSERT_EQ(all.status, 200);
  auto a = parse(all.body);
  ASSERT_EQ(a["model_stats"].Size(), 1u);  // only loaded versions; "broken" has none
  EXPECT_STREQ(a["model_stats"][0]["name"].GetString(), "relu");
}

TEST_F(RestApiTest, repository_index_lists_states_and_reasons) {
  start();
  HttpReply r = post("/v2/repository/index", "");
  ASSERT_EQ(r.status, 200) << r.body;
  auto d = parse(r.body);
  ASSERT_TRUE(d.IsArray());
  ASSERT_EQ(d.Size(), 2u) << r.body;
  EXPECT_STREQ(d[0]["name"].GetString(), "broken");
  EXPECT_STREQ(d[0]["state"].GetString(), "UNAVAILABLE");
  EXPECT_NE(std::string(d[0]["reason"].GetString()).find("version 1"), std::string::npos) << r.body;
  EXPECT_STREQ(d[1]["name"].GetString(), "relu");
  EXPECT_STREQ(d[1]["version"].GetString(), "2");
  EXPECT_STREQ(d[1]["state"].GetString(), "READY");
  HttpReply ready = post("/v2/repository/index", R"({"ready":true})");
  ASSERT_EQ(ready.status, 200);
  auto rd = parse(ready.body);
  ASSERT_EQ(rd.Size(), 1u) << ready.body;
  EXPECT_STREQ(rd[0]["name"].GetString(), "relu");
}

TEST_F(RestApiTest, explicit_mode_load_and_unload) {
  ServerOptions o;
  o.control_mode = ModelControlMode::kExplicit;
  start(o);
  EXPECT_EQ(get("/v2/models/relu/ready").status, 404);
  EXPECT_EQ(post("/v2/repository/models/relu/load", "").status, 200);
  EXPECT_EQ(get("/v2/models/relu/ready").status, 200);
  EXPECT_EQ(post("/v2/models/relu/infer", kGoodBody).status, 200);
  EXPECT_EQ(post("/v2/repository/models/relu/unload", "{}").status, 200);
  HttpReply after = post("/v2/models/relu/infer", kGoodBody);
  EXPECT_TRUE(after.status == 503 || after.status == 404) << after.status << " " << after.body;
  EXPECT_EQ(get("/v2/models/relu/ready").status, 400);
  EXPECT_EQ(post("/v2/repository/models/nope/load", "").status, 404);
  EXPECT_EQ(post("/v2/repository/models/relu/load", "not json").status, 400);
  HttpReply broken = post("/v2/repository/models/broken/load", "");
  EXPECT_EQ(broken.status, 503) << broken.body;
  EXPECT_NE(broken.body.find("version 1"), std::string::npos) << broken.body;
  EXPECT_EQ(post("/v2/repository/models/relu/load", "").status, 200);
  EXPECT_EQ(post("/v2/models/relu/infer", kGoodBody).status, 200);
}

TEST_F(RestApiTest, full_queue_is_503_with_retry_after) {
  std::filesystem::remove_all(dir_.path() / "broken");
  write_file(dir_.path() / "relu" / "config.pbtxt",
             "max_batch_size: 8 dynamic_batching { max_queue_delay_microseconds: 200000 "
             "default_queue_policy { max_queue_size: 1 } }");
  start();
  auto first = std::make_shared<std::promise<HttpReply>>();
  auto first_reply = first->get_future();
  api_->handle(HttpRequest{"POST", "/v2/models/relu/infer", kGoodBody, {}, nullptr, "127.0.0.1", "", nullptr},
               [first](HttpReply r) { first->set_value(std::move(r)); });
  HttpReply second = post("/v2/models/relu/infer", kGoodBody);
  EXPECT_EQ(second.status, 503) << second.body;
  EXPECT_EQ(header(second, "Retry-After"), "1");
  EXPECT_NE(second.body.find("queue is full"), std::string::npos) << second.body;
  EXPECT_EQ(first_reply.get().status, 200);
}

TEST_F(RestApiTest, queue_timeout_is_504) {
  std::filesystem::remove_all(dir_.path() / "broken");
  write_file(dir_.path() / "relu" / "config.pbtxt",
             "max_batch_size: 8 dynamic_batching { max_queue_delay_microseconds: 100000 "
             "default_queue_policy { default_timeout_microseconds: 1000 } }");
  start();
  HttpReply r = post("/v2/models/relu/infer", kGoodBody);
  EXPECT_EQ(r.status, 504) << r.body;
}

TEST_F(RestApiTest, request_timeout_parameter_and_client_cancel) {
  std::filesystem::remove_all(dir_.path() / "broken");
  write_file(dir_.path() / "relu" / "config.pbtxt",
             "max_batch_size: 8 dynamic_batching { max_queue_delay_microseconds: 100000 }");
  start();
  HttpReply timed = post("/v2/models/relu/infer",
                         R"({"parameters":{"timeout":1000},)"
                         R"("inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]})");
  EXPECT_EQ(timed.status, 504) << timed.body;
  auto cancelled = std::make_shared<std::atomic<bool>>(false);
  auto promise = std::make_shared<std::promise<HttpReply>>();
  auto reply = promise->get_future();
  api_->handle(HttpRequest{"POST", "/v2/models/relu/infer", kGoodBody, {}, cancelled, "127.0.0.1", "", nullptr},
               [promise](HttpReply r) { promise->set_value(std::move(r)); });
  cancelled->store(true);
  HttpReply r = reply.get();
  EXPECT_EQ(r.status, 499) << r.body;
  EXPECT_EQ(post("/v2/models/relu/infer", kGoodBody).status, 200);
}

TEST_F(RestApiTest, overlong_request_id_is_replaced) {
  start();
  const std::string long_id(200, 'a');
  HttpReply r = api_->handle_sync("GET", "/v2", "", {{"X-Request-Id", long_id}});
  const std::string id = header(r, "X-Request-Id");
  EXPECT_FALSE(id.empty());
  EXPECT_NE(id, long_id);
}

TEST(HttpStatus, maps_status_codes) {
  EXPECT_EQ(http_status_for(ok_status()), 200);
  EXPECT_EQ(http_status_for(invalid_argument("x")), 400);
  EXPECT_EQ(http_status_for(unimplemented("x")), 400);
  EXPECT_EQ(http_status_for(Status(StatusCode::kFailedPrecondition, "x")), 400);
  EXPECT_EQ(http_status_for(not_found("x")), 404);
  EXPECT_EQ(http_status_for(resource_exhausted("x")), 413);
  EXPECT_EQ(http_status_for(Status(StatusCode::kUnavailable, "x")), 503);
  EXPECT_EQ(http_status_for(Status(StatusCode::kDeadlineExceeded, "x")), 504);
  EXPECT_EQ(http_status_for(internal_error("x")), 500);
  HttpReply r = error_reply(Status(StatusCode::kUnavailable, "busy \"now\""));
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body, R"({"error":"busy \"now\""})");
  EXPECT_EQ(header(r, "Retry-After"), "1");
  EXPECT_EQ(header_count(error_reply(invalid_argument("x")), "Retry-After"), 0);
}

// Records the routing key of each request it binds (to the highest ready version).
class KeyRouter final : public serving::VersionRouter {
 public:
  explicit KeyRouter(const serving::InferenceServer& server) : server_(server) {}
  Result<serving::Binding> route(const serving::InferRequest& request) const override {
    {
      std::lock_guard<std::mutex> lock(mu);
      keys.push_back(request.routing_key);
    }
    HEARTH_ASSIGN_OR_RETURN(auto v, server_.find_version(request.model_name, request.model_version));
    return serving::Binding{v, nullptr};
  }
  mutable std::mutex mu;
  mutable std::vector<std::string> keys;

 private:
  const serving::InferenceServer& server_;
};

TEST_F(RestApiTest, routing_key_comes_from_the_parameter_or_the_header) {
  start();
  auto router = std::make_shared<KeyRouter>(*server_);
  server_->set_version_router(router);
  EXPECT_EQ(api_->handle_sync("POST", "/v2/models/relu/infer", kGoodBody, {{"Hearth-Routing-Key", "tenant-a"}}).status,
            200);
  const std::string with_parameter =
      R"({"parameters":{"routing_key":"tenant-b"},"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[-1,2,-3,4]}]})";
  EXPECT_EQ(api_->handle_sync("POST", "/v2/models/relu/infer", with_parameter, {{"Hearth-Routing-Key", "tenant-a"}})
                .status,
            200);
  EXPECT_EQ(post("/v2/models/relu/infer", kGoodBody).status, 200);
  HttpReply too_long = api_->handle_sync("POST", "/v2/models/relu/infer", kGoodBody,
                                         {{"Hearth-Routing-Key", std::string(300, 'k')}});
  EXPECT_EQ(too_long.status, 400);
  EXPECT_NE(too_long.body.find("Hearth-Routing-Key"), std::string::npos) << too_long.body;
  server_->set_version_router(nullptr);
  std::lock_guard<std::mutex> lock(router->mu);
  EXPECT_EQ(router->keys, (std::vector<std::string>{"tenant-a", "tenant-b", ""}));
}

}  // namespace
}  // namespace hearth::frontend
