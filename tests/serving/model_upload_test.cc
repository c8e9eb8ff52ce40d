// Model upload through Triton's load parameters: the path and config
// validation table, config JSON -> config.pbtxt, the atomic write (a refused
// or failing upload leaves no trace), upload then infer through
// InferenceServer and over RestApi, and existing versions refused.
#include "serving/model_upload.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <fstream>
#include <set>

#include "security/crypto.h"
#include "serving/model_config.h"
#include "serving/rest_api.h"
#include "serving_test_util.h"

namespace hearth::serving::test {
namespace {

constexpr const char* kReluConfig =
    R"({"max_batch_size": 8, "input": [{"name": "x", "data_type": "TYPE_FP32", "dims": [4]}],
        "output": [{"name": "y", "data_type": "TYPE_FP32", "dims": ["4"]}], "dynamic_batching": {}})";

std::string relu_bytes() {
  std::string bytes;
  hearth::testing::relu_model().SerializeToString(&bytes);
  return bytes;
}

ModelUpload relu_upload(int version, const std::string& config = kReluConfig) {
  ModelUpload u;
  u.config_json = config;
  u.files.push_back({std::to_string(version) + "/model.onnx", relu_bytes()});
  return u;
}

// Every entry under `dir` (recursively) with its size, and the entries of its
// parent that an escaping upload could have made (the parent is the shared
// temp folder, where other programs come and go).
std::set<std::string> listing(const fs::path& dir) {
  std::set<std::string> out;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code size_ec;
    auto size = it->is_regular_file(size_ec) ? fs::file_size(it->path(), size_ec) : 0;
    out.insert(fs::relative(it->path(), dir).string() + ":" + std::to_string(size));
  }
  for (fs::directory_iterator it(dir.parent_path(), ec), end; !ec && it != end; it.increment(ec))
  {
    const std::string name = it->path().filename().string();
    if (name[0] == '.' || name == "x" || name == "abs" || name == "etc" || name == "up" || name == "relu")
      out.insert("../" + name);
  }
  return out;
}

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(UploadPath, accepts_version_and_sub_folders) {
  EXPECT_EQ(*check_upload_path("1/model.onnx"), 1);
  EXPECT_EQ(*check_upload_path("12/model.onnx.sm4"), 12);
  EXPECT_EQ(*check_upload_path("3/weights/part.bin"), 3);
  EXPECT_EQ(*check_upload_path("3/a/b/c/d/e/f/g.bin"), 3);  // 8 components
}

TEST(UploadPath, refuses_traversal_and_odd_names) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"../x", "'..' is not allowed"},
      {"1/../../etc/passwd", "'..' is not allowed"},
      {"/abs", "absolute path"},
      {"/1/model.onnx", "absolute path"},
      {"1/.hidden", "may not start with '.'"},
      {"01/model.onnx", "not a positive integer"},
      {"0/model.onnx", "not a positive integer"},
      {"-1/model.onnx", "not a positive integer"},
      {"v1/model.onnx", "not a positive integer"},
      {"1/./model.onnx", "'.' is not allowed"},
      {"1//model.onnx", "empty path component"},
      {"1/sub/", "empty path component"},
      {"model.onnx", "<version>/<file name>"},
      {"1", "<version>/<file name>"},
      {"", "names no file"},
      {"1/a\\b", "'\\' or NUL"},
      {std::string("1/a\0b", 5), "'\\' or NUL"},
      {"1/a/b/c/d/e/f/g/h.bin", "more than 8 path components"},
      {"1/" + std::string(256, 'a'), "longer than 255 bytes"},
  };
  for (const auto& [path, why] : bad) {
    auto r = check_upload_path(path);
    ASSERT_FALSE(r.ok()) << path;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << path;
    EXPECT_NE(r.status().message().find(why), std::string::npos) << path << ": " << r.status().message();
    EXPECT_NE(r.status().message().find("parameter 'file:"), std::string::npos) << r.status().message();
  }
}

