// `hearth certs self-signed`: a private CA plus server and client certificates
// (certs.h), built with OpenSSL 3's EVP_PKEY / X509 / X509V3 APIs.
#include "security/certs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "security/crypto.h"

namespace hearth::security {

namespace {

struct OsslFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(X509_NAME* p) const { X509_NAME_free(p); }
  void operator()(BIO* p) const { BIO_free(p); }
  void operator()(BIGNUM* p) const { BN_free(p); }
  void operator()(GENERAL_NAMES* p) const { GENERAL_NAMES_free(p); }
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
};
using KeyPtr = std::unique_ptr<EVP_PKEY, OsslFree>;
using CertPtr = std::unique_ptr<X509, OsslFree>;

std::string openssl_error() {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(code, buf, sizeof(buf));
  return buf;
}

enum class CertKind { kCa, kServer, kClient };

// What a certificate is and who signs it (issuer == nullptr: self-signed).
struct CertSpec {
  CertKind kind;
  std::string common_name;
  EVP_PKEY* key;
  X509* issuer = nullptr;
  EVP_PKEY* issuer_key = nullptr;
  int days = 365;
  const std::vector<std::string>* hosts = nullptr;  // server only
};

Status validate_host(const std::string& host) {
  if (host.empty() || host.size() > 253) return invalid_argument("host '", host, "' must be 1..253 characters");
  if (std::unique_ptr<ASN1_OCTET_STRING, decltype(&ASN1_OCTET_STRING_free)> ip(a2i_IPADDRESS(host.c_str()),
                                                                               &ASN1_OCTET_STRING_free);
      ip) {
    return ok_status();
  }
  ERR_clear_error();
  for (char c : host) {
    bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '*';
    if (!ok) return invalid_argument("host '", host, "' is neither an IP address nor a DNS name");
  }
  return ok_status();
}

Status validate_client(const std::string& name) {
  if (name.empty() || name.size() > 64) return invalid_argument("client name '", name, "' must be 1..64 characters");
  if (name[0] == '.' || name[0] == '-')
    return invalid_argument("client name '", name, "' must not start with '.' or '-'");
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
              c == '_' || c == '@';
    if (!ok) return invalid_argument("client name '", name, "' may hold only letters, digits and . _ @ -");
  }
  return ok_status();
}

Status validate(const SelfSignedOptions& o, const std::vector<std::string>& hosts) {
  if (o.out_dir.empty()) return invalid_argument("no output folder given");
  if (o.days < 1 || o.days > 36500) return invalid_argument("days must be 1..36500, got ", o.days);
  for (const auto& h : hosts) HEARTH_RETURN_IF_ERROR(validate_host(h));
  std::set<std::string> seen;
  for (const auto& c : o.clients) {
    HEARTH_RETURN_IF_ERROR(validate_client(c));
    if (!seen.insert(c).second) return invalid_argument("client name '", c, "' given twice");
  }
  return ok_status();
}

Result<KeyPtr> new_p256_key() {
  KeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return internal_error("generating an EC P-256 key: ", openssl_error());
  return key;
}

Status add_extension(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
  std::unique_ptr<X509_EXTENSION, OsslFree> ext(X509V3_EXT_conf_nid(nullptr, ctx, nid, value));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1)
    return internal_error("adding X.509 extension ", OBJ_nid2sn(nid), "=", value, ": ", openssl_error());
  return ok_status();
}

// subjectAltName: IP entries for addresses, DNS entries for names.
Status add_subject_alt_names(X509* cert, const std::vector<std::string>& hosts) {
  std::unique_ptr<GENERAL_NAMES, OsslFree> names(sk_GENERAL_NAME_new_null());
  if (!names) return internal_error("out of memory");
  for (const auto& host : hosts) {
    GENERAL_NAME* name = GENERAL_NAME_new();
    if (name == nullptr) return internal_error("out of memory");
    if (ASN1_OCTET_STRING* ip = a2i_IPADDRESS(host.c_str())) {
      GENERAL_NAME_set0_value(name, GEN_IPADD, ip);
    } else {
      ERR_clear_error();
      ASN1_IA5STRING* dns = ASN1_IA5STRING_new();
      if (dns == nullptr || ASN1_STRING_set(dns, host.data(), static_cast<int>(host.size())) != 1) {
        ASN1_IA5STRING_free(dns);
        GENERAL_NAME_free(name);
        return internal_error("out of memory");
      }
      GENERAL_NAME_set0_value(name, GEN_DNS, dns);
    }
    if (sk_GENERAL_NAME_push(names.get(), name) == 0) {
      GENERAL_NAME_free(name);
      return internal_error("out of memory");
    }
  }
  if (X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT) != 1)
    return internal_error("adding subjectAltName: ", openssl_error());
  return ok_status();
}

