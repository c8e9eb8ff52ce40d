// INT8 QDQ quantization (optimize/quantize.h): the file's structure, its outputs
// against FP32, calibrated ranges against the data, and what stays FP32 and why.
#include "optimize/quantize.h"

#include <gtest/gtest.h>

#include <onnx/onnx_pb.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>

#include "core/npy.h"
#include "graph/model_builder.h"
#include "optimize/report.h"
#include "runtime/session.h"
#include "runtime/session_pair.h"

namespace hearth::optimize {
namespace {

namespace fs = std::filesystem;
using hearth::testing::add_float_initializer;
using hearth::testing::add_node;
using hearth::testing::random_values;
using hearth::testing::set_tensor_type;

// x[N,8] -> MatMul(W1[8,16]) -> Relu -> Gemm(W2[4,16], transB) -> y[N,4]; and a
// Conv branch is in conv_model().
onnx::ModelProto mlp_model(int64_t opset = 13) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(opset);
  auto* g = m.mutable_graph();
  g->set_name("mlp");
  set_tensor_type(g->add_input(), "x", onnx::TensorProto::FLOAT, {-1, 8});
  set_tensor_type(g->add_output(), "y", onnx::TensorProto::FLOAT, {-1, 4});
  add_float_initializer(g, "W1", {8, 16}, random_values(128, 1));
  add_float_initializer(g, "W2", {4, 16}, random_values(64, 2));
  add_float_initializer(g, "B2", {4}, random_values(4, 3));
  add_node(g, "MatMul", {"x", "W1"}, {"h"}, "fc1");
  add_node(g, "Relu", {"h"}, {"r"}, "relu");
  auto* gemm = add_node(g, "Gemm", {"r", "W2", "B2"}, {"y"}, "fc2");
  hearth::testing::set_int(gemm, "transB", 1);
  return m;
}

onnx::ModelProto conv_model() {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(13);
  auto* g = m.mutable_graph();
  g->set_name("conv");
  set_tensor_type(g->add_input(), "x", onnx::TensorProto::FLOAT, {-1, 3, 10, 10});
  set_tensor_type(g->add_output(), "y", onnx::TensorProto::FLOAT, {-1, 16, 10, 10});
  add_float_initializer(g, "W", {16, 3, 3, 3}, random_values(16 * 27, 4, -0.5f, 0.5f));
  add_float_initializer(g, "B", {16}, random_values(16, 5));
  auto* c = add_node(g, "Conv", {"x", "W", "B"}, {"c"}, "conv");
  hearth::testing::set_ints(c, "pads", {1, 1, 1, 1});
  add_node(g, "Relu", {"c"}, {"y"}, "relu");
  return m;
}

std::vector<Feed> batches(const Shape& shape, int count, uint32_t seed) {
  std::vector<Feed> out;
  for (int i = 0; i < count; ++i)
    out.push_back({{"x", Tensor::from_vector<float>(random_values(shape_numel(shape), seed + i, -2, 2), shape)}});
  return out;
}

std::vector<Tensor> run(const std::string& bytes, const Feed& feed) {
  auto s = Session::load_bytes(bytes.data(), bytes.size(), "");
  EXPECT_TRUE(s.ok()) << s.status().message();
  if (!s.ok()) return {};
  auto y = (*s)->run(feed);
  EXPECT_TRUE(y.ok()) << y.status().message();
  return y.ok() ? std::move(y).value() : std::vector<Tensor>{};
}

double cosine(const Tensor& a, const Tensor& b) {
  double dot = 0, na = 0, nb = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    dot += double(a.data<float>()[i]) * b.data<float>()[i];
    na += double(a.data<float>()[i]) * a.data<float>()[i];
    nb += double(b.data<float>()[i]) * b.data<float>()[i];
  }
  return dot / std::sqrt(na * nb);
}

std::map<std::string, int> op_counts(const std::string& bytes) {
  onnx::ModelProto m;
  EXPECT_TRUE(m.ParseFromString(bytes));
  std::map<std::string, int> ops;
  for (const auto& n : m.graph().node()) ++ops[n.op_type()];
  return ops;
}

