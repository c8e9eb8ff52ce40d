// Self-signed TLS material for `hearth serve --tls-cert/--tls-key
// [--tls-client-ca]` (`hearth certs self-signed`): a private CA, a server
// certificate it signs (SAN = the given hosts), and optional client
// certificates for mutual TLS. EC P-256 keys, X.509 v3, SHA-256 signatures,
// built with OpenSSL 3. Private keys are written with mode 0600; existing
// files are never overwritten.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"

namespace hearth::security {

struct SelfSignedOptions {
  std::string out_dir;               // created when missing
  std::vector<std::string> hosts;    // DNS names or IPs for the server's SAN; empty: default_self_signed_hosts()
  int days = 365;                    // validity, 1..36500
  std::vector<std::string> clients;  // client certificate common names (mTLS); [A-Za-z0-9._@-], 1..64 chars
};

// localhost, 127.0.0.1, ::1.
std::vector<std::string> default_self_signed_hosts();

// Writes into o.out_dir:
//   ca.pem, ca.key            CA certificate (CA:TRUE, keyCertSign) and key
//   server.pem, server.key    server certificate (CA:FALSE, serverAuth, SAN from hosts), signed by the CA
//   client-<name>.pem / .key  per client (CA:FALSE, clientAuth, subject CN=<name>), signed by the CA
// Fails with ALREADY_EXISTS, writing nothing, when any of these files exists;
// with INVALID_ARGUMENT for a bad host, client name or day count. On a failure
// midway the files written so far are removed.
Status create_self_signed(const SelfSignedOptions& o);

// The paths create_self_signed writes, in order (ca.pem, ca.key, server.pem,
// server.key, then client-<name>.pem, client-<name>.key per client).
std::vector<std::string> self_signed_paths(const SelfSignedOptions& o);
std::string client_cert_path(const std::string& out_dir, const std::string& name);

// The subject of the first certificate in a PEM file in RFC 2253 form
// ("CN=alice"), as X509_NAME_print_ex(..., XN_FLAG_RFC2253) writes it: the
// text `hearth serve` compares with `hearth users add --cert-subject`.
Result<std::string> certificate_subject(const std::string& pem_file);

// Seconds from now until the first certificate in a PEM file expires (negative
// once it has); `hearth doctor` warns ahead of the date.
Result<int64_t> certificate_seconds_left(const std::string& pem_file);

}  // namespace hearth::security
