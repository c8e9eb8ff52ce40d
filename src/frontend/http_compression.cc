#include "frontend/http_compression.h"

#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <vector>

namespace hearth::frontend {

namespace {

std::string lower_trimmed(std::string s) {
  const size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  s = b == std::string::npos ? "" : s.substr(b, e - b + 1);
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// zlib's window bits: 15 for the zlib format (HTTP's deflate), +16 for gzip.
int window_bits(const std::string& encoding) { return encoding == "gzip" ? 15 + 16 : 15; }

}  // namespace

Result<std::string> inflate_body(const std::string& body, const std::string& content_encoding, size_t max_bytes) {
  const std::string encoding = lower_trimmed(content_encoding);
  if (encoding.empty() || encoding == "identity") return body;
  if (encoding != "gzip" && encoding != "deflate")
    return unimplemented("Content-Encoding '", content_encoding, "' is not supported (gzip, deflate or identity)");
  z_stream z{};
  if (inflateInit2(&z, window_bits(encoding)) != Z_OK) return internal_error("zlib could not start inflating");
  std::string out;
  char chunk[1 << 16];
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(body.data()));
  z.avail_in = static_cast<uInt>(body.size());
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    z.next_out = reinterpret_cast<Bytef*>(chunk);
    z.avail_out = sizeof(chunk);
    rc = inflate(&z, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      const std::string why = rc == Z_BUF_ERROR ? "the stream ends early" : (z.msg ? z.msg : "corrupt data");
      inflateEnd(&z);
      return invalid_argument("the ", encoding, " request body does not inflate: ", why);
    }
    const size_t produced = sizeof(chunk) - z.avail_out;
    if (out.size() + produced > max_bytes) {
      inflateEnd(&z);
      return Status(StatusCode::kResourceExhausted,
                    str_cat("the ", encoding, " request body inflates past the limit of ", max_bytes, " bytes"));
    }
    out.append(chunk, produced);
    if (rc == Z_OK && z.avail_in == 0 && produced == 0) {
      inflateEnd(&z);
      return invalid_argument("the ", encoding, " request body does not inflate: the stream ends early");
    }
  }
  const bool trailing = z.avail_in != 0;
  inflateEnd(&z);
  if (trailing) return invalid_argument("the ", encoding, " request body has data after the end of its stream");
  return out;
}

std::optional<std::string> pick_encoding(const std::string& accept_encoding) {
  bool gzip = false, deflate = false;
  size_t start = 0;
  while (start <= accept_encoding.size()) {
    size_t end = accept_encoding.find(',', start);
    if (end == std::string::npos) end = accept_encoding.size();
    std::string item = accept_encoding.substr(start, end - start);
    start = end + 1;
    double q = 1.0;
    if (const size_t semi = item.find(';'); semi != std::string::npos) {
      std::string param = lower_trimmed(item.substr(semi + 1));
      item = item.substr(0, semi);
      if (param.rfind("q=", 0) == 0) q = std::strtod(param.c_str() + 2, nullptr);
    }
    const std::string name = lower_trimmed(item);
    if (q <= 0) continue;
    if (name == "gzip" || name == "x-gzip") gzip = true;
    if (name == "deflate") deflate = true;
  }
  if (gzip) return std::string("gzip");
  if (deflate) return std::string("deflate");
  return std::nullopt;
}

std::optional<std::string> deflate_body(const std::string& body, const std::string& encoding) {
  z_stream z{};
  if (deflateInit2(&z, Z_BEST_SPEED, Z_DEFLATED, window_bits(encoding), 8, Z_DEFAULT_STRATEGY) != Z_OK)
    return std::nullopt;
  std::string out(deflateBound(&z, static_cast<uLong>(body.size())), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(body.data()));
  z.avail_in = static_cast<uInt>(body.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&z, Z_FINISH);
  out.resize(out.size() - z.avail_out);
  deflateEnd(&z);
  if (rc != Z_STREAM_END) return std::nullopt;
  return out;
}

}  // namespace hearth::frontend
