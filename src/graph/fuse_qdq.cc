// The QDQ pass: a Conv whose input is QuantizeLinear -> DequantizeLinear (uint8,
// scalar scale and zero point) and whose weight is DequantizeLinear of int8
// constants (symmetric, per output channel or per tensor) becomes one
// ai.hearth QDQConv (kernels/qdq_conv.cc): int8 compute instead of three float
// passes. It runs before constant folding, which would otherwise turn the
// weight's DequantizeLinear into float weights.
#include <cmath>
#include <map>

#include "graph/optimizer.h"
#include "graph/rewrite.h"

namespace hearth {

namespace {

// A scalar constant (rank 0 or [1]).
const Tensor* scalar_constant(const Graph& g, const std::vector<std::string>& inputs, size_t i) {
  const Tensor* t = constant(g, inputs, i);
  return t && t->numel() == 1 && t->rank() <= 1 ? t : nullptr;
}

bool same_scalar(const Tensor* a, const Tensor* b) {
  if (!a || !b || a->dtype() != b->dtype()) return false;
  if (a->dtype() == DataType::kFloat) return a->data<float>()[0] == b->data<float>()[0];
  if (a->dtype() == DataType::kUInt8) return a->data<uint8_t>()[0] == b->data<uint8_t>()[0];
  return false;
}

// The node producing each value.
std::map<std::string, size_t> producers(const Graph& g) {
  std::map<std::string, size_t> p;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    for (const auto& o : g.nodes[i].outputs)
      if (!o.empty()) p[o] = i;
  return p;
}

// A Relu, or a Clip with constant bounds, as the only reader of a QDQConv's
// output: absorbed (attribute activation, activation_params).
bool absorb_activation(Graph& g, const Uses& uses, size_t i, std::vector<bool>* dead) {
  Node& conv = g.nodes[i];
  const size_t r = uses.sole_reader(conv.outputs[0]);
  if (r == SIZE_MAX || (*dead)[r]) return false;
  const Node& act = g.nodes[r];
  if (!is_default(act) || act.inputs.empty() || act.inputs[0] != conv.outputs[0]) return false;
  float lo = 0, hi = 0;
  if (act.op_type == "Relu") {
    lo = 0, hi = INFINITY;
  } else if (act.op_type == "Clip") {
    lo = act.attr_float("min", -INFINITY), hi = act.attr_float("max", INFINITY);
    for (size_t k = 1; k < act.inputs.size() && k < 3; ++k) {
      if (act.inputs[k].empty()) continue;
      const Tensor* t = scalar_constant(g, act.inputs, k);
      if (!t || t->dtype() != DataType::kFloat) return false;
      (k == 1 ? lo : hi) = t->data<float>()[0];
    }
    if (!(lo <= hi)) return false;
  } else {
    return false;
  }
  conv.set_attr_string("activation", "Clip");
  conv.set_attr_floats("activation_params", {lo, hi});
  conv.outputs[0] = act.outputs[0];
  (*dead)[r] = true;
  return true;
}

// A QDQConv whose (activated) output is read only by QDQConvs that quantize it
// with one scale and zero point writes it quantized (inputs 6, 7: y_scale,
// y_zero_point), and they read the uint8 tensor as it is: the activation stays
// int8 from one convolution to the next, as the QDQ graph's values were.
void absorb_activations_and_carry_int8(Graph& g) {
  std::vector<bool> dead(g.nodes.size(), false);
  {
    Uses uses(g);
    for (size_t i = 0; i < g.nodes.size(); ++i)
      if (g.nodes[i].op_type == "QDQConv" && g.nodes[i].domain == "ai.hearth") absorb_activation(g, uses, i, &dead);
  }
  erase_dead(g, dead);
  Uses uses(g);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    Node& conv = g.nodes[i];
    if (conv.op_type != "QDQConv" || conv.domain != "ai.hearth" || conv.inputs.size() > 6) continue;
    const std::string& y = conv.outputs[0];
    if (uses.graph_outputs.count(y)) continue;
    auto it = uses.readers.find(y);
    if (it == uses.readers.end() || it->second.empty()) continue;
    const Tensor* scale = nullptr;
    const Tensor* zero = nullptr;
    std::string scale_name, zero_name;
    bool all = true;
    for (const auto& [reader, slot] : it->second) {
      if (reader == SIZE_MAX || slot != 0) {
        all = false;
        break;
      }
      const Node& next = g.nodes[reader];
      if (next.op_type != "QDQConv" || next.domain != "ai.hearth") {
        all = false;
        break;
      }
      const Tensor* s = scalar_constant(g, next.inputs, 1);
      const Tensor* z = scalar_constant(g, next.inputs, 2);
      if (!scale) scale = s, zero = z, scale_name = next.inputs[1], zero_name = next.inputs[2];
      else if (!same_scalar(scale, s) || !same_scalar(zero, z)) all = false;
    }
    if (!all || !scale || !zero) continue;
    conv.inputs.resize(6);  // B may be absent ("")
    conv.inputs.push_back(scale_name);
    conv.inputs.push_back(zero_name);
  }
}

}  // namespace

