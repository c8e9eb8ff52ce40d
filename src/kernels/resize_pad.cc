// Kernel family: resize, Pad (opset 2: attributes pads / mode / value;
// opset 11+: inputs pads, constant_value and, from opset 18, axes).
// Modes constant, reflect, edge, wrap. Negative pads crop first (as ONNX
// Runtime does), then the positive pads are applied to the cropped extent.
// A pure gather, so one byte-size-templated path serves every dtype.
#include <algorithm>
#include <cstring>
#include <string>

#include "kernels/resize_common.h"

namespace hearth {
namespace {

enum class PadMode { kConstant, kReflect, kEdge, kWrap };

// One axis: input size `in`, pads `pb` (begin) and `pe` (end), negative ones crop.
struct PadAxis {
  int64_t crop_begin = 0, kept = 0, pad_begin = 0, out = 0;
};

// Resolves one axis; pads come from the model or an input, so every step is checked.
Result<PadAxis> pad_axis(int64_t in, int64_t pb, int64_t pe, const Node& node) {
  PadAxis a;
  const int64_t crop_b = pb < 0 ? pb : 0, crop_e = pe < 0 ? pe : 0;  // <= 0
  if (crop_b < -in || crop_e < -in || crop_b + crop_e < -in)  // each is >= -in here, so the sum is exact
    return invalid_argument(node.describe(), ": pads ", pb, ",", pe, " crop more than the axis size ", in);
  a.crop_begin = -crop_b;
  a.kept = in + crop_b + crop_e;
  a.pad_begin = std::max<int64_t>(pb, 0);
  int64_t grown = 0;
  if (add_overflows(a.kept, a.pad_begin, &grown) || add_overflows(grown, std::max<int64_t>(pe, 0), &a.out))
    return invalid_argument(node.describe(), ": pads ", pb, ",", pe, " make the axis larger than fits in 64 bits");
  return a;
}

// Source index for each output index along one axis; -1 means "constant".
Result<std::vector<int64_t>> axis_map(const PadAxis& a, PadMode mode, const Node& node) {
  const int64_t cs = a.crop_begin, L = a.kept, b = a.pad_begin, out = a.out;
  if (L == 0 && out > 0 && mode != PadMode::kConstant)
    return invalid_argument(node.describe(), ": cannot pad an empty axis in non-constant mode");
  std::vector<int64_t> m(static_cast<size_t>(out));
  for (int64_t o = 0; o < out; ++o) {
    int64_t i = o - b;
    if (i < 0 || i >= L) {
      switch (mode) {
        case PadMode::kConstant: i = -1; break;
        case PadMode::kEdge: i = std::clamp<int64_t>(i, 0, L - 1); break;
        case PadMode::kWrap: i = ((i % L) + L) % L; break;
        case PadMode::kReflect: {
          if (L == 1) { i = 0; break; }
          int64_t period = 2 * (L - 1);
          i = ((i % period) + period) % period;
          if (i >= L) i = period - i;
          break;
        }
      }
    }
    m[o] = i < 0 ? -1 : i + cs;
  }
  return m;
}

template <typename E>
void pad_gather(const E* x, E* y, const Shape& in, const std::vector<std::vector<int64_t>>& maps, E value) {
  size_t rank = in.size();
  const std::vector<int64_t>& last = maps[rank - 1];
  int64_t out_w = static_cast<int64_t>(last.size()), in_w = in[rank - 1];
  int64_t rows = 1;
  for (size_t d = 0; d + 1 < rank; ++d) rows *= static_cast<int64_t>(maps[d].size());
#pragma omp parallel for if (rows * out_w > (1 << 16))
  for (int64_t r = 0; r < rows; ++r) {
    E* dst = y + r * out_w;
    int64_t rem = r, src_row = 0, stride = 1;
    bool constant = false;
    for (size_t d = rank - 1; d-- > 0;) {
      int64_t n = static_cast<int64_t>(maps[d].size());
      int64_t s = maps[d][rem % n];
      rem /= n;
      if (s < 0) constant = true;
      src_row += s * stride;
      stride *= in[d];
    }
    if (constant) {
      std::fill(dst, dst + out_w, value);
      continue;
    }
    const E* src = x + src_row * in_w;
    for (int64_t o = 0; o < out_w; ++o) dst[o] = last[o] < 0 ? value : src[last[o]];
  }
}

class PadKernel final : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    const Node& n = info.node;
    std::string mode = n.attr_string("mode", "constant");
    if (mode == "constant") mode_ = PadMode::kConstant;
    else if (mode == "reflect") mode_ = PadMode::kReflect;
    else if (mode == "edge") mode_ = PadMode::kEdge;
    else if (mode == "wrap") mode_ = PadMode::kWrap;
    else return invalid_argument(n.describe(), ": unknown Pad mode '", mode, "'");
    from_inputs_ = info.opset >= 11;
    if (!from_inputs_) {
      attr_pads_ = n.attr_ints("pads");
      value_ = n.attr_float("value", 0.0f);
    }
    return ok_status();
  }

