// Kernel family: detection. NonMaxSuppression and TfIdfVectorizer live here;
// RoiAlign / MaxRoiPool are in detection_roi.cc and GridSample in
// detection_grid.cc. Registration for the whole family is at the bottom.
#include <algorithm>
#include <cmath>
#include <map>
#include <queue>

#include "kernels/kernel.h"
#include "kernels/register_all.h"

namespace hearth {

void register_detection_roi_kernels(KernelRegistry& r);   // detection_roi.cc
void register_detection_grid_kernels(KernelRegistry& r);  // detection_grid.cc

namespace {

// ---------------------------------------------------------------- NonMaxSuppression

struct Box {
  float y1, x1, y2, x2;  // normalized so that y1 <= y2, x1 <= x2
};

Box read_box(const float* p, bool center_point) {
  if (center_point) {  // [x_center, y_center, width, height]
    float hw = p[2] / 2, hh = p[3] / 2;
    return {p[1] - hh, p[0] - hw, p[1] + hh, p[0] + hw};
  }
  return {std::min(p[0], p[2]), std::min(p[1], p[3]), std::max(p[0], p[2]), std::max(p[1], p[3])};
}

// True when the two boxes overlap by more than `threshold` (IoU). Boxes with
// no area never suppress anything, as in ONNX Runtime.
bool suppressed_by_iou(const Box& a, const Box& b, float threshold) {
  float area_a = (a.y2 - a.y1) * (a.x2 - a.x1);
  float area_b = (b.y2 - b.y1) * (b.x2 - b.x1);
  if (area_a <= 0 || area_b <= 0) return false;
  float ih = std::min(a.y2, b.y2) - std::max(a.y1, b.y1);
  float iw = std::min(a.x2, b.x2) - std::max(a.x1, b.x1);
  if (ih <= 0 || iw <= 0) return false;
  float inter = ih * iw;
  float iou = inter / (area_a + area_b - inter);
  return iou > threshold;
}

class NonMaxSuppressionKernel : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    int64_t c = info.node.attr_int("center_point_box", 0);
    if (c != 0 && c != 1) return invalid_argument("center_point_box must be 0 or 1, got ", c);
    center_point_ = c == 1;
    return ok_status();
  }

  Status compute(KernelContext& ctx) override {
    const Tensor* boxes = ctx.input(0);
    const Tensor* scores = ctx.input(1);
    HEARTH_RETURN_IF_ERROR(check_inputs(ctx, boxes, scores));
    int64_t max_out = 0;
    float iou_threshold = 0, score_threshold = 0;
    bool has_score_threshold = ctx.input(4) != nullptr;
    HEARTH_RETURN_IF_ERROR(read_scalars(ctx, &max_out, &iou_threshold, &score_threshold));
    const int64_t batches = boxes->dim(0), num_boxes = boxes->dim(1), classes = scores->dim(1);
    if (num_boxes == 0) max_out = 0;  // nothing to select in any batch or class, however many they are
    std::vector<int64_t> selected;  // triples
    std::vector<Box> all(static_cast<size_t>(num_boxes));
    for (int64_t b = 0; b < batches && max_out > 0; ++b) {
      const float* bp = boxes->data<float>() + b * num_boxes * 4;
      for (int64_t i = 0; i < num_boxes; ++i) all[i] = read_box(bp + i * 4, center_point_);
      for (int64_t c = 0; c < classes; ++c) {
        const float* sp = scores->data<float>() + (b * classes + c) * num_boxes;
        for (int64_t idx : select(all, sp, num_boxes, max_out, iou_threshold, has_score_threshold, score_threshold)) {
          selected.insert(selected.end(), {b, c, idx});
        }
      }
    }
    Tensor& out = ctx.allocate_output(0, DataType::kInt64, {static_cast<int64_t>(selected.size() / 3), 3});
    std::copy(selected.begin(), selected.end(), out.data<int64_t>());
    return ok_status();
  }

 private:
  static Status check_inputs(const KernelContext& ctx, const Tensor* boxes, const Tensor* scores) {
    const std::string where = ctx.node().describe();
    if (!boxes || !scores) return invalid_argument(where, ": boxes and scores are required");
    if (boxes->dtype() != DataType::kFloat || scores->dtype() != DataType::kFloat) {
      return unimplemented(where, ": boxes/scores dtype must be float, got ", boxes->describe(), " and ",
                           scores->describe());
    }
    if (boxes->rank() != 3 || boxes->dim(2) != 4) {
      return invalid_argument(where, ": boxes must be [batches, boxes, 4], got ", boxes->describe());
    }
    if (scores->rank() != 3 || scores->dim(0) != boxes->dim(0) || scores->dim(2) != boxes->dim(1)) {
      return invalid_argument(where, ": scores must be [", boxes->dim(0), ", classes, ", boxes->dim(1), "], got ",
                              scores->describe());
    }
    return ok_status();
  }

