// The blocking HTTP client (see http_client.h).
#include "rollout/http_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>

namespace hearth::rollout {

namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;

Result<HttpTarget> parse_http_url(const std::string& url) {
  const std::string scheme = "http://";
  if (url.rfind(scheme, 0) != 0) return invalid_argument("'", url, "' is not an http:// URL");
  const std::string rest = url.substr(scheme.size());
  HttpTarget t;
  const size_t slash = std::min(rest.find('/'), rest.find('?'));
  t.path = slash == std::string::npos ? "/" : rest.substr(slash);
  if (t.path.front() == '?') t.path = "/" + t.path;
  const std::string authority = rest.substr(0, slash);
  if (authority.empty() || authority.find('@') != std::string::npos)
    return invalid_argument("'", url, "' has no host (or has credentials, which are not supported)");
  size_t colon = authority.rfind(':');
  if (authority.front() == '[') {  // [v6]:port
    const size_t close = authority.find(']');
    if (close == std::string::npos) return invalid_argument("'", url, "' has a malformed IPv6 address");
    t.host = authority.substr(1, close - 1);
    colon = authority.find(':', close);
  } else {
    t.host = authority.substr(0, colon);
  }
  t.port = colon == std::string::npos ? "80" : authority.substr(colon + 1);
  if (t.host.empty() || t.port.empty() || t.port.size() > 5 ||
      !std::all_of(t.port.begin(), t.port.end(), [](unsigned char c) { return std::isdigit(c); }))
    return invalid_argument("'", url, "' has a malformed host or port");
  return t;
}

Result<HttpAnswer> http_call(const std::string& method, const HttpTarget& target, const std::string& body,
                             const std::vector<std::pair<std::string, std::string>>& headers, int64_t timeout_ms) {
  const std::string where = str_cat(method, " http://", target.host, ":", target.port, target.path);
  try {
    // Asynchronous steps under one deadline: Beast's blocking calls have no timeout.
    asio::io_context io;
    asio::ip::tcp::resolver resolver(io);
    beast::tcp_stream stream(io);
    http::request<http::string_body> req{http::string_to_verb(method), target.path, 11};
    req.set(http::field::host, target.host);
    req.set(http::field::user_agent, "hearth");
    for (const auto& [name, value] : headers) req.set(name, value);
    req.body() = body;
    req.prepare_payload();
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 << 20);
    beast::error_code failure;
    bool answered = false;
    resolver.async_resolve(target.host, target.port, [&](beast::error_code ec, asio::ip::tcp::resolver::results_type found) {
      if (ec) return void(failure = ec);
      stream.async_connect(found, [&](beast::error_code ec2, const asio::ip::tcp::endpoint&) {
        if (ec2) return void(failure = ec2);
        http::async_write(stream, req, [&](beast::error_code ec3, size_t) {
          if (ec3) return void(failure = ec3);
          http::async_read(stream, buffer, parser, [&](beast::error_code ec4, size_t) {
            failure = ec4;
            answered = !ec4;
          });
        });
      });
    });
    io.run_for(std::chrono::milliseconds(timeout_ms));
    if (!answered) {
      return Status(StatusCode::kUnavailable,
                    str_cat(where, ": ", failure ? failure.message() : str_cat("no answer within ", timeout_ms, " ms")));
    }
    beast::error_code ec;
    stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    return HttpAnswer{static_cast<int>(parser.get().result_int()), parser.get().body()};
  } catch (const std::exception& e) {
    return Status(StatusCode::kUnavailable, str_cat(where, ": ", e.what()));
  }
}

}  // namespace hearth::rollout