TEST(UploadValidate, whole_upload_rules) {
  EXPECT_TRUE(validate_upload("m", relu_upload(1)).ok());
  ModelUpload files_only = relu_upload(1);
  files_only.config_json.reset();
  EXPECT_NE(validate_upload("m", files_only).message().find("\"config\""), std::string::npos);
  ModelUpload twice = relu_upload(1);
  twice.files.push_back(twice.files[0]);
  EXPECT_NE(validate_upload("m", twice).message().find("given twice"), std::string::npos);
  ModelUpload no_model = relu_upload(1);
  no_model.files.push_back({"2/weights.bin", "w"});
  EXPECT_NE(validate_upload("m", no_model).message().find("version 2 of 'm' has no model file"), std::string::npos);
  ModelUpload clash = relu_upload(1);
  clash.files.push_back({"1/sub", "x"});
  clash.files.push_back({"1/sub/y", "y"});
  EXPECT_NE(validate_upload("m", clash).message().find("a file and a folder"), std::string::npos);
  ModelUpload encrypted;
  encrypted.config_json = "{}";
  encrypted.files.push_back({"4/model.onnx.sm4", "package"});
  EXPECT_TRUE(validate_upload("m", encrypted).ok());
  EXPECT_EQ(validate_upload("../m", relu_upload(1)).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(validate_upload(".m", relu_upload(1)).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(validate_upload(std::string(201, 'm'), relu_upload(1)).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(validate_upload("m", ModelUpload{}).code(), StatusCode::kInvalidArgument);
}

TEST(UploadConfig, json_to_pbtxt_round_trip) {
  auto text = config_json_to_pbtxt(kReluConfig, "relu");
  ASSERT_TRUE(text.ok()) << text.status().to_string();
  auto config = parse_model_config(*text, "relu/config.pbtxt");
  ASSERT_TRUE(config.ok()) << config.status().to_string();
  EXPECT_EQ(config->name(), "relu");
  EXPECT_EQ(config->max_batch_size(), 8);
  ASSERT_EQ(config->input_size(), 1);
  EXPECT_EQ(config->input(0).data_type(), inference::TYPE_FP32);
  EXPECT_EQ(config->input(0).dims(0), 4);
  EXPECT_EQ(config->output(0).dims(0), 4);  // int64 given as a JSON string
  EXPECT_TRUE(config->has_dynamic_batching());

  auto unknown = config_json_to_pbtxt(R"({"max_batch_size": 1, "optimization": {}})", "relu");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("optimization"), std::string::npos) << unknown.status().message();
  EXPECT_EQ(config_json_to_pbtxt("{not json", "relu").status().code(), StatusCode::kInvalidArgument);
  auto other = config_json_to_pbtxt(R"({"name": "other"})", "relu");
  EXPECT_EQ(other.status().code(), StatusCode::kInvalidArgument);
  auto batching = config_json_to_pbtxt(R"({"max_batch_size": 0, "dynamic_batching": {}})", "relu");
  EXPECT_EQ(batching.status().code(), StatusCode::kInvalidArgument) << "checked like a config read from disk";
}

TEST_F(ServerTest, upload_then_infer_new_model) {
  auto server = start(explicit_mode());
  ASSERT_TRUE(server);
  ModelUpload u = relu_upload(1);
  u.files.push_back({"1/extra/notes.txt", "weights would go here"});
  Status s = server->load_model("up", u);
  ASSERT_TRUE(s.ok()) << s.to_string();
  auto r = server->infer(relu_request({-1, 2, -3, 4}, "", "up"));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(values(r->outputs[0].data), (std::vector<float>{0, 2, 0, 4}));
  // Written into the repository, readable by the group only, no staging left.
  EXPECT_EQ(read(model_dir("up") / "1" / "model.onnx"), relu_bytes());
  EXPECT_EQ(read(model_dir("up") / "1" / "extra" / "notes.txt"), "weights would go here");
  struct stat st;
  ASSERT_EQ(::stat((model_dir("up") / "1" / "model.onnx").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
  ASSERT_EQ(::stat((model_dir("up") / "1").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0750u);
  EXPECT_NE(read(model_dir("up") / "config.pbtxt").find("max_batch_size: 8"), std::string::npos);
  for (const auto& e : fs::directory_iterator(dir_.path()))
    EXPECT_EQ(e.path().filename().string().rfind(".upload-", 0), std::string::npos) << e.path();
  // It survives a restart: a fresh server loads it from disk.
  server.reset();
  auto again = start(explicit_mode({"up"}));
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->infer(relu_request({1, 2, 3, 4}, "", "up")).ok());
}

// A server that died mid-upload leaves a staging folder; the next start
// removes it once it is an hour old (a younger one may be another server's).
TEST_F(ServerTest, stale_staging_folders_are_removed_at_start) {
  const fs::path stale = dir_.path() / ".upload-m-0123456789abcdef";
  const fs::path young = dir_.path() / ".upload-m-fedcba9876543210";
  for (const fs::path& p : {stale, young}) {
    fs::create_directories(p / "1");
    std::ofstream(p / "1" / "model.onnx") << "half an upload";
  }
  fs::last_write_time(stale, fs::file_time_type::clock::now() - std::chrono::hours(2));
  auto server = start(explicit_mode());
  ASSERT_TRUE(server);
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(fs::exists(young));
}

TEST_F(ServerTest, upload_new_version_replaces_served_one) {
  add_relu("relu", 1);
  auto server = start(explicit_mode({"relu"}));
  ASSERT_TRUE(server);
  ASSERT_TRUE(server->load_model("relu", relu_upload(2)).ok());
  auto r = server->infer(relu_request({1, 2, 3, 4}));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->model_version, "2");
  EXPECT_TRUE(fs::exists(model_dir("relu") / "config.pbtxt"));
}

TEST_F(ServerTest, upload_refuses_existing_version_and_leaves_no_trace) {
  add_relu("relu", 1);
  auto server = start(explicit_mode({"relu"}));
  ASSERT_TRUE(server);
  const auto before = listing(dir_.path());
  Status s = server->load_model("relu", relu_upload(1));
  EXPECT_EQ(s.code(), StatusCode::kAlreadyExists);
  EXPECT_NE(s.message().find("version 1 of 'relu' exists; upload a new version number"), std::string::npos) << s.message();
  for (const char* path : {"../x", "1/../../etc/passwd", "/abs", "1/.hidden", "01/model.onnx"}) {
    ModelUpload bad = relu_upload(3);
    bad.files.push_back({path, "x"});
    EXPECT_EQ(server->load_model("relu", bad).code(), StatusCode::kInvalidArgument) << path;
  }
  EXPECT_EQ(server->load_model("../relu", relu_upload(3)).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(listing(dir_.path()), before);
  EXPECT_TRUE(server->infer(relu_request({1, 2, 3, 4})).ok());
}

TEST_F(ServerTest, failed_load_rolls_the_upload_back) {
  add_relu("relu", 1);
  config("relu", "max_batch_size: 4\n");
  auto server = start(explicit_mode({"relu"}));
  ASSERT_TRUE(server);
  const auto before = listing(dir_.path());
  ModelUpload broken = relu_upload(2);
  broken.files[0].bytes = "this is not an ONNX model";
  Status s = server->load_model("relu", broken);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("rolled back"), std::string::npos) << s.message();
  EXPECT_EQ(listing(dir_.path()), before);
  EXPECT_EQ(read(model_dir("relu") / "config.pbtxt"), "max_batch_size: 4\n");
  auto r = server->infer(relu_request({1, 2, 3, 4}));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->model_version, "1");
  // The same version number may be sent again, fixed.
  EXPECT_TRUE(server->load_model("relu", relu_upload(2)).ok());
  // A new model whose load fails leaves no folder behind.
  broken.files[0].bytes = "still not ONNX";
  EXPECT_FALSE(server->load_model("fresh", broken).ok());
  EXPECT_FALSE(fs::exists(model_dir("fresh")));
}

TEST_F(ServerTest, upload_needs_explicit_mode_and_a_folder_for_config_alone) {
  add_relu("relu", 1);
  {
    auto server = start();
    ASSERT_TRUE(server);
    const auto before = listing(dir_.path());
    EXPECT_EQ(server->load_model("up", relu_upload(1)).code(), StatusCode::kFailedPrecondition);
    EXPECT_EQ(listing(dir_.path()), before);
  }
  auto server = start(explicit_mode({"relu"}));
  ModelUpload config_only;
  config_only.config_json = R"({"max_batch_size": 2})";
  EXPECT_EQ(server->load_model("nothing", config_only).code(), StatusCode::kNotFound);
  EXPECT_FALSE(fs::exists(model_dir("nothing")));
  ASSERT_TRUE(server->load_model("relu", config_only).ok());
  EXPECT_NE(read(model_dir("relu") / "config.pbtxt").find("max_batch_size: 2"), std::string::npos);
  auto config = server->model_config("relu", "");
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->max_batch_size(), 2);
}

TEST(UploadWrite, undo_restores_the_repository) {
  hearth::testing::TempDir dir;
  hearth::testing::write_relu_model(dir.path() / "m" / "1");
  hearth::testing::write_file(dir.path() / "m" / "config.pbtxt", "max_batch_size: 4\n");
  const auto before = listing(dir.path());
  ModelUpload u = relu_upload(2);
  u.files.push_back({"3/model.onnx", relu_bytes()});
  auto receipt = write_upload(dir.path().string(), "m", u);
  ASSERT_TRUE(receipt.ok()) << receipt.status().to_string();
  EXPECT_TRUE(fs::exists(dir.path() / "m" / "3" / "model.onnx"));
  EXPECT_NE(listing(dir.path()), before);
  ASSERT_TRUE(undo_upload(*receipt).ok());
  EXPECT_EQ(listing(dir.path()), before);
  EXPECT_EQ(read(dir.path() / "m" / "config.pbtxt"), "max_batch_size: 4\n");
  // A model folder that is a file, or a link out of the repository, is refused.
  hearth::testing::write_file(dir.path() / "afile", "x");
  EXPECT_FALSE(write_upload(dir.path().string(), "afile", relu_upload(1)).ok());
  hearth::testing::TempDir outside;
  fs::create_directory_symlink(outside.path(), dir.path() / "escape");
  auto escaped = write_upload(dir.path().string(), "escape", relu_upload(1));
  EXPECT_EQ(escaped.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(fs::is_empty(outside.path()));
}

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
}  // namespace hearth::serving::test