  static Status read_scalars(const KernelContext& ctx, int64_t* max_out, float* iou, float* score) {
    const std::string where = ctx.node().describe();
    if (const Tensor* t = ctx.input(2); t && t->numel() > 0) {
      if (t->dtype() != DataType::kInt64) return invalid_argument(where, ": max_output_boxes_per_class must be int64");
      *max_out = std::max<int64_t>(t->data<int64_t>()[0], 0);
    }
    for (size_t i : {3u, 4u}) {
      const Tensor* t = ctx.input(i);
      if (!t || t->numel() == 0) continue;
      if (t->dtype() != DataType::kFloat)
        return invalid_argument(where, ": thresholds must be float, got ", t->describe());
      (i == 3 ? *iou : *score) = t->data<float>()[0];
    }
    if (*iou < 0 || *iou > 1) return invalid_argument(where, ": iou_threshold ", *iou, " must be in [0, 1]");
    return ok_status();
  }

  // Greedy selection for one (batch, class): highest score first (lower index on ties).
  static std::vector<int64_t> select(const std::vector<Box>& boxes, const float* scores, int64_t n, int64_t max_out,
                                     float iou_threshold, bool has_score_threshold, float score_threshold) {
    std::vector<int64_t> order;
    for (int64_t i = 0; i < n; ++i)
      if (!std::isnan(scores[i]) && (!has_score_threshold || scores[i] > score_threshold)) order.push_back(i);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return scores[a] > scores[b]; });
    std::vector<int64_t> kept;
    for (int64_t i : order) {
      if (static_cast<int64_t>(kept.size()) >= max_out) break;
      bool keep = true;
      for (int64_t k : kept) {
        if (suppressed_by_iou(boxes[i], boxes[k], iou_threshold)) {
          keep = false;
          break;
        }
      }
      if (keep) kept.push_back(i);
    }
    return kept;
  }

  bool center_point_ = false;
};

// ---------------------------------------------------------------- TfIdfVectorizer

