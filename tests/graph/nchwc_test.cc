// The blocked-layout pass (graph/nchwc.h) and its kernels: every model runs
// with the pass on and off on the same input and must agree; the tests also
// count the reorders the pass leaves, so a regression to reordering at every
// node fails here rather than only in the benchmark.
#include "graph/nchwc.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>

#include "core/machine.h"
#include "graph/model_builder.h"
#include "graph/onnx_import.h"
#include "graph/optimizer.h"
#include "kernels/nchwc_layout.h"
#include "runtime/session.h"
#include "runtime/session_pair.h"

namespace hearth {
namespace {
using testing::add_float_initializer;
using testing::add_node;
using testing::set_tensor_type;

using testing::random_values;

void set_ints(onnx::NodeProto* n, const std::string& name, const std::vector<int64_t>& v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t x : v) a->add_ints(x);
}

void set_int(onnx::NodeProto* n, const std::string& name, int64_t v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}

onnx::ModelProto empty_model() {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(13);
  m.mutable_graph()->set_name("nchwc");
  return m;
}

// W[c_out, c_in/group, k, k] and B[c_out] with deterministic values.
void add_conv(onnx::GraphProto* g, const std::string& x, const std::string& y, int64_t c_in, int64_t c_out,
              int64_t k, int64_t group = 1, int64_t pad = 0, uint32_t seed = 1) {
  const int64_t per = c_in / group * k * k;
  add_float_initializer(g, y + "_W", {c_out, c_in / group, k, k}, random_values(c_out * per, seed, -0.5f, 0.5f));
  add_float_initializer(g, y + "_B", {c_out}, random_values(c_out, seed + 1));
  auto* n = add_node(g, "Conv", {x, y + "_W", y + "_B"}, {y}, y);
  if (group != 1) set_int(n, "group", group);
  if (pad) set_ints(n, "pads", {pad, pad, pad, pad});
}

// A bare Conv node (no bias) whose attributes the caller sets.
onnx::NodeProto* add_conv_node(onnx::GraphProto* g, const std::string& x, const std::string& y, int64_t c_in,
                               int64_t c_out, int64_t k, uint32_t seed) {
  add_float_initializer(g, y + "_W", {c_out, c_in, k, k}, random_values(c_out * c_in * k * k, seed, -0.2f, 0.2f));
  return add_node(g, "Conv", {x, y + "_W"}, {y}, y);
}

using testing::Feeds;
using testing::SessionPair;

// The blocked layout against the same optimizer without it.
SessionPair run_both(const onnx::ModelProto& m, const Feeds& feeds, int threads = 1) {
  SessionOptions plain;
  plain.blocked_layout = false;
  plain.intra_op_threads = threads;
  SessionOptions blocked;
  blocked.intra_op_threads = threads;
  return testing::run_session_pair(m, feeds, plain, blocked);
}

void expect_close(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t k = 0; k < a.size(); ++k) {
    ASSERT_EQ(a[k].shape(), b[k].shape()) << "output " << k;
    double err = 0, ref = 0;
    for (int64_t i = 0; i < a[k].numel(); ++i) {
      const double d = double(a[k].data<float>()[i]) - b[k].data<float>()[i];
      err += d * d;
      ref += double(a[k].data<float>()[i]) * a[k].data<float>()[i];
    }
    EXPECT_LE(std::sqrt(err), 1e-5 * std::sqrt(ref) + 1e-7) << "output " << k;
  }
}

Tensor random_input(const Shape& shape, uint32_t seed) {
  return Tensor::from_vector<float>(random_values(shape_numel(shape), seed, -2.0f, 2.0f), shape);
}

