#include "security/sandbox.h"

#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace hearth::security {
namespace {

Status set_limit(int resource, rlim_t value, const char* name) {
  rlimit r{value, value};
  if (resource == RLIMIT_CPU) r.rlim_max = value + 5;  // SIGXCPU first, SIGKILL 5 s later
  rlimit old{};
  if (getrlimit(resource, &old) == 0 && old.rlim_max != RLIM_INFINITY && old.rlim_max < r.rlim_max) {
    r.rlim_max = old.rlim_max;  // never above the hard limit we were given
    r.rlim_cur = std::min(r.rlim_cur, r.rlim_max);
  }
  if (setrlimit(resource, &r) != 0) return internal_error("setrlimit(", name, "): ", std::strerror(errno));
  return ok_status();
}

// Writes `text` into a /proc/self file of the new user namespace (uid_map and friends).
bool write_proc(const char* path, const std::string& text) {
  const int fd = ::open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  return ok;
}

// A user namespace mapping only ourselves, and in it an empty network namespace: the
// process keeps its files but has no interface, not even loopback.
bool enter_empty_network() {
  const uid_t uid = getuid();
  const gid_t gid = getgid();
  if (unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0) return false;
  write_proc("/proc/self/setgroups", "deny");
  return write_proc("/proc/self/uid_map", std::to_string(uid) + " " + std::to_string(uid) + " 1\n") &&
         write_proc("/proc/self/gid_map", std::to_string(gid) + " " + std::to_string(gid) + " 1\n");
}

struct FilterDeleter {
  void operator()(scmp_filter_ctx ctx) const { seccomp_release(ctx); }
};

// Everything allowed but what a model load has no business doing.
Status install_seccomp() {
  std::unique_ptr<void, FilterDeleter> ctx(seccomp_init(SCMP_ACT_ALLOW));
  if (!ctx) return internal_error("seccomp_init failed");
  static const int kDenied[] = {
      SCMP_SYS(socket),          SCMP_SYS(socketpair), SCMP_SYS(connect),     SCMP_SYS(bind),
      SCMP_SYS(listen),          SCMP_SYS(accept),     SCMP_SYS(accept4),     SCMP_SYS(execve),
      SCMP_SYS(execveat),        SCMP_SYS(ptrace),     SCMP_SYS(process_vm_readv), SCMP_SYS(process_vm_writev),
      SCMP_SYS(mount),           SCMP_SYS(umount2),    SCMP_SYS(pivot_root),  SCMP_SYS(chroot),
      SCMP_SYS(setns),           SCMP_SYS(unshare),    SCMP_SYS(keyctl),      SCMP_SYS(add_key),
      SCMP_SYS(request_key),     SCMP_SYS(bpf),        SCMP_SYS(perf_event_open), SCMP_SYS(kexec_load),
      SCMP_SYS(init_module),     SCMP_SYS(finit_module), SCMP_SYS(delete_module), SCMP_SYS(reboot)};
  for (int sys : kDenied) {
    const int rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(EPERM), sys, 0);
    if (rc != 0 && rc != -EDOM) return internal_error("seccomp_rule_add: ", std::strerror(-rc));  // EDOM: not on this arch
  }
  if (const int rc = seccomp_load(ctx.get()); rc != 0) return internal_error("seccomp_load: ", std::strerror(-rc));
  return ok_status();
}

}  // namespace

Result<std::string> enter_sandbox(const SandboxLimits& limits) {
  std::string applied;
  if (limits.address_space_bytes) {
    HEARTH_RETURN_IF_ERROR(set_limit(RLIMIT_AS, limits.address_space_bytes, "RLIMIT_AS"));
    applied += "address space " + std::to_string(limits.address_space_bytes >> 20) + " MiB, ";
  }
  if (limits.cpu_seconds > 0) {
    HEARTH_RETURN_IF_ERROR(set_limit(RLIMIT_CPU, static_cast<rlim_t>(limits.cpu_seconds), "RLIMIT_CPU"));
    applied += "cpu " + std::to_string(limits.cpu_seconds) + " s, ";
  }
  HEARTH_RETURN_IF_ERROR(set_limit(RLIMIT_CORE, 0, "RLIMIT_CORE"));  // no core file with model data in it
  HEARTH_RETURN_IF_ERROR(set_limit(RLIMIT_NOFILE, 256, "RLIMIT_NOFILE"));
  applied += enter_empty_network() ? "no network namespace interfaces, " : "network namespace unavailable, ";
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return internal_error("PR_SET_NO_NEW_PRIVS: ", std::strerror(errno));
  HEARTH_RETURN_IF_ERROR(install_seccomp());
  applied += "seccomp (no sockets, exec, ptrace, mounts)";
  return applied;
}

}  // namespace hearth::security
