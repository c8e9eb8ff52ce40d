// Tests for the broadcasting utility in src/kernels/broadcast.h, against a
// plain reference loop that computes per-input offsets from the multi-index.
#include <gtest/gtest.h>

#include "kernels/broadcast.h"

namespace hearth {
namespace {

// Reference: offset of output element `i` in an input of shape `in` under broadcast to `out`.
int64_t ref_offset(int64_t i, const Shape& in, const Shape& out) {
  int64_t off = 0, stride = 1;
  for (size_t d = out.size(); d-- > 0;) {
    int64_t idx = i % out[d];
    i /= out[d];
    size_t pad = out.size() - in.size();
    if (d >= pad) {
      int64_t dim = in[d - pad];
      if (dim != 1) off += idx * stride;
      stride *= dim;
    }
  }
  return off;
}

void check_walk(const std::vector<Shape>& shapes, int64_t begin_split = -1) {
  auto plan = make_broadcast_plan(shapes);
  ASSERT_TRUE(plan.ok()) << plan.status().to_string();
  std::vector<int> seen(plan->numel, 0);
  auto visit = [&](int64_t o, int64_t n, const int64_t* off, const int64_t* st) {
    for (int64_t i = 0; i < n; ++i) {
      ++seen[o + i];
      for (size_t k = 0; k < shapes.size(); ++k)
        ASSERT_EQ(off[k] + i * st[k], ref_offset(o + i, shapes[k], plan->out_shape)) << "input " << k;
    }
  };
  if (begin_split < 0) {
    for_each_broadcast_row(*plan, 0, plan->numel, visit);
  } else {
    for_each_broadcast_row(*plan, 0, begin_split, visit);
    for_each_broadcast_row(*plan, begin_split, plan->numel, visit);
  }
  for (int v : seen) ASSERT_EQ(v, 1);
}

TEST(ElementwiseBroadcast, output_shape_follows_numpy) {
  auto s = broadcast_shapes({{2, 1, 4}, {3, 1}, {}});
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s, (Shape{2, 3, 4}));
  auto z = broadcast_shapes({{0, 3}, {1, 3}});
  ASSERT_TRUE(z.ok());
  EXPECT_EQ(*z, (Shape{0, 3}));
}

TEST(ElementwiseBroadcast, rejects_incompatible_shapes) {
  auto s = broadcast_shapes({{2, 3}, {4}});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("cannot be broadcast"), std::string::npos);
}

TEST(ElementwiseBroadcast, same_shape_collapses_to_one_row) {
  auto p = make_broadcast_plan({{2, 3, 4}, {2, 3, 4}});
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->dims, (std::vector<int64_t>{24}));
  EXPECT_TRUE(p->is_contiguous(0));
  EXPECT_TRUE(p->is_contiguous(1));
}

TEST(ElementwiseBroadcast, scalar_operand_has_zero_strides) {
  auto p = make_broadcast_plan({{2, 3}, {}});
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->is_scalar(1));
  EXPECT_FALSE(p->is_scalar(0));
}

TEST(ElementwiseBroadcast, walker_offsets_match_reference) {
  check_walk({{2, 3, 4, 5}, {1, 3, 1, 1}});
  check_walk({{2, 3, 4, 5}, {5}}, 17);
  check_walk({{3, 1}, {1, 4}}, 5);
  check_walk({{2, 1, 4}, {3, 1}, {2, 3, 4}}, 7);
  check_walk({{}, {}});
  check_walk({{1, 1, 1}, {1}});
  check_walk({{4, 1, 3, 1, 2}, {4, 5, 1, 6, 2}}, 33);
}

TEST(ElementwiseBroadcast, map2_adds_with_broadcast_in_parallel) {
  Shape sa{64, 1, 1024}, sb{1, 3, 1024};
  auto p = make_broadcast_plan({sa, sb});
  ASSERT_TRUE(p.ok());
  std::vector<float> a(64 * 1024), b(3 * 1024), y(p->numel);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(i);
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<float>(i) * 0.5f;
  broadcast_map2(*p, a.data(), b.data(), y.data(), 2, [](float x, float z) { return x + z; });
  for (int64_t i = 0; i < p->numel; ++i) {
    ASSERT_EQ(y[i], a[ref_offset(i, sa, p->out_shape)] + b[ref_offset(i, sb, p->out_shape)]) << i;
  }
}

// The tiled path (short inner rows, one operand repeated per row): the blocked
// layout's per-channel operand, both operand orders, odd row lengths, and empty shapes.
TEST(ElementwiseBroadcast, map2_tiled_rows_match_reference) {
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{2, 3, 5, 7, 8}, {2, 3, 1, 1, 8}}, {{1, 3, 1, 1, 8}, {1, 3, 4, 4, 8}}, {{4, 6, 5}, {4, 1, 5}},
      {{3, 9, 64}, {3, 1, 64}},           {{0, 4}, {4}},                       {{2, 0, 8}, {2, 1, 8}}};
  for (const auto& [sa, sb] : cases) {
    auto p = make_broadcast_plan({sa, sb});
    ASSERT_TRUE(p.ok());
    std::vector<float> a(shape_numel(sa)), b(shape_numel(sb)), y(p->numel, -1.0f);
    for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(i);
    for (size_t i = 0; i < b.size(); ++i) b[i] = 1000.0f + static_cast<float>(i);
    broadcast_map2(*p, a.data(), b.data(), y.data(), 2, [](float x, float z) { return x - 2 * z; });
    for (int64_t i = 0; i < p->numel; ++i) {
      ASSERT_EQ(y[i], a[ref_offset(i, sa, p->out_shape)] - 2 * b[ref_offset(i, sb, p->out_shape)])
          << shape_str(sa) << " and " << shape_str(sb) << " at " << i;
    }
  }
}

}  // namespace
}  // namespace hearth
