// Bad model files get one clear error each; good ones import faithfully.
#include "graph/onnx_import.h"

#include <gtest/gtest.h>

#include <map>
#include <tuple>

#include <filesystem>
#include <fstream>

#include "graph/model_builder.h"

namespace hearth {
namespace {
namespace fs = std::filesystem;
using testing::add_float_initializer;
using testing::add_node;
using testing::relu_model;

Result<Model> import(const onnx::ModelProto& m, const std::string& base_dir = "") {
  std::string bytes = m.SerializeAsString();
  return load_model_bytes(bytes.data(), bytes.size(), base_dir);
}

// A fresh folder under the test's temp dir, removed at the end.
struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("hearth_test_" + std::to_string(::getpid()) + "_" +
                                        std::to_string(reinterpret_cast<uintptr_t>(this)));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

TEST(OnnxImport, imports_inputs_outputs_and_dynamic_dims) {
  auto m = import(relu_model());
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  ASSERT_EQ(m->graph.inputs.size(), 1u);
  EXPECT_EQ(m->graph.inputs[0].dims, (std::vector<int64_t>{-1, 4}));
  EXPECT_EQ(m->graph.inputs[0].dim_names[0], "N");
  EXPECT_EQ(m->opset(""), 13);
  EXPECT_EQ(m->graph.nodes.size(), 1u);
}

TEST(OnnxImport, rejects_truncated_protobuf) {
  std::string bytes = relu_model().SerializeAsString();
  auto m = load_model_bytes(bytes.data(), bytes.size() / 2, "");
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("could not be parsed"), std::string::npos) << m.status().message();
}

TEST(OnnxImport, rejects_corrupted_bytes) {
  std::string bytes = relu_model().SerializeAsString();
  for (size_t i = 0; i < bytes.size(); i += 3) bytes[i] = static_cast<char>(0xff);
  auto m = load_model_bytes(bytes.data(), bytes.size(), "");
  EXPECT_FALSE(m.ok());
}

TEST(OnnxImport, rejects_graph_with_cycle) {
  auto mp = relu_model();
  auto* g = mp.mutable_graph();
  g->mutable_node(0)->set_input(0, "b");
  add_node(g, "Relu", {"y"}, {"b"}, "back_edge");
  auto m = import(mp);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("cycle"), std::string::npos) << m.status().message();
}

TEST(OnnxImport, rejects_missing_initializer) {
  auto mp = relu_model();
  add_node(mp.mutable_graph(), "Add", {"y", "bias"}, {"z"}, "add_bias");
  auto m = import(mp);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("'bias'"), std::string::npos) << m.status().message();
  EXPECT_NE(m.status().message().find("add_bias"), std::string::npos) << m.status().message();
}

TEST(OnnxImport, rejects_raw_data_size_mismatch) {
  auto mp = relu_model();
  auto* t = add_float_initializer(mp.mutable_graph(), "w", {2, 3}, {1, 2, 3, 4, 5});
  (void)t;
  auto m = import(mp);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("raw_data holds 20 bytes"), std::string::npos) << m.status().message();
  EXPECT_NE(m.status().message().find("'w'"), std::string::npos);
}

// Large raw_data payloads are moved out of the parsed protobuf, not copied: the
// values must survive, a size mismatch must still be refused, and shape
// inference (which runs before) must still see the graph.
TEST(OnnxImport, large_initializers_keep_values_and_checks) {
  TempDir dir;
  auto mp = relu_model();
  std::vector<float> big(40000);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<float>(i) * 0.25f - 7.0f;
  add_float_initializer(mp.mutable_graph(), "big", {200, 200}, big);
  add_node(mp.mutable_graph(), "Relu", {"y"}, {"z"}, "second");
  const std::string path = (dir.path / "model.onnx").string();
  std::ofstream(path, std::ios::binary) << mp.SerializeAsString();
  auto m = load_model_file(path);
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  const Tensor& t = m->graph.initializers.at("big");
  ASSERT_EQ(t.shape(), (Shape{200, 200}));
  for (size_t i = 0; i < big.size(); ++i) ASSERT_EQ(t.data<float>()[i], big[i]) << i;
  EXPECT_TRUE(m->graph.value_info.count("z") || m->graph.value_info.count("y")) << "shape inference ran";

  auto bad = relu_model();
  add_float_initializer(bad.mutable_graph(), "big", {200, 201}, big);
  auto r = import(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("raw_data holds 160000 bytes"), std::string::npos) << r.status().message();
}

