// Kernel family: shape, data-moving part. Transpose, Concat, Split, Expand,
// Tile, DepthToSpace and SpaceToDepth. Element type never matters here:
// everything is a byte-width copy (shape_util.h), so all dtypes work.
#include <algorithm>
#include <cstring>

#include "kernels/broadcast.h"
#include "kernels/kernel.h"
#include "kernels/shape_util.h"

namespace hearth {
namespace {

// ---- Transpose -------------------------------------------------------------

class TransposeKernel : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    has_perm_ = info.node.has_attr("perm");
    perm_ = info.node.attr_ints("perm");
    return ok_status();
  }
  Status compute(KernelContext& ctx) override {
    HEARTH_ASSIGN_OR_RETURN(const Tensor* x, required_input(ctx, 0, "data"));
    HEARTH_RETURN_IF_ERROR(check_movable(*x, "Transpose", "data"));
    const size_t rank = x->rank();
    std::vector<int64_t> perm = perm_;
    if (!has_perm_) {
      perm.resize(rank);
      for (size_t i = 0; i < rank; ++i) perm[i] = static_cast<int64_t>(rank - 1 - i);
    }
    if (perm.size() != rank) {
      return invalid_argument("Transpose: perm has ", perm.size(), " entries but the input is ", x->describe());
    }
    std::vector<bool> seen(rank, false);
    Shape out(rank);
    for (size_t i = 0; i < rank; ++i) {
      int64_t p = perm[i] < 0 ? perm[i] + static_cast<int64_t>(rank) : perm[i];
      if (p < 0 || p >= static_cast<int64_t>(rank) || seen[static_cast<size_t>(p)]) {
        return invalid_argument("Transpose: perm ", shape_str(perm_), " is not a permutation of rank ", rank);
      }
      seen[static_cast<size_t>(p)] = true;
      perm[i] = p;
      out[i] = x->dim(static_cast<size_t>(p));
    }
    Tensor& y = ctx.allocate_output(0, x->dtype(), out);
    return permute_copy(*x, x->shape(), perm, y, ctx.num_threads());
  }

 private:
  bool has_perm_ = false;
  std::vector<int64_t> perm_;
};

// ---- Concat / Split --------------------------------------------------------

// Copies `outer` blocks: block o of part k is parts[k] + o * part_bytes[k] and lands
// (or comes from) offset o * row + prefix[k] of the joined buffer. copy(o, k, at,
// off, len) moves bytes [off, off + len) of that block, `at` being the block's
// offset in the joined buffer. Threads split the blocks when there are many; with
// few (a channel concat at batch 1, in the blocked layout, is one block per part)
// the copies are cut into pieces instead.
template <typename Fn>
void copy_blocks(int64_t outer, const std::vector<size_t>& part_bytes, int num_threads, Fn&& copy) {
  size_t row = 0;
  std::vector<size_t> prefix;
  for (size_t b : part_bytes) {
    prefix.push_back(row);
    row += b;
  }
  auto copy_row = [&](int64_t o) {
    for (size_t k = 0; k < part_bytes.size(); ++k)
      if (part_bytes[k]) copy(o, k, o * row + prefix[k], 0, part_bytes[k]);
  };
  const size_t total = row * static_cast<size_t>(outer);
  if (num_threads <= 1 || total <= 256 * 1024 || outer >= 4 * static_cast<int64_t>(num_threads)) {
    const bool parallel = num_threads > 1 && outer > 1 && total > 256 * 1024;
#pragma omp parallel for num_threads(std::max(num_threads, 1)) schedule(static) if (parallel)
    for (int64_t o = 0; o < outer; ++o) copy_row(o);
    return;
  }
  // Few blocks: pieces of about total / (8 * threads) bytes, at least 32 KiB.
  // There are at most outer * parts + 8 * threads of them (outer < 4 * threads).
  const size_t piece = std::max<size_t>(32 * 1024, total / (8 * static_cast<size_t>(num_threads)));
  struct Piece {
    int64_t o;
    size_t k, off, len;
  };
  std::vector<Piece> pieces;
  for (int64_t o = 0; o < outer; ++o)
    for (size_t k = 0; k < part_bytes.size(); ++k)
      for (size_t off = 0; off < part_bytes[k]; off += piece)
        pieces.push_back({o, k, off, std::min(piece, part_bytes[k] - off)});
  const int64_t count = static_cast<int64_t>(pieces.size());
#pragma omp parallel for num_threads(num_threads) schedule(dynamic, 1)
  for (int64_t i = 0; i < count; ++i) {
    const Piece& p = pieces[static_cast<size_t>(i)];
    copy(p.o, p.k, p.o * row + prefix[p.k], p.off, p.len);
  }
}