// Counts pooled n-grams (integer tokens) per row, with skips; see the ONNX spec.
class TfIdfVectorizerKernel : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    const Node& n = info.node;
    if (n.has_attr("pool_strings"))
      return unimplemented("TfIdfVectorizer with pool_strings (string input) is not supported");
    std::string mode = n.attr_string("mode", "");
    if (mode == "TF")
      mode_ = Mode::kTf;
    else if (mode == "IDF")
      mode_ = Mode::kIdf;
    else if (mode == "TFIDF")
      mode_ = Mode::kTfIdf;
    else
      return invalid_argument("mode must be TF, IDF or TFIDF, got '", mode, "'");
    min_n_ = n.attr_int("min_gram_length", 0);
    max_n_ = n.attr_int("max_gram_length", 0);
    max_skip_ = n.attr_int("max_skip_count", 0);
    if (min_n_ < 1 || max_n_ < min_n_ || max_skip_ < 0) {
      return invalid_argument("need 1 <= min_gram_length (", min_n_, ") <= max_gram_length (", max_n_,
                              ") and max_skip_count (", max_skip_, ") >= 0");
    }
    return build_pool(n);
  }

  Status compute(KernelContext& ctx) override {
    const Tensor* x = ctx.input(0);
    if (!x) return invalid_argument(ctx.node().describe(), ": input is required");
    if (x->dtype() != DataType::kInt32 && x->dtype() != DataType::kInt64) {
      return unimplemented(ctx.node().describe(), ": input dtype ", dtype_name(x->dtype()),
                           " is not supported (int32, int64)");
    }
    if (x->rank() != 1 && x->rank() != 2) {
      return invalid_argument(ctx.node().describe(), ": input must be 1-D or 2-D, got ", x->describe());
    }
    HEARTH_ASSIGN_OR_RETURN(std::vector<int64_t> tokens, tensor_to_int64s(*x));
    const int64_t rows = x->rank() == 2 ? x->dim(0) : 1;
    const int64_t cols = x->rank() == 2 ? x->dim(1) : x->dim(0);
    Shape shape = x->rank() == 2 ? Shape{rows, out_size_} : Shape{out_size_};
    Tensor& y = ctx.allocate_output(0, DataType::kFloat, shape);
    std::vector<int64_t> counts(weights_.size());
    for (int64_t r = 0; r < rows; ++r) {
      std::fill(counts.begin(), counts.end(), 0);
      count_row(tokens.data() + r * cols, cols, counts);
      write_row(counts, y.data<float>() + r * out_size_);
    }
    return ok_status();
  }

 private:
  enum class Mode { kTf, kIdf, kTfIdf };

  Status build_pool(const Node& n) {
    std::vector<int64_t> pool = n.attr_ints("pool_int64s");
    std::vector<int64_t> starts = n.attr_ints("ngram_counts");
    std::vector<int64_t> indexes = n.attr_ints("ngram_indexes");
    std::vector<float> weights = n.attr_floats("weights");
    if (!n.has_attr("pool_int64s")) return invalid_argument("pool_int64s is required");
    int64_t id = 0;
    for (size_t g = 0; g < starts.size(); ++g) {
      int64_t begin = starts[g];
      int64_t end = g + 1 < starts.size() ? starts[g + 1] : static_cast<int64_t>(pool.size());
      int64_t len = static_cast<int64_t>(g) + 1;
      if (begin < 0 || end < begin || end > static_cast<int64_t>(pool.size()) || (end - begin) % len != 0) {
        return invalid_argument("ngram_counts ", begin, "..", end, " do not split pool_int64s (size ", pool.size(),
                                ") into ", len, "-grams");
      }
      for (int64_t p = begin; p < end; p += len)
        pool_[std::vector<int64_t>(pool.begin() + p, pool.begin() + p + len)] = id++;
    }
    if (static_cast<int64_t>(indexes.size()) != id) {
      return invalid_argument("ngram_indexes has ", indexes.size(), " entries but the pool holds ", id, " n-grams");
    }
    if (!weights.empty() && weights.size() != indexes.size()) {
      return invalid_argument("weights has ", weights.size(), " entries, expected ", indexes.size());
    }
    out_size_ = 0;
    for (int64_t v : indexes) {
      if (v < 0) return invalid_argument("ngram_indexes holds negative index ", v);
      out_size_ = std::max(out_size_, v + 1);
    }
    if (out_size_ > (int64_t{1} << 31)) return invalid_argument("ngram_indexes value ", out_size_ - 1, " is too large");
    indexes_ = indexes;
    weights_ = weights.empty() ? std::vector<float>(indexes.size(), 1.0f) : weights;
    return ok_status();
  }

  // Every n-gram of length min_n..max_n starting at each position with each
  // skip; 1-grams are counted once (they do not depend on the skip).
  void count_row(const int64_t* t, int64_t len, std::vector<int64_t>& counts) const {
    std::vector<int64_t> gram;
    // A skip of len or more cannot form an n-gram of 2 or more: the row bounds the loop.
    const int64_t max_skip = std::min(max_skip_, len);
    for (int64_t skip = 0; skip <= max_skip; ++skip) {
      for (int64_t start = 0; start < len; ++start) {
        gram.clear();
        for (int64_t k = 0; k < max_n_; ++k) {
          int64_t pos = start + k * (skip + 1);
          if (pos >= len) break;
          gram.push_back(t[pos]);
          int64_t size = k + 1;
          if (size < min_n_ || (size == 1 && skip > 0)) continue;
          auto it = pool_.find(gram);
          if (it != pool_.end()) ++counts[it->second];
        }
      }
    }
  }

  void write_row(const std::vector<int64_t>& counts, float* y) const {
    std::fill(y, y + out_size_, 0.0f);
    for (size_t i = 0; i < counts.size(); ++i) {
      if (counts[i] == 0) continue;
      float v = mode_ == Mode::kTf    ? static_cast<float>(counts[i])
                : mode_ == Mode::kIdf ? weights_[i]
                                      : static_cast<float>(counts[i]) * weights_[i];
      y[indexes_[i]] = v;
    }
  }

  Mode mode_ = Mode::kTf;
  int64_t min_n_ = 1, max_n_ = 1, max_skip_ = 0;
  std::map<std::vector<int64_t>, int64_t> pool_;  // n-gram -> its position in the pool
  std::vector<int64_t> indexes_;
  std::vector<float> weights_;
  int64_t out_size_ = 0;
};

}  // namespace

void register_detection_kernels(KernelRegistry& r) {
  r.add({"NonMaxSuppression", "", 10, kMaxOpset, {DataType::kFloat}, kernel_factory<NonMaxSuppressionKernel>()});
  r.add({"TfIdfVectorizer",
         "",
         9,
         kMaxOpset,
         {DataType::kInt32, DataType::kInt64},
         kernel_factory<TfIdfVectorizerKernel>()});
  register_detection_roi_kernels(r);
  register_detection_grid_kernels(r);
}

}  // namespace hearth
