// Shared oneDNN plumbing: the process-wide CPU engine and error conversion.
#include "kernels/dnnl_common.h"

namespace hearth {

dnnl::engine& dnnl_cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

Status dnnl_error_status(const dnnl::error& e, const std::string& what) {
  return internal_error(what, ": oneDNN error ", static_cast<int>(e.status), ": ", e.what());
}

}  // namespace hearth
