// Input handling shared by `run` and `bench`: NAME=FILE.npy arguments,
// shape overrides, and random inputs for a model's declared inputs.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "graph/graph.h"

namespace hearth::cli {

using Feeds = std::vector<std::pair<std::string, Tensor>>;

// Reads "NAME=FILE.npy" (or just "FILE.npy" when the model has one input).
Result<Feeds> load_input_args(const std::vector<std::string>& args, const std::vector<ValueInfo>& inputs);

// Parses "NAME=1x3x224x224" shape overrides.
Result<std::map<std::string, Shape>> parse_shape_args(const std::vector<std::string>& args);

// Random data for every input not already in `feeds`: dynamic first dims take `batch`,
// other dynamic dims take 1 unless `shapes` overrides; integer inputs get values in [0, 100).
Result<Feeds> random_inputs(const std::vector<ValueInfo>& inputs, const Feeds& feeds, int64_t batch,
                            const std::map<std::string, Shape>& shapes, uint32_t seed);

}  // namespace hearth::cli
