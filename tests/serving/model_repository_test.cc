// ModelRepository: scanning, latest-version policy, broken models recorded
// without stopping the others, and refusal of names that could leave the repository.
#include "serving/model_repository.h"

#include <gtest/gtest.h>

#include "serving_test_util.h"

namespace hearth::serving {
namespace {

using hearth::testing::TempDir;
using hearth::testing::write_file;
using hearth::testing::write_relu_model;

TEST(ModelRepository, loads_latest_version_and_tolerates_config_pbtxt) {
  TempDir repo;
  write_relu_model(repo.path() / "relu" / "1");
  write_relu_model(repo.path() / "relu" / "3");
  write_file(repo.path() / "relu" / "config.pbtxt", "name: \"relu\"\nplatform: \"onnxruntime_onnx\"\n");
  write_file(repo.path() / "relu" / "notes" / "readme.txt", "not a version");
  auto r = ModelRepository::open(repo.path().string());
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  ASSERT_EQ((*r)->models().size(), 1u);
  const ServedModel& m = *(*r)->models()[0];
  EXPECT_EQ(m.name, "relu");
  EXPECT_EQ(m.version, 3);
  EXPECT_TRUE(m.ready()) << m.reason;
  EXPECT_TRUE((*r)->find("relu", "3").ok());
  EXPECT_EQ((*r)->find("relu", "1").status().code(), StatusCode::kNotFound);
}

TEST(ModelRepository, records_broken_and_empty_models_and_keeps_the_others) {
  TempDir repo;
  write_relu_model(repo.path() / "good" / "1");
  write_file(repo.path() / "broken" / "1" / "model.onnx", "this is not protobuf");
  std::filesystem::create_directories(repo.path() / "empty");
  write_file(repo.path() / "noversion" / "model.onnx", "x");
  auto r = ModelRepository::open(repo.path().string());
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  ASSERT_EQ((*r)->models().size(), 4u);
  for (const auto& m : (*r)->models()) {
    if (m->name == "good") {
      EXPECT_TRUE(m->ready()) << m->reason;
    } else {
      EXPECT_FALSE(m->ready()) << m->name;
      EXPECT_EQ(m->state, ModelState::kUnavailable);
      EXPECT_FALSE(m->reason.empty()) << m->name;
    }
  }
  auto broken = (*r)->find("broken");
  ASSERT_TRUE(broken.ok());
  EXPECT_NE((*broken)->reason.find("version 1"), std::string::npos) << (*broken)->reason;
}

TEST(ModelRepository, splits_cores_between_models) {
  TempDir repo;
  write_relu_model(repo.path() / "a" / "1");
  write_relu_model(repo.path() / "b" / "1");
  RepositoryOptions options;
  options.total_threads = 4;
  auto r = ModelRepository::open(repo.path().string(), options);
  ASSERT_TRUE(r.ok());
  for (const auto& m : (*r)->models()) {
    ASSERT_TRUE(m->ready());
    EXPECT_EQ(m->session->num_threads(), 2) << m->name;
  }
}

TEST(ModelRepository, refuses_symlinked_model_outside_the_repository) {
  TempDir repo;
  TempDir outside;
  write_relu_model(outside.path());
  std::filesystem::create_directories(repo.path() / "evil" / "1");
  std::filesystem::create_symlink(outside.path() / "model.onnx", repo.path() / "evil" / "1" / "model.onnx");
  auto r = ModelRepository::open(repo.path().string());
  ASSERT_TRUE(r.ok());
  auto evil = (*r)->find("evil");
  ASSERT_TRUE(evil.ok());
  EXPECT_FALSE((*evil)->ready());
  EXPECT_NE((*evil)->reason.find("outside"), std::string::npos) << (*evil)->reason;
}

TEST(ModelRepository, skips_hidden_folders) {
  TempDir repo;
  write_relu_model(repo.path() / ".git" / "1");
  write_relu_model(repo.path() / "m" / "1");
  auto r = ModelRepository::open(repo.path().string());
  ASSERT_TRUE(r.ok());
  ASSERT_EQ((*r)->models().size(), 1u);
  EXPECT_EQ((*r)->models()[0]->name, "m");
}

TEST(ModelRepository, find_refuses_path_traversal_and_bad_versions) {
  TempDir repo;
  write_relu_model(repo.path() / "m" / "1");
  auto r = ModelRepository::open(repo.path().string());
  ASSERT_TRUE(r.ok());
  for (const char* name : {"..", "../m", "m/..", "a/b", ".hidden", "", "a..b", "a\\b"}) {
    EXPECT_EQ((*r)->find(name).status().code(), StatusCode::kInvalidArgument) << name;
  }
  for (const char* version : {"..", "../1", "0", "-1", "1a", "x", "99999999999999999999"}) {
    EXPECT_EQ((*r)->find("m", version).status().code(), StatusCode::kInvalidArgument) << version;
  }
  EXPECT_EQ((*r)->find("nope").status().code(), StatusCode::kNotFound);
  EXPECT_EQ((*r)->find("m", "2").status().code(), StatusCode::kNotFound);
  EXPECT_TRUE((*r)->find("m", "1").ok());
}

TEST(ModelRepository, open_fails_for_a_missing_folder) {
  auto r = ModelRepository::open("/nonexistent/hearth/repository");
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
}

TEST(ModelRepository, parse_version_accepts_positive_integers_only) {
  EXPECT_EQ(parse_version("1").value(), 1);
  EXPECT_EQ(parse_version("0042").value(), 42);
  EXPECT_FALSE(parse_version("0").ok());
  EXPECT_FALSE(parse_version("").ok());
  EXPECT_FALSE(parse_version("+1").ok());
  EXPECT_FALSE(parse_version("1.0").ok());
}

}  // namespace
}  // namespace hearth::serving