  Status compute(KernelContext& ctx) override {
    const Node& node = ctx.node();
    const Tensor* x = ctx.input(0);
    if (!x) return invalid_argument(node.describe(), ": input data is required");
    size_t rank = x->rank();
    HEARTH_ASSIGN_OR_RETURN(std::vector<int64_t> pads, read_pads(ctx, rank));
    std::vector<PadAxis> axes(rank);
    Shape out(rank);
    for (size_t d = 0; d < rank; ++d) {
      HEARTH_ASSIGN_OR_RETURN(axes[d], pad_axis(x->dim(d), pads[d], pads[d + rank], node));
      out[d] = axes[d].out;
    }
    // The index maps are as long as the output's axes: check the output before making them.
    HEARTH_RETURN_IF_ERROR(ctx.check_output_shape(x->dtype(), out).with_context(node.describe()));
    std::vector<std::vector<int64_t>> maps(rank);
    for (size_t d = 0; d < rank; ++d) {
      HEARTH_ASSIGN_OR_RETURN(maps[d], axis_map(axes[d], mode_, node));
    }
    Tensor& y = ctx.allocate_output(0, x->dtype(), out);
    if (y.numel() == 0) return ok_status();
    if (rank == 0) {
      std::memcpy(y.raw_data(), x->raw_data(), x->nbytes());
      return ok_status();
    }
    HEARTH_ASSIGN_OR_RETURN(Tensor value, constant_value(ctx, x->dtype()));
    auto run = [&](auto tag) {
      using E = decltype(tag);
      E v;
      std::memcpy(&v, value.raw_data(), sizeof(E));
      pad_gather<E>(static_cast<const E*>(x->raw_data()), static_cast<E*>(y.raw_data()), x->shape(), maps, v);
      return ok_status();
    };
    switch (dtype_size(x->dtype())) {
      case 1: return run(uint8_t{});
      case 2: return run(uint16_t{});
      case 4: return run(uint32_t{});
      case 8: return run(uint64_t{});
      default: return unimplemented(node.describe(), ": Pad of dtype ", dtype_name(x->dtype()));
    }
  }

 private:
  // Full begin/end pads (2 * rank values), applying the optional axes input.
  Result<std::vector<int64_t>> read_pads(const KernelContext& ctx, size_t rank) const {
    const Node& node = ctx.node();
    std::vector<int64_t> raw = attr_pads_;
    if (from_inputs_) {
      if (!ctx.input(1)) return invalid_argument(node.describe(), ": input pads is required");
      auto r = tensor_to_int64s(*ctx.input(1));
      if (!r.ok()) return invalid_argument(node.describe(), ": cannot read pads: ", r.status().message());
      raw = std::move(r).value();
    }
    std::vector<int64_t> axes;
    if (const Tensor* a = ctx.input(3)) {
      auto r = tensor_to_int64s(*a);
      if (!r.ok()) return invalid_argument(node.describe(), ": cannot read axes: ", r.status().message());
      axes = std::move(r).value();
    } else {
      for (size_t d = 0; d < rank; ++d) axes.push_back(static_cast<int64_t>(d));
    }
    if (raw.size() != 2 * axes.size())
      return invalid_argument(node.describe(), ": pads has ", raw.size(), " values, expected ", 2 * axes.size(),
                              " for input of rank ", rank);
    std::vector<int64_t> pads(2 * rank, 0);
    size_t na = axes.size();
    for (size_t i = 0; i < na; ++i) {
      HEARTH_ASSIGN_OR_RETURN(int64_t a, normalize_axis(axes[i], static_cast<int64_t>(rank), node));
      pads[a] = raw[i];
      pads[a + rank] = raw[i + na];
    }
    return pads;
  }

  // The pad value as a one-element tensor of `dtype`.
  Result<Tensor> constant_value(const KernelContext& ctx, DataType dtype) const {
    const Tensor* v = from_inputs_ ? ctx.input(2) : nullptr;
    if (v && v->numel() >= 1) {
      if (v->dtype() == dtype) return *v;
      return cast_tensor(*v, dtype);
    }
    return cast_tensor(Tensor::scalar<float>(value_), dtype);
  }

  PadMode mode_ = PadMode::kConstant;
  bool from_inputs_ = false;
  std::vector<int64_t> attr_pads_;
  float value_ = 0.0f;
};

}  // namespace

void register_pad_kernels(KernelRegistry& r) {
  r.add({"Pad", "", 2, kMaxOpset, all_types(), kernel_factory<PadKernel>()});
}

}  // namespace hearth