TEST(Quantize, WeightsModeShrinksTheFileAndKeepsTheOutputs) {
  for (const auto& model : {mlp_model(), conv_model()}) {
    const std::string bytes = model.SerializeAsString();
    QuantizeOptions o;
    o.mode = QuantMode::kWeights;
    auto q = quantize_model(bytes, o, {});
    ASSERT_TRUE(q.ok()) << q.status().message();
    onnx::ModelProto out;
    ASSERT_TRUE(out.ParseFromString(q->model_bytes));
    int int8_inits = 0, float_weights = 0;
    for (const auto& t : out.graph().initializer()) {
      int8_inits += t.data_type() == onnx::TensorProto::INT8 && t.dims_size() >= 2;
      float_weights += t.data_type() == onnx::TensorProto::FLOAT && t.dims_size() >= 2;
    }
    EXPECT_GE(int8_inits, 1);
    EXPECT_EQ(float_weights, 0) << "every float weight was replaced";
    EXPECT_EQ(op_counts(q->model_bytes)["QuantizeLinear"], 0) << "activations stay float in weights mode";
    // Per output channel: each DequantizeLinear has an axis and a scale per channel.
    for (const auto& n : out.graph().node()) {
      if (n.op_type() != "DequantizeLinear") continue;
      ASSERT_EQ(n.attribute_size(), 1);
      EXPECT_EQ(n.attribute(0).name(), "axis");
    }
    const Feed feed = batches(model.graph().input(0).name() == "x" && model.graph().name() == "conv"
                                  ? Shape{2, 3, 10, 10}
                                  : Shape{5, 8},
                              1, 9)[0];
    auto a = run(bytes, feed), b = run(q->model_bytes, feed);
    ASSERT_EQ(a.size(), 1u);
    ASSERT_EQ(b.size(), 1u);
    EXPECT_GT(cosine(a[0], b[0]), 0.9995);
    for (const auto& d : q->nodes) EXPECT_TRUE(d.quantized) << d.node << ": " << d.why;
  }
}

TEST(Quantize, StaticModeCalibratesActivationsToTheirRange) {
  const std::string bytes = mlp_model().SerializeAsString();
  const auto cal = batches({6, 8}, 3, 20);
  QuantizeOptions o;
  auto q = quantize_model(bytes, o, cal);
  ASSERT_TRUE(q.ok()) << q.status().message();
  EXPECT_EQ(q->calibration_batches, 3);
  auto ops = op_counts(q->model_bytes);
  EXPECT_EQ(ops["QuantizeLinear"], 2);     // x (graph input) and r (after Relu)
  EXPECT_EQ(ops["DequantizeLinear"], 4);   // two weights, two activations
  // The graph input's range is exactly the calibration data's.
  float lo = 1e9f, hi = -1e9f;
  for (const auto& f : cal)
    for (int64_t i = 0; i < f[0].second.numel(); ++i)
      lo = std::min(lo, f[0].second.data<float>()[i]), hi = std::max(hi, f[0].second.data<float>()[i]);
  ASSERT_TRUE(q->ranges.count("x"));
  EXPECT_FLOAT_EQ(q->ranges["x"].first, lo);
  EXPECT_FLOAT_EQ(q->ranges["x"].second, hi);
  ASSERT_TRUE(q->ranges.count("r"));
  EXPECT_GE(q->ranges["r"].first, 0.0f) << "a Relu output is never negative";
  // 8-bit activations and weights through two layers: within about 5% of FP32
  // in L2 on this small random model (0.7% on the calibration data of a similar one).
  const Feed feed = batches({6, 8}, 1, 40)[0];
  auto a = run(bytes, feed), b = run(q->model_bytes, feed);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_GT(cosine(a[0], b[0]), 0.995);
  // The QDQ pair of x is the exact uint8 rounding of x over the calibrated range.
  onnx::ModelProto out;
  ASSERT_TRUE(out.ParseFromString(q->model_bytes));
  for (const auto& t : out.graph().initializer())
    if (t.name() == "x_scale") {
      float scale;
      std::memcpy(&scale, t.raw_data().data(), 4);
      EXPECT_FLOAT_EQ(scale, (hi - lo) / 255.0f);
    }
}

TEST(Quantize, PercentileCutsOutliersThatMinMaxKeeps) {
  const std::string bytes = mlp_model().SerializeAsString();
  auto cal = batches({200, 8}, 2, 50);
  cal[1][0].second.data<float>()[7] = 1000.0f;  // one outlier
  QuantizeOptions mm;
  QuantizeOptions pc;
  pc.method = CalibrationMethod::kPercentile;
  pc.percentile = 99.9;
  auto a = quantize_model(bytes, mm, cal);
  auto b = quantize_model(bytes, pc, cal);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_FLOAT_EQ(a->ranges["x"].second, 1000.0f);
  EXPECT_LT(b->ranges["x"].second, 10.0f) << "the outlier is one value in 3200";
  EXPECT_GT(b->ranges["x"].second, 1.0f);
}

