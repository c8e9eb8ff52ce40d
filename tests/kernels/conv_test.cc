// Conv / ConvTranspose tests: hand-computed cases, the oneDNN float path
// against the double reference twin on random shapes, the reference checked
// as the adjoint pair (<conv(x), y> == <x, conv_transpose(y)>), and bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "kernels/conv_ref.h"
#include "kernels/kernel_test_util.h"

namespace hearth {
namespace {

using testing::attr_int;
using testing::attr_ints;
using testing::attr_string;
using testing::make_node;
using testing::random_tensor;
using testing::run_node;


std::vector<double> to_doubles(const Tensor& t) { return tensor_to_doubles(t).value(); }

// Max |a-b| / max(1, |b|) over all elements.
double max_rel_err(const Tensor& a, const std::vector<double>& b) {
  const auto av = to_doubles(a);
  EXPECT_EQ(av.size(), b.size());
  double e = 0;
  for (size_t i = 0; i < av.size() && i < b.size(); ++i) e = std::max(e, std::fabs(av[i] - b[i]) / std::max(1.0, std::fabs(b[i])));
  return e;
}

TEST(ConvKernel, computes_hand_example_without_padding) {
  Tensor x = Tensor::from_vector<float>({0, 1, 2, 3, 4, 5, 6, 7, 8}, {1, 1, 3, 3});
  Tensor w = Tensor::from_vector<float>({1, 1, 1, 1}, {1, 1, 2, 2});
  Tensor b = Tensor::from_vector<float>({0.5f}, {1});
  auto out = run_node(make_node("Conv", 3, 1), {x, w, b});
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ((*out)[0].shape(), (Shape{1, 1, 2, 2}));
  EXPECT_EQ(to_doubles((*out)[0]), (std::vector<double>{8.5, 12.5, 20.5, 24.5}));
}

TEST(ConvKernel, same_lower_puts_odd_pad_first) {
  // 1-D: x=[1,2,3,4], k=2, SAME_LOWER -> pad begin 1: y = [1, 3, 5, 7].
  Tensor x = Tensor::from_vector<float>({1, 2, 3, 4}, {1, 1, 4});
  Tensor w = Tensor::from_vector<float>({1, 1}, {1, 1, 2});
  auto out = run_node(make_node("Conv", 2, 1, {{"auto_pad", attr_string("SAME_LOWER")}}), {x, w});
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ(to_doubles((*out)[0]), (std::vector<double>{1, 3, 5, 7}));
}

TEST(ConvTransposeKernel, computes_hand_example_with_stride) {
  // x=[1,2], k=[1,1,1], stride 2 -> [1,1,3,2,2]; bias 1.
  Tensor x = Tensor::from_vector<float>({1, 2}, {1, 1, 2});
  Tensor w = Tensor::from_vector<float>({1, 1, 1}, {1, 1, 3});
  Tensor b = Tensor::from_vector<float>({1}, {1});
  auto out = run_node(make_node("ConvTranspose", 3, 1, {{"strides", attr_ints({2})}}), {x, w, b});
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ(to_doubles((*out)[0]), (std::vector<double>{2, 2, 4, 3, 3}));
}

struct RandomCase {
  int dims;
  int64_t n, c_in, c_out, group, size, k, stride, dil, pad_b, pad_e;
  bool bias;
};

std::vector<RandomCase> random_cases() {
  std::mt19937 rng(7);
  std::vector<RandomCase> cases;
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  for (int i = 0; i < 40; ++i) {
    RandomCase c;
    c.dims = 1 + i % 3;
    c.group = std::vector<int64_t>{1, 1, 2, 3, 4}[pick(0, 4)];
    c.c_in = c.group * pick(1, 4);
    c.c_out = c.group * pick(1, 4);
    if (i % 7 == 0) c.c_out = c.c_in = c.group = 8;  // depthwise
    c.n = pick(1, 2);
    c.k = pick(1, 3);
    c.stride = pick(1, 3);
    c.dil = pick(1, 2);
    c.size = (c.k - 1) * c.dil + pick(1, c.dims == 3 ? 5 : 9);
    c.pad_b = pick(0, c.k - 1);
    c.pad_e = pick(0, c.k - 1);
    c.bias = pick(0, 1) == 1;
    cases.push_back(c);
  }
  return cases;
}

ConvShape ref_shape(const RandomCase& c, const Shape& out_shape) {
  Window w;
  w.in.assign(c.dims, c.size);
  w.out.assign(out_shape.begin() + 2, out_shape.end());
  w.kernel.assign(c.dims, c.k);
  w.strides.assign(c.dims, c.stride);
  w.dilations.assign(c.dims, c.dil);
  w.pad_begin.assign(c.dims, c.pad_b);
  w.pad_end.assign(c.dims, c.pad_e);
  return ConvShape{c.n, c.c_in, c.c_out, c.group, to_window3(w)};
}

std::map<std::string, Attribute> window_attrs(const RandomCase& c) {
  std::vector<int64_t> pads(c.dims, c.pad_b);
  pads.insert(pads.end(), c.dims, c.pad_e);
  return {{"group", attr_int(c.group)},
          {"strides", attr_ints(std::vector<int64_t>(c.dims, c.stride))},
          {"dilations", attr_ints(std::vector<int64_t>(c.dims, c.dil))},
          {"pads", attr_ints(pads)}};
}

TEST(ConvKernel, onednn_matches_reference_on_random_shapes) {
  std::mt19937 rng(11);
  for (const RandomCase& c : random_cases()) {
    Shape xs = {c.n, c.c_in}, ws = {c.c_out, c.c_in / c.group};
    xs.insert(xs.end(), c.dims, c.size);
    ws.insert(ws.end(), c.dims, c.k);
    Tensor x = random_tensor(xs, rng), w = random_tensor(ws, rng), b = random_tensor({c.c_out}, rng);
    std::vector<Tensor> ins = {x, w};
    if (c.bias) ins.push_back(b);
    // Constant weights exercise the reorder-once path.
    auto out = run_node(make_node("Conv", ins.size(), 1, window_attrs(c)), ins, 17, {false, true, true}, 2);
    ASSERT_TRUE(out.ok()) << out.status().to_string();
    const Tensor& y = (*out)[0];
    auto xd = to_doubles(x), wd = to_doubles(w), bd = to_doubles(b);
    std::vector<double> ref(y.numel());
    conv_ref<double>(ref_shape(c, y.shape()), xd.data(), wd.data(), c.bias ? bd.data() : nullptr, ref.data(), 1);
    EXPECT_LE(max_rel_err(y, ref), 1e-4) << "dims " << c.dims << " group " << c.group << " k " << c.k << " s "
                                         << c.stride << " d " << c.dil;
  }
}

TEST(ConvTransposeKernel, onednn_matches_reference_on_random_shapes) {
  std::mt19937 rng(13);
  for (RandomCase c : random_cases()) {
    c.size = std::max<int64_t>(1, c.size - (c.k - 1) * c.dil);  // ConvTranspose grows its input
    if ((c.size - 1) * c.stride + (c.k - 1) * c.dil + 1 - c.pad_b - c.pad_e < 1) c.pad_b = c.pad_e = 0;
    Shape xs = {c.n, c.c_in}, ws = {c.c_in, c.c_out / c.group};
    xs.insert(xs.end(), c.dims, c.size);
    ws.insert(ws.end(), c.dims, c.k);
    Tensor x = random_tensor(xs, rng), w = random_tensor(ws, rng), b = random_tensor({c.c_out}, rng);
    std::vector<Tensor> ins = {x, w};
    if (c.bias) ins.push_back(b);
    auto attrs = window_attrs(c);
    if (c.stride > 1) attrs["output_padding"] = attr_ints(std::vector<int64_t>(c.dims, c.stride - 1));
    auto out = run_node(make_node("ConvTranspose", ins.size(), 1, attrs), ins, 17, {false, true, true}, 2);
    ASSERT_TRUE(out.ok()) << out.status().to_string();
    const Tensor& y = (*out)[0];
    const int64_t full = (c.size - 1) * c.stride + (c.k - 1) * c.dil + 1;
    const int64_t op = c.stride > 1 ? c.stride - 1 : 0;
    ASSERT_EQ(y.dim(2), full + op - c.pad_b - c.pad_e);
    ConvShape s = ref_shape(c, y.shape());
    for (int i = 3 - c.dims; i < 3; ++i) s.w.pe[i] = c.pad_e - op;
    auto xd = to_doubles(x), wd = to_doubles(w), bd = to_doubles(b);
    std::vector<double> ref(y.numel());
    conv_transpose_ref<double>(s, xd.data(), wd.data(), c.bias ? bd.data() : nullptr, ref.data(), 1);
    EXPECT_LE(max_rel_err(y, ref), 1e-4) << "dims " << c.dims << " group " << c.group << " k " << c.k << " s "
                                         << c.stride << " d " << c.dil;
  }
}

TEST(ConvReference, conv_transpose_is_the_adjoint_of_conv) {
  std::mt19937 rng(17);
  for (const RandomCase& c : random_cases()) {
    Shape xs = {c.n, c.c_in}, ws = {c.c_out, c.c_in / c.group};
    xs.insert(xs.end(), c.dims, c.size);
    ws.insert(ws.end(), c.dims, c.k);
    auto x = to_doubles(random_tensor(xs, rng)), w = to_doubles(random_tensor(ws, rng));
    int64_t out = (c.size + c.pad_b + c.pad_e - (c.k - 1) * c.dil - 1) / c.stride + 1;
    Shape ys = {c.n, c.c_out};
    ys.insert(ys.end(), c.dims, out);
    auto y = to_doubles(random_tensor(ys, rng));
    ConvShape s = ref_shape(c, ys);
    std::vector<double> cx(y.size()), ty(x.size());
    conv_ref<double>(s, x.data(), w.data(), nullptr, cx.data(), 1);
    // The transpose maps the conv output (c_out channels) back onto the conv input.
    ConvShape t = s;
    std::swap(t.c_in, t.c_out);
    for (int i = 0; i < 3; ++i) {
      std::swap(t.w.in[i], t.w.out[i]);
      t.w.pe[i] = (t.w.in[i] - 1) * t.w.s[i] + (t.w.k[i] - 1) * t.w.d[i] + 1 - t.w.pb[i] - t.w.out[i];
    }
    conv_transpose_ref<double>(t, y.data(), w.data(), nullptr, ty.data(), 1);
    double a = 0, b = 0;
    for (size_t i = 0; i < y.size(); ++i) a += cx[i] * y[i];
    for (size_t i = 0; i < x.size(); ++i) b += x[i] * ty[i];
    EXPECT_NEAR(a, b, 1e-9 * std::max(1.0, std::fabs(a)));
  }
}

TEST(ConvKernel, runs_double_and_float16) {
  Tensor xd = Tensor::from_vector<double>({0, 1, 2, 3, 4, 5, 6, 7, 8}, {1, 1, 3, 3});
  Tensor wd = Tensor::from_vector<double>({1, 1, 1, 1}, {1, 1, 2, 2});
  auto out = run_node(make_node("Conv", 2, 1), {xd, wd});
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ(to_doubles((*out)[0]), (std::vector<double>{8, 12, 20, 24}));
  auto xh = cast_tensor(xd, DataType::kFloat16).value(), wh = cast_tensor(wd, DataType::kFloat16).value();
  auto outh = run_node(make_node("Conv", 2, 1), {xh, wh});
  ASSERT_TRUE(outh.ok()) << outh.status().to_string();
  EXPECT_EQ((*outh)[0].dtype(), DataType::kFloat16);
  EXPECT_EQ(to_doubles(cast_tensor((*outh)[0], DataType::kDouble).value()), (std::vector<double>{8, 12, 20, 24}));
}

TEST(ConvKernel, reuses_cached_primitive_across_calls_and_shapes) {
  Node node = make_node("Conv", 2, 1, {{"pads", attr_ints({1, 1, 1, 1})}});
  std::mt19937 rng(3);
  Tensor w = random_tensor({4, 3, 3, 3}, rng);
  const KernelDef* def = KernelRegistry::global().find("Conv", "", 17);
  ASSERT_NE(def, nullptr);
  KernelInfo info{node, 17, [&](size_t i) -> const Tensor* { return i == 1 ? &w : nullptr; }};
  auto kernel = def->factory(info);
  ASSERT_TRUE(kernel.ok());
  for (int64_t size : {5, 5, 7, 5}) {
    Tensor x = random_tensor({1, 3, size, size}, rng);
    std::vector<Tensor> outs(1);
    KernelContext ctx(node, {&x, &w}, &outs, default_allocator(), 1);
    ASSERT_TRUE((*kernel)->compute(ctx).ok());
    auto xd = to_doubles(x), wd = to_doubles(w);
    std::vector<double> ref(outs[0].numel());
    RandomCase c{2, 1, 3, 4, 1, size, 3, 1, 1, 1, 1, false};
    conv_ref<double>(ref_shape(c, outs[0].shape()), xd.data(), wd.data(), nullptr, ref.data(), 1);
    EXPECT_LE(max_rel_err(outs[0], ref), 1e-4) << "size " << size;
  }
}

TEST(ConvKernel, rejects_weights_that_do_not_fit_input_channels) {
  Tensor x = Tensor::zeros(DataType::kFloat, {1, 3, 4, 4});
  Tensor w = Tensor::zeros(DataType::kFloat, {2, 2, 3, 3});
  auto out = run_node(make_node("Conv", 2, 1), {x, w});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(out.status().message().find("Conv"), std::string::npos) << out.status().message();
}

TEST(ConvTransposeKernel, rejects_wrong_bias_length) {
  Tensor x = Tensor::zeros(DataType::kFloat, {1, 2, 4});
  Tensor w = Tensor::zeros(DataType::kFloat, {2, 3, 3});
  Tensor b = Tensor::zeros(DataType::kFloat, {2});
  auto out = run_node(make_node("ConvTranspose", 3, 1), {x, w, b});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace hearth
