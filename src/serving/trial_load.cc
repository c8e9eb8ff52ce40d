// Trial loads in a confined child process (see trial_load.h).
#include "serving/trial_load.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>

extern char** environ;

namespace hearth::serving {
namespace {

constexpr char kFrameMagic[] = "HTRL1";
constexpr size_t kMagicSize = sizeof(kFrameMagic) - 1;

void put_u64(std::string& out, uint64_t v) { out.append(reinterpret_cast<const char*>(&v), sizeof(v)); }

bool get_u64(std::string_view& in, uint64_t* v) {
  if (in.size() < sizeof(*v)) return false;
  std::memcpy(v, in.data(), sizeof(*v));
  in.remove_prefix(sizeof(*v));
  return true;
}

bool get_bytes(std::string_view& in, std::string* out) {
  uint64_t n = 0;
  if (!get_u64(in, &n) || n > in.size()) return false;
  out->assign(in.data(), n);
  in.remove_prefix(n);
  return true;
}

// Writes all of `data` to `fd`.
bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Closes an fd on scope exit.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

std::string signal_text(int sig) {
  std::string s = "signal " + std::to_string(sig);
  if (const char* name = sigabbrev_np(sig)) s += str_cat(" (SIG", name, ")");
  if (sig == SIGXCPU || sig == SIGKILL) s += "; it may have hit its CPU time limit (--isolated-load-cpu-secs)";
  return s;
}

// The child's last line of output without the CLI's "error: " prefix.
std::string last_line(std::string out) {
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  if (auto nl = out.rfind('\n'); nl != std::string::npos) out.erase(0, nl + 1);
  if (out.rfind("error: ", 0) == 0) out.erase(0, 7);
  return out;
}

std::vector<std::string> child_args(const VersionSpec& spec, const TrialLoadOptions& o, bool from_fd) {
  const SessionOptions so = version_session_options(spec);
  std::error_code ec;
  const size_t model_size =
      from_fd ? spec.model_bytes.size() : static_cast<size_t>(std::filesystem::file_size(spec.model_file, ec));
  std::vector<std::string> args = {o.executable, "probe-model"};
  if (from_fd) {
    args.insert(args.end(), {"--model-fd", "3"});
    if (!spec.external_base_dir.empty()) args.insert(args.end(), {"--external-dir", spec.external_base_dir});
  } else {
    args.insert(args.end(), {"--model", spec.model_file});
  }
  args.insert(args.end(), {"--max-tensor-bytes", std::to_string(so.max_tensor_bytes), "--max-memory-bytes",
                           std::to_string(so.max_memory_bytes), "--address-space-mb",
                           std::to_string((o.memory_bytes + 2 * model_size) >> 20), "--cpu-seconds",
                           std::to_string(o.cpu_seconds)});
  return args;
}

}  // namespace

Result<TrialLoadScope> parse_trial_load_scope(const std::string& text) {
  if (text == "none") return TrialLoadScope::kNone;
  if (text == "uploads") return TrialLoadScope::kUploads;
  if (text == "all") return TrialLoadScope::kAll;
  return invalid_argument("--isolate-model-loads must be none, uploads or all, got '", text, "'");
}

std::string write_trial_frame(std::string_view model, const std::map<std::string, std::string_view>* external) {
  std::string out(kFrameMagic, kMagicSize);
  put_u64(out, model.size());
  out.append(model);
  put_u64(out, external ? external->size() : 0);
  if (external) {
    for (const auto& [name, bytes] : *external) {
      put_u64(out, name.size());
      out.append(name);
      put_u64(out, bytes.size());
      out.append(bytes);
    }
  }
  return out;
}

Result<TrialFrame> read_trial_frame(std::string_view in) {
  TrialFrame f;
  uint64_t files = 0;
  if (in.substr(0, kMagicSize) != std::string_view(kFrameMagic, kMagicSize))
    return invalid_argument("trial frame: bad magic");
  in.remove_prefix(kMagicSize);
  if (!get_bytes(in, &f.model) || !get_u64(in, &files) || files > in.size())
    return invalid_argument("trial frame: truncated");
  for (uint64_t i = 0; i < files; ++i) {
    std::string name, bytes;
    if (!get_bytes(in, &name) || !get_bytes(in, &bytes)) return invalid_argument("trial frame: truncated");
    f.external.emplace(std::move(name), std::move(bytes));
  }
  if (!in.empty()) return invalid_argument("trial frame: trailing bytes");
  return f;
}

Status trial_load(const VersionSpec& spec, const TrialLoadOptions& o) {
  const bool from_fd = spec.model_bytes.data() != nullptr;
  Fd memfd, out_r, out_w, devnull;
  if (from_fd) {
    memfd.fd = memfd_create("hearth-trial-model", MFD_CLOEXEC);
    if (memfd.fd < 0 || !write_all(memfd.fd, write_trial_frame(spec.model_bytes, spec.external_files)) ||
        ::lseek(memfd.fd, 0, SEEK_SET) != 0)
      return internal_error("trial load: cannot hand the model to the child: ", std::strerror(errno));
  }
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return internal_error("trial load: pipe: ", std::strerror(errno));
  out_r.fd = pipefd[0];
  out_w.fd = pipefd[1];
  devnull.fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);

  const std::vector<std::string> args = child_args(spec, o, from_fd);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (devnull.fd >= 0) posix_spawn_file_actions_adddup2(&fa, devnull.fd, 0);
  posix_spawn_file_actions_adddup2(&fa, out_w.fd, 1);
  posix_spawn_file_actions_adddup2(&fa, out_w.fd, 2);
  if (from_fd) posix_spawn_file_actions_adddup2(&fa, memfd.fd, 3);
  posix_spawn_file_actions_addclosefrom_np(&fa, from_fd ? 4 : 3);  // none of the server's sockets or files
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, o.executable.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return internal_error("trial load: cannot start ", o.executable, ": ", std::strerror(rc));
  ::close(out_w.fd);
  out_w.fd = -1;

  // The child's output (its error message), until it closes or the deadline passes.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(o.timeout_seconds);
  std::string output;
  bool timed_out = false;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{out_r.fd, POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
    if (ready < 0 && errno != EINTR) break;
    if (ready <= 0) continue;
    char buf[4096];
    const ssize_t n = ::read(out_r.fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    output.append(buf, static_cast<size_t>(n));
    if (output.size() > 65536) output.erase(0, output.size() - 65536);
  }
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) {
    return Status(StatusCode::kDeadlineExceeded,
                  str_cat("the trial load in a confined process took longer than ", o.timeout_seconds,
                          " s (--isolated-load-timeout-secs) and was stopped"));
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return ok_status();
  if (WIFSIGNALED(status)) {
    return Status(StatusCode::kUnavailable, str_cat("the trial load in a confined process was ended by ",
                                                    signal_text(WTERMSIG(status)), "; the server did not load it"));
  }
  const std::string why = last_line(output);
  return invalid_argument(why.empty() ? str_cat("the trial load in a confined process failed (exit ", WEXITSTATUS(status), ")")
                                      : why);
}

}  // namespace hearth::serving