class ConcatKernel : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    // Opsets 1-3 defaulted axis to 1; from opset 4 it is required.
    if (!info.node.has_attr("axis") && info.opset >= 4) return invalid_argument("Concat: attribute 'axis' is required");
    axis_ = info.node.attr_int("axis", 1);
    return ok_status();
  }
  Status compute(KernelContext& ctx) override {
    std::vector<const Tensor*> ins;
    for (size_t i = 0; i < ctx.num_inputs(); ++i)
      if (ctx.input(i)) ins.push_back(ctx.input(i));
    if (ins.empty()) return invalid_argument("Concat: needs at least one input");
    const Tensor& first = *ins[0];
    HEARTH_RETURN_IF_ERROR(check_movable(first, "Concat", "input 0"));
    HEARTH_ASSIGN_OR_RETURN(int64_t axis, normalize_axis_for(axis_, static_cast<int64_t>(first.rank()), "Concat"));
    const size_t ax = static_cast<size_t>(axis);
    Shape out = first.shape();
    out[ax] = 0;
    for (size_t k = 0; k < ins.size(); ++k) {
      const Tensor& t = *ins[k];
      if (t.dtype() != first.dtype() || t.rank() != first.rank()) {
        return invalid_argument("Concat: input ", k, " ", t.describe(), " does not match input 0 ", first.describe());
      }
      for (size_t d = 0; d < t.rank(); ++d) {
        if (d != ax && t.dim(d) != first.dim(d)) {
          return invalid_argument("Concat: input ", k, " ", t.describe(), " differs from input 0 ",
                                  first.describe(), " in dim ", d);
        }
      }
      out[ax] += t.dim(ax);
    }
    Tensor& y = ctx.allocate_output(0, first.dtype(), out);
    if (y.numel() == 0) return ok_status();
    int64_t outer = 1;
    for (size_t d = 0; d < ax; ++d) outer *= out[d];
    std::vector<size_t> part_bytes;
    for (const Tensor* t : ins) part_bytes.push_back(outer == 0 ? 0 : t->nbytes() / static_cast<size_t>(outer));
    auto* dst = static_cast<uint8_t*>(y.raw_data());
    copy_blocks(outer, part_bytes, ctx.num_threads(), [&](int64_t o, size_t k, size_t at, size_t off, size_t len) {
      std::memcpy(dst + at + off, static_cast<const uint8_t*>(ins[k]->raw_data()) + o * part_bytes[k] + off, len);
    });
    return ok_status();
  }

 private:
  int64_t axis_ = 0;
};

class SplitKernel : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    axis_ = info.node.attr_int("axis", 0);
    opset_ = info.opset;
    if (opset_ < 13) split_attr_ = info.node.attr_ints("split");
    num_outputs_attr_ = info.node.attr_int("num_outputs", 0);
    return ok_status();
  }
  Status compute(KernelContext& ctx) override {
    HEARTH_ASSIGN_OR_RETURN(const Tensor* x, required_input(ctx, 0, "input"));
    HEARTH_RETURN_IF_ERROR(check_movable(*x, "Split", "input"));
    HEARTH_ASSIGN_OR_RETURN(int64_t axis, normalize_axis_for(axis_, static_cast<int64_t>(x->rank()), "Split"));
    const size_t ax = static_cast<size_t>(axis);
    HEARTH_ASSIGN_OR_RETURN(std::vector<int64_t> sizes, split_sizes(ctx, x->dim(ax)));
    int64_t outer = 1;
    for (size_t d = 0; d < ax; ++d) outer *= x->dim(d);
    const size_t slice_bytes = static_cast<size_t>(shape_numel(Shape(x->shape().begin() + axis + 1, x->shape().end()))) *
                               dtype_size(x->dtype());
    std::vector<size_t> part_bytes;
    std::vector<uint8_t*> dsts;
    for (size_t k = 0; k < sizes.size(); ++k) {
      Shape s = x->shape();
      s[ax] = sizes[k];
      Tensor& y = ctx.allocate_output(k, x->dtype(), s);
      dsts.push_back(static_cast<uint8_t*>(y.raw_data()));
      part_bytes.push_back(static_cast<size_t>(sizes[k]) * slice_bytes);
    }
    if (x->numel() == 0) return ok_status();
    const auto* src = static_cast<const uint8_t*>(x->raw_data());
    copy_blocks(outer, part_bytes, ctx.num_threads(), [&](int64_t o, size_t k, size_t at, size_t off, size_t len) {
      std::memcpy(dsts[k] + o * part_bytes[k] + off, src + at + off, len);
    });
    return ok_status();
  }

 private:
  // Sizes of the outputs along the axis, validated to sum to `dim`.
  Result<std::vector<int64_t>> split_sizes(const KernelContext& ctx, int64_t dim) const {
    const int64_t n = static_cast<int64_t>(ctx.num_outputs());
    std::vector<int64_t> sizes = split_attr_;
    if (opset_ >= 13 && ctx.input(1)) {
      HEARTH_ASSIGN_OR_RETURN(sizes, read_int64s(*ctx.input(1), "Split: split"));
    }
    if (sizes.empty()) {
      if (n <= 0) return invalid_argument("Split: node has no outputs");
      if (dim % n != 0 && num_outputs_attr_ == 0) {
        return invalid_argument("Split: dim ", dim, " cannot be split evenly into ", n, " outputs");
      }
      const int64_t chunk = dim / n + (dim % n != 0);  // opset 18 num_outputs: last chunk may be smaller
      for (int64_t k = 0; k < n; ++k) sizes.push_back(std::clamp<int64_t>(dim - k * chunk, 0, chunk));
      return sizes;
    }
    if (static_cast<int64_t>(sizes.size()) != n) {
      return invalid_argument("Split: 'split' has ", sizes.size(), " entries but the node has ", n, " outputs");
    }
    int64_t total = 0;
    for (int64_t s : sizes) {
      if (s < 0) return invalid_argument("Split: negative split size ", s);
      HEARTH_ASSIGN_OR_RETURN(total, checked_add(total, s, "Split: sum of split sizes"));
    }
    if (total != dim) return invalid_argument("Split: split sizes sum to ", total, " but the axis has size ", dim);
    return sizes;
  }

  int64_t axis_ = 0;
  int64_t opset_ = 0;
  int64_t num_outputs_attr_ = 0;
  std::vector<int64_t> split_attr_;
};