TEST(Quantize, WhatStaysFp32AndWhy) {
  auto m = mlp_model();
  // W1 is also read by an Add: it must stay float beside its int8 form.
  auto* g = m.mutable_graph();
  set_tensor_type(g->add_output(), "w_plus", onnx::TensorProto::FLOAT, {8, 16});
  add_node(g, "Add", {"W1", "W1"}, {"w_plus"}, "reads_w1");
  const std::string bytes = m.SerializeAsString();
  QuantizeOptions o;
  o.mode = QuantMode::kWeights;
  o.keep_fp32 = {"fc2"};
  auto q = quantize_model(bytes, o, {});
  ASSERT_TRUE(q.ok()) << q.status().message();
  std::map<std::string, NodeDecision> by;
  for (const auto& d : q->nodes) by[d.node] = d;
  EXPECT_TRUE(by["fc1"].quantized);
  EXPECT_FALSE(by["fc2"].quantized);
  EXPECT_EQ(by["fc2"].why, "kept in FP32 (--keep-fp32)");
  onnx::ModelProto out;
  ASSERT_TRUE(out.ParseFromString(q->model_bytes));
  bool w1_float = false;
  for (const auto& t : out.graph().initializer()) w1_float |= t.name() == "W1" && t.data_type() == onnx::TensorProto::FLOAT;
  EXPECT_TRUE(w1_float);
  const Feed feed = batches({3, 8}, 1, 60)[0];
  auto a = run(bytes, feed), b = run(q->model_bytes, feed);
  ASSERT_EQ(b.size(), 2u);
  for (int64_t i = 0; i < a[1].numel(); ++i) ASSERT_EQ(a[1].data<float>()[i], b[1].data<float>()[i]);

  o.keep_fp32 = {"no_such_node"};
  auto bad = quantize_model(bytes, o, {});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("'no_such_node'"), std::string::npos);
}

TEST(Quantize, OldOpsetsGetPerTensorScales) {
  QuantizeOptions o;
  o.mode = QuantMode::kWeights;
  auto q = quantize_model(mlp_model(11).SerializeAsString(), o, {});
  ASSERT_TRUE(q.ok()) << q.status().message();
  onnx::ModelProto out;
  ASSERT_TRUE(out.ParseFromString(q->model_bytes));
  for (const auto& n : out.graph().node())
    EXPECT_TRUE(n.op_type() != "DequantizeLinear" || n.attribute_size() == 0) << "no axis before opset 13";
  for (const auto& d : q->nodes) EXPECT_NE(d.why.find("per tensor"), std::string::npos) << d.why;
  auto too_old = quantize_model(mlp_model(9).SerializeAsString(), o, {});
  ASSERT_FALSE(too_old.ok());
  EXPECT_NE(too_old.status().message().find("opset 10"), std::string::npos);
}

TEST(Quantize, StaticNeedsCalibrationAndBadFilesFailFirst) {
  const std::string bytes = mlp_model().SerializeAsString();
  auto none = quantize_model(bytes, QuantizeOptions{}, {});
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("calibration"), std::string::npos);

  const fs::path dir = fs::temp_directory_path() / ("hearth_cal_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  ASSERT_TRUE(write_npy((dir / "a.npy").string(), Tensor::from_vector<float>(random_values(16, 1), {2, 8})).ok());
  auto good = read_calibration_dir(dir.string(), bytes);
  ASSERT_TRUE(good.ok()) << good.status().message();
  EXPECT_EQ(good->size(), 1u);
  ASSERT_TRUE(write_npy((dir / "b.npy").string(), Tensor::from_vector<float>(random_values(14, 1), {2, 7})).ok());
  auto bad = read_calibration_dir(dir.string(), bytes);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("b.npy"), std::string::npos) << bad.status().message();
  EXPECT_NE(bad.status().message().find("input 'x' is float[N,8]"), std::string::npos) << bad.status().message();
  fs::remove_all(dir);
  EXPECT_FALSE(read_calibration_dir(dir.string(), bytes).ok());
}