Status add_extensions(X509* cert, const CertSpec& spec) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, spec.issuer ? spec.issuer : cert, cert, nullptr, nullptr, 0);
  HEARTH_RETURN_IF_ERROR(add_extension(cert, &ctx, NID_subject_key_identifier, "hash"));
  if (spec.kind == CertKind::kCa) {
    HEARTH_RETURN_IF_ERROR(add_extension(cert, &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0"));
    return add_extension(cert, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
  }
  HEARTH_RETURN_IF_ERROR(add_extension(cert, &ctx, NID_authority_key_identifier, "keyid:always"));
  HEARTH_RETURN_IF_ERROR(add_extension(cert, &ctx, NID_basic_constraints, "critical,CA:FALSE"));
  HEARTH_RETURN_IF_ERROR(add_extension(cert, &ctx, NID_key_usage, "critical,digitalSignature"));
  if (spec.kind == CertKind::kClient) return add_extension(cert, &ctx, NID_ext_key_usage, "clientAuth");
  HEARTH_RETURN_IF_ERROR(add_extension(cert, &ctx, NID_ext_key_usage, "serverAuth"));
  return add_subject_alt_names(cert, *spec.hosts);
}

// A random positive 127-bit serial number.
Status set_serial(X509* cert) {
  std::unique_ptr<BIGNUM, OsslFree> serial(BN_new());
  if (!serial || BN_rand(serial.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert)) == nullptr)
    return internal_error("choosing a serial number: ", openssl_error());
  return ok_status();
}

Result<CertPtr> make_certificate(const CertSpec& spec) {
  CertPtr cert(X509_new());
  std::unique_ptr<X509_NAME, OsslFree> subject(X509_NAME_new());
  if (!cert || !subject) return internal_error("out of memory");
  const auto* cn = reinterpret_cast<const unsigned char*>(spec.common_name.c_str());
  if (X509_set_version(cert.get(), X509_VERSION_3) != 1 ||
      X509_NAME_add_entry_by_txt(subject.get(), "CN", MBSTRING_UTF8, cn, -1, -1, 0) != 1 ||
      X509_set_subject_name(cert.get(), subject.get()) != 1 ||
      X509_set_issuer_name(cert.get(), spec.issuer ? X509_get_subject_name(spec.issuer) : subject.get()) != 1 ||
      X509_set_pubkey(cert.get(), spec.key) != 1 ||
      X509_gmtime_adj(X509_getm_notBefore(cert.get()), -300) == nullptr ||  // a little clock skew
      X509_time_adj_ex(X509_getm_notAfter(cert.get()), spec.days, 0, nullptr) == nullptr)
    return internal_error("building certificate '", spec.common_name, "': ", openssl_error());
  HEARTH_RETURN_IF_ERROR(set_serial(cert.get()));
  HEARTH_RETURN_IF_ERROR(add_extensions(cert.get(), spec));
  if (X509_sign(cert.get(), spec.issuer_key ? spec.issuer_key : spec.key, EVP_sha256()) <= 0)
    return internal_error("signing certificate '", spec.common_name, "': ", openssl_error());
  return cert;
}

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return (n > 0 && data) ? std::string(data, static_cast<size_t>(n)) : std::string();
}

Result<std::string> cert_pem(X509* cert) {
  std::unique_ptr<BIO, OsslFree> bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1)
    return internal_error("encoding a certificate: ", openssl_error());
  return bio_text(bio.get());
}

// Unencrypted PKCS#8 PEM. The memory BIO is cleansed before it is freed.
Result<std::string> key_pem(EVP_PKEY* key) {
  std::unique_ptr<BIO, OsslFree> bio(BIO_new(BIO_s_secmem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
    return internal_error("encoding a private key: ", openssl_error());
  return bio_text(bio.get());
}

// A new file (O_EXCL: never replaces or follows an existing one).
Status write_new_file(const std::string& path, const std::string& data, mode_t mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) {
    if (errno == EEXIST)
      return Status(StatusCode::kAlreadyExists, str_cat(path, " already exists; refusing to overwrite it"));
    return failed_precondition("cannot create ", path, ": ", std::strerror(errno));
  }
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = errno;
      ::close(fd);
      return failed_precondition("cannot write ", path, ": ", std::strerror(err));
    }
    done += static_cast<size_t>(n);
  }
  int synced = ::fsync(fd);
  int err = errno;
  if (::close(fd) != 0 || synced != 0)
    return failed_precondition("cannot write ", path, ": ", std::strerror(synced != 0 ? err : errno));
  return ok_status();
}

// Writes certificate and key of one party; `written` collects the paths.
Status write_pair(const std::string& stem, X509* cert, EVP_PKEY* key, std::vector<std::string>& written) {
  HEARTH_ASSIGN_OR_RETURN(std::string cert_text, cert_pem(cert));
  HEARTH_ASSIGN_OR_RETURN(std::string key_text, key_pem(key));
  Status s = write_new_file(stem + ".pem", cert_text, 0644);
  if (s.ok()) {
    written.push_back(stem + ".pem");
    s = write_new_file(stem + ".key", key_text, 0600);
    if (s.ok()) written.push_back(stem + ".key");
  }
  cleanse(key_text);
  return s;
}

std::string join(const std::string& dir, const std::string& name) {
  return (std::filesystem::path(dir) / name).string();
}

