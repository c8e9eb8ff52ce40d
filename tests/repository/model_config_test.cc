// config.pbtxt handling: parsing (with file:line:col errors), the checks that
// need no model, version selection, and completion against a loaded model.
#include "repository/model_config.h"

#include <gtest/gtest.h>

#include "serving/serving_test_util.h"

namespace hearth::repository {

using namespace serving;
namespace {

using hearth::testing::TempDir;
using hearth::testing::write_fixed_relu_model;
using hearth::testing::write_relu_model;
using hearth::testing::write_two_io_model;

constexpr const char* kFile = "relu/config.pbtxt";

inference::ModelConfig parse_ok(const std::string& text) {
  auto c = parse_model_config(text, kFile);
  EXPECT_TRUE(c.ok()) << c.status().to_string();
  return c.ok() ? *c : inference::ModelConfig();
}

Status check(const std::string& text) { return check_model_config(parse_ok(text), "relu", kFile); }

TEST(ModelConfigParse, full_triton_config_parses_every_field) {
  const char* text = R"(
name: "relu"
platform: "onnxruntime_onnx"
backend: "onnxruntime"
max_batch_size: 8
version_policy: { latest: { num_versions: 2 } }
input [
  { name: "x" data_type: TYPE_FP32 format: FORMAT_NONE dims: [ 4 ] reshape: { shape: [ 4 ] } optional: false }
]
output [ { name: "y" data_type: TYPE_FP32 dims: [ 4 ] label_filename: "labels.txt" } ]
dynamic_batching {
  preferred_batch_size: [ 2, 4 ]
  max_queue_delay_microseconds: 100
  preserve_ordering: true
  default_queue_policy { timeout_action: REJECT default_timeout_microseconds: 5000 allow_timeout_override: true max_queue_size: 16 }
}
instance_group [ { name: "cpu" kind: KIND_CPU count: 2 } ]
default_model_filename: "model.onnx"
parameters { key: "intra_op_thread_count" value: { string_value: "2" } }
)";
  inference::ModelConfig c = parse_ok(text);
  EXPECT_EQ(c.name(), "relu");
  EXPECT_EQ(c.platform(), "onnxruntime_onnx");
  EXPECT_EQ(c.backend(), "onnxruntime");
  EXPECT_EQ(c.max_batch_size(), 8);
  EXPECT_EQ(c.version_policy().latest().num_versions(), 2u);
  ASSERT_EQ(c.input_size(), 1);
  EXPECT_EQ(c.input(0).data_type(), inference::TYPE_FP32);
  EXPECT_EQ(c.input(0).dims_size(), 1);
  EXPECT_EQ(c.input(0).dims(0), 4);
  EXPECT_EQ(c.input(0).reshape().shape(0), 4);
  ASSERT_EQ(c.output_size(), 1);
  EXPECT_EQ(c.output(0).label_filename(), "labels.txt");
  const auto& db = c.dynamic_batching();
  ASSERT_EQ(db.preferred_batch_size_size(), 2);
  EXPECT_EQ(db.preferred_batch_size(1), 4);
  EXPECT_EQ(db.max_queue_delay_microseconds(), 100u);
  EXPECT_TRUE(db.preserve_ordering());
  EXPECT_EQ(db.default_queue_policy().default_timeout_microseconds(), 5000u);
  EXPECT_TRUE(db.default_queue_policy().allow_timeout_override());
  EXPECT_EQ(db.default_queue_policy().max_queue_size(), 16u);
  ASSERT_EQ(c.instance_group_size(), 1);
  EXPECT_EQ(c.instance_group(0).kind(), inference::ModelInstanceGroup::KIND_CPU);
  EXPECT_EQ(instance_count(c), 2);
  EXPECT_EQ(c.default_model_filename(), "model.onnx");
  EXPECT_EQ(c.parameters().at("intra_op_thread_count").string_value(), "2");
  EXPECT_TRUE(check_model_config(c, "relu", kFile).ok()) << check_model_config(c, "relu", kFile).to_string();
}

TEST(ModelConfigParse, unknown_field_names_the_field_and_file_with_line) {
  auto c = parse_model_config("name: \"relu\"\nmax_batch_size: 4\nsequence_batching { }\n", kFile);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  const std::string& m = c.status().message();
  EXPECT_EQ(m.rfind("relu/config.pbtxt:3:", 0), 0u) << m;
  EXPECT_NE(m.find("sequence_batching"), std::string::npos) << m;
}

TEST(ModelConfigParse, syntax_error_and_bad_enum_are_errors) {
  auto a = parse_model_config("max_batch_size: \"eight\"\n", kFile);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().message().rfind("relu/config.pbtxt:1:", 0), 0u) << a.status().message();
  auto b = parse_model_config("input [ { name: \"x\" data_type: TYPE_FP33 } ]", kFile);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("TYPE_FP33"), std::string::npos) << b.status().message();
}

