// com.microsoft FusedConv tests: the oneDNN post-op path (sum of Z, activation)
// against the double reference conv followed by the reference epilogue.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "kernels/conv_fusion.h"
#include "kernels/conv_ref.h"
#include "kernels/kernel_test_util.h"

namespace hearth {
namespace {

using testing::attr_floats;
using testing::attr_ints;
using testing::attr_string;
using testing::make_node;
using testing::random_tensor;
using testing::run_node;


// The double reference of a 3x3 "same" convolution on one [1, c_in, size, size]
// image followed by the fused epilogue: what FusedConv must produce.
std::vector<double> reference_fused_conv(int64_t c_in, int64_t c_out, int64_t size, const std::vector<double>& x,
                                         const std::vector<double>& w, const std::vector<double>& b,
                                         const double* z, const ConvFusion& f) {
  Window win;
  win.in = win.out = {size, size};
  win.kernel = {3, 3};
  win.strides = win.dilations = {1, 1};
  win.pad_begin = win.pad_end = {1, 1};
  std::vector<double> ref(c_out * size * size);
  conv_ref<double>(ConvShape{1, c_in, c_out, 1, to_window3(win)}, x.data(), w.data(), b.data(), ref.data(), 1);
  apply_conv_fusion<double>(f, z, ref.data(), ref.size());
  return ref;
}

struct Act {
  const char* name;
  std::vector<float> params;
};

TEST(FusedConvKernel, matches_reference_epilogue_for_each_activation) {
  const std::vector<Act> acts = {{"", {}},          {"Relu", {}},          {"LeakyRelu", {0.1f}},
                                 {"Sigmoid", {}},   {"Tanh", {}},          {"Clip", {0.0f, 6.0f}},
                                 {"HardSigmoid", {0.2f, 0.5f}}, {"HardSwish", {}}};
  std::mt19937 rng(21);
  for (const Act& act : acts) {
    for (bool with_z : {false, true}) {
      Tensor x = random_tensor({1, 8, 9, 9}, rng), w = random_tensor({16, 8, 3, 3}, rng);
      Tensor b = random_tensor({16}, rng), z = random_tensor({1, 16, 9, 9}, rng);
      std::map<std::string, Attribute> attrs = {{"pads", attr_ints({1, 1, 1, 1})}};
      if (*act.name) attrs["activation"] = attr_string(act.name);
      if (!act.params.empty()) attrs["activation_params"] = attr_floats(act.params);
      std::vector<Tensor> ins = {x, w, b};
      if (with_z) ins.push_back(z);
      auto out = run_node(make_node("FusedConv", ins.size(), 1, attrs, "com.microsoft"), ins, 1,
                          {false, true, true, false});
      ASSERT_TRUE(out.ok()) << out.status().to_string();
      auto xd = tensor_to_doubles(x).value(), wd = tensor_to_doubles(w).value();
      auto bd = tensor_to_doubles(b).value(), zd = tensor_to_doubles(z).value();
      ConvFusion f;
      ASSERT_TRUE(parse_conv_activation(act.name, act.params, &f).ok());
      const auto ref = reference_fused_conv(8, 16, 9, xd, wd, bd, with_z ? zd.data() : nullptr, f);
      auto yd = tensor_to_doubles((*out)[0]).value();
      for (size_t i = 0; i < ref.size(); ++i)
        ASSERT_NEAR(yd[i], ref[i], 1e-4 * std::max(1.0, std::fabs(ref[i]))) << act.name << " z " << with_z;
    }
  }
}

TEST(FusedConvKernel, rejects_unknown_activation_and_bad_z) {
  Tensor x = Tensor::zeros(DataType::kFloat, {1, 2, 4, 4}), w = Tensor::zeros(DataType::kFloat, {2, 2, 1, 1});
  auto bad_act = run_node(make_node("FusedConv", 2, 1, {{"activation", attr_string("Gelu")}}, "com.microsoft"),
                          {x, w}, 1);
  ASSERT_FALSE(bad_act.ok());
  EXPECT_EQ(bad_act.status().code(), StatusCode::kUnimplemented);
  Tensor z = Tensor::zeros(DataType::kFloat, {1, 2, 3, 3});
  auto bad_z = run_node(make_node("FusedConv", 4, 1, {}, "com.microsoft"), {x, w, Tensor(), z}, 1);
  ASSERT_FALSE(bad_z.ok());
  EXPECT_EQ(bad_z.status().code(), StatusCode::kInvalidArgument);
}

// A residual Z that the session may give away becomes Y's memory (the sum then
// accumulates in place); one that another tensor still shares does not. Both
// give the reference result, on oneDNN (float) and on the reference (double).
TEST(FusedConvKernel, donated_residual_becomes_the_output_in_place) {
  std::mt19937 rng(23);
  for (DataType dt : {DataType::kFloat, DataType::kDouble}) {
    for (bool shared : {false, true}) {
      Tensor x = random_tensor({1, 8, 7, 7}, rng), w = random_tensor({8, 8, 3, 3}, rng);
      Tensor b = random_tensor({8}, rng), z = random_tensor({1, 8, 7, 7}, rng);
      auto xd = tensor_to_doubles(x).value(), wd = tensor_to_doubles(w).value();
      auto bd = tensor_to_doubles(b).value(), zd = tensor_to_doubles(z).value();
      if (dt == DataType::kDouble) {
        x = cast_tensor(x, dt).value(), w = cast_tensor(w, dt).value();
        b = cast_tensor(b, dt).value(), z = cast_tensor(z, dt).value();
      }
      const void* z_memory = z.raw_data();
      std::vector<Tensor> ins = {x, w, b};
      Tensor keep;  // another holder of Z's memory
      if (shared) keep = z;
      ins.push_back(std::move(z));
      std::map<std::string, Attribute> attrs = {{"pads", attr_ints({1, 1, 1, 1})},
                                                {"activation", attr_string("Relu")}};
      auto out = run_node(make_node("FusedConv", 4, 1, attrs, "com.microsoft"), ins, 1, {false, true, true, false},
                          1, uint64_t{1} << 3);
      ASSERT_TRUE(out.ok()) << out.status().to_string();
      EXPECT_EQ((*out)[0].raw_data() == z_memory, !shared) << dtype_name(dt);
      ConvFusion f;
      f.act = ConvActivation::kRelu;
      const auto ref = reference_fused_conv(8, 8, 7, xd, wd, bd, zd.data(), f);
      auto yd = tensor_to_doubles((*out)[0]).value();
      for (size_t i = 0; i < ref.size(); ++i)
        ASSERT_NEAR(yd[i], ref[i], 1e-4 * std::max(1.0, std::fabs(ref[i]))) << dtype_name(dt) << " shared " << shared;
      if (shared) {
        auto kd = tensor_to_doubles(keep).value();
        for (size_t i = 0; i < zd.size(); ++i) ASSERT_EQ(kd[i], zd[i]) << "a shared Z was written";
      }
    }
  }
}

}  // namespace
}  // namespace hearth
