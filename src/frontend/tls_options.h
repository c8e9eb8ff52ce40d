// TLS settings shared by the HTTP (REST, metrics) and gRPC listeners of
// `hearth serve`, and the OpenSSL setup both use: certificate chain and key
// from PEM files, TLS 1.2 minimum, and with client_ca_file mutual TLS (a
// client certificate is required and verified against that CA).
// Every error is a Status naming the file that was wrong.
#pragma once

#include <string>

#include "core/status.h"

struct ssl_ctx_st;  // OpenSSL's SSL_CTX
struct ssl_st;      // OpenSSL's SSL

namespace hearth::frontend {

struct TlsOptions {
  std::string cert_file, key_file;  // PEM: server certificate (chain) and its private key
  // Non-empty: mutual TLS, client certificate REQUIRED and verified against this CA (PEM).
  std::string client_ca_file;
  bool enabled() const { return !cert_file.empty(); }
};

// Loads options' certificate chain, key and (for mTLS) client CA into `ctx`,
// sets TLS 1.2 as the minimum version, disables renegotiation, and for mTLS
// requires and verifies the client certificate. Checks that key and
// certificate belong together.
Status configure_tls_context(ssl_ctx_st* ctx, const TlsOptions& options);

// configure_tls_context on a throwaway context: validates the files before a
// listener (e.g. gRPC, which reports bad files poorly) is started.
Status check_tls_files(const TlsOptions& options);

// The subject of the peer's certificate in RFC 2253 form ("CN=alice,O=Acme"),
// as X509_NAME_print_ex(..., XN_FLAG_RFC2253) writes it; "" when the peer sent
// none or it did not verify.
std::string verified_peer_subject(ssl_st* ssl);

// The whole content of a PEM file; the error names `what` and the path.
Result<std::string> read_tls_file(const std::string& path, const char* what);

}  // namespace hearth::frontend
