// Trial loads: before a model version from an untrusted source is loaded into the
// server, a short-lived child process (`hearth probe-model`) loads it and runs it
// once on zeros, confined by security/sandbox.h (address space and CPU limits, no
// network, seccomp). Only when the child succeeds does the server load the version
// itself; a child that fails, crashes or runs out of time leaves the server and its
// other models untouched and the version UNAVAILABLE with the reason.
//
// The model reaches the child as a path (a plain file in the repository) or, when the
// server holds it in memory (a decrypted package, a signature-checked file), through a
// memfd in the TrialFrame format below: the plaintext never touches the disk.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "core/status.h"
#include "serving/model_version.h"

namespace hearth::serving {

// "none" | "uploads" | "all" (--isolate-model-loads); TrialLoadOptions is in server.h.
Result<TrialLoadScope> parse_trial_load_scope(const std::string& text);

// Runs the trial for `spec` in a child process. OK when the child loaded and ran the
// model; otherwise the reason: the child's own error message, or the signal that
// ended it (with the limit it most likely hit), or the timeout.
Status trial_load(const VersionSpec& spec, const TrialLoadOptions& options);

// The in-memory form handed to the child: a model and its external data files.
struct TrialFrame {
  std::string model;
  std::map<std::string, std::string> external;  // relative name -> bytes
};
// "HTRL1" + lengths and bytes; read_trial_frame refuses anything malformed.
std::string write_trial_frame(std::string_view model, const std::map<std::string, std::string_view>* external);
Result<TrialFrame> read_trial_frame(std::string_view bytes);

}  // namespace hearth::serving
