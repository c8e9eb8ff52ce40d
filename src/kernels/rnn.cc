// Kernel family: recurrent layers. RNN, GRU and LSTM (directions forward,
// reverse, bidirectional; optional sequence_lens, initial states, peepholes;
// layout 0/1 from opset 14). This file validates inputs, converts layout and
// element type, and runs each direction through rnn_cells.cc.
// float16/bfloat16 run in float32; float32 GEMMs run on oneDNN's sgemm.
#include <cmath>
#include <cstring>

#include "kernels/kernel.h"
#include "kernels/register_all.h"
#include "kernels/rnn_common.h"

namespace hearth {

namespace {

// Input slots (LSTM adds initial_c at 6 and P at 7).
enum : size_t { kX = 0, kW = 1, kR = 2, kB = 3, kSeqLens = 4, kInitH = 5, kInitC = 6, kP = 7 };

// [a, b, rest...] -> [b, a, rest...] (any element type).
Tensor swap_leading(const Tensor& t) {
  Shape s = t.shape();
  std::swap(s[0], s[1]);
  Tensor out(t.dtype(), s);
  const int64_t A = t.dim(0), B = t.dim(1);
  const size_t row = A * B == 0 ? 0 : t.nbytes() / static_cast<size_t>(A * B);
  const auto* src = static_cast<const char*>(t.raw_data());
  auto* dst = static_cast<char*>(out.raw_data());
  for (int64_t i = 0; i < A; ++i)
    for (int64_t j = 0; j < B; ++j) std::memcpy(dst + (j * A + i) * row, src + (i * B + j) * row, row);
  return out;
}

// Checks that tensor `t` (input `name`) has exactly shape `want`.
Status check_shape(const Node& node, const Tensor& t, const char* name, const Shape& want) {
  if (t.shape() != want) {
    return invalid_argument(node.describe(), ": input ", name, " has shape ", shape_str(t.shape()), ", expected ",
                            shape_str(want));
  }
  return ok_status();
}

class RecurrentKernel : public Kernel {
 public:
  explicit RecurrentKernel(RnnKind kind) : kind_(kind) {}

  Status init(const KernelInfo& info) override {
    const Node& n = info.node;
    hidden_attr_ = n.attr_int("hidden_size", 0);
    const std::string dir = n.attr_string("direction", "forward");
    if (dir == "forward" || dir == "reverse") {
      dirs_ = 1;
      reverse_ = dir == "reverse";
    } else if (dir == "bidirectional") {
      dirs_ = 2;
    } else {
      return invalid_argument("unknown direction '", dir, "'");
    }
    layout_ = info.opset >= 14 ? n.attr_int("layout", 0) : 0;
    if (layout_ != 0 && layout_ != 1) return invalid_argument("layout must be 0 or 1, got ", layout_);
    if (n.has_attr("clip")) {
      cfg_.clip = n.attr_float("clip", 0.0f);
      if (!(cfg_.clip > 0.0f)) return invalid_argument("clip must be positive, got ", cfg_.clip);
    }
    cfg_.kind = kind_;
    cfg_.linear_before_reset = n.attr_int("linear_before_reset", 0) != 0;
    cfg_.input_forget = n.attr_int("input_forget", 0) != 0;
    auto acts = parse_rnn_activations(n, kind_, dirs_);
    if (!acts.ok()) return acts.status();
    acts_ = std::move(acts).value();
    return ok_status();
  }

