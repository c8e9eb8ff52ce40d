// libFuzzer target: HTTP request decoding as `hearth serve` does it. Bytes
// are parsed as an HTTP/1.1 request by Beast with the server's limits; a
// complete request's body then goes through the KServe v2 REST decoder
// (JSON tensors and the binary tensor extension, with the
// Inference-Header-Content-Length the request carries), inflated first when it
// names a Content-Encoding, as the server does. Any crash, leak or undefined
// behaviour is a bug; errors are expected and fine.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/http.hpp>

#include "frontend/http_compression.h"
#include "frontend/json_codec.h"

namespace http = boost::beast::http;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  http::request_parser<http::string_body> parser;
  parser.header_limit(16 << 10);
  parser.body_limit(1 << 20);
  parser.eager(true);
  boost::beast::error_code ec;
  parser.put(boost::asio::buffer(data, size), ec);
  if (ec || !parser.is_done()) {
    // Also decode the raw bytes as a body: the decoder must hold on its own.
    auto r = hearth::frontend::decode_infer_request(
        std::string_view(reinterpret_cast<const char*>(data), size),
        size > 0 ? std::optional<size_t>(data[0] % (size + 2)) : std::nullopt, "m", "");
    (void)r;
    return 0;
  }
  const auto& req = parser.get();
  std::optional<size_t> header_length;
  auto it = req.find("Inference-Header-Content-Length");
  if (it != req.end()) {
    std::string v(it->value());
    if (!v.empty() && v.size() < 19 && v.find_first_not_of("0123456789") == std::string::npos)
      header_length = std::stoull(v);
  }
  std::string body = req.body();
  if (auto enc = req.find(http::field::content_encoding); enc != req.end()) {
    auto inflated = hearth::frontend::inflate_body(body, std::string(enc->value()), 1 << 20);
    if (!inflated.ok()) return 0;
    body = std::move(inflated).value();
  }
  // The raw bytes inflated both ways as well: zlib's decoder fed anything.
  for (const char* e : {"gzip", "deflate"}) {
    auto any = hearth::frontend::inflate_body(std::string(reinterpret_cast<const char*>(data), size), e, 1 << 20);
    (void)any;
  }
  auto r = hearth::frontend::decode_infer_request(body, header_length, "m", "");
  if (r.ok()) {
    auto encoded = hearth::frontend::encode_error(std::string(req.target()));
    (void)encoded;
  }
  return 0;
}
