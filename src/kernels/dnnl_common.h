// Shared oneDNN plumbing for kernels: one process-wide CPU engine and the
// conversion of dnnl::error into Status. Only kernel .cc files include this.
#pragma once

#include <dnnl.hpp>

#include <string>

#include "core/status.h"

namespace hearth {

// The process-wide oneDNN CPU engine (created on first use; thread safe).
dnnl::engine& dnnl_cpu_engine();

// Converts a caught oneDNN exception into an internal-error Status naming `what`.
Status dnnl_error_status(const dnnl::error& e, const std::string& what);

}  // namespace hearth