Status check_none_exists(const std::vector<std::string>& paths) {
  for (const auto& p : paths) {
    struct stat st;
    if (::lstat(p.c_str(), &st) == 0)
      return Status(StatusCode::kAlreadyExists,
                    str_cat(p, " already exists; refusing to overwrite it (remove it or choose another folder)"));
  }
  return ok_status();
}

Status ensure_dir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return failed_precondition("cannot create folder ", dir, ": ", ec.message());
  if (!std::filesystem::is_directory(dir, ec)) return failed_precondition(dir, " is not a folder");
  return ok_status();
}

Status create_all(const SelfSignedOptions& o, const std::vector<std::string>& hosts,
                  std::vector<std::string>& written) {
  HEARTH_ASSIGN_OR_RETURN(std::string tag, random_bytes(4));
  HEARTH_ASSIGN_OR_RETURN(KeyPtr ca_key, new_p256_key());
  HEARTH_ASSIGN_OR_RETURN(CertPtr ca, make_certificate({CertKind::kCa, "Hearth self-signed CA " + to_hex(tag),
                                                        ca_key.get(), nullptr, nullptr, o.days, nullptr}));
  HEARTH_RETURN_IF_ERROR(write_pair(join(o.out_dir, "ca"), ca.get(), ca_key.get(), written));
  HEARTH_ASSIGN_OR_RETURN(KeyPtr server_key, new_p256_key());
  HEARTH_ASSIGN_OR_RETURN(CertPtr server, make_certificate({CertKind::kServer, hosts.front(), server_key.get(),
                                                            ca.get(), ca_key.get(), o.days, &hosts}));
  HEARTH_RETURN_IF_ERROR(write_pair(join(o.out_dir, "server"), server.get(), server_key.get(), written));
  for (const auto& name : o.clients) {
    HEARTH_ASSIGN_OR_RETURN(KeyPtr key, new_p256_key());
    HEARTH_ASSIGN_OR_RETURN(
        CertPtr cert, make_certificate({CertKind::kClient, name, key.get(), ca.get(), ca_key.get(), o.days, nullptr}));
    HEARTH_RETURN_IF_ERROR(write_pair(join(o.out_dir, "client-" + name), cert.get(), key.get(), written));
  }
  return ok_status();
}

}  // namespace

std::vector<std::string> default_self_signed_hosts() { return {"localhost", "127.0.0.1", "::1"}; }

std::string client_cert_path(const std::string& out_dir, const std::string& name) {
  return join(out_dir, "client-" + name + ".pem");
}

std::vector<std::string> self_signed_paths(const SelfSignedOptions& o) {
  std::vector<std::string> paths;
  for (const char* stem : {"ca", "server"}) {
    paths.push_back(join(o.out_dir, std::string(stem) + ".pem"));
    paths.push_back(join(o.out_dir, std::string(stem) + ".key"));
  }
  for (const auto& name : o.clients) {
    paths.push_back(join(o.out_dir, "client-" + name + ".pem"));
    paths.push_back(join(o.out_dir, "client-" + name + ".key"));
  }
  return paths;
}

Status create_self_signed(const SelfSignedOptions& o) {
  std::vector<std::string> hosts = o.hosts.empty() ? default_self_signed_hosts() : o.hosts;
  HEARTH_RETURN_IF_ERROR(validate(o, hosts));
  HEARTH_RETURN_IF_ERROR(check_none_exists(self_signed_paths(o)));
  HEARTH_RETURN_IF_ERROR(ensure_dir(o.out_dir));
  std::vector<std::string> written;
  Status s = create_all(o, hosts, written);
  if (!s.ok()) {
    for (const auto& p : written) ::unlink(p.c_str());
  }
  return s;
}

namespace {

Result<CertPtr> read_first_certificate(const std::string& pem_file) {
  std::ifstream in(pem_file, std::ios::binary);
  if (!in) return not_found("cannot read certificate file '", pem_file, "': ", std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  std::string pem = text.str();
  std::unique_ptr<BIO, OsslFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  CertPtr cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!cert) return invalid_argument("'", pem_file, "' holds no PEM certificate: ", openssl_error());
  return cert;
}

}  // namespace

Result<int64_t> certificate_seconds_left(const std::string& pem_file) {
  HEARTH_ASSIGN_OR_RETURN(CertPtr cert, read_first_certificate(pem_file));
  int days = 0, seconds = 0;
  if (!ASN1_TIME_diff(&days, &seconds, nullptr, X509_get0_notAfter(cert.get())))
    return invalid_argument("'", pem_file, "': unreadable expiry date");
  return int64_t{days} * 86400 + seconds;
}

Result<std::string> certificate_subject(const std::string& pem_file) {
  HEARTH_ASSIGN_OR_RETURN(CertPtr cert, read_first_certificate(pem_file));
  std::unique_ptr<BIO, OsslFree> out(BIO_new(BIO_s_mem()));
  if (!out || X509_NAME_print_ex(out.get(), X509_get_subject_name(cert.get()), 0, XN_FLAG_RFC2253) < 0)
    return internal_error("printing the subject of '", pem_file, "': ", openssl_error());
  return bio_text(out.get());
}

}  // namespace hearth::security
