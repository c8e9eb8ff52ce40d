// Hostile models: well-formed ONNX files whose attributes, constant inputs or shapes
// are chosen to crash, hang or corrupt the engine. Each must be refused with an error
// that says what is wrong (or run correctly); none may end in a signal, a hang, or an
// output whose declared size is not allocated. One test per op family, plus the
// size limits every kernel shares. The run-time fuzzer (fuzz/fuzz_model_run.cc)
// explores beyond these cases.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "graph/model_builder.h"
#include "runtime/session.h"

namespace hearth {
namespace {
using testing::ModelSketch;
using testing::set_float;
using testing::set_int;
using testing::set_ints;
using testing::set_string;
using Feeds = std::vector<std::pair<std::string, Tensor>>;

constexpr int kF = onnx::TensorProto::FLOAT;
constexpr int64_t kHuge = (int64_t{1} << 62) + 1;
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();

Tensor ones(const Shape& shape) {
  Tensor t(DataType::kFloat, shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = 1.0f;
  return t;
}

// Loads and runs `m` once; the first error (load or run), or the outputs.
Result<std::vector<Tensor>> load_and_run(const ModelSketch& m, const Feeds& feeds, const SessionOptions& options = {}) {
  const std::string bytes = m.bytes();
  HEARTH_ASSIGN_OR_RETURN(auto session, Session::load_bytes(bytes.data(), bytes.size(), "", options));
  return session->run(feeds);
}

// The model must be refused, at load or at run, with `text` in the message.
void expect_refused(const std::string& what, const ModelSketch& m, const Feeds& feeds, const std::string& text,
                    const SessionOptions& options = {}) {
  auto r = load_and_run(m, feeds, options);
  ASSERT_FALSE(r.ok()) << what << ": ran, producing " << (*r)[0].describe();
  EXPECT_NE(r.status().message().find(text), std::string::npos) << what << ": " << r.status().to_string();
}

// x: float[1,1,4,4] -> op -> y.
ModelSketch one_node(const std::string& op, const std::vector<std::string>& in, onnx::NodeProto** node,
                     const Shape& x = {1, 1, 4, 4}) {
  ModelSketch m;
  m.input("x", kF, x);
  *node = m.node(op, in, {"y"});
  m.output("y");
  return m;
}

TEST(HostileModel, conv_attributes_are_refused_by_name) {
  struct Case {
    const char* attr;
    std::vector<int64_t> value;
    const char* text;
  } cases[] = {{"strides", {0, 0}, "strides must be positive"},
               {"strides", {-1, 1}, "strides must be positive"},
               {"dilations", {0, 1}, "dilations must be positive"},
               {"kernel_shape", {0, 2}, "kernel_shape must be positive"},
               {"pads", {-1, 0, 0, 0}, "pads must be non-negative"},
               {"pads", {kMax, kMax, 0, 0}, "over the limit"},
               {"dilations", {kMax, 1}, "over the limit"},
               {"strides", {kMax, 1}, "over the limit"}};
  for (const auto& c : cases) {
    for (const char* op : {"Conv", "ConvInteger"}) {
      const bool integer = std::string(op) == "ConvInteger";
      ModelSketch m;
      m.input("x", integer ? onnx::TensorProto::UINT8 : kF, {1, 1, 4, 4});
      if (integer) {
        std::vector<uint8_t> w(4, 1);
        auto* t = m.graph()->add_initializer();
        t->set_name("w");
        t->set_data_type(onnx::TensorProto::UINT8);
        for (int64_t d : {1, 1, 2, 2}) t->add_dims(d);
        t->set_raw_data(w.data(), w.size());
      } else {
        m.floats("w", {1, 1, 2, 2});
      }
      set_ints(m.node(op, {"x", "w"}, {"y"}), c.attr, c.value);
      m.output("y");
      Tensor x = integer ? Tensor::zeros(DataType::kUInt8, {1, 1, 4, 4}) : ones({1, 1, 4, 4});
      expect_refused(std::string(op) + " " + c.attr, m, {{"x", x}}, c.text);
    }
  }
}

TEST(HostileModel, conv_group_and_weight_shapes_are_checked) {
  for (int64_t group : {int64_t{0}, int64_t{-3}, kHuge, kMax}) {
    ModelSketch m;
    m.input("x", kF, {1, 1, 4, 4}).floats("w", {1, 1, 2, 2});
    set_int(m.node("Conv", {"x", "w"}, {"y"}), "group", group);
    m.output("y");
    expect_refused("Conv group", m, {{"x", ones({1, 1, 4, 4})}}, "group");
  }
  // ConvTranspose: W [C, M/group, k, k]; M = 4 * (2^62 + 1) wraps to 4 unless checked.
  ModelSketch m;
  m.input("x", kF, {1, 0, 5, 5}).floats("w", {0, 4, 3, 3});
  set_int(m.node("ConvTranspose", {"x", "w"}, {"y"}), "group", kHuge);
  m.output("y");
  expect_refused("ConvTranspose group", m, {{"x", Tensor(DataType::kFloat, {1, 0, 5, 5})}}, "group");
  // A rank-2 X and rank-1 weights reach libonnx's shape inference, which reads dims past them.
  ModelSketch r;
  r.input("x", kF, {4, 4}).floats("w", {2});
  r.node("ConvTranspose", {"x", "w"}, {"y"});
  r.output("y");
  expect_refused("ConvTranspose ranks", r, {{"x", ones({4, 4})}}, "rank");
}

TEST(HostileModel, pool_windows_cannot_overflow) {
  onnx::NodeProto* n = nullptr;
  ModelSketch m = one_node("MaxPool", {"x"}, &n, {1, 1, 5});
  set_ints(n, "kernel_shape", {int64_t{1} << 62});
  set_ints(n, "dilations", {4});
  expect_refused("MaxPool kernel", m, {{"x", ones({1, 1, 5})}}, "over the limit");
  ModelSketch p = one_node("AveragePool", {"x"}, &n);
  set_ints(n, "kernel_shape", {2, 2});
  set_ints(n, "pads", {0, kMax, 0, kMax});
  expect_refused("AveragePool pads", p, {{"x", ones({1, 1, 4, 4})}}, "over the limit");
}

TEST(HostileModel, shapes_whose_size_overflows_are_refused_naming_the_node) {
  struct Case {
    const char* op;
    std::vector<int64_t> value;
  } cases[] = {{"Tile", {kHuge, 4, 1, 1}},        {"Tile", {int64_t{1} << 30, int64_t{1} << 30, 1, 1}},
               {"Expand", {kHuge, 4, 4, 4}},      {"Reshape", {kHuge, 4}},
               {"ConstantOfShape", {kHuge, 4}},   {"ConstantOfShape", {int64_t{1} << 31, int64_t{1} << 31, int64_t{1} << 31}}};
  for (const auto& c : cases) {
    ModelSketch m;
    const bool unary = std::string(c.op) == "ConstantOfShape";
    m.input("x", kF, {1, 1, 4, 4}).ints("s", c.value);
    if (unary) m.node(c.op, {"s"}, {"y"});
    else m.node(c.op, {"x", "s"}, {"y"});
    m.output("y");
    const std::string what = std::string(c.op) + " " + shape_str(c.value);
    auto r = load_and_run(m, {{"x", ones({1, 1, 4, 4})}});
    ASSERT_FALSE(r.ok()) << what << " produced " << (*r)[0].describe();
    const std::string& msg = r.status().message();
    EXPECT_NE(msg.find(c.op), std::string::npos) << what << ": " << msg;
    EXPECT_TRUE(msg.find("64 bits") != std::string::npos || msg.find("cannot reshape") != std::string::npos)
        << what << ": " << msg;
  }
}

TEST(HostileModel, tensor_limit_names_node_shape_and_limit) {
  ModelSketch m;
  m.ints("s", {1024, 1024, 64});  // 256 MiB of float
  m.node("ConstantOfShape", {"s"}, {"y"});
  m.output("y");
  SessionOptions options;
  options.max_tensor_bytes = 1 << 20;
  options.fold_constants = false;
  auto r = load_and_run(m, {}, options);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
  const std::string& msg = r.status().message();
  for (const char* part : {"ConstantOfShape", "[1024,1024,64]", "268435456", "1048576", "max_tensor_bytes"})
    EXPECT_NE(msg.find(part), std::string::npos) << part << " missing from: " << msg;
  // An empty tensor's other dims count: [2^40, 0] costs no memory but means 2^40 iterations.
  ModelSketch e;
  e.ints("s", {int64_t{1} << 40, 0});
  e.node("ConstantOfShape", {"s"}, {"y"});
  e.output("y");
  expect_refused("empty but huge", e, {}, "counting its zero dims as ones", options);
  // Inputs too: a caller's empty tensor with huge dims.
  onnx::NodeProto* n = nullptr;
  ModelSketch relu = one_node("Relu", {"x"}, &n, {-1, -1});
  expect_refused("empty input", relu, {{"x", Tensor(DataType::kFloat, {int64_t{1} << 40, 0})}},
                 "input 'x'", options);
}

TEST(HostileModel, memory_limit_covers_a_whole_run) {
  // Two live 1 MiB tensors under a 1.5 MiB limit: each alone fits, together they do not.
  ModelSketch m;
  m.input("x", kF, {512, 512});
  m.node("Relu", {"x"}, {"a"});
  m.node("Sigmoid", {"x"}, {"b"});
  m.node("Add", {"a", "b"}, {"y"});
  m.output("y");
  SessionOptions options;
  options.max_memory_bytes = 3 << 19;
  expect_refused("memory limit", m, {{"x", ones({512, 512})}}, "max_memory_bytes", options);
  options.max_memory_bytes = 8 << 20;
  EXPECT_TRUE(load_and_run(m, {{"x", ones({512, 512})}}, options).ok());
}

TEST(HostileModel, block_and_diagonal_attributes_are_bounded) {
  onnx::NodeProto* n = nullptr;
  for (int64_t b : {int64_t{0}, int64_t{-2}, int64_t{1} << 32, kHuge, kMax}) {
    for (const char* op : {"DepthToSpace", "SpaceToDepth"}) {
      ModelSketch m = one_node(op, {"x"}, &n, {1, 4, 2, 2});
      set_int(n, "blocksize", b);
      expect_refused(op, m, {{"x", ones({1, 4, 2, 2})}}, "blocksize");
    }
  }
  for (int64_t k : {kMin, kMax}) {
    ModelSketch m = one_node("EyeLike", {"x"}, &n, {4, 4});
    set_int(n, "k", k);
    set_int(n, "dtype", onnx::TensorProto::UINT8);
    expect_refused("EyeLike k", m, {{"x", ones({4, 4})}}, "k ");
  }
}

TEST(HostileModel, pads_and_splits_cannot_wrap) {
  for (auto pads : {std::vector<int64_t>{-kMax, -kMax}, {kMin, 0}, {kMax, kMax}, {-3, 0}}) {
    ModelSketch m;
    m.input("x", kF, {2}).ints("p", pads);
    m.node("Pad", {"x", "p"}, {"y"});
    m.output("y");
    expect_refused("Pad " + shape_str(pads), m, {{"x", ones({2})}}, "pads");
  }
  ModelSketch s;
  s.input("x", kF, {4}).ints("split", {int64_t{1} << 62, int64_t{1} << 62, int64_t{1} << 62, (int64_t{1} << 62) + 4});
  s.node("Split", {"x", "split"}, {"a", "b", "c", "d"});
  s.output("a");
  expect_refused("Split sum", s, {{"x", ones({4})}}, "split");
}

TEST(HostileModel, resize_scales_must_be_finite_and_bounded) {
  for (float scale : {std::numeric_limits<float>::infinity(), 1e30f, -1.0f, std::nanf("")}) {
    ModelSketch m;
    m.input("x", kF, {1, 1, 4, 4});
    auto* t = m.graph()->add_initializer();
    t->set_name("scales");
    t->set_data_type(kF);
    t->add_dims(4);
    const float v[4] = {1, 1, scale, 1};
    t->set_raw_data(v, sizeof(v));
    m.node("Resize", {"x", "", "scales"}, {"y"});
    m.output("y");
    expect_refused("Resize scale", m, {{"x", ones({1, 1, 4, 4})}}, "scale");
  }
}

TEST(HostileModel, recurrent_ops_check_their_sizes) {
  // LSTM over an empty X whose sequence length is huge: no step may run.
  ModelSketch m;
  m.input("x", kF, {-1, 1, 0}).floats("w", {1, 4, 0}).floats("r", {1, 4, 1});
  auto* n = m.node("LSTM", {"x", "w", "r"}, {"", "y_h"});
  set_int(n, "hidden_size", 1);
  m.output("y_h");
  auto r = load_and_run(m, {{"x", Tensor(DataType::kFloat, {int64_t{1} << 40, 1, 0})}});
  EXPECT_FALSE(r.ok());  // over the tensor limit counting the empty dims as ones
  // hidden_size whose gate count overflows.
  ModelSketch h;
  h.input("x", kF, {1, 1, 2}).floats("w", {1, 4, 2}).floats("r", {1, 4, 1});
  set_int(h.node("LSTM", {"x", "w", "r"}, {"", "y_h"}), "hidden_size", int64_t{1} << 62);
  h.output("y_h");
  expect_refused("LSTM hidden_size", h, {{"x", ones({1, 1, 2})}}, "hidden_size");
}

TEST(HostileModel, signal_ops_bound_their_work) {
  ModelSketch m;
  m.input("x", kF, {1, 1, 1}).ints("n", {int64_t{1} << 30}, {});
  m.node("DFT", {"x", "n"}, {"y"});
  m.output("y");
  SessionOptions small;
  small.max_tensor_bytes = 64 << 20;
  expect_refused("DFT length", m, {{"x", ones({1, 1, 1})}}, "over the limit", small);
  // A window computed in a temporary double tensor before the output: temporaries are
  // held to the tensor limit too.
  ModelSketch w;
  w.ints("size", {int64_t{1} << 31}, {});
  w.node("HannWindow", {"size"}, {"y"});
  w.output("y");
  expect_refused("HannWindow size", w, {}, "over the limit", small);
  // MelWeightMatrix: an upper edge far past the FFT bins writes only the bins there
  // are (it used to loop up to the edge); past what a bin index can hold, it is refused.
  auto mel = [](float upper) {
    ModelSketch g;
    g.ints("bins", {1}, {}).ints("dft", {2}, {}).ints("rate", {1}, {});
    for (const char* name : {"lo", "hi"}) {
      auto* t = g.graph()->add_initializer();
      t->set_name(name);
      t->set_data_type(kF);
      const float v = std::string(name) == "lo" ? 0.0f : upper;
      t->set_raw_data(&v, sizeof(v));
    }
    g.node("MelWeightMatrix", {"bins", "dft", "rate", "lo", "hi"}, {"y"});
    g.output("y");
    return g;
  };
  auto r = load_and_run(mel(3e18f), {});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ((*r)[0].shape(), (Shape{2, 1}));
  expect_refused("MelWeightMatrix upper edge", mel(3e38f), {}, "upper_edge_hertz");
}

TEST(HostileModel, detection_and_text_ops_do_not_loop_on_empty_or_huge_counts) {
  // TfIdfVectorizer with an astronomically large max_skip_count finishes at once.
  ModelSketch t;
  t.input("x", onnx::TensorProto::INT64, {1, 4});
  auto* n = t.node("TfIdfVectorizer", {"x"}, {"y"});
  set_int(n, "max_skip_count", kMax);
  set_int(n, "min_gram_length", 1);
  set_int(n, "max_gram_length", 2);
  set_string(n, "mode", "TF");
  set_ints(n, "ngram_counts", {0, 2});
  set_ints(n, "ngram_indexes", {0, 1, 2});
  set_ints(n, "pool_int64s", {1, 2, 1, 2});
  t.output("y");
  auto r = load_and_run(t, {{"x", Tensor::from_vector<int64_t>({1, 2, 1, 2}, {1, 4})}});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  // NonMaxSuppression over many classes of no boxes.
  ModelSketch s;
  s.input("boxes", kF, {1, 0, 4}).input("scores", kF, {1, -1, 0}).ints("k", {1});
  s.node("NonMaxSuppression", {"boxes", "scores", "k"}, {"y"});
  s.output("y");
  r = load_and_run(s, {{"boxes", Tensor(DataType::kFloat, {1, 0, 4})},
                       {"scores", Tensor(DataType::kFloat, {1, int64_t{1} << 24, 0})}});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ((*r)[0].shape(), (Shape{0, 3}));
}

TEST(HostileModel, einsum_generic_loop_has_a_budget) {
  ModelSketch m;
  m.input("a", kF, {1 << 20}).input("b", kF, {1 << 20});
  set_string(m.node("Einsum", {"a", "b"}, {"y"}), "equation", "i,j->");
  m.output("y");
  expect_refused("Einsum i,j->", m, {{"a", ones({1 << 20})}, {"b", ones({1 << 20})}}, "generic loop");
}

TEST(HostileModel, onehot_ignores_nan_and_huge_indices) {
  ModelSketch m;
  m.input("i", kF, {3}).ints("depth", {4}, {}).floats("values", {2});
  m.node("OneHot", {"i", "depth", "values"}, {"y"});
  m.output("y");
  auto r = load_and_run(m, {{"i", Tensor::from_vector<float>({std::nanf(""), 1e30f, 1.0f}, {3})}});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  ASSERT_EQ((*r)[0].shape(), (Shape{3, 4}));
}

TEST(HostileModel, nodes_must_match_their_schema) {
  ModelSketch no_out;
  no_out.input("x", kF, {2});
  no_out.node("Relu", {"x"}, {});
  no_out.output("x");
  expect_refused("Relu without outputs", no_out, {{"x", ones({2})}}, "does not match its ONNX schema");
  ModelSketch one_in;
  one_in.input("x", kF, {2});
  one_in.node("Add", {"x"}, {"y"});
  one_in.output("y");
  expect_refused("Add with one input", one_in, {{"x", ones({2})}}, "does not match its ONNX schema");
  ModelSketch scan;
  scan.input("x", kF, {2, 2});
  set_int(scan.node("Scan", {"x"}, {"y"}), "num_scan_inputs", 1);  // no body
  scan.output("y");
  expect_refused("Scan without body", scan, {{"x", ones({2, 2})}}, "body");
  ModelSketch internal;
  internal.input("x", kF, {1, 8, 2, 2});
  internal.node("ReorderInput", {"x"}, {"y"})->set_domain("ai.hearth.nchwc");
  internal.output("y");
  expect_refused("internal domain", internal, {{"x", ones({1, 8, 2, 2})}}, "reserved for Hearth");
}

// A Loop body graph: (i, cond) -> (cond, i as a scan output), running `inner` (a
// nested Loop node) when given.
void fill_loop_body(onnx::GraphProto* g, const std::string& tag, bool nested) {
  g->set_name(tag);
  testing::set_tensor_type(g->add_input(), tag + "_i", onnx::TensorProto::INT64, {});
  testing::set_tensor_type(g->add_input(), tag + "_c", onnx::TensorProto::BOOL, {});
  testing::set_tensor_type(g->add_output(), tag + "_c_out", onnx::TensorProto::BOOL, {});
  testing::add_node(g, "Identity", {tag + "_c"}, {tag + "_c_out"}, tag + "_cond");
  std::string scan_source = tag + "_i";
  if (nested) {
    auto* inner = testing::add_node(g, "Loop", {"m", tag + "_c"}, {tag + "_inner_ys"}, tag + "_inner_loop");
    auto* a = inner->add_attribute();
    a->set_name("body");
    a->set_type(onnx::AttributeProto::GRAPH);
    fill_loop_body(a->mutable_g(), tag + "_inner", false);
    testing::add_node(g, "ReduceSum", {tag + "_inner_ys"}, {tag + "_sum"}, tag + "_reduce");
    scan_source = tag + "_sum";
  }
  testing::set_tensor_type(g->add_output(), tag + "_scan", onnx::TensorProto::INT64, {});
  testing::add_node(g, "Identity", {scan_source}, {tag + "_scan"}, tag + "_scan_id");
}

TEST(HostileModel, nested_loops_share_one_iteration_budget) {
  // Loop(M = 2^20) { Loop(M = 2^20) { ... } }: 2^40 iterations unless the run is bounded.
  ModelSketch m(13);
  m.ints("m", {int64_t{1} << 20}, {});
  auto* cond = m.graph()->add_initializer();
  cond->set_name("c0");
  cond->set_data_type(onnx::TensorProto::BOOL);
  const bool t = true;
  cond->set_raw_data(&t, 1);
  auto* loop = m.node("Loop", {"m", "c0"}, {"ys"});
  auto* a = loop->add_attribute();
  a->set_name("body");
  a->set_type(onnx::AttributeProto::GRAPH);
  fill_loop_body(a->mutable_g(), "outer", true);
  m.output("ys");
  SessionOptions options;
  options.max_loop_iterations = 1 << 16;  // the default, 2^24, takes ~20 s with this body
  expect_refused("nested loops", m, {}, "budget of 65536", options);
}

TEST(HostileModel, scan8_inputs_must_share_the_batch) {
  ModelSketch m(8);
  m.input("state", kF, {1, 2}).input("xs", kF, {3, 2, 2});
  auto* n = m.node("Scan", {"", "state", "xs"}, {"state_out", "ys"});
  set_int(n, "num_scan_inputs", 1);
  auto* a = n->add_attribute();
  a->set_name("body");
  a->set_type(onnx::AttributeProto::GRAPH);
  auto* g = a->mutable_g();
  g->set_name("body");
  testing::set_tensor_type(g->add_input(), "s", kF, {2});
  testing::set_tensor_type(g->add_input(), "x", kF, {2});
  testing::set_tensor_type(g->add_output(), "s_out", kF, {2});
  testing::set_tensor_type(g->add_output(), "y", kF, {2});
  testing::add_node(g, "Add", {"s", "x"}, {"s_out"}, "add");
  testing::add_node(g, "Identity", {"x"}, {"y"}, "id");
  m.output("ys");
  expect_refused("Scan-8 batch", m, {{"state", ones({1, 2})}, {"xs", ones({3, 2, 2})}}, "batch size");
}

TEST(HostileModel, empty_inputs_with_huge_dims_do_not_allocate_or_loop) {
  // Each would loop over (or allocate) the product of the non-zero dims: 2^26 here,
  // well inside the default tensor limit, and must finish at once.
  const Shape empty = {1 << 13, 1 << 13, 0};
  onnx::NodeProto* n = nullptr;
  ModelSketch ln = one_node("LayerNormalization", {"x", "scale"}, &n, {-1, -1, -1});
  ln.floats("scale", {1});
  set_int(n, "axis", 1);
  auto r = load_and_run(ln, {{"x", Tensor(DataType::kFloat, empty)}});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ((*r)[0].shape(), empty);
  ModelSketch unique;
  unique.input("x", kF, {-1, -1});
  auto* u = unique.node("Unique", {"x"}, {"y", "idx", "inverse", "counts"});
  set_int(u, "axis", 1);
  unique.output("inverse");
  r = load_and_run(unique, {{"x", Tensor(DataType::kFloat, {0, 1 << 20})}});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ((*r)[0].shape(), (Shape{1 << 20}));
}

}  // namespace
}  // namespace hearth
