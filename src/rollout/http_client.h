// A small blocking HTTP/1.1 client (Boost.Beast): the webhooks of releases, and
// the `hearth release` commands talking to a server. Plain http:// only.
// Thread safety: free functions; each call has its own connection.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"

namespace hearth::rollout {

struct HttpTarget {
  std::string host, port, path;  // path includes the query
};
// Splits http://host[:port][/path][?query] (IPv6 hosts in brackets); InvalidArgument otherwise.
Result<HttpTarget> parse_http_url(const std::string& url);

struct HttpAnswer {
  int status = 0;
  std::string body;
};
// One request with a deadline for the whole exchange; Unavailable when the server
// cannot be reached or does not answer in time (any HTTP status is an answer).
Result<HttpAnswer> http_call(const std::string& method, const HttpTarget& target, const std::string& body,
                             const std::vector<std::pair<std::string, std::string>>& headers, int64_t timeout_ms);

}  // namespace hearth::rollout