TEST(Quantize, WeightBitsFollowTheTargetCpu) {
  const std::string bytes = mlp_model().SerializeAsString();
  QuantizeOptions o;
  o.mode = QuantMode::kWeights;
  o.target = "avx2";
  auto q7 = quantize_model(bytes, o, {});
  ASSERT_TRUE(q7.ok());
  EXPECT_EQ(q7->weight_bits, 7);
  onnx::ModelProto m;
  ASSERT_TRUE(m.ParseFromString(q7->model_bytes));
  int peak = 0;
  for (const auto& t : m.graph().initializer())
    if (t.data_type() == onnx::TensorProto::INT8)
      for (char v : t.raw_data()) peak = std::max(peak, std::abs(static_cast<int>(static_cast<int8_t>(v))));
  EXPECT_EQ(peak, 63);
  o.target = "vnni";
  auto q8 = quantize_model(bytes, o, {});
  ASSERT_TRUE(q8.ok());
  EXPECT_EQ(q8->weight_bits, 8);
  o.target = "sparc";
  EXPECT_FALSE(quantize_model(bytes, o, {}).ok());
}

TEST(QuantizeReport, MeasuresBothModels) {
  const std::string bytes = conv_model().SerializeAsString();
  QuantizeOptions o;
  o.mode = QuantMode::kWeights;
  auto q = quantize_model(bytes, o, {});
  ASSERT_TRUE(q.ok());
  auto r = measure_report(bytes, q->model_bytes, batches({1, 3, 10, 10}, 2, 70), 2);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_LT(r->after.bytes, r->before.bytes);
  EXPECT_GT(r->after.int8_parameters, 0);
  EXPECT_EQ(r->before.int8_parameters, 0);
  EXPECT_GT(r->before.latency_ms_1, 0);
  ASSERT_EQ(r->outputs.size(), 1u);
  EXPECT_GT(r->outputs[0].cosine_min, 0.999);
  EXPECT_LT(r->outputs[0].rel_l2_max, 0.05);
  r->command = "test";
  EXPECT_NE(report_json(*r).find("\"size_ratio\""), std::string::npos);
  EXPECT_NE(report_markdown(*r).find("| file size (bytes) |"), std::string::npos);
}

// A QDQ Conv run as one int8 convolution (ai.hearth QDQConv) against the same
// file run node by node (optimizer off): per channel and per tensor, padding,
// stride, groups, depthwise, with and without bias, batch 2.
struct ConvCase {
  int64_t c_in, c_out, k, stride, pad, group;
  bool bias;
};

onnx::ModelProto conv_case_model(const ConvCase& c) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(13);
  auto* g = m.mutable_graph();
  g->set_name("qconv");
  set_tensor_type(g->add_input(), "x", onnx::TensorProto::FLOAT, {-1, c.c_in, 9, 11});
  auto* y = g->add_output();
  y->set_name("y");
  add_float_initializer(g, "W", {c.c_out, c.c_in / c.group, c.k, c.k},
                        random_values(c.c_out * c.c_in / c.group * c.k * c.k, 7, -0.5f, 0.5f));
  std::vector<std::string> in = {"x", "W"};
  if (c.bias) {
    add_float_initializer(g, "B", {c.c_out}, random_values(c.c_out, 8));
    in.push_back("B");
  }
  auto* n = add_node(g, "Conv", in, {"y"}, "conv");
  hearth::testing::set_ints(n, "pads", {c.pad, c.pad, c.pad, c.pad});
  hearth::testing::set_ints(n, "strides", {c.stride, c.stride});
  hearth::testing::set_int(n, "group", c.group);
  return m;
}

// A QDQ file run node by node (optimizer off) and as the engine runs it
// (QDQ patterns fused), on one feed; with the op types the fused session ran.
struct FusedRun {
  std::vector<Tensor> plain, fused;
  std::map<std::string, int> ran;
};

FusedRun run_plain_and_fused(const std::string& bytes, const Feed& feed) {
  FusedRun r;
  SessionOptions plain;
  plain.optimize = false;
  SessionOptions fused;
  fused.profile = true;
  auto a = Session::load_bytes(bytes.data(), bytes.size(), "", plain);
  auto b = Session::load_bytes(bytes.data(), bytes.size(), "", fused);
  EXPECT_TRUE(a.ok() && b.ok()) << (a.ok() ? b.status().message() : a.status().message());
  if (!a.ok() || !b.ok()) return r;
  auto ya = (*a)->run(feed);
  auto yb = (*b)->run(feed);
  EXPECT_TRUE(ya.ok()) << ya.status().message();
  EXPECT_TRUE(yb.ok()) << yb.status().message();
  if (!ya.ok() || !yb.ok()) return r;
  r.plain = std::move(ya).value();
  r.fused = std::move(yb).value();
  for (const auto& p : (*b)->node_profile()) ++r.ran[p.op_type];
  return r;
}

