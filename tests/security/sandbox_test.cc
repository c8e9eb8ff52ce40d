// The confinement of trial loads (security/sandbox.h), checked in forked children:
// after enter_sandbox a process cannot open a socket or exec a program, its address
// space and CPU time are limited, and it writes no core file.
#include "security/sandbox.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <new>
#include <vector>

namespace hearth::security {
namespace {

// Runs `body` in a forked child after enter_sandbox(limits); the child's exit code
// (the body's return value), or 100 + signal when a signal ended it.
template <typename Body>
int in_sandbox(const SandboxLimits& limits, Body body) {
  const pid_t pid = fork();
  if (pid == 0) {
    auto applied = enter_sandbox(limits);
    _exit(applied.ok() ? body() : 99);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
}

TEST(Sandbox, refuses_sockets_and_exec) {
  EXPECT_EQ(in_sandbox({}, [] {
              const int fd = socket(AF_INET, SOCK_STREAM, 0);
              return fd < 0 && errno == EPERM ? 0 : 1;
            }),
            0);
  EXPECT_EQ(in_sandbox({}, [] {
              const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
              return fd < 0 && errno == EPERM ? 0 : 1;
            }),
            0);
  EXPECT_EQ(in_sandbox({}, [] {
              char* argv[] = {const_cast<char*>("/bin/true"), nullptr};
              execv("/bin/true", argv);
              return errno == EPERM ? 0 : 1;
            }),
            0);
  // Files stay usable: a model is read after confinement.
  EXPECT_EQ(in_sandbox({}, [] { return access("/proc/self/status", R_OK) == 0 ? 0 : 1; }), 0);
}

TEST(Sandbox, limits_memory_cpu_and_core_files) {
  SandboxLimits memory;
  memory.address_space_bytes = size_t{512} << 20;
  EXPECT_EQ(in_sandbox(memory, [] {
              try {
                std::vector<char> big(size_t{1} << 30);
                return big.data() == nullptr ? 2 : 1;
              } catch (const std::bad_alloc&) {
                return 0;
              }
            }),
            0);
  SandboxLimits cpu;
  cpu.cpu_seconds = 1;
  EXPECT_EQ(in_sandbox(cpu, [] {
              volatile uint64_t x = 0;
              for (;;) x = x + 1;
              return 0;
            }),
            100 + SIGXCPU);
  EXPECT_EQ(in_sandbox({}, [] {
              rlimit r{};
              getrlimit(RLIMIT_CORE, &r);
              return r.rlim_cur == 0 ? 0 : 1;
            }),
            0);
}

}  // namespace
}  // namespace hearth::security
