// The access-control flags of `hearth serve` (authentication, policy, audit
// log, access log) and the RequestGuard they build. Kept apart from serve.cc so the
// listener flags and the security flags each stay readable.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "core/status.h"
#include "frontend/request_guard.h"
#include "telemetry/metrics.h"

namespace hearth::cli {

struct AccessFlags {
  std::string auth_store;      // users and tokens (default: AuthStore::default_path())
  std::string policy;          // custom roles (YAML); "" = built-in roles only
  bool insecure_no_auth = false;
  std::string audit_log;       // default with auth on: $HEARTH_AUDIT_LOG or ~/.config/hearth/audit.db
  bool audit_inference = false;
  bool access_log = false;     // one JSON line per request
};

void add_access_flags(CLI::App* cmd, AccessFlags& flags);

// Builds the server's RequestGuard. `listen_addresses` are the addresses the
// server will listen on: --insecure-no-auth is refused unless every one of
// them is a loopback address.
Result<std::unique_ptr<frontend::RequestGuard>> make_request_guard(const AccessFlags& flags,
                                                                  const std::vector<std::string>& listen_addresses);

// True for 127.0.0.0/8, ::1 and "localhost".
bool is_loopback_address(const std::string& address);

}  // namespace hearth::cli