// ||a - b|| / ||a|| over float tensors of one shape (1 when they cannot be compared).
double rel_l2(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  if (a.empty() || b.empty() || a[0].shape() != b[0].shape()) return 1.0;
  double err = 0, ref = 0;
  for (int64_t i = 0; i < a[0].numel(); ++i) {
    const double d = double(a[0].data<float>()[i]) - b[0].data<float>()[i];
    err += d * d, ref += double(a[0].data<float>()[i]) * a[0].data<float>()[i];
  }
  return std::sqrt(err / ref);
}

TEST(QdqConv, FusedInt8MatchesTheQdqGraph) {
  const ConvCase cases[] = {{8, 16, 3, 1, 1, 1, true},  {16, 8, 1, 1, 0, 1, false}, {8, 16, 3, 2, 1, 1, true},
                            {16, 16, 3, 1, 1, 16, true}, {8, 16, 3, 1, 0, 2, true},  {32, 64, 3, 1, 1, 1, true}};
  for (const ConvCase& c : cases) {
    for (int variant = 0; variant < 3; ++variant) {
      const bool per_tensor = variant == 1;
      const int bits = variant == 2 ? 7 : 8;  // 7-bit weights take the int8 path on AVX2 too
      SCOPED_TRACE(::testing::Message() << "c_in " << c.c_in << " c_out " << c.c_out << " k " << c.k << " stride "
                                        << c.stride << " pad " << c.pad << " group " << c.group << " per_tensor "
                                        << per_tensor << " bits " << bits);
      const std::string bytes = conv_case_model(c).SerializeAsString();
      const auto cal = batches({2, c.c_in, 9, 11}, 2, 80);
      QuantizeOptions o;
      o.per_channel = !per_tensor;
      o.weight_bits = bits;
      auto q = quantize_model(bytes, o, cal);
      ASSERT_TRUE(q.ok()) << q.status().message();
      EXPECT_EQ(q->weight_bits, bits);
      const FusedRun r = run_plain_and_fused(q->model_bytes, batches({2, c.c_in, 9, 11}, 1, 90)[0]);
      EXPECT_EQ(r.ran.count("QDQConv") == 1, c.group == 1) << "grouped and depthwise convolutions stay unfused";
      const double err = rel_l2(r.plain, r.fused);
      EXPECT_LE(err, 1e-5) << "the int32 accumulation is exact: only float rounding differs";
    }
  }
}

// Conv -> Relu -> Conv -> Clip(0, 6) -> Conv, quantized static: the activations
// are absorbed into the fused convolutions and stay uint8 between them; the
// result matches the QDQ graph run node by node within a few rounding steps.
TEST(QdqConv, ActivationsAbsorbedAndInt8CarriedBetweenConvolutions) {
  for (int bits : {8, 7}) {
    onnx::ModelProto m;
    m.set_ir_version(8);
    m.add_opset_import()->set_version(13);
    auto* g = m.mutable_graph();
    g->set_name("chain");
    set_tensor_type(g->add_input(), "x", onnx::TensorProto::FLOAT, {-1, 8, 12, 12});
    g->add_output()->set_name("y");
    add_float_initializer(g, "W1", {16, 8, 3, 3}, random_values(16 * 72, 11, -0.3f, 0.3f));
    add_float_initializer(g, "W2", {16, 16, 3, 3}, random_values(16 * 144, 12, -0.3f, 0.3f));
    add_float_initializer(g, "W3", {8, 16, 1, 1}, random_values(8 * 16, 13, -0.3f, 0.3f));
    add_float_initializer(g, "B1", {16}, random_values(16, 14));
    add_float_initializer(g, "six", {}, {6.0f});
    add_float_initializer(g, "zero", {}, {0.0f});
    auto* c1 = add_node(g, "Conv", {"x", "W1", "B1"}, {"c1"}, "conv1");
    hearth::testing::set_ints(c1, "pads", {1, 1, 1, 1});
    add_node(g, "Relu", {"c1"}, {"r1"}, "relu1");
    auto* c2 = add_node(g, "Conv", {"r1", "W2"}, {"c2"}, "conv2");
    hearth::testing::set_ints(c2, "pads", {1, 1, 1, 1});
    add_node(g, "Clip", {"c2", "zero", "six"}, {"r2"}, "relu6");
    add_node(g, "Conv", {"r2", "W3"}, {"y"}, "conv3");
    const std::string bytes = m.SerializeAsString();
    QuantizeOptions o;
    o.weight_bits = bits;
    auto q = quantize_model(bytes, o, batches({2, 8, 12, 12}, 3, 100));
    ASSERT_TRUE(q.ok()) << q.status().message();
    const FusedRun r = run_plain_and_fused(q->model_bytes, batches({2, 8, 12, 12}, 1, 110)[0]);
    EXPECT_EQ(r.ran.at("QDQConv"), 3);
    EXPECT_EQ(r.ran.count("Relu") + r.ran.count("Clip") + r.ran.count("QuantizeLinear") +
                  r.ran.count("DequantizeLinear"),
              0u)
        << "activations absorbed, no float round trip between the convolutions";
    ASSERT_FALSE(r.fused.empty());
    ASSERT_EQ(r.fused[0].dtype(), DataType::kFloat);
    // A product that lands within float rounding of a rounding boundary may go
    // the other way: one quantization step on a few elements.
    const double err = rel_l2(r.plain, r.fused);
    EXPECT_LE(err, 5e-3) << bits << "-bit weights";
  }
}

