// Model upload through Triton's load parameters, the repository's part: the path
// and config validation table, config JSON -> config.pbtxt, and the atomic write
// (a refused or failing upload leaves no trace, undo restores the repository).
#include "repository/model_upload.h"

#include <gtest/gtest.h>

#include "repository/model_config.h"
#include "repository/upload_test_util.h"
#include "serving/serving_test_util.h"

namespace hearth::repository::test {
namespace {

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

}  // namespace
}  // namespace hearth::repository::test