// ONNX's shape inference reads constant shapes without checking their size; a
// malformed one must be refused by the import before inference sees it.
TEST(OnnxImport, malformed_shape_constant_is_refused_before_shape_inference) {
  auto mp = relu_model();
  auto* g = mp.mutable_graph();
  auto* t = g->add_initializer();
  t->set_name("shape");
  t->set_data_type(onnx::TensorProto::INT64);
  t->add_dims(1);
  t->set_raw_data(std::string(7, '\x01'));  // 7 bytes for one int64
  add_node(g, "Reshape", {"y", "shape"}, {"z"}, "reshape");
  auto m = import(mp);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("raw_data holds 7 bytes"), std::string::npos) << m.status().message();
}

TEST(OnnxImport, rejects_external_data_outside_model_dir) {
  TempDir dir;
  auto mp = relu_model();
  auto* t = mp.mutable_graph()->add_initializer();
  t->set_name("w");
  t->set_data_type(onnx::TensorProto::FLOAT);
  t->add_dims(2);
  t->set_data_location(onnx::TensorProto::EXTERNAL);
  auto* kv = t->add_external_data();
  kv->set_key("location");
  kv->set_value("../../etc/passwd");
  auto m = import(mp, dir.path.string());
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("leaves the model's folder"), std::string::npos) << m.status().message();
  kv->set_value("/etc/passwd");
  m = import(mp, dir.path.string());
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("relative path"), std::string::npos) << m.status().message();
}

TEST(OnnxImport, reads_external_data_beside_the_model) {
  TempDir dir;
  const std::vector<float> values = {1.5f, -2.0f, 3.25f};
  {
    std::ofstream f(dir.path / "weights.bin", std::ios::binary);
    f.write("pad!", 4);
    f.write(reinterpret_cast<const char*>(values.data()), 12);
  }
  auto mp = relu_model();
  auto* t = mp.mutable_graph()->add_initializer();
  t->set_name("w");
  t->set_data_type(onnx::TensorProto::FLOAT);
  t->add_dims(3);
  t->set_data_location(onnx::TensorProto::EXTERNAL);
  for (auto [k, v] : {std::pair{"location", "weights.bin"}, {"offset", "4"}, {"length", "12"}}) {
    auto* kv = t->add_external_data();
    kv->set_key(k);
    kv->set_value(v);
  }
  std::string path = (dir.path / "model.onnx").string();
  std::ofstream(path, std::ios::binary) << mp.SerializeAsString();
  auto m = load_model_file(path);
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  const Tensor& w = m->graph.initializers.at("w");
  ASSERT_EQ(w.numel(), 3);
  EXPECT_EQ(w.data<float>()[0], 1.5f);
  EXPECT_EQ(w.data<float>()[2], 3.25f);
}

// An opened encrypted package hands its external-data files over in memory.
TEST(OnnxImport, reads_external_data_from_memory) {
  const std::vector<float> values = {1.5f, -2.0f, 3.25f};
  const std::string weights = std::string("pad!") + std::string(reinterpret_cast<const char*>(values.data()), 12);
  std::map<std::string, std::string_view> files;
  files["data/weights.bin"] = weights;
  auto mp = relu_model();
  auto* t = mp.mutable_graph()->add_initializer();
  t->set_name("w");
  t->set_data_type(onnx::TensorProto::FLOAT);
  t->add_dims(3);
  t->set_data_location(onnx::TensorProto::EXTERNAL);
  auto* loc = t->add_external_data();
  loc->set_key("location");
  loc->set_value("data/weights.bin");
  auto* off = t->add_external_data();
  off->set_key("offset");
  off->set_value("4");
  const std::string bytes = mp.SerializeAsString();
  auto m = load_model_bytes(bytes.data(), bytes.size(), ExternalData{"", &files});
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  const Tensor& w = m->graph.initializers.at("w");
  ASSERT_EQ(w.numel(), 3);
  EXPECT_EQ(w.data<float>()[1], -2.0f);

  // Missing, escaping, and too-short in-memory files are refused by name.
  for (auto [location, offset, what] : {std::tuple{"other.bin", "0", "not in the package"},
                                        {"../data/weights.bin", "0", "relative path"},
                                        {"data/weights.bin", "8", "too short"}}) {
    loc->set_value(location);
    off->set_value(offset);
    const std::string b = mp.SerializeAsString();
    auto bad = load_model_bytes(b.data(), b.size(), ExternalData{"", &files});
    ASSERT_FALSE(bad.ok()) << location;
    EXPECT_NE(bad.status().message().find(what), std::string::npos) << bad.status().message();
  }
}