TEST(ModelConfigCheck, rejects_bad_configs_with_the_file_named) {
  struct Case {
    const char* text;
    const char* needle;
  };
  const Case cases[] = {
      {"name: \"other\"", "'other'"},
      {"platform: \"tensorflow_savedmodel\"", "tensorflow_savedmodel"},
      {"backend: \"python\"", "python"},
      {"max_batch_size: -1", "max_batch_size"},
      {"instance_group [ { kind: KIND_GPU } ]", "GPU"},
      {"instance_group [ { kind: KIND_CPU gpus: [0] } ]", "GPU"},
      {"instance_group [ { count: 65 } ]", "65"},
      {"dynamic_batching { }", "max_batch_size > 0"},
      {"max_batch_size: 0 dynamic_batching { max_queue_delay_microseconds: 10 }", "max_batch_size > 0"},
      {"max_batch_size: 4 dynamic_batching { preferred_batch_size: [ 8 ] }", "preferred_batch_size 8"},
      {"max_batch_size: 4 dynamic_batching { preferred_batch_size: [ 0 ] }", "preferred_batch_size 0"},
      {"max_batch_size: 4 dynamic_batching { default_queue_policy { timeout_action: DELAY } }", "DELAY"},
      {"max_batch_size: 4 dynamic_batching { max_queue_delay_microseconds: 20000000 }", "10 s"},
      {"version_policy { latest { num_versions: 0 } }", "num_versions"},
      {"version_policy { specific { } }", "no versions"},
      {"version_policy { specific { versions: [ -2 ] } }", "-2"},
      {"parameters { key: \"intra_op_thread_count\" value { string_value: \"lots\" } }", "lots"},
  };
  for (const Case& c : cases) {
    Status s = check(c.text);
    EXPECT_FALSE(s.ok()) << c.text;
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << c.text;
    EXPECT_EQ(s.message().rfind(kFile, 0), 0u) << c.text << " -> " << s.message();
    EXPECT_NE(s.message().find(c.needle), std::string::npos) << c.text << " -> " << s.message();
  }
  EXPECT_TRUE(check("").ok());
  EXPECT_TRUE(check("name: \"relu\" instance_group [ { kind: KIND_AUTO count: 2 }, { kind: KIND_MODEL } ]").ok());
  EXPECT_TRUE(check("max_batch_size: 4 dynamic_batching { preferred_batch_size: [ 4 ] }").ok());
}

// The model file name may not lead out of the version folder, e.g. to
// another model's file that the uploader may not read.
TEST(ModelConfigCheck, default_model_filename_is_a_plain_name) {
  EXPECT_TRUE(check("default_model_filename: \"net.onnx\"").ok());
  for (const char* bad : {"../../team-b/1/model.onnx", "sub/model.onnx", "..", ".hidden", "a\\\\b"}) {
    Status s = check(std::string("default_model_filename: \"") + bad + "\"");
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find("default_model_filename"), std::string::npos) << s.message();
  }
}