// ---- Expand / Tile ---------------------------------------------------------

class ExpandKernel : public Kernel {
 public:
  Status compute(KernelContext& ctx) override {
    HEARTH_ASSIGN_OR_RETURN(const Tensor* x, required_input(ctx, 0, "input"));
    HEARTH_ASSIGN_OR_RETURN(const Tensor* s, required_input(ctx, 1, "shape"));
    HEARTH_RETURN_IF_ERROR(check_movable(*x, "Expand", "input"));
    HEARTH_ASSIGN_OR_RETURN(Shape target, read_int64s(*s, "Expand: shape"));
    for (int64_t d : target)
      if (d < 0) return invalid_argument("Expand: negative dim ", d, " in shape ", shape_str(target));
    auto bs = broadcast_shapes({x->shape(), target});
    if (!bs.ok()) return bs.status().with_context("Expand");
    StridedCopy plan;
    plan.shape = bs.value();
    const size_t pad = plan.shape.size() - x->rank();
    const std::vector<int64_t> in_strides = shape_strides(x->shape());
    plan.src_strides.assign(plan.shape.size(), 0);
    for (size_t d = 0; d < x->rank(); ++d) plan.src_strides[pad + d] = x->dim(d) == 1 ? 0 : in_strides[d];
    Tensor& y = ctx.allocate_output(0, x->dtype(), plan.shape);
    return strided_copy(plan, x->raw_data(), y.raw_data(), dtype_size(x->dtype()), ctx.num_threads());
  }
};

class TileKernel : public Kernel {
 public:
  Status compute(KernelContext& ctx) override {
    HEARTH_ASSIGN_OR_RETURN(const Tensor* x, required_input(ctx, 0, "input"));
    HEARTH_ASSIGN_OR_RETURN(const Tensor* r, required_input(ctx, 1, "repeats"));
    HEARTH_RETURN_IF_ERROR(check_movable(*x, "Tile", "input"));
    HEARTH_ASSIGN_OR_RETURN(std::vector<int64_t> reps, read_int64s(*r, "Tile: repeats"));
    if (reps.size() != x->rank()) {
      return invalid_argument("Tile: repeats has ", reps.size(), " entries but the input is ", x->describe());
    }
    // Output dim d viewed as [reps[d], in[d]]: the repeat index does not move the source.
    const std::vector<int64_t> in_strides = shape_strides(x->shape());
    StridedCopy plan;
    Shape out;
    for (size_t d = 0; d < x->rank(); ++d) {
      if (reps[d] < 0) return invalid_argument("Tile: negative repeat ", reps[d], " for axis ", d);
      plan.shape.push_back(reps[d]);
      plan.src_strides.push_back(0);
      plan.shape.push_back(x->dim(d));
      plan.src_strides.push_back(in_strides[d]);
      HEARTH_ASSIGN_OR_RETURN(int64_t od, checked_mul(reps[d], x->dim(d), "Tile: output dim"));
      out.push_back(od);
    }
    Tensor& y = ctx.allocate_output(0, x->dtype(), out);
    return strided_copy(plan, x->raw_data(), y.raw_data(), dtype_size(x->dtype()), ctx.num_threads());
  }
};

