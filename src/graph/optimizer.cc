// The graph optimizer: runs the rewrite passes in order (see optimizer.h; the
// passes live in fuse_conv.cc, fuse_layer_norm.cc, fuse_matmul.cc and nchwc.cc).
#include "graph/optimizer.h"

#include "graph/nchwc.h"
#include "graph/rewrite.h"

namespace hearth {

Result<OptimizerStats> optimize_graph(Model& model, bool blocked_layout) {
  Graph& g = model.graph;
  OptimizerStats stats;
  fuse_convs(model, stats);
  stats.layer_norm_fused = fuse_layer_norms(g);
  stats.matmul_fused = fuse_matmuls(g);
  if (stats.matmul_fused + stats.layer_norm_fused > 0 && !model.opsets.count("ai.hearth")) {
    model.opsets["ai.hearth"] = 1;
  }
  // Rewrites can move a node's output before a later reader's producer: re-sort.
  HEARTH_RETURN_IF_ERROR(topological_sort(g));
  if (blocked_layout) {
    HEARTH_ASSIGN_OR_RETURN(stats.nchwc_nodes, apply_nchwc_layout(model));
  }
  return stats;
}

}  // namespace hearth
