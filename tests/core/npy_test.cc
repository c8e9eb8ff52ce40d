#include "core/npy.h"

#include <gtest/gtest.h>

namespace hearth {
namespace {

TEST(Npy, round_trips_shapes_and_types) {
  for (Shape shape : {Shape{}, Shape{3}, Shape{2, 3}, Shape{1, 2, 0}}) {
    Tensor t(DataType::kInt64, shape);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<int64_t>()[i] = i * 7 - 3;
    auto back = parse_npy(serialize_npy(t), "mem");
    ASSERT_TRUE(back.ok()) << back.status().to_string();
    EXPECT_EQ(back->shape(), shape);
    EXPECT_EQ(back->dtype(), DataType::kInt64);
    for (int64_t i = 0; i < t.numel(); ++i) EXPECT_EQ(back->data<int64_t>()[i], i * 7 - 3);
  }
}

TEST(Npy, rejects_data_size_mismatch_and_bad_magic) {
  Tensor t = Tensor::from_vector<float>({1, 2, 3, 4}, {4});
  std::string bytes = serialize_npy(t);
  auto r = parse_npy(bytes.substr(0, bytes.size() - 4), "x.npy");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("x.npy"), std::string::npos);
  EXPECT_FALSE(parse_npy("hello world, not numpy", "y.npy").ok());
}

}  // namespace
}  // namespace hearth