// A MobileNet/SqueezeNet/EfficientNet-style block: conv, depthwise conv with a
// residual, pools, channel concat, squeeze-excite multiply, scalar scale.
onnx::ModelProto cnn_block() {
  auto m = empty_model();
  auto* g = m.mutable_graph();
  set_tensor_type(g->add_input(), "x", onnx::TensorProto::FLOAT, {-1, 8, 12, 12});
  set_tensor_type(g->add_output(), "y", onnx::TensorProto::FLOAT, {-1, 24, 3, 3});
  add_conv(g, "x", "c1", 8, 16, 3, 1, 1, 10);
  add_node(g, "Relu", {"c1"}, {"r1"}, "relu1");
  add_conv(g, "r1", "c2", 16, 16, 3, 16, 1, 20);  // depthwise
  add_node(g, "Add", {"c2", "r1"}, {"a"}, "residual");
  auto* mp = add_node(g, "MaxPool", {"a"}, {"p"}, "maxpool");
  set_ints(mp, "kernel_shape", {2, 2});
  set_ints(mp, "strides", {2, 2});
  add_conv(g, "p", "c3", 16, 8, 1, 1, 0, 30);
  auto* cat = add_node(g, "Concat", {"p", "c3"}, {"cat"}, "concat");
  set_int(cat, "axis", -3);
  add_node(g, "GlobalAveragePool", {"cat"}, {"gap"}, "gap");
  add_node(g, "Sigmoid", {"gap"}, {"se"}, "sigmoid");
  add_node(g, "Mul", {"cat", "se"}, {"scaled"}, "excite");
  // ceil_mode with count_include_pad: an overhang oneDNN cannot express (the reference runs).
  auto* ap = add_node(g, "AveragePool", {"scaled"}, {"avg"}, "avgpool");
  set_ints(ap, "kernel_shape", {3, 3});
  set_ints(ap, "strides", {2, 2});
  set_int(ap, "ceil_mode", 1);
  set_int(ap, "count_include_pad", 1);
  add_float_initializer(g, "half", {}, {0.5f});
  add_node(g, "Mul", {"half", "avg"}, {"avg_half"}, "scale");
  add_node(g, "Relu", {"avg_half"}, {"y"}, "relu_out");
  return m;
}

TEST(BlockedLayout, cnn_block_stays_blocked_and_matches_plain) {
  for (int threads : {1, 2}) {
    for (int64_t n : {1, 3}) {
      SessionPair o = run_both(cnn_block(), {{"x", random_input({n, 8, 12, 12}, 7)}}, threads);
      expect_close(o.reference, o.tested);
      EXPECT_EQ(o.tested_ops["ReorderOutput"], 1) << "only the model output is reordered back";
      EXPECT_EQ(o.tested_ops["ReorderInput"], 0);
      EXPECT_EQ(o.tested_ops["GlobalAveragePool"], 1);
    }
  }
}

// A ResNet basic block at 32 channels: its 3x3 stride-1 convolutions (one fused
// with the residual Add and Relu) are what the blocked path runs as Winograd
// F(2x2, 3x3); the plain path runs them on oneDNN. Odd sizes leave partial tiles.
TEST(BlockedLayout, residual_3x3_block_matches_plain) {
  auto m = empty_model();
  auto* g = m.mutable_graph();
  set_tensor_type(g->add_input(), "x", onnx::TensorProto::FLOAT, {-1, 8, 9, 11});
  set_tensor_type(g->add_output(), "y", onnx::TensorProto::FLOAT, {-1, 32, 9, 11});
  add_conv(g, "x", "c1", 8, 32, 3, 1, 1, 40);
  add_node(g, "Relu", {"c1"}, {"r1"}, "relu1");
  add_conv(g, "r1", "c2", 32, 32, 3, 1, 1, 50);
  add_node(g, "Relu", {"c2"}, {"r2"}, "relu2");
  add_conv(g, "r2", "c3", 32, 32, 3, 1, 1, 60);
  add_node(g, "Add", {"c3", "r1"}, {"sum"}, "residual");
  add_node(g, "Relu", {"sum"}, {"y"}, "relu_out");
  for (int threads : {1, 2})
    for (int64_t n : {1, 2}) {
      SessionPair o = run_both(m, {{"x", random_input({n, 8, 9, 11}, 11)}}, threads);
      expect_close(o.reference, o.tested);
    }
}

