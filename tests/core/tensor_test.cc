#include "core/tensor.h"

#include <gtest/gtest.h>

namespace hearth {
namespace {

TEST(Tensor, ReshapeSharesMemoryAndChecksCount) {
  Tensor t = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  auto r = t.reshaped({3, 2});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->raw_data(), t.raw_data());
  EXPECT_FALSE(t.reshaped({4, 2}).ok());
}

TEST(Tensor, CastFloatToIntTruncatesTowardZero) {
  Tensor t = Tensor::from_vector<float>({1.7f, -1.7f, 0.2f}, {3});
  auto r = cast_tensor(t, DataType::kInt32);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->data<int32_t>()[0], 1);
  EXPECT_EQ(r->data<int32_t>()[1], -1);
  EXPECT_EQ(r->data<int32_t>()[2], 0);
}

TEST(DType, HalfRoundTripsRepresentableValues) {
  for (float f : {0.0f, 1.0f, -2.5f, 65504.0f, 6.103515625e-05f, 5.960464477539063e-08f}) {
    EXPECT_EQ(half_to_float(float_to_half(f)), f) << f;
  }
  EXPECT_EQ(float_to_half(1e10f), 0x7c00);  // overflow to +inf
}

}  // namespace
}  // namespace hearth