// ---- DepthToSpace / SpaceToDepth ------------------------------------------

constexpr int64_t kMaxBlocksize = 1 << 16;

// Checks the input is 4-D and the blocksize positive and at most kMaxBlocksize.
Status check_block_input(const Tensor& x, int64_t b, const char* op) {
  HEARTH_RETURN_IF_ERROR(check_movable(x, op, "input"));
  if (x.rank() != 4) return invalid_argument(op, ": input must be 4-D, got ", x.describe());
  // blocksize^2 and dim * blocksize stay far from overflow below this.
  if (b <= 0 || b > kMaxBlocksize) return invalid_argument(op, ": blocksize must be in [1, ", kMaxBlocksize, "], got ", b);
  return ok_status();
}

class DepthToSpaceKernel : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    block_ = info.node.attr_int("blocksize", 0);
    const std::string mode = info.opset >= 11 ? info.node.attr_string("mode", "DCR") : "DCR";
    if (mode != "DCR" && mode != "CRD") return invalid_argument("DepthToSpace: unknown mode '", mode, "'");
    crd_ = mode == "CRD";
    return ok_status();
  }
  Status compute(KernelContext& ctx) override {
    HEARTH_ASSIGN_OR_RETURN(const Tensor* x, required_input(ctx, 0, "input"));
    HEARTH_RETURN_IF_ERROR(check_block_input(*x, block_, "DepthToSpace"));
    const int64_t n = x->dim(0), c = x->dim(1), h = x->dim(2), w = x->dim(3), b = block_;
    if (c % (b * b) != 0) {
      return invalid_argument("DepthToSpace: channels ", c, " are not divisible by blocksize^2 = ", b * b);
    }
    const int64_t oc = c / (b * b);
    Tensor& y = ctx.allocate_output(0, x->dtype(), {n, oc, h * b, w * b});
    if (crd_) return permute_copy(*x, {n, oc, b, b, h, w}, {0, 1, 4, 2, 5, 3}, y, ctx.num_threads());
    return permute_copy(*x, {n, b, b, oc, h, w}, {0, 3, 4, 1, 5, 2}, y, ctx.num_threads());
  }

 private:
  int64_t block_ = 0;
  bool crd_ = false;
};

class SpaceToDepthKernel : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    block_ = info.node.attr_int("blocksize", 0);
    return ok_status();
  }
  Status compute(KernelContext& ctx) override {
    HEARTH_ASSIGN_OR_RETURN(const Tensor* x, required_input(ctx, 0, "input"));
    HEARTH_RETURN_IF_ERROR(check_block_input(*x, block_, "SpaceToDepth"));
    const int64_t n = x->dim(0), c = x->dim(1), h = x->dim(2), w = x->dim(3), b = block_;
    if (h % b != 0 || w % b != 0) {
      return invalid_argument("SpaceToDepth: spatial dims ", h, "x", w, " are not divisible by blocksize ", b);
    }
    Tensor& y = ctx.allocate_output(0, x->dtype(), {n, c * b * b, h / b, w / b});
    return permute_copy(*x, {n, c, h / b, b, w / b, b}, {0, 3, 5, 1, 2, 4}, y, ctx.num_threads());
  }

 private:
  int64_t block_ = 0;
};

}  // namespace

void register_shape_copy_kernels(KernelRegistry& r) {
  r.add({"Transpose", "", 1, kMaxOpset, all_types(), kernel_factory<TransposeKernel>()});
  r.add({"Concat", "", 1, kMaxOpset, all_types(), kernel_factory<ConcatKernel>()});
  r.add({"Split", "", 2, kMaxOpset, all_types(), kernel_factory<SplitKernel>()});
  r.add({"Expand", "", 8, kMaxOpset, all_types(), kernel_factory<ExpandKernel>()});
  r.add({"Tile", "", 6, kMaxOpset, all_types(), kernel_factory<TileKernel>()});
  r.add({"DepthToSpace", "", 1, kMaxOpset, all_types(), kernel_factory<DepthToSpaceKernel>()});
  r.add({"SpaceToDepth", "", 1, kMaxOpset, all_types(), kernel_factory<SpaceToDepthKernel>()});
}

}  // namespace hearth