int fuse_qdq_convolutions(Model& model) {
  Graph& g = model.graph;
  const auto made_by = producers(g);
  auto producer = [&](const std::string& v, const char* op) -> size_t {
    auto it = made_by.find(v);
    if (it == made_by.end()) return SIZE_MAX;
    const Node& n = g.nodes[it->second];
    return is_default(n) && n.op_type == op ? it->second : SIZE_MAX;
  };
  Uses uses(g);
  std::vector<bool> dead(g.nodes.size(), false);
  int fused = 0;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    Node& conv = g.nodes[i];
    if (!is_default(conv) || conv.op_type != "Conv" || conv.inputs.size() < 2) continue;
    // Grouped and depthwise convolutions stay as they are: oneDNN's int8 forms of
    // them, with the reorders around each layer, were 2-7x slower than the float
    // path on Zen 4 (mobilenet_v2's 112x112 depthwise layers).
    if (conv.attr_int("group", 1) != 1) continue;
    const size_t dqx = producer(conv.inputs[0], "DequantizeLinear");
    const size_t dqw = producer(conv.inputs[1], "DequantizeLinear");
    if (dqx == SIZE_MAX || dqw == SIZE_MAX) continue;
    const Node& dx = g.nodes[dqx];
    const Node& dw = g.nodes[dqw];
    const size_t qx = producer(dx.inputs[0], "QuantizeLinear");
    if (qx == SIZE_MAX) continue;
    const Node& q = g.nodes[qx];
    // x: uint8 with one scale and zero point, the same on both sides of the pair.
    const Tensor* sq = scalar_constant(g, q.inputs, 1);
    const Tensor* zq = scalar_constant(g, q.inputs, 2);
    const Tensor* sd = scalar_constant(g, dx.inputs, 1);
    const Tensor* zd = scalar_constant(g, dx.inputs, 2);
    if (!sq || !zq || !sd || !zd || zq->dtype() != DataType::kUInt8) continue;
    if (!same_scalar(sq, sd) || !same_scalar(zq, zd) || sq->dtype() != DataType::kFloat) continue;
    // W: int8 constants, float scales per output channel (axis 0) or one, zero points 0.
    const Tensor* wq = constant(g, dw.inputs, 0);
    const Tensor* sw = constant(g, dw.inputs, 1);
    const Tensor* zw = dw.inputs.size() > 2 ? constant(g, dw.inputs, 2) : nullptr;
    if (!wq || !sw || wq->dtype() != DataType::kInt8 || wq->rank() != 4 || sw->dtype() != DataType::kFloat) continue;
    if (dw.inputs.size() > 2 && !dw.inputs[2].empty() && !zw) continue;
    const bool per_channel = sw->numel() == wq->dim(0) && sw->rank() == 1 && dw.attr_int("axis", 1) == 0;
    if (!per_channel && sw->numel() != 1) continue;
    bool zero = true;
    for (int64_t k = 0; zw && k < zw->numel(); ++k) zero &= zw->dtype() == DataType::kInt8 && zw->data<int8_t>()[k] == 0;
    if (!zero) continue;
    const Tensor* b = conv.inputs.size() > 2 && !conv.inputs[2].empty() ? constant(g, conv.inputs, 2) : nullptr;
    std::string bias = b ? conv.inputs[2] : "";
    size_t dqb = SIZE_MAX;
    if (conv.inputs.size() > 2 && !conv.inputs[2].empty() && !b) {
      // ONNX Runtime's quantizer stores the bias as int32 behind a DequantizeLinear
      // (scale x_scale * w_scale, zero point 0): computed here as the float bias.
      dqb = producer(conv.inputs[2], "DequantizeLinear");
      if (dqb == SIZE_MAX) continue;
      const Node& db = g.nodes[dqb];
      const Tensor* bq = constant(g, db.inputs, 0);
      const Tensor* bs = constant(g, db.inputs, 1);
      const Tensor* bz = db.inputs.size() > 2 ? constant(g, db.inputs, 2) : nullptr;
      if (!bq || !bs || bq->dtype() != DataType::kInt32 || bs->dtype() != DataType::kFloat || bq->rank() != 1) continue;
      if (bs->numel() != 1 && bs->numel() != bq->numel()) continue;
      bool zero_b = true;
      for (int64_t k = 0; bz && k < bz->numel(); ++k) zero_b &= bz->dtype() == DataType::kInt32 && bz->data<int32_t>()[k] == 0;
      if ((db.inputs.size() > 2 && !db.inputs[2].empty() && !bz) || !zero_b) continue;
      Tensor fb(DataType::kFloat, {bq->numel()});
      for (int64_t k = 0; k < bq->numel(); ++k)
        fb.data<float>()[k] = static_cast<float>(bq->data<int32_t>()[k]) * bs->data<float>()[bs->numel() == 1 ? 0 : k];
      bias = conv.name + "_qdq_bias";
      for (int n = 1; g.initializers.count(bias); ++n) bias = conv.name + "_qdq_bias_" + std::to_string(n);
      g.initializers[bias] = std::move(fb);
    } else if (b && b->dtype() != DataType::kFloat) {
      continue;
    }

    uses.drop_reads(i, conv);
    conv.inputs = {q.inputs[0], q.inputs[1], q.inputs[2], dw.inputs[0], dw.inputs[1]};
    if (!bias.empty()) conv.inputs.push_back(bias);
    conv.domain = "ai.hearth";
    conv.op_type = "QDQConv";
    uses.add_reads(i, conv);
    ++fused;
    // The Q/DQ nodes go when nothing else reads them.
    for (size_t k : {dqx, dqw, dqb}) {
      if (k == SIZE_MAX || dead[k] || uses.graph_outputs.count(g.nodes[k].outputs[0])) continue;
      auto r = uses.readers.find(g.nodes[k].outputs[0]);
      if (r == uses.readers.end() || r->second.empty()) {
        dead[k] = true;
        uses.drop_reads(k, g.nodes[k]);
      }
    }
    if (!dead[qx] && !uses.graph_outputs.count(q.outputs[0])) {
      auto r = uses.readers.find(q.outputs[0]);
      if (r == uses.readers.end() || r->second.empty()) {
        dead[qx] = true;
        uses.drop_reads(qx, q);
      }
    }
  }
  if (fused == 0) return 0;
  erase_dead(g, dead);
  if (!model.opsets.count("ai.hearth")) model.opsets["ai.hearth"] = 1;
  absorb_activations_and_carry_int8(g);
  return fused;
}

}  // namespace hearth