// A QDQ Conv as ONNX Runtime's quantizer writes it: the bias int32 behind its
// own DequantizeLinear (scale x_scale * w_scale per channel). Fused all the same.
TEST(QdqConv, Int32BiasBehindADequantizeLinearIsFusedToo) {
  const std::string bytes = conv_case_model({8, 16, 3, 1, 1, 1, true}).SerializeAsString();
  QuantizeOptions o;
  auto q = quantize_model(bytes, o, batches({2, 8, 9, 11}, 2, 120));
  ASSERT_TRUE(q.ok()) << q.status().message();
  onnx::ModelProto m;
  ASSERT_TRUE(m.ParseFromString(q->model_bytes));
  auto* g = m.mutable_graph();
  std::map<std::string, const onnx::TensorProto*> init;
  for (const auto& t : g->initializer()) init[t.name()] = &t;
  auto floats = [&](const std::string& name) {
    const auto& t = *init.at(name);
    std::vector<float> v(t.raw_data().size() / 4);
    std::memcpy(v.data(), t.raw_data().data(), v.size() * 4);
    return v;
  };
  const std::vector<float> b = floats("B"), sw = floats("W_scale"), sx = floats("x_scale");
  std::vector<int32_t> bq(b.size());
  std::vector<float> bs(b.size());
  for (size_t c = 0; c < b.size(); ++c) {
    bs[c] = sx[0] * sw[c];
    bq[c] = static_cast<int32_t>(std::lround(b[c] / bs[c]));
  }
  auto* t = g->add_initializer();
  t->set_name("B_quantized");
  t->set_data_type(onnx::TensorProto::INT32);
  t->add_dims(static_cast<int64_t>(bq.size()));
  t->set_raw_data(bq.data(), bq.size() * 4);
  add_float_initializer(g, "B_scale", {static_cast<int64_t>(bs.size())}, bs);
  // The DequantizeLinear goes first: node order stays topological.
  onnx::NodeProto dq;
  dq.set_op_type("DequantizeLinear");
  dq.set_name("bias_dq");
  dq.add_input("B_quantized");
  dq.add_input("B_scale");
  dq.add_output("B_dequantized");
  hearth::testing::set_int(&dq, "axis", 0);
  google::protobuf::RepeatedPtrField<onnx::NodeProto> nodes;
  *nodes.Add() = dq;
  for (auto& n : *g->mutable_node()) {
    if (n.op_type() == "Conv") n.set_input(2, "B_dequantized");
    *nodes.Add() = n;
  }
  g->mutable_node()->Swap(&nodes);
  const std::string ort_style = m.SerializeAsString();
  const FusedRun r = run_plain_and_fused(ort_style, batches({2, 8, 9, 11}, 1, 130)[0]);
  EXPECT_EQ(r.ran.count("QDQConv"), 1u);
  const double err = rel_l2(r.plain, r.fused);
  EXPECT_LE(err, 1e-5);
}

}  // namespace
}  // namespace hearth::optimize