  Status compute(KernelContext& ctx) override {
    const Node& node = ctx.node();
    for (size_t i : {kX, kW, kR}) {
      if (!ctx.input(i)) return invalid_argument(node.describe(), ": required input ", i, " is missing");
    }
    const DataType t = ctx.input(kX)->dtype();
    if (t != DataType::kFloat && t != DataType::kDouble && t != DataType::kFloat16 && t != DataType::kBFloat16) {
      return unimplemented(node.describe(), ": element type ", dtype_name(t), " is not supported");
    }
    const DataType compute = t == DataType::kDouble ? DataType::kDouble : DataType::kFloat;
    std::vector<Tensor> in(8);
    for (size_t i = 0; i < in.size(); ++i) {
      const Tensor* src = ctx.input(i);
      if (!src || i == kSeqLens) continue;
      if (src->dtype() != t) {
        return invalid_argument(node.describe(), ": input ", i, " has type ", dtype_name(src->dtype()),
                                " but X has type ", dtype_name(t));
      }
      if (t == compute) {
        in[i] = *src;
      } else {
        HEARTH_ASSIGN_OR_RETURN(in[i], cast_tensor(*src, compute));
      }
    }
    HEARTH_RETURN_IF_ERROR(check_and_plan(node, in));
    // The gate scratch ([seq, batch, gates * hidden] per direction) is held to the tensor limit.
    HEARTH_RETURN_IF_ERROR(
        ctx.check_output_shape(compute, {cfg_.seq, cfg_.batch, rnn_gate_count(kind_) * cfg_.hidden, dirs_})
            .with_context(node.describe() + ": gate scratch"));
    std::vector<int64_t> seq_lens;
    HEARTH_RETURN_IF_ERROR(read_seq_lens(ctx, &seq_lens));
    if (layout_ == 1) {
      in[kX] = swap_leading(in[kX]);
      if (in[kInitH].defined()) in[kInitH] = swap_leading(in[kInitH]);
      if (in[kInitC].defined()) in[kInitC] = swap_leading(in[kInitC]);
    }
    const int64_t S = cfg_.seq, B = cfg_.batch, H = cfg_.hidden;
    Tensor y, yh(compute, {dirs_, B, H}), yc;
    const bool lstm = kind_ == RnnKind::kLstm;
    if (wanted(ctx, 0)) y = Tensor(compute, {S, dirs_, B, H});
    if (lstm) yc = Tensor(compute, {dirs_, B, H});
    Status st = compute == DataType::kDouble ? run<double>(in, seq_lens, y, yh, yc) : run<float>(in, seq_lens, y, yh, yc);
    HEARTH_RETURN_IF_ERROR(st.with_context(node.describe()));
    if (layout_ == 1) {
      if (y.defined()) {
        HEARTH_ASSIGN_OR_RETURN(Tensor y3, y.reshaped({S * dirs_, B, H}));
        HEARTH_ASSIGN_OR_RETURN(y, swap_leading(y3).reshaped({B, S, dirs_, H}));
      }
      yh = swap_leading(yh);
      if (yc.defined()) yc = swap_leading(yc);
    }
    HEARTH_RETURN_IF_ERROR(emit(ctx, 0, y, t));
    HEARTH_RETURN_IF_ERROR(emit(ctx, 1, yh, t));
    if (lstm) HEARTH_RETURN_IF_ERROR(emit(ctx, 2, yc, t));
    return ok_status();
  }

 private:
  static bool wanted(const KernelContext& ctx, size_t i) {
    return i < ctx.num_outputs() && !ctx.node().outputs[i].empty();
  }

  // Sets output i (when wanted) from a compute-type tensor, narrowing to `t`.
  static Status emit(KernelContext& ctx, size_t i, const Tensor& value, DataType t) {
    if (!wanted(ctx, i) || !value.defined()) return ok_status();
    if (value.dtype() == t) {
      ctx.set_output(i, value);
      return ok_status();
    }
    HEARTH_ASSIGN_OR_RETURN(Tensor out, cast_tensor(value, t, ctx.allocator()));
    ctx.set_output(i, std::move(out));
    return ok_status();
  }

  // Validates every shape and fills cfg_ with the sizes.
  Status check_and_plan(const Node& node, const std::vector<Tensor>& in) {
    const Tensor& x = in[kX];
    if (x.rank() != 3 || in[kW].rank() != 3 || in[kR].rank() != 3) {
      return invalid_argument(node.describe(), ": X, W and R must be 3-D, got ", shape_str(x.shape()), ", ",
                              shape_str(in[kW].shape()), ", ", shape_str(in[kR].shape()));
    }
    const int64_t G = rnn_gate_count(kind_);
    cfg_.seq = layout_ == 0 ? x.dim(0) : x.dim(1);
    cfg_.batch = layout_ == 0 ? x.dim(1) : x.dim(0);
    cfg_.input = x.dim(2);
    cfg_.hidden = hidden_attr_ > 0 ? hidden_attr_ : in[kR].dim(2);
    const int64_t B = cfg_.batch, I = cfg_.input, H = cfg_.hidden;
    int64_t GH = 0, GH2 = 0;  // hidden_size comes from the model: products checked
    if (mul_overflows(G, H, &GH) || mul_overflows(GH, 2, &GH2))
      return invalid_argument(node.describe(), ": hidden_size ", H, " is too large");
    HEARTH_RETURN_IF_ERROR(check_shape(node, in[kW], "W", {dirs_, GH, I}));
    HEARTH_RETURN_IF_ERROR(check_shape(node, in[kR], "R", {dirs_, GH, H}));
    if (in[kB].defined()) HEARTH_RETURN_IF_ERROR(check_shape(node, in[kB], "B", {dirs_, GH2}));
    const Shape state = layout_ == 0 ? Shape{dirs_, B, H} : Shape{B, dirs_, H};
    if (in[kInitH].defined()) HEARTH_RETURN_IF_ERROR(check_shape(node, in[kInitH], "initial_h", state));
    if (kind_ == RnnKind::kLstm) {
      if (in[kInitC].defined()) HEARTH_RETURN_IF_ERROR(check_shape(node, in[kInitC], "initial_c", state));
      if (in[kP].defined()) HEARTH_RETURN_IF_ERROR(check_shape(node, in[kP], "P", {dirs_, 3 * H}));
    } else if (in[kInitC].defined() || in[kP].defined()) {
      return invalid_argument(node.describe(), ": has more inputs than the op accepts");
    }
    return ok_status();
  }

