// OpenSSL setup for the TLS listeners (tls_options.h): loads and checks the
// PEM files, naming the one that is wrong.
#include "frontend/tls_options.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

namespace hearth::frontend {

namespace {

// The oldest queued OpenSSL error as text (the queue is cleared).
std::string openssl_error() {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(code, buf, sizeof(buf));
  return buf;
}

// Encrypted keys are not supported: refuse instead of prompting on a terminal.
int no_passphrase(char*, int, int, void*) { return -1; }

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct CtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};

Status load_certificate(SSL_CTX* ctx, const std::string& path) {
  HEARTH_ASSIGN_OR_RETURN(std::string pem, read_tls_file(path, "TLS certificate"));
  (void)pem;  // readable; OpenSSL reads the chain itself
  if (SSL_CTX_use_certificate_chain_file(ctx, path.c_str()) != 1)
    return invalid_argument("TLS certificate file '", path, "' holds no usable PEM certificate: ", openssl_error());
  return ok_status();
}

Status load_key(SSL_CTX* ctx, const std::string& path, const std::string& cert_path) {
  HEARTH_ASSIGN_OR_RETURN(std::string pem, read_tls_file(path, "TLS key"));
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return internal_error("TLS key file '", path, "': out of memory");
  std::unique_ptr<EVP_PKEY, PkeyFree> key(PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr));
  OPENSSL_cleanse(pem.data(), pem.size());
  if (!key)
    return invalid_argument("TLS key file '", path, "' holds no usable unencrypted PEM private key: ", openssl_error());
  ERR_clear_error();
  if (SSL_CTX_use_PrivateKey(ctx, key.get()) != 1 || SSL_CTX_check_private_key(ctx) != 1)
    return invalid_argument("TLS key file '", path, "' does not match the certificate in '", cert_path,
                            "': ", openssl_error());
  return ok_status();
}

Status load_client_ca(SSL_CTX* ctx, const std::string& path) {
  HEARTH_ASSIGN_OR_RETURN(std::string pem, read_tls_file(path, "TLS client CA"));
  (void)pem;
  STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(path.c_str());
  if (names == nullptr || sk_X509_NAME_num(names) == 0) {
    if (names) sk_X509_NAME_pop_free(names, X509_NAME_free);
    return invalid_argument("TLS client CA file '", path, "' holds no PEM certificate: ", openssl_error());
  }
  if (SSL_CTX_load_verify_locations(ctx, path.c_str(), nullptr) != 1) {
    sk_X509_NAME_pop_free(names, X509_NAME_free);
    return invalid_argument("TLS client CA file '", path, "' cannot be used to verify clients: ", openssl_error());
  }
  SSL_CTX_set_client_CA_list(ctx, names);  // takes ownership
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  return ok_status();
}

}  // namespace

Result<std::string> read_tls_file(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return invalid_argument("cannot read ", what, " file '", path, "': ", std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return invalid_argument("cannot read ", what, " file '", path, "'");
  return text.str();
}

std::string verified_peer_subject(ssl_st* ssl) {
  if (ssl == nullptr) return "";
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (cert == nullptr) return "";
  std::string subject;
  if (SSL_get_verify_result(ssl) == X509_V_OK) {
    std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
    if (bio && X509_NAME_print_ex(bio.get(), X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) >= 0) {
      char* data = nullptr;
      long n = BIO_get_mem_data(bio.get(), &data);
      if (n > 0 && data != nullptr) subject.assign(data, static_cast<size_t>(n));
    }
  }
  X509_free(cert);
  return subject;
}

Status configure_tls_context(ssl_ctx_st* ctx, const TlsOptions& options) {
  if (ctx == nullptr) return internal_error("no TLS context");
  if (options.cert_file.empty()) return invalid_argument("TLS needs a certificate file");
  if (options.key_file.empty())
    return invalid_argument("TLS certificate '", options.cert_file, "' given without a key file");
  ERR_clear_error();
  SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
    return internal_error("cannot set TLS 1.2 as the minimum version: ", openssl_error());
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  // Session resumption with client certificates needs a session id context.
  static const unsigned char kSessionContext[] = "hearth";
  SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof(kSessionContext) - 1);
  HEARTH_RETURN_IF_ERROR(load_certificate(ctx, options.cert_file));
  HEARTH_RETURN_IF_ERROR(load_key(ctx, options.key_file, options.cert_file));
  if (!options.client_ca_file.empty()) HEARTH_RETURN_IF_ERROR(load_client_ca(ctx, options.client_ca_file));
  return ok_status();
}

Status check_tls_files(const TlsOptions& options) {
  std::unique_ptr<SSL_CTX, CtxFree> ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) return internal_error("cannot create a TLS context: ", openssl_error());
  return configure_tls_context(ctx.get(), options);
}

}  // namespace hearth::frontend
