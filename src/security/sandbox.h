// Confinement a process applies to itself before it touches untrusted input, for the
// trial loads of models that `hearth serve` runs in a child process first
// (serving/trial_load.h, `hearth probe-model`). Linux only.
//
// In order: resource limits (address space, CPU time, no core dumps, open files), an
// empty network namespace when the kernel lets an unprivileged process make one,
// no_new_privs, and a seccomp filter (libseccomp) under which creating sockets,
// exec, ptrace and mounting fail with EPERM. Call it while the process is still
// single-threaded (before any OpenMP region): unsharing a namespace needs that.
#pragma once

#include <cstddef>
#include <string>

#include "core/status.h"

namespace hearth::security {

struct SandboxLimits {
  size_t address_space_bytes = 0;  // RLIMIT_AS; 0: unchanged
  int cpu_seconds = 0;             // RLIMIT_CPU (SIGXCPU, then SIGKILL); 0: unchanged
};

// Applies the confinement above; fails when a limit or the seccomp filter cannot be
// set. The network namespace is best effort (seccomp already refuses sockets); the
// returned text lists what was applied, for the caller's log.
Result<std::string> enter_sandbox(const SandboxLimits& limits);

}  // namespace hearth::security