  Status read_seq_lens(const KernelContext& ctx, std::vector<int64_t>* out) const {
    const Tensor* t = ctx.input(kSeqLens);
    if (!t) return ok_status();
    const Node& node = ctx.node();
    auto v = tensor_to_int64s(*t);
    if (!v.ok()) return v.status().with_context(node.describe() + ": sequence_lens");
    if (static_cast<int64_t>(v->size()) != cfg_.batch) {
      return invalid_argument(node.describe(), ": sequence_lens has ", v->size(), " values for batch size ",
                              cfg_.batch);
    }
    for (int64_t len : *v) {
      if (len < 0 || len > cfg_.seq) {
        return invalid_argument(node.describe(), ": sequence length ", len, " is outside [0, ", cfg_.seq, "]");
      }
    }
    *out = std::move(v).value();
    return ok_status();
  }

  template <typename T>
  Status run(const std::vector<Tensor>& in, const std::vector<int64_t>& seq_lens, Tensor& y, Tensor& yh,
             Tensor& yc) const {
    const int64_t B = cfg_.batch, H = cfg_.hidden, I = cfg_.input, G = rnn_gate_count(kind_);
    auto ptr = [](const Tensor& t, int64_t offset) -> const T* {
      return t.defined() ? t.data<T>() + offset : nullptr;
    };
    for (int64_t d = 0; d < dirs_; ++d) {
      RnnDirectionIO<T> io;
      io.reverse = dirs_ == 2 ? d == 1 : reverse_;
      io.x = in[kX].data<T>();
      io.w = in[kW].data<T>() + d * G * H * I;
      io.r = in[kR].data<T>() + d * G * H * H;
      io.b = ptr(in[kB], d * 2 * G * H);
      io.p = ptr(in[kP], d * 3 * H);
      io.h0 = ptr(in[kInitH], d * B * H);
      io.c0 = ptr(in[kInitC], d * B * H);
      io.seq_lens = seq_lens.empty() ? nullptr : seq_lens.data();
      io.acts = acts_.data() + d * rnn_activation_count(kind_);
      io.y = y.defined() ? y.data<T>() + d * B * H : nullptr;
      io.y_step_stride = dirs_ * B * H;
      io.yh = yh.data<T>() + d * B * H;
      io.yc = yc.defined() ? yc.data<T>() + d * B * H : nullptr;
      HEARTH_RETURN_IF_ERROR(run_rnn_direction<T>(cfg_, io));
    }
    return ok_status();
  }

  RnnKind kind_;
  int64_t hidden_attr_ = 0;
  int64_t dirs_ = 1;
  bool reverse_ = false;
  int64_t layout_ = 0;
  RnnConfig cfg_;
  std::vector<RnnActivation> acts_;
};

class RnnKernel : public RecurrentKernel {
 public:
  RnnKernel() : RecurrentKernel(RnnKind::kRnn) {}
};
class GruKernel : public RecurrentKernel {
 public:
  GruKernel() : RecurrentKernel(RnnKind::kGru) {}
};
class LstmKernel : public RecurrentKernel {
 public:
  LstmKernel() : RecurrentKernel(RnnKind::kLstm) {}
};

}  // namespace

void register_rnn_kernels(KernelRegistry& r) {
  const std::vector<DataType> types = {DataType::kFloat, DataType::kDouble, DataType::kFloat16, DataType::kBFloat16};
  r.add({"RNN", "", 1, kMaxOpset, types, kernel_factory<RnnKernel>()});
  r.add({"GRU", "", 1, kMaxOpset, types, kernel_factory<GruKernel>()});
  r.add({"LSTM", "", 1, kMaxOpset, types, kernel_factory<LstmKernel>()});
}

}  // namespace hearth
