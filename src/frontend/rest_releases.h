// The release endpoints of the REST API (rollout/release_manager.h; reference in
// docs/RELEASES.md):
//
//   POST /v2/models/{m}/releases                   start (body: release YAML or JSON)   models:deploy
//   GET  /v2/models/{m}/releases[?limit=N]         history, with the deciding decisions models:read
//   GET  /v2/models/{m}/releases/{id|current}      status, live windows, last decisions models:read
//   POST /v2/models/{m}/releases/{id|current}/pause|resume|promote|abort                models:deploy
//                                                  (promote takes {"version": N} with A/B/n)
//   POST /v2/models/{m}/production                 {"version": N}: set it by hand       models:deploy
//   GET  /v2/models/{m}/routing?key=K&at=T         which version served key K at time T models:read
//                                                  (T: RFC 3339 UTC or microseconds; default now)
//   POST /v2/models/{m}/feedback                   {"id": "...", "label": 3 | "labels": [...]}
//                                                                                     inference:infer
// Thread safety: as RestApi.
#pragma once

#include <string>
#include <vector>

#include "frontend/http_server.h"
#include "frontend/request_guard.h"
#include "rollout/release_manager.h"

namespace hearth::frontend {

// True when `seg` (/v2/models/{m}/<what>...) is a release endpoint.
bool is_release_path(const std::vector<std::string>& seg);
// What such a request needs from the access policy.
AccessNeed release_access_need(const std::vector<std::string>& seg, const std::string& method);
// Serves one release request; `releases` null: 503 (the server runs without a release store).
HttpReply release_reply(rollout::ReleaseManager* releases, const HttpRequest& request,
                        const std::vector<std::string>& seg, const rollout::Actor& who);

}  // namespace hearth::frontend