TEST(BlockedLayout, every_plain_reader_shares_one_reorder) {
  auto m = empty_model();
  auto* g = m.mutable_graph();
  set_tensor_type(g->add_input(), "x", onnx::TensorProto::FLOAT, {1, 3, 9, 9});
  set_tensor_type(g->add_output(), "c1", onnx::TensorProto::FLOAT, {1, 16, 9, 9});
  set_tensor_type(g->add_output(), "flat", onnx::TensorProto::FLOAT, {1, 8 * 81});
  set_tensor_type(g->add_output(), "shape", onnx::TensorProto::INT64, {4});
  add_conv(g, "x", "c1", 3, 16, 3, 1, 1, 40);  // 3 input channels: reads plain, writes blocked
  add_conv(g, "c1", "c2", 16, 8, 1, 1, 0, 50);
  add_node(g, "Flatten", {"c2"}, {"flat"}, "flatten");
  add_node(g, "Shape", {"c1"}, {"shape"}, "shape");  // a second plain reader of c1
  SessionPair o = run_both(m, {{"x", random_input({1, 3, 9, 9}, 8)}});
  ASSERT_EQ(o.reference.size(), 3u);
  expect_close({o.reference[0], o.reference[1]}, {o.tested[0], o.tested[1]});
  EXPECT_EQ(o.tested[2].data<int64_t>()[1], 16);
  EXPECT_EQ(o.tested_ops["ReorderOutput"], 2) << "c1 once for both readers, c2 once for Flatten";
}

TEST(BlockedLayout, plain_residual_is_reordered_in) {
  auto m = empty_model();
  auto* g = m.mutable_graph();
  set_tensor_type(g->add_input(), "x", onnx::TensorProto::FLOAT, {1, 8, 6, 6});
  set_tensor_type(g->add_input(), "skip", onnx::TensorProto::FLOAT, {1, 16, 6, 6});
  set_tensor_type(g->add_output(), "y", onnx::TensorProto::FLOAT, {1, 16, 6, 6});
  add_conv(g, "x", "c", 8, 16, 3, 1, 1, 60);
  add_node(g, "Add", {"c", "skip"}, {"sum"}, "add");
  add_node(g, "Relu", {"sum"}, {"y"}, "relu");
  SessionPair o = run_both(m, {{"x", random_input({1, 8, 6, 6}, 9)}, {"skip", random_input({1, 16, 6, 6}, 10)}});
  expect_close(o.reference, o.tested);
  EXPECT_EQ(o.tested_ops["ReorderInput"], 1);
  EXPECT_EQ(o.tested_ops["ReorderOutput"], 1);
  EXPECT_EQ(o.tested_ops["Conv"], 1);  // Conv + Add + Relu, fused and blocked
}

// A per-channel scale and shift after a convolution (as unfused normalizations
// export) stay in the blocked layout: the constants get a blocked copy.
TEST(BlockedLayout, per_channel_constants_are_blocked_too) {
  auto m = empty_model();
  auto* g = m.mutable_graph();
  set_tensor_type(g->add_input(), "x", onnx::TensorProto::FLOAT, {2, 8, 5, 5});
  set_tensor_type(g->add_output(), "y", onnx::TensorProto::FLOAT, {2, 8, 5, 5});
  add_conv(g, "x", "c", 8, 16, 3, 1, 1, 80);
  add_float_initializer(g, "scale", {1, 16, 1, 1}, random_values(16, 81, 0.5f, 2.0f));
  add_float_initializer(g, "shift", {16, 1, 1}, random_values(16, 82));
  add_node(g, "Mul", {"c", "scale"}, {"scaled"}, "scale");
  add_node(g, "Add", {"shift", "scaled"}, {"shifted"}, "shift");
  add_node(g, "Relu", {"shifted"}, {"r"}, "relu");
  add_conv(g, "r", "y", 16, 8, 1, 1, 0, 84);
  SessionPair o = run_both(m, {{"x", random_input({2, 8, 5, 5}, 83)}});
  expect_close(o.reference, o.tested);
  EXPECT_EQ(o.tested_ops["ReorderOutput"], 1) << "only the model output: the chain between the convs stays blocked";
  EXPECT_EQ(o.tested_ops["Mul"], 1);
  EXPECT_EQ(o.tested_ops["Add"], 1);
}