TEST(ModelConfigVersions, select_versions_follows_the_policy) {
  const std::vector<int64_t> available{1, 3, 2};
  auto latest2 = select_versions(parse_ok("version_policy { latest { num_versions: 2 } }"), available);
  ASSERT_TRUE(latest2.ok());
  EXPECT_EQ(*latest2, (std::vector<int64_t>{3, 2}));
  auto def = select_versions(parse_ok(""), available);
  ASSERT_TRUE(def.ok());
  EXPECT_EQ(*def, (std::vector<int64_t>{3}));
  auto all = select_versions(parse_ok("version_policy { all { } }"), available);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(*all, (std::vector<int64_t>{3, 2, 1}));
  auto specific = select_versions(parse_ok("version_policy { specific { versions: [ 1, 3 ] } }"), available);
  ASSERT_TRUE(specific.ok());
  EXPECT_EQ(*specific, (std::vector<int64_t>{3, 1}));
  auto many = select_versions(parse_ok("version_policy { latest { num_versions: 9 } }"), available);
  ASSERT_TRUE(many.ok());
  EXPECT_EQ(*many, (std::vector<int64_t>{3, 2, 1}));
  auto missing = select_versions(parse_ok("version_policy { specific { versions: [ 1, 5 ] } }"), available);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("5"), std::string::npos) << missing.status().message();
  auto none = select_versions(parse_ok(""), {});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

// complete_model_config against real sessions.
class ModelConfigComplete : public ::testing::Test {
 protected:
  std::unique_ptr<Session> load(void (*writer)(const std::filesystem::path&)) {
    writer(dir_.path());
    auto s = Session::load_file((dir_.path() / "model.onnx").string());
    EXPECT_TRUE(s.ok()) << s.status().to_string();
    return s.ok() ? std::move(s).value() : nullptr;
  }
  Status complete(const std::string& text, const Session& session, inference::ModelConfig* out = nullptr) {
    inference::ModelConfig c = parse_ok(text);
    Status s = complete_model_config(c, session, kFile);
    if (out) *out = c;
    return s;
  }
  TempDir dir_;
};

TEST_F(ModelConfigComplete, derives_missing_inputs_and_outputs) {
  auto session = load(hearth::testing::write_relu_model);
  ASSERT_TRUE(session);
  inference::ModelConfig c;
  ASSERT_TRUE(complete("max_batch_size: 8", *session, &c).ok());
  EXPECT_EQ(c.platform(), "onnxruntime_onnx");
  ASSERT_EQ(c.input_size(), 1);
  EXPECT_EQ(c.input(0).name(), "x");
  EXPECT_EQ(c.input(0).data_type(), inference::TYPE_FP32);
  EXPECT_EQ(std::vector<int64_t>(c.input(0).dims().begin(), c.input(0).dims().end()), (std::vector<int64_t>{4}));
  ASSERT_EQ(c.output_size(), 1);
  EXPECT_EQ(c.output(0).name(), "y");
  EXPECT_EQ(std::vector<int64_t>(c.output(0).dims().begin(), c.output(0).dims().end()), (std::vector<int64_t>{4}));
  EXPECT_EQ(request_shape(c, c.input(0).dims()), (std::vector<int64_t>{-1, 4}));

  inference::ModelConfig nb;  // no batching: the leading dim stays, variable
  ASSERT_TRUE(complete("", *session, &nb).ok());
  EXPECT_EQ(std::vector<int64_t>(nb.input(0).dims().begin(), nb.input(0).dims().end()), (std::vector<int64_t>{-1, 4}));
  EXPECT_EQ(request_shape(nb, nb.input(0).dims()), (std::vector<int64_t>{-1, 4}));
}

TEST_F(ModelConfigComplete, derives_both_of_two_inputs_and_outputs) {
  auto session = load(hearth::testing::write_two_io_model);
  ASSERT_TRUE(session);
  inference::ModelConfig c;
  ASSERT_TRUE(complete("max_batch_size: 4 input [ { name: \"b\" data_type: TYPE_FP32 dims: [ 4 ] } ]", *session, &c).ok());
  ASSERT_EQ(c.input_size(), 2);
  EXPECT_EQ(c.input(0).name(), "b");
  EXPECT_EQ(c.input(1).name(), "a");
  ASSERT_EQ(c.output_size(), 2);
  EXPECT_EQ(c.output(0).name(), "sum");
  EXPECT_EQ(c.output(1).name(), "pos");
}

