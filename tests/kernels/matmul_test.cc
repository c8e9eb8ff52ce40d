// Tests for MatMul and Gemm: the oneDNN float32 path against the reference
// twin (matmul_ref.h) and a plain loop written here, on random shapes.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "kernels/gemv.h"
#include "kernels/kernel_test_util.h"
#include "kernels/matmul_ref.h"

namespace hearth {
namespace {

using testing::attr_float;
using testing::attr_int;
using testing::make_node;
using testing::random_tensor;
using testing::run_node;


void expect_close(const Tensor& got, const std::vector<float>& want, double rel = 1e-4) {
  ASSERT_EQ(got.numel(), static_cast<int64_t>(want.size()));
  for (size_t i = 0; i < want.size(); ++i) {
    const double g = got.data<float>()[i], w = want[i];
    ASSERT_LE(std::abs(g - w), rel * std::max(1.0, std::abs(w))) << "element " << i;
  }
}

struct MatmulCase {
  Shape a, b;
};

TEST(MatMulKernel, onednn_matches_reference_on_random_shapes) {
  std::mt19937 rng(7);
  const std::vector<MatmulCase> cases = {
      {{3, 4}, {4, 5}},          {{1, 1}, {1, 1}},          {{7}, {7, 3}},
      {{2, 7}, {7}},             {{9}, {9}},                {{2, 3, 5, 4}, {4, 6}},
      {{2, 1, 5, 4}, {3, 4, 6}}, {{5, 4}, {2, 3, 4, 2}},    {{1, 3, 17, 33}, {2, 1, 33, 65}},
      {{64, 128}, {128, 96}},    {{4, 1, 1, 1, 2, 3}, {1, 2, 1, 1, 3, 2}},
  };
  for (const auto& c : cases) {
    for (bool constant_b : {false, true}) {
      Tensor a = random_tensor(c.a, rng), b = random_tensor(c.b, rng);
      auto plan = plan_matmul(c.a, c.b);
      ASSERT_TRUE(plan.ok());
      std::vector<float> want(plan->batch_count() * plan->M * plan->N);
      matmul_reference<float>(*plan, a.data<float>(), b.data<float>(), want.data());
      auto out = run_node(make_node("MatMul", 2, 1), {a, b}, 13, {false, constant_b});
      ASSERT_TRUE(out.ok()) << out.status().to_string();
      EXPECT_EQ((*out)[0].shape(), plan->out_shape) << shape_str(c.a) << " x " << shape_str(c.b);
      expect_close((*out)[0], want);
    }
  }
}

TEST(MatMulKernel, hand_computed_int64_and_double) {
  Tensor a = Tensor::from_vector<int64_t>({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor b = Tensor::from_vector<int64_t>({7, 8, 9, 10, 11, 12}, {3, 2});
  auto out = run_node(make_node("MatMul", 2, 1), {a, b});
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  const int64_t* y = (*out)[0].data<int64_t>();
  EXPECT_EQ((*out)[0].shape(), (Shape{2, 2}));
  EXPECT_EQ(y[0], 58);
  EXPECT_EQ(y[1], 64);
  EXPECT_EQ(y[2], 139);
  EXPECT_EQ(y[3], 154);

  Tensor da = Tensor::from_vector<double>({1.5, -2.0}, {2});
  Tensor db = Tensor::from_vector<double>({4.0, 0.25}, {2});
  auto dot = run_node(make_node("MatMul", 2, 1), {da, db});
  ASSERT_TRUE(dot.ok());
  EXPECT_TRUE((*dot)[0].shape().empty());
  EXPECT_DOUBLE_EQ((*dot)[0].data<double>()[0], 5.5);
}

TEST(MatMulKernel, float16_is_computed_in_float) {
  Tensor a(DataType::kFloat16, {1, 2}), b(DataType::kFloat16, {2, 1});
  a.data<Float16>()[0].bits = float_to_half(1.5f);
  a.data<Float16>()[1].bits = float_to_half(2.0f);
  b.data<Float16>()[0].bits = float_to_half(4.0f);
  b.data<Float16>()[1].bits = float_to_half(-1.0f);
  auto out = run_node(make_node("MatMul", 2, 1), {a, b});
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ((*out)[0].dtype(), DataType::kFloat16);
  EXPECT_FLOAT_EQ(half_to_float((*out)[0].data<Float16>()[0].bits), 4.0f);
}

TEST(MatMulKernel, rejects_mismatched_inner_dims) {
  std::mt19937 rng(1);
  auto out = run_node(make_node("MatMul", 2, 1), {random_tensor({2, 3}, rng), random_tensor({4, 2}, rng)});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(out.status().message().find("MatMul"), std::string::npos);
  auto batch = run_node(make_node("MatMul", 2, 1), {random_tensor({2, 2, 3}, rng), random_tensor({3, 3, 2}, rng)});
  EXPECT_EQ(batch.status().code(), StatusCode::kInvalidArgument);
  auto types = run_node(make_node("MatMul", 2, 1), {random_tensor({2, 3}, rng), Tensor::from_vector<double>({1, 2, 3}, {3})});
  EXPECT_EQ(types.status().code(), StatusCode::kInvalidArgument);
}

// Plain Gemm written independently of the kernel: y = alpha * A'B' + beta * C.
std::vector<float> plain_gemm(const Tensor& a, const Tensor& b, const Tensor* c, bool ta, bool tb, float alpha,
                              float beta) {
  const int64_t M = ta ? a.dim(1) : a.dim(0), K = ta ? a.dim(0) : a.dim(1), N = tb ? b.dim(0) : b.dim(1);
  std::vector<float> y(M * N);
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t n = 0; n < N; ++n) {
      double acc = 0;
      for (int64_t k = 0; k < K; ++k) {
        const float av = ta ? a.data<float>()[k * M + m] : a.data<float>()[m * K + k];
        const float bv = tb ? b.data<float>()[n * K + k] : b.data<float>()[k * N + n];
        acc += static_cast<double>(av) * bv;
      }
      double cv = 0;
      if (c) {
        Shape s = c->shape();
        while (s.size() < 2) s.insert(s.begin(), 1);
        cv = c->data<float>()[(s[0] == 1 ? 0 : m) * s[1] + (s[1] == 1 ? 0 : n)];
      }
      y[m * N + n] = static_cast<float>(alpha * acc + beta * cv);
    }
  }
  return y;
}

TEST(GemmKernel, onednn_matches_plain_loop_on_random_shapes) {
  std::mt19937 rng(11);
  const int64_t M = 13, K = 29, N = 7;
  const std::vector<Shape> c_shapes = {{}, {N}, {1}, {M, N}, {1, N}, {M, 1}};
  for (int ta = 0; ta < 2; ++ta) {
    for (int tb = 0; tb < 2; ++tb) {
      for (const Shape& cs : c_shapes) {
        Tensor a = random_tensor(ta ? Shape{K, M} : Shape{M, K}, rng);
        Tensor b = random_tensor(tb ? Shape{N, K} : Shape{K, N}, rng);
        Tensor c = random_tensor(cs, rng);
        const float alpha = 0.75f, beta = -1.25f;
        auto node = make_node("Gemm", 3, 1,
                              {{"alpha", attr_float(alpha)}, {"beta", attr_float(beta)},
                               {"transA", attr_int(ta)}, {"transB", attr_int(tb)}});
        auto out = run_node(node, {a, b, c}, 13, {false, true, true});
        ASSERT_TRUE(out.ok()) << out.status().to_string();
        EXPECT_EQ((*out)[0].shape(), (Shape{M, N}));
        expect_close((*out)[0], plain_gemm(a, b, &c, ta, tb, alpha, beta));
      }
    }
  }
}

// One to eight rows against constant weights take the hand-written path (gemv.h,
// tested directly below), except that plain [K, N] weights too large for cache
// take only four there; more rows go to oneDNN. Through the Gemm kernel:
// transposed and plain B, A read through transA, the row bias fused or not.
TEST(GemmKernel, few_rows_against_constant_weights_match_plain_loop) {
  std::mt19937 rng(19);
  int checked = 0;
  // K * N in L2, K * N past it (1024 x 300: transposed B takes 8 rows by hand,
  // plain B 4), and products too narrow for vectors: N = 10 (the zoo MLP's last
  // layer), then K and N under one vector (scalar tails only).
  for (auto [K, N] : {std::pair<int64_t, int64_t>{203, 130}, {1024, 300}, {256, 10}, {5, 7}, {3, 1}})
  for (int64_t M : {1, 2, 3, 4, 5, 8, 9}) {
    for (int ta = 0; ta < 2; ++ta) {
      for (int tb = 0; tb < 2; ++tb) {
        for (const Shape& cs : {Shape{N}, Shape{M, N}}) {
          for (int threads : {1, 2}) {
            Tensor a = random_tensor(ta ? Shape{K, M} : Shape{M, K}, rng);
            Tensor b = random_tensor(tb ? Shape{N, K} : Shape{K, N}, rng);
            Tensor c = random_tensor(cs, rng);
            const float alpha = cs.size() == 1 ? 1.0f : 0.5f, beta = cs.size() == 1 ? 1.0f : 2.0f;
            auto node = make_node("Gemm", 3, 1,
                                  {{"alpha", attr_float(alpha)}, {"beta", attr_float(beta)},
                                   {"transA", attr_int(ta)}, {"transB", attr_int(tb)}});
            auto out = run_node(node, {a, b, c}, 13, {false, true, true}, threads);
            ASSERT_TRUE(out.ok()) << out.status().to_string();
            SCOPED_TRACE("M " + std::to_string(M) + " transA " + std::to_string(ta) + " transB " +
                         std::to_string(tb) + " C " + shape_str(cs));
            expect_close((*out)[0], plain_gemm(a, b, &c, ta, tb, alpha, beta));
            ++checked;
          }
        }
      }
    }
  }
  EXPECT_EQ(checked, 5 * 7 * 2 * 2 * 2 * 2);
  // MatMul with a [1, K] row and constant [K, N] weights.
  const int64_t K = 203, N = 130;
  Tensor a = random_tensor({1, K}, rng), b = random_tensor({K, N}, rng);
  auto out = run_node(make_node("MatMul", 2, 1), {a, b}, 13, {false, true});
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  expect_close((*out)[0], plain_gemm(a, b, nullptr, false, false, 1.0f, 0.0f));
}

// The streaming product itself, on both weight layouts (transposed rows as
// Gemm's transB stores them, plain [K, N] rows), padded row strides, K and N
// off the vector width, with and without bias, and a product large enough that
// two and three threads split it.
TEST(Gemv, matches_double_loop_on_both_weight_layouts) {
  if (!gemv_available()) GTEST_SKIP() << "no AVX2/FMA";
  std::mt19937 rng(29);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  struct Size {
    int64_t N, K;
  };
  for (const Size& sz : {Size{77, 203}, Size{1000, 130}}) {
    for (int64_t M = 1; M <= kGemvMaxRows; ++M) {
      for (bool transposed : {true, false}) {
        for (bool with_bias : {false, true}) {
          for (int threads : {1, 2, 3}) {  // 3: a split that leaves partial vectors to a thread
            const int64_t N = sz.N, K = sz.K, lda = K + 3;
            const int64_t ldb = (transposed ? K : N) + 5;  // padded rows
            std::vector<float> a(M * lda), b((transposed ? N : K) * ldb), bias(N), y(M * N, -7.0f);
            for (auto& v : a) v = dist(rng);
            for (auto& v : b) v = dist(rng);
            for (auto& v : bias) v = dist(rng);
            const float alpha = 0.5f;
            const int64_t b_k = transposed ? 1 : ldb, b_n = transposed ? ldb : 1;
            gemv_rows(M, N, K, a.data(), lda, b.data(), b_k, b_n, alpha, with_bias ? bias.data() : nullptr,
                      y.data(), threads);
            for (int64_t m = 0; m < M; ++m)
              for (int64_t n = 0; n < N; ++n) {
                double acc = 0;
                for (int64_t k = 0; k < K; ++k) acc += double(a[m * lda + k]) * b[k * b_k + n * b_n];
                const double want = alpha * acc + (with_bias ? bias[n] : 0.0);
                ASSERT_NEAR(y[m * N + n], want, 1e-4 * std::max(1.0, std::abs(want)))
                    << "M " << M << " N " << N << " K " << K << " transposed " << transposed << " m " << m
                    << " n " << n << " threads " << threads;
              }
          }
        }
      }
    }
  }
}

TEST(GemmKernel, c_is_optional_from_opset_11_only) {
  std::mt19937 rng(3);
  Tensor a = random_tensor({2, 3}, rng), b = random_tensor({3, 4}, rng);
  auto out = run_node(make_node("Gemm", 2, 1), {a, b}, 11);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  expect_close((*out)[0], plain_gemm(a, b, nullptr, false, false, 1.0f, 1.0f));
  auto old = run_node(make_node("Gemm", 2, 1), {a, b}, 9);
  EXPECT_EQ(old.status().code(), StatusCode::kInvalidArgument);
}

TEST(GemmKernel, int32_reference) {
  Tensor a = Tensor::from_vector<int32_t>({1, 2, 3, 4}, {2, 2});
  Tensor b = Tensor::from_vector<int32_t>({5, 6, 7, 8}, {2, 2});
  Tensor c = Tensor::from_vector<int32_t>({100, 200}, {2});
  auto out = run_node(make_node("Gemm", 3, 1, {{"transB", attr_int(1)}}), {a, b, c});
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  const int32_t* y = (*out)[0].data<int32_t>();
  EXPECT_EQ(y[0], 117);  // 1*5 + 2*6 + 100
  EXPECT_EQ(y[1], 223);  // 1*7 + 2*8 + 200
  EXPECT_EQ(y[2], 139);
  EXPECT_EQ(y[3], 253);
}

TEST(GemmKernel, rejects_bad_shapes) {
  std::mt19937 rng(5);
  Tensor a = random_tensor({2, 3}, rng), b = random_tensor({3, 4}, rng);
  auto bad_c = run_node(make_node("Gemm", 3, 1), {a, b, random_tensor({3}, rng)});
  EXPECT_EQ(bad_c.status().code(), StatusCode::kInvalidArgument);
  auto bad_k = run_node(make_node("Gemm", 2, 1), {a, random_tensor({4, 4}, rng)});
  EXPECT_EQ(bad_k.status().code(), StatusCode::kInvalidArgument);
  auto bad_rank = run_node(make_node("Gemm", 2, 1), {random_tensor({3}, rng), b});
  EXPECT_EQ(bad_rank.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace hearth