TEST(BlockedLayout, leaves_graphs_without_blockable_convs_alone) {
  auto m = empty_model();
  auto* g = m.mutable_graph();
  set_tensor_type(g->add_input(), "x", onnx::TensorProto::FLOAT, {1, 8, 6, 6});
  set_tensor_type(g->add_output(), "y", onnx::TensorProto::FLOAT, {1, 12, 6, 6});
  add_conv(g, "x", "c", 8, 12, 3, 1, 1, 70);  // 12 output channels: not a multiple of 8
  add_node(g, "Relu", {"c"}, {"y"}, "relu");
  const std::string bytes = m.SerializeAsString();
  auto model = load_model_bytes(bytes.data(), bytes.size(), ExternalData{});
  ASSERT_TRUE(model.ok()) << model.status().message();
  auto stats = optimize_graph(*model);
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->nchwc_nodes, 0);
  for (const auto& n : model->graph.nodes) EXPECT_NE(n.domain, kNchwcDomain) << n.describe();
}

// The blocked ops are reachable from a model file: they must reject what they cannot read.
// Model files may not use Hearth's own domains (only its rewrites make such nodes), so
// tests write them under a stand-in domain and move them over after import.
constexpr char kStandIn[] = "test.blocked";

Result<std::unique_ptr<Session>> load_blocked(const onnx::ModelProto& m) {
  const std::string bytes = m.SerializeAsString();
  HEARTH_ASSIGN_OR_RETURN(Model model, load_model_bytes(bytes.data(), bytes.size(), ""));
  for (Node& n : model.graph.nodes)
    if (n.domain == kStandIn) n.domain = kNchwcDomain;
  model.opsets[kNchwcDomain] = 1;
  return Session::create(std::move(model));
}

onnx::ModelProto single_blocked_op(const std::string& op, const std::vector<int64_t>& x_dims) {
  auto m = empty_model();
  auto* imp = m.add_opset_import();
  imp->set_domain(kStandIn);
  imp->set_version(1);
  auto* g = m.mutable_graph();
  set_tensor_type(g->add_input(), "x", onnx::TensorProto::FLOAT, x_dims);
  set_tensor_type(g->add_output(), "y", onnx::TensorProto::FLOAT, {});
  g->mutable_output(0)->mutable_type()->mutable_tensor_type()->clear_shape();
  auto* n = add_node(g, op, {"x"}, {"y"}, "op");
  n->set_domain(kStandIn);
  if (op == "MaxPool") set_ints(n, "kernel_shape", {2, 2});
  return m;
}

TEST(BlockedLayout, blocked_ops_reject_malformed_tensors) {
  struct Case {
    std::string op;
    Shape shape;
  } cases[] = {{"ReorderOutput", {1, 2, 3, 3, 7}}, {"ReorderOutput", {2, 8}}, {"ReorderInput", {1, 12, 3, 3}},
               {"GlobalAveragePool", {1, 2, 4, 4}}, {"MaxPool", {1, 2, 4, 4, 5}}};
  for (const auto& c : cases) {
    auto s = load_blocked(single_blocked_op(c.op, c.shape));
    ASSERT_TRUE(s.ok()) << s.status().message();
    auto y = (*s)->run({{"x", random_input(c.shape, 11)}});
    ASSERT_FALSE(y.ok()) << c.op << " " << shape_str(c.shape);
    EXPECT_NE(y.status().message().find(c.op), std::string::npos) << y.status().message();
  }
}