TEST_F(ModelConfigComplete, mismatches_are_errors_naming_the_tensor) {
  auto session = load(hearth::testing::write_relu_model);
  ASSERT_TRUE(session);
  struct Case {
    const char* text;
    std::vector<const char*> needles;
  };
  const Case cases[] = {
      {"input [ { name: \"x\" data_type: TYPE_INT32 dims: [ 4 ] } ] max_batch_size: 2", {"input 'x'", "TYPE_INT32", "TYPE_FP32"}},
      {"input [ { name: \"x\" data_type: TYPE_FP32 dims: [ 5 ] } ] max_batch_size: 2", {"input 'x'", "[5]"}},
      {"input [ { name: \"x\" data_type: TYPE_FP32 dims: [ 2, 2 ] } ] max_batch_size: 2", {"input 'x'", "[2,2]"}},
      {"output [ { name: \"y\" data_type: TYPE_FP32 dims: [ 3 ] } ] max_batch_size: 2", {"output 'y'", "[3]"}},
      {"input [ { name: \"q\" data_type: TYPE_FP32 dims: [ 4 ] } ] max_batch_size: 2", {"input 'q'", "not an input"}},
      {"output [ { name: \"z\" data_type: TYPE_FP32 dims: [ 4 ] } ] max_batch_size: 2", {"output 'z'", "not an output"}},
      {"input [ { name: \"x\" dims: [ 4 ] }, { name: \"x\" dims: [ 4 ] } ] max_batch_size: 2", {"input 'x'", "twice"}},
      {"input [ { name: \"x\" data_type: TYPE_FP32 dims: [ 4 ] reshape { shape: [ 5 ] } } ] max_batch_size: 2",
       {"input 'x'", "element counts"}},
      {"input [ { name: \"x\" data_type: TYPE_FP32 dims: [ 2, 2 ] reshape { shape: [ 2, 2 ] } } ] max_batch_size: 2",
       {"input 'x'", "rank"}},
  };
  for (const Case& c : cases) {
    Status s = complete(c.text, *session);
    ASSERT_FALSE(s.ok()) << c.text;
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << c.text;
    EXPECT_EQ(s.message().rfind(kFile, 0), 0u) << s.message();
    for (const char* n : c.needles) EXPECT_NE(s.message().find(n), std::string::npos) << c.text << " -> " << s.message();
  }
  // A reshape holding the same element count is fine: [2,2] fed as the model's [4].
  EXPECT_TRUE(complete("input [ { name: \"x\" data_type: TYPE_FP32 dims: [ 2, 2 ] reshape { shape: [ 4 ] } } ] "
                       "max_batch_size: 2",
                       *session)
                  .ok());
  // -1 in the config matches the model's fixed 4.
  EXPECT_TRUE(complete("input [ { name: \"x\" data_type: TYPE_FP32 dims: [ -1 ] } ] max_batch_size: 2", *session).ok());
}

TEST_F(ModelConfigComplete, batching_needs_a_variable_leading_dim) {
  write_fixed_relu_model(dir_.path(), 2);
  auto session = Session::load_file((dir_.path() / "model.onnx").string());
  ASSERT_TRUE(session.ok()) << session.status().to_string();
  Status s = complete("max_batch_size: 4", **session);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("input 'x'"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("variable leading"), std::string::npos) << s.message();
  inference::ModelConfig c;
  ASSERT_TRUE(complete("max_batch_size: 0", **session, &c).ok());
  EXPECT_EQ(std::vector<int64_t>(c.input(0).dims().begin(), c.input(0).dims().end()), (std::vector<int64_t>{2, 4}));
}

TEST(ModelConfigHelpers, dtype_round_trip_and_threads) {
  auto fp32 = dtype_from_config(inference::TYPE_FP32);
  ASSERT_TRUE(fp32.ok());
  EXPECT_EQ(*fp32, DataType::kFloat);
  EXPECT_EQ(config_dtype(DataType::kInt64), inference::TYPE_INT64);
  EXPECT_EQ(dtype_from_config(inference::TYPE_STRING).status().code(), StatusCode::kUnimplemented);
  EXPECT_EQ(threads_per_instance(2, 8), 4);
  EXPECT_EQ(threads_per_instance(3, 8), 2);
  EXPECT_EQ(threads_per_instance(16, 8), 1);
  EXPECT_EQ(instance_count(inference::ModelConfig()), 1);
}

}  // namespace
}  // namespace hearth::repository
