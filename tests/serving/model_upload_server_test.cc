// Model upload through InferenceServer: upload then infer, a new version takes
// over, existing versions refused, a failed load rolled back, stale staging
// folders removed at start.
#include <gtest/gtest.h>

#include <chrono>

#include "repository/upload_test_util.h"
#include "serving/serving_test_util.h"

namespace hearth::serving::test {
namespace {

using repository::ModelUpload;
using repository::test::kReluConfig;
using repository::test::listing;
using repository::test::read;
using repository::test::relu_bytes;
using repository::test::relu_upload;

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

}  // namespace
}  // namespace hearth::serving::test
