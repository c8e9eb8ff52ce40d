// The per-layer path plan (kernels/path_tuner.h) for `hearth tune` and
// `hearth inspect --plan`: load a model, run it once on random inputs so every
// layer picks its path for those shapes, and print the choices.
#pragma once

#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "core/status.h"
#include "runtime/session.h"

namespace hearth::cli {

struct PlanRun {
  std::string model;
  int64_t batch = 1;
  std::vector<std::string> shapes;  // NAME=1x3x224x224
  int threads = 0;
};

// Loads `r.model` with `options` and runs it once on random inputs.
Result<std::unique_ptr<Session>> run_for_plan(const PlanRun& r, const SessionOptions& options);

void print_plan(const std::vector<PathChoice>& plan, bool json, std::ostream& out);

}  // namespace hearth::cli