// The hand-written blocked pools (kernels/pool_nchwc.h) against the plain path
// (oneDNN or the reference) over window shapes, strides, pads, ceil_mode and
// count_include_pad, on sizes where the last window overhangs.
TEST(BlockedLayout, pools_match_plain_over_window_geometries) {
  struct Case {
    std::vector<int64_t> kernel, strides, pads;
  };
  const std::vector<Case> cases = {
      {{3, 3}, {2, 2}, {1, 1, 1, 1}}, {{2, 2}, {2, 2}, {0, 0, 0, 0}}, {{3, 3}, {1, 1}, {1, 1, 1, 1}},
      {{1, 1}, {1, 1}, {0, 0, 0, 0}}, {{3, 2}, {2, 3}, {2, 1, 0, 1}}, {{4, 4}, {3, 3}, {1, 2, 3, 0}},
      {{5, 5}, {1, 2}, {2, 2, 2, 2}}, {{2, 3}, {1, 1}, {0, 0, 1, 2}}, {{4, 4}, {1, 1}, {3, 3, 3, 3}},
  };
  int checked = 0;
  for (const char* op : {"MaxPool", "AveragePool"}) {
    for (const Case& c : cases) {
      for (int64_t ceil_mode : {0, 1}) {
        for (int64_t include_pad : {0, 1}) {
          if (std::string(op) == "MaxPool" && include_pad) continue;
          for (const Shape& in : {Shape{1, 8, 9, 11}, Shape{2, 16, 12, 7}}) {
            auto m = empty_model();
            auto* g = m.mutable_graph();
            set_tensor_type(g->add_input(), "x", onnx::TensorProto::FLOAT, {-1, in[1], in[2], in[3]});
            set_tensor_type(g->add_output(), "y", onnx::TensorProto::FLOAT, {});
            add_conv(g, "x", "c", in[1], 16, 1, 1, 0, 40);  // makes the pool's input blocked
            auto* p = add_node(g, op, {"c"}, {"p"}, "pool");
            set_ints(p, "kernel_shape", c.kernel);
            set_ints(p, "strides", c.strides);
            set_ints(p, "pads", c.pads);
            set_int(p, "ceil_mode", ceil_mode);
            if (include_pad) set_int(p, "count_include_pad", 1);
            g->mutable_output(0)->set_name("p");  // no activation after it: negative averages must show
            for (int threads : {1, 2}) {
              SessionPair o = run_both(m, {{"x", random_input(in, 13)}}, threads);
              SCOPED_TRACE(std::string(op) + " kernel " + shape_str(c.kernel) + " strides " + shape_str(c.strides) +
                           " pads " + shape_str(c.pads) + " ceil " + std::to_string(ceil_mode) + " include_pad " +
                           std::to_string(include_pad) + " input " + shape_str(in));
              expect_close(o.reference, o.tested);
              EXPECT_EQ(o.tested_ops["ReorderInput"], 0) << "the pool ran blocked";
              ++checked;
            }
          }
        }
      }
    }
  }
  EXPECT_EQ(checked, 2 * 2 * 9 * (2 + 4));
}