TEST(OnnxImport, rejects_external_data_shorter_than_dims) {
  TempDir dir;
  std::ofstream(dir.path / "w.bin", std::ios::binary) << "abcd";
  auto mp = relu_model();
  auto* t = mp.mutable_graph()->add_initializer();
  t->set_name("w");
  t->set_data_type(onnx::TensorProto::FLOAT);
  t->add_dims(100);
  t->set_data_location(onnx::TensorProto::EXTERNAL);
  auto* kv = t->add_external_data();
  kv->set_key("location");
  kv->set_value("w.bin");
  auto m = import(mp, dir.path.string());
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("too short"), std::string::npos) << m.status().message();
}

TEST(OnnxImport, rejects_newer_opset_than_supported) {
  auto m = import(relu_model(kMaxSupportedOpset + 1));
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("opset"), std::string::npos);
}

TEST(OnnxImport, missing_file_is_not_found) {
  auto m = load_model_file("/nonexistent/model.onnx");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kNotFound);
}

TEST(OnnxImport, constant_nodes_become_initializers) {
  auto mp = relu_model();
  auto* c = add_node(mp.mutable_graph(), "Constant", {}, {"k"}, "const");
  auto* a = c->add_attribute();
  a->set_name("value_floats");
  a->set_type(onnx::AttributeProto::FLOATS);
  a->add_floats(1.0f);
  a->add_floats(2.0f);
  auto m = import(mp);
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  ASSERT_TRUE(m->graph.initializers.count("k"));
  EXPECT_EQ(m->graph.initializers.at("k").numel(), 2);
  EXPECT_EQ(m->graph.nodes.size(), 1u);
}

}  // namespace
}  // namespace hearth

namespace hearth {
namespace {

// Weights beyond 2 GiB live in external data; the protobuf itself stays small.
// The data file is sparse, so the test writes almost nothing to disk.
TEST(OnnxImport, loads_external_data_larger_than_2_gib) {
  TempDir dir;
  const int64_t count = (int64_t{1} << 31) / 4 + 1024;  // 2 GiB + 4 KiB of floats
  const int64_t bytes = count * 4;
  {
    std::ofstream f(dir.path / "big.bin", std::ios::binary);
    const float marker = 42.5f;
    f.write(reinterpret_cast<const char*>(&marker), 4);
    f.seekp(bytes - 4);
    f.write(reinterpret_cast<const char*>(&marker), 4);
  }
  auto mp = relu_model();
  auto* t = mp.mutable_graph()->add_initializer();
  t->set_name("big");
  t->set_data_type(onnx::TensorProto::FLOAT);
  t->add_dims(count);
  t->set_data_location(onnx::TensorProto::EXTERNAL);
  auto* kv = t->add_external_data();
  kv->set_key("location");
  kv->set_value("big.bin");
  std::string path = (dir.path / "model.onnx").string();
  std::ofstream(path, std::ios::binary) << mp.SerializeAsString();
  auto m = load_model_file(path);
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  const Tensor& big = m->graph.initializers.at("big");
  ASSERT_EQ(big.numel(), count);
  EXPECT_EQ(big.data<float>()[0], 42.5f);
  EXPECT_EQ(big.data<float>()[count - 1], 42.5f);
  EXPECT_EQ(big.data<float>()[count / 2], 0.0f);
}

}  // namespace
}  // namespace hearth

namespace hearth {
namespace {

// Found by the fuzzer: an external-data tensor with huge dims parsed from memory
// must be refused before anything is allocated.
TEST(OnnxImport, refuses_external_data_from_memory_before_allocating) {
  onnx::TensorProto tp;
  tp.set_name("y");
  tp.set_data_type(onnx::TensorProto::FLOAT);
  tp.add_dims(int64_t{1} << 44);
  tp.set_data_location(onnx::TensorProto::EXTERNAL);
  std::string bytes = tp.SerializeAsString();
  auto t = parse_tensor_proto(bytes.data(), bytes.size());
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("external data"), std::string::npos) << t.status().message();
}

}  // namespace
}  // namespace hearth
