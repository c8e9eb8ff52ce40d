// HTTP body compression of Triton's HTTP/REST API: a request body sent with
// `Content-Encoding: gzip` or `deflate` is inflated before it is parsed, and a
// reply is compressed when the request's `Accept-Encoding` asks for gzip or
// deflate. zlib does the work (Debian's zlib1g); the size check on the way in
// is ours: inflating stops at the server's body limit, so a small compressed
// body cannot expand into gigabytes.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "core/status.h"

namespace hearth::frontend {

// "gzip" or "deflate" (zlib format, as HTTP's deflate is); "" and "identity"
// leave the body as it is. Unknown encodings: kUnimplemented (answer 415);
// a body that inflates past `max_bytes`: kResourceExhausted (413); a corrupt
// or truncated stream: kInvalidArgument (400). Each names what was wrong.
Result<std::string> inflate_body(const std::string& body, const std::string& content_encoding, size_t max_bytes);

// The encoding to answer with for an Accept-Encoding header: "gzip" or
// "deflate" when accepted (q > 0; gzip first), else nullopt.
std::optional<std::string> pick_encoding(const std::string& accept_encoding);

// `body` compressed as `encoding` ("gzip" or "deflate"); nullopt if zlib fails
// (the reply then goes out uncompressed).
std::optional<std::string> deflate_body(const std::string& body, const std::string& encoding);

}  // namespace hearth::frontend
