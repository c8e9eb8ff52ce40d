// Runs one model in two sessions on the same inputs: a reference configuration
// and the one under test (e.g. without and with a graph rewrite), for tests
// that compare their outputs and count the nodes the rewrite left.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "graph/model_builder.h"
#include "runtime/session.h"

namespace hearth::testing {

using Feeds = std::vector<std::pair<std::string, Tensor>>;

// `n` uniform values in [lo, hi), the same for the same seed.
inline std::vector<float> random_values(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

struct SessionPair {
  std::vector<Tensor> reference, tested;
  std::map<std::string, int> tested_ops;  // nodes per op type in the tested session
};

// Failures to load or run are reported with ADD_FAILURE and leave the outputs empty.
inline SessionPair run_session_pair(const onnx::ModelProto& m, const Feeds& feeds, const SessionOptions& reference,
                                    SessionOptions tested) {
  tested.profile = true;  // node_profile() lists the nodes that ran
  const std::string bytes = m.SerializeAsString();
  auto a = Session::load_bytes(bytes.data(), bytes.size(), "", reference);
  auto b = Session::load_bytes(bytes.data(), bytes.size(), "", tested);
  SessionPair o;
  if (!a.ok() || !b.ok()) {
    ADD_FAILURE() << (a.ok() ? b.status().message() : a.status().message());
    return o;
  }
  auto ya = (*a)->run(feeds);
  auto yb = (*b)->run(feeds);
  if (!ya.ok() || !yb.ok()) {
    ADD_FAILURE() << (ya.ok() ? yb.status().message() : ya.status().message());
    return o;
  }
  o.reference = std::move(ya).value();
  o.tested = std::move(yb).value();
  for (const auto& p : (*b)->node_profile()) ++o.tested_ops[p.op_type];
  return o;
}

}  // namespace hearth::testing