// The blocked global pools (four accumulators per block, kernels/nchwc.cc)
// against the plain kernels, on planes of 1 pixel up to ones with a remainder
// after the unrolled steps.
TEST(BlockedLayout, global_pools_match_plain) {
  int checked = 0;
  for (const char* op : {"GlobalAveragePool", "GlobalMaxPool"}) {
    for (const Shape& in : {Shape{1, 8, 1, 1}, Shape{2, 16, 2, 3}, Shape{1, 8, 7, 7}, Shape{3, 24, 5, 9},
                            Shape{1, 16, 56, 56}}) {
      auto m = empty_model();
      auto* g = m.mutable_graph();
      set_tensor_type(g->add_input(), "x", onnx::TensorProto::FLOAT, {-1, in[1], in[2], in[3]});
      set_tensor_type(g->add_output(), "p", onnx::TensorProto::FLOAT, {});
      add_conv(g, "x", "c", in[1], 16, 1, 1, 0, 50);  // makes the pool's input blocked
      add_node(g, op, {"c"}, {"p"}, "pool");
      for (int threads : {1, 2}) {
        SessionPair o = run_both(m, {{"x", random_input(in, 17)}}, threads);
        SCOPED_TRACE(std::string(op) + " input " + shape_str(in) + " threads " + std::to_string(threads));
        expect_close(o.reference, o.tested);
        EXPECT_EQ(o.tested_ops[op], 1);
        EXPECT_EQ(o.tested_ops["ReorderInput"], 0) << "the pool ran blocked";
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, 2 * 5 * 2);
}

TEST(BlockedLayout, reorders_round_trip) {
  auto m = single_blocked_op("ReorderInput", {2, 16, 5, 3});
  auto* g = m.mutable_graph();
  g->mutable_node(0)->set_output(0, "b");
  auto* back = add_node(g, "ReorderOutput", {"b"}, {"y"}, "back");
  back->set_domain(kStandIn);
  auto s = load_blocked(m);
  ASSERT_TRUE(s.ok()) << s.status().message();
  Tensor x = random_input({2, 16, 5, 3}, 12);
  auto y = (*s)->run({{"x", x}});
  ASSERT_TRUE(y.ok()) << y.status().message();
  ASSERT_EQ((*y)[0].shape(), x.shape());
  for (int64_t i = 0; i < x.numel(); ++i) ASSERT_EQ((*y)[0].data<float>()[i], x.data<float>()[i]);
  EXPECT_EQ(nchwc_blocked_shape({2, 16, 5, 3}), (Shape{2, 2, 5, 3, 8}));
}

// Every path a blocked convolution can take on this CPU (Winograd, oneDNN held
// to 8-channel blocks, oneDNN in its own layout on AVX-512), forced one at a time
// through the tuning cache, against the plain layout; and a measuring session
// (whose timed runs must not disturb a residual summed in place) the same.
onnx::ModelProto paths_model() {
  auto m = empty_model();
  auto* g = m.mutable_graph();
  set_tensor_type(g->add_input(), "x", onnx::TensorProto::FLOAT, {-1, 8, 10, 9});
  set_tensor_type(g->add_output(), "y", onnx::TensorProto::FLOAT, {-1, 128, 5, 5});
  add_conv(g, "x", "c1", 8, 128, 3, 1, 1, 90);
  add_node(g, "Relu", {"c1"}, {"r1"}, "relu1");
  add_conv(g, "r1", "c2", 128, 128, 3, 1, 1, 91);  // Winograd's kind
  add_node(g, "Relu", {"c2"}, {"r2"}, "relu2");
  add_conv(g, "r2", "c3", 128, 128, 1, 1, 0, 92);
  add_node(g, "Add", {"c3", "r1"}, {"sum"}, "residual");  // fused as a sum into c3
  add_node(g, "Relu", {"sum"}, {"r3"}, "relu3");
  auto* strided = add_conv_node(g, "r3", "y", 128, 128, 3, 93);
  set_ints(strided, "strides", {2, 2});
  set_ints(strided, "pads", {1, 1, 1, 1});
  return m;
}

TEST(BlockedLayout, every_conv_path_matches_plain) {
  const onnx::ModelProto m = paths_model();
  const Feeds feeds = {{"x", random_input({2, 8, 10, 9}, 12)}};
  SessionOptions plain;
  plain.blocked_layout = false;
  plain.tuning = TuningMode::kHeuristic;
  SessionOptions measure;
  measure.tuning = TuningMode::kMeasure;
  measure.tuning_cache = TuningCache::open("");
  SessionPair o = testing::run_session_pair(m, feeds, plain, measure);
  expect_close(o.reference, o.tested);

  // The candidates each layer had, from a measuring session's report.
  const std::string bytes = m.SerializeAsString();
  auto measured = Session::load_bytes(bytes.data(), bytes.size(), "", measure);
  ASSERT_TRUE(measured.ok()) << measured.status().message();
  ASSERT_TRUE((*measured)->run(feeds).ok());
  std::set<std::string> paths;
  const auto report = (*measured)->plan_report();
  ASSERT_EQ(report.size(), 4u);
  for (const auto& c : report) {
    if (c.reason == "only path") EXPECT_TRUE(c.us.empty()) << c.node;
    else EXPECT_TRUE(c.reason == "measured" || c.reason == "cached") << c.node << ": " << c.reason;
    paths.insert(c.path);
    for (const auto& [name, us] : c.us) paths.insert(name);
  }
  EXPECT_TRUE(paths.count("onednn"));
  EXPECT_EQ(paths.count("winograd"), isa_at_least(IsaLevel::kAvx2) ? 1u : 0u);
  EXPECT_EQ(paths.count("onednn-native"), isa_at_least(IsaLevel::kAvx512) ? 1u : 0u);

  for (const std::string& forced : paths) {
    auto cache = TuningCache::open("");
    for (const auto& c : report)
      cache->record(c.layer, TuningCache::Entry{c.us.count(forced) ? forced : c.path, {}});
    SessionOptions cached;
    cached.tuning = TuningMode::kCached;
    cached.tuning_cache = cache;
    SessionPair f = testing::run_session_pair(m, feeds, plain, cached);
    SCOPED_TRACE(forced);
    expect_close(f.reference, f.tested);
    auto s = Session::load_bytes(bytes.data(), bytes.size(), "", cached);
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE((*s)->run(feeds).ok());
    int took = 0;
    for (const auto& c : (*s)->plan_report())
      took += c.path == forced && (c.reason == "cached" || c.reason == "only path");
    EXPECT_GE(took, 1);
  }
}

// Under each ISA cap the same model still matches (the cap removes candidates).
TEST(BlockedLayout, conv_paths_under_isa_caps) {
  const onnx::ModelProto m = paths_model();
  const Feeds feeds = {{"x", random_input({1, 8, 10, 9}, 13)}};
  SessionOptions plain;
  plain.blocked_layout = false;
  for (IsaLevel cap : {IsaLevel::kScalar, IsaLevel::kAvx2, IsaLevel::kAvx512}) {
    set_isa_cap(cap);
    SessionOptions measure;
    measure.tuning = TuningMode::kMeasure;
    measure.tuning_cache = TuningCache::open("");
    SessionPair o = testing::run_session_pair(m, feeds, plain, measure);
    SCOPED_TRACE(isa_name(cap));
    expect_close(o.reference, o.tested);
  }
  set_isa_cap(IsaLevel::kAvx512);
}

// A blocked convolution reading a plain input of 8k channels asks oneDNN for a
// blocked input too: left to choose, oneDNN paired a channels-last input with the
// 8-channel output, which only its reference implementation runs (a 112x112
// depthwise layer took 65 ms instead of 0.3).
TEST(BlockedLayout, plain_input_of_a_blocked_conv_gets_a_fast_implementation) {
  auto m = empty_model();
  auto* g = m.mutable_graph();
  set_tensor_type(g->add_input(), "x", onnx::TensorProto::FLOAT, {1, 16, 20, 20});
  set_tensor_type(g->add_output(), "y", onnx::TensorProto::FLOAT, {1, 16, 20, 20});
  add_conv(g, "x", "c1", 16, 16, 3, 16, 1, 70);  // depthwise, reads the plain graph input
  add_conv(g, "c1", "y", 16, 16, 1, 1, 0, 71);
  SessionPair o = run_both(m, {{"x", random_input({1, 16, 20, 20}, 14)}});
  expect_close(o.reference, o.tested);
  const std::string bytes = m.SerializeAsString();
  SessionOptions so;
  so.tuning = TuningMode::kHeuristic;
  auto s = Session::load_bytes(bytes.data(), bytes.size(), "", so);
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE((*s)->run({{"x", random_input({1, 16, 20, 20}, 15)}}).ok());
  const auto plan = (*s)->plan_report();
  ASSERT_EQ(plan.size(), 2u);
  for (const auto& c : plan) {
    if (c.path == "winograd") continue;
    EXPECT_EQ(c.detail.rfind("ref", 0), std::string::npos) << c.node << " runs " << c.detail;
  }
}

}  // namespace
}  // namespace hearth
