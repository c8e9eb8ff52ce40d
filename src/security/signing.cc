// SM2-SM3 model signatures and the trusted signer set (see signing.h).
#include "security/signing.h"

#include <fcntl.h>
#include <openssl/encoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <vector>

#include "security/crypto.h"

namespace hearth::security {

namespace {

namespace fs = std::filesystem;

constexpr size_t kChunkSize = 1 << 20;
constexpr size_t kMaxSignatureFileSize = 64 << 10;
constexpr size_t kMaxPemFileSize = 64 << 10;
constexpr size_t kMaxSignatureDerSize = 256;

struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;

Status permission_denied(const std::string& msg) { return Status(StatusCode::kPermissionDenied, msg); }

// The first queued OpenSSL error as text (and clears the queue), for messages.
std::string openssl_error() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  return buf;
}

Status require_sm2(const Key& key, const char* what) {
  if (key.type == KeyType::kSm2) return ok_status();
  return failed_precondition("key '", key.id, "' is a symmetric SM4 key; ", what,
                             " needs an SM2 signing key (hearth keys create --id ID --type sm2)");
}

Result<PkeyPtr> private_key_from_der(std::string_view der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  if (der.empty() || der.size() > (1 << 16)) return invalid_argument("not a DER SM2 private key");
  PkeyPtr key(d2i_AutoPrivateKey(nullptr, &p, static_cast<long>(der.size())));
  ERR_clear_error();
  if (!key || p != reinterpret_cast<const unsigned char*>(der.data()) + der.size()) {
    return invalid_argument("not a DER PKCS#8 private key");
  }
  if (!EVP_PKEY_is_a(key.get(), "SM2")) return invalid_argument("the private key is not an SM2 key");
  return key;
}

// Feeds the same bytes to SM3 (for "file_sm3") and to an SM2-SM3 sign or
// verify context with the default distinguishing id.
class Sm2Stream {
 public:
  Status init(EVP_PKEY* key, bool sign) {
    sign_ = sign;
    md_.reset(EVP_MD_CTX_new());
    if (!md_) return internal_error("SM2: out of memory");
    EVP_PKEY_CTX* pctx = nullptr;  // owned by md_
    int ok = sign ? EVP_DigestSignInit_ex(md_.get(), &pctx, "SM3", nullptr, nullptr, key, nullptr)
                  : EVP_DigestVerifyInit_ex(md_.get(), &pctx, "SM3", nullptr, nullptr, key, nullptr);
    if (ok != 1 || pctx == nullptr) return internal_error("SM2-SM3 init failed: ", openssl_error());
    if (EVP_PKEY_CTX_set1_id(pctx, kSm2DistinguishingId.data(), static_cast<int>(kSm2DistinguishingId.size())) != 1) {
      return internal_error("SM2: cannot set the distinguishing id: ", openssl_error());
    }
    return ok_status();
  }

  Status update(const void* data, size_t n) {
    HEARTH_RETURN_IF_ERROR(sm3_.update(data, n));
    int ok = sign_ ? EVP_DigestSignUpdate(md_.get(), data, n) : EVP_DigestVerifyUpdate(md_.get(), data, n);
    if (ok != 1) return internal_error("SM2-SM3 update failed: ", openssl_error());
    return ok_status();
  }

  Result<std::string> file_sm3_hex() {
    HEARTH_ASSIGN_OR_RETURN(std::string digest, sm3_.final());
    return to_hex(digest);
  }

  Result<std::string> sign() {
    size_t len = 0;
    if (EVP_DigestSignFinal(md_.get(), nullptr, &len) != 1) return internal_error("SM2 sign: ", openssl_error());
    std::string sig(len, '\0');
    if (EVP_DigestSignFinal(md_.get(), reinterpret_cast<unsigned char*>(sig.data()), &len) != 1) {
      return internal_error("SM2 sign: ", openssl_error());
    }
    sig.resize(len);
    return sig;
  }

  bool verify(std::string_view sig_der) {
    int ok = EVP_DigestVerifyFinal(md_.get(), reinterpret_cast<const unsigned char*>(sig_der.data()), sig_der.size());
    ERR_clear_error();
    return ok == 1;
  }

 private:
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> md_;
  Sm3 sm3_;
  bool sign_ = true;
};

// Reads a file in chunks into `sink`; NOT_FOUND when it does not exist.
Status for_each_chunk(const std::string& path, const std::function<Status(const char*, size_t)>& sink) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return not_found(path, " does not exist");
    return permission_denied(str_cat("cannot open ", path, ": ", std::strerror(errno)));
  }
  std::vector<char> buf(kChunkSize);
  Status s;
  while (s.ok()) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) s = internal_error("cannot read ", path, ": ", std::strerror(errno));
    if (n <= 0) break;
    s = sink(buf.data(), static_cast<size_t>(n));
  }
  ::close(fd);
  return s;
}

// A small whole file (signature, PEM), refusing anything over `limit` bytes.
Result<std::string> read_small_file(const std::string& path, size_t limit) {
  std::string text;
  Status s = for_each_chunk(path, [&](const char* p, size_t n) {
    if (text.size() + n > limit) return invalid_argument(path, " is larger than ", limit, " bytes");
    text.append(p, n);
    return ok_status();
  });
  if (!s.ok()) return s;
  return text;
}

// Runs `feed` through a signing stream and builds the signature file text.
Result<std::string> sign_with(const Key& key, const std::function<Status(Sm2Stream&)>& feed) {
  HEARTH_RETURN_IF_ERROR(require_sm2(key, "signing"));
  Result<PkeyPtr> pkey = private_key_from_der(key.secret);
  if (!pkey.ok()) return pkey.status().with_context(str_cat("key '", key.id, "'"));
  Sm2Stream stream;
  HEARTH_RETURN_IF_ERROR(stream.init(pkey->get(), true));
  HEARTH_RETURN_IF_ERROR(feed(stream));
  HEARTH_ASSIGN_OR_RETURN(std::string digest, stream.file_sm3_hex());
  HEARTH_ASSIGN_OR_RETURN(std::string sig, stream.sign());
  nlohmann::ordered_json j = {{"format", kSignatureFormat},     {"signer", key.id},
                              {"algorithm", kSignatureAlgorithm}, {"file_sm3", digest},
                              {"signature", base64_encode(sig)}};
  return j.dump(2) + "\n";
}

// A signature file, parsed and checked for shape.
struct ParsedSignature {
  std::string signer;
  std::string file_sm3;  // lowercase hex
  std::string der;       // the SM2 signature
};

bool is_lower_hex(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// The string field `name` of a JSON object, or an error saying what is wrong.
Result<std::string> string_field(const nlohmann::json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end()) return invalid_argument("field '", name, "' is missing");
  if (!it->is_string()) return invalid_argument("field '", name, "' is not a string");
  return it->get<std::string>();
}

Result<ParsedSignature> parse_signature_fields(const nlohmann::json& j) {
  if (!j.is_object()) return invalid_argument("not a JSON object");
  HEARTH_ASSIGN_OR_RETURN(std::string format, string_field(j, "format"));
  if (format != kSignatureFormat) return invalid_argument("unknown format '", format, "'");
  HEARTH_ASSIGN_OR_RETURN(std::string algorithm, string_field(j, "algorithm"));
  if (algorithm != kSignatureAlgorithm) return invalid_argument("unsupported algorithm '", algorithm, "'");
  ParsedSignature sig;
  HEARTH_ASSIGN_OR_RETURN(sig.signer, string_field(j, "signer"));
  HEARTH_RETURN_IF_ERROR(validate_key_id(sig.signer).with_context("field 'signer'"));
  HEARTH_ASSIGN_OR_RETURN(sig.file_sm3, string_field(j, "file_sm3"));
  if (sig.file_sm3.size() != 2 * kSm3Size || !is_lower_hex(sig.file_sm3)) {
    return invalid_argument("field 'file_sm3' is not ", 2 * kSm3Size, " lowercase hex digits");
  }
  HEARTH_ASSIGN_OR_RETURN(std::string b64, string_field(j, "signature"));
  Result<std::string> der = base64_decode(b64);
  if (!der.ok() || der->empty() || der->size() > kMaxSignatureDerSize) {
    return invalid_argument("field 'signature' is not a base64 SM2 signature");
  }
  sig.der = std::move(der).value();
  return sig;
}

Result<ParsedSignature> parse_signature(std::string_view sig_json) {
  if (sig_json.size() > kMaxSignatureFileSize) return invalid_argument("larger than ", kMaxSignatureFileSize, " bytes");
  try {
    nlohmann::json j = nlohmann::json::parse(sig_json.begin(), sig_json.end(), nullptr, false);
    if (j.is_discarded()) return invalid_argument("not valid JSON");
    return parse_signature_fields(j);
  } catch (const std::exception& e) {
    return invalid_argument("cannot read it: ", e.what());
  }
}

std::string signer_id_from_file_name(const std::string& name) {
  for (const char* suffix : {".pub.pem", ".pem"}) {
    std::string_view s(suffix);
    if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0) {
      return name.substr(0, name.size() - s.size());
    }
  }
  return name;
}

// An SM2 public key from a PEM file.
Result<PkeyPtr> load_public_pem(const std::string& path) {
  HEARTH_ASSIGN_OR_RETURN(std::string pem, read_small_file(path, kMaxPemFileSize));
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return internal_error("out of memory reading ", path);
  PkeyPtr key(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  if (!key) return invalid_argument("trusted signer key ", path, " is not a PEM public key");
  if (!EVP_PKEY_is_a(key.get(), "SM2")) {
    return invalid_argument("trusted signer key ", path, " is not an SM2 public key (it is ",
                            EVP_PKEY_get0_type_name(key.get()) ? EVP_PKEY_get0_type_name(key.get()) : "unknown",
                            ")");
  }
  return key;
}

// The *.pem files of a folder, sorted (so errors and ids are stable).
Result<std::vector<fs::path>> pem_files_in(const std::string& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code type_ec;
    std::string name = it->path().filename().string();
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".pem") == 0 && it->is_regular_file(type_ec)) {
      out.push_back(it->path());
    }
  }
  if (ec) return invalid_argument("cannot list trusted signers folder ", dir, ": ", ec.message());
  std::sort(out.begin(), out.end());
  if (out.empty()) return invalid_argument("trusted signers folder ", dir, " holds no .pem public keys");
  return out;
}

}  // namespace

Result<std::string> generate_sm2_private_key() {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "SM2"));
  if (!key) return internal_error("SM2 key generation failed: ", openssl_error());
  OSSL_ENCODER_CTX* enc =
      OSSL_ENCODER_CTX_new_for_pkey(key.get(), EVP_PKEY_KEYPAIR, "DER", "PrivateKeyInfo", nullptr);
  unsigned char* data = nullptr;
  size_t len = 0;
  bool ok = enc != nullptr && OSSL_ENCODER_to_data(enc, &data, &len) == 1 && data != nullptr;
  OSSL_ENCODER_CTX_free(enc);
  if (!ok) return internal_error("cannot encode the SM2 private key: ", openssl_error());
  std::string der(reinterpret_cast<const char*>(data), len);
  OPENSSL_clear_free(data, len);
  return der;
}

Status validate_sm2_private_key(std::string_view der) { return private_key_from_der(der).status(); }

Result<std::string> sm2_public_key_pem(const Key& key) {
  if (key.type != KeyType::kSm2) {
    return failed_precondition("key '", key.id, "' is a symmetric SM4 key; only SM2 signing keys have a public half");
  }
  Result<PkeyPtr> pkey = private_key_from_der(key.secret);
  if (!pkey.ok()) return pkey.status().with_context(str_cat("key '", key.id, "'"));
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), pkey->get()) != 1) {
    return internal_error("cannot write the public key of '", key.id, "': ", openssl_error());
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

Result<std::string> sign_bytes(std::string_view file_bytes, const Key& sm2_key) {
  return sign_with(sm2_key, [&](Sm2Stream& s) { return s.update(file_bytes.data(), file_bytes.size()); });
}

Result<std::string> sign_file(const std::string& path, const Key& sm2_key) {
  return sign_with(sm2_key, [&](Sm2Stream& s) {
    return for_each_chunk(path, [&](const char* p, size_t n) { return s.update(p, n); });
  });
}

Result<TrustedSigners> TrustedSigners::load(const std::string& path) {
  std::error_code ec;
  fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) return not_found("trusted signers path ", path, " does not exist");
  std::vector<fs::path> files;
  if (fs::is_directory(st)) {
    HEARTH_ASSIGN_OR_RETURN(files, pem_files_in(path));
  } else {
    files.emplace_back(path);
  }
  TrustedSigners out;
  for (const fs::path& file : files) {
    std::string id = signer_id_from_file_name(file.filename().string());
    HEARTH_RETURN_IF_ERROR(
        validate_key_id(id).with_context(str_cat("trusted signer key ", file.string(), ": signer id '", id, "'")));
    if (out.keys_.count(id) != 0) {
      return invalid_argument("trusted signer '", id, "' appears twice in ", path, " (", file.string(), ")");
    }
    HEARTH_ASSIGN_OR_RETURN(PkeyPtr key, load_public_pem(file.string()));
    out.keys_.emplace(id, std::shared_ptr<EVP_PKEY>(key.release(), PkeyFree()));
  }
  return out;
}

std::string TrustedSigners::ids() const {
  std::string out;
  for (const auto& [id, key] : keys_) out += (out.empty() ? "" : ", ") + id;
  return out;
}

namespace {

// Verifies a parsed signature over the bytes `feed` supplies.
Result<std::string> verify_parsed(const std::map<std::string, std::shared_ptr<EVP_PKEY>>& keys,
                                  const ParsedSignature& sig, const std::string& what,
                                  const std::function<Status(Sm2Stream&)>& feed) {
  auto it = keys.find(sig.signer);
  if (it == keys.end()) {
    return permission_denied(str_cat(what, ": signature refused: unknown signer '", sig.signer, "' (not among the ",
                                     keys.size(), " trusted signers)"));
  }
  Sm2Stream stream;
  HEARTH_RETURN_IF_ERROR(stream.init(it->second.get(), false));
  HEARTH_RETURN_IF_ERROR(feed(stream));
  HEARTH_ASSIGN_OR_RETURN(std::string digest, stream.file_sm3_hex());
  if (digest != sig.file_sm3) {
    return permission_denied(str_cat(what, ": signature refused: digest mismatch (file changed after signing by '",
                                     sig.signer, "')"));
  }
  if (!stream.verify(sig.der)) {
    return permission_denied(
        str_cat(what, ": signature refused: bad signature (not made by trusted signer '", sig.signer, "')"));
  }
  return sig.signer;
}

Result<ParsedSignature> parse_for(std::string_view sig_json, const std::string& what) {
  Result<ParsedSignature> sig = parse_signature(sig_json);
  if (!sig.ok()) return invalid_argument(what, ": malformed signature file: ", sig.status().message());
  return sig;
}

}  // namespace

Result<std::string> TrustedSigners::verified_signer(std::string_view file_bytes, std::string_view sig_json,
                                                    const std::string& what) const {
  HEARTH_ASSIGN_OR_RETURN(ParsedSignature sig, parse_for(sig_json, what));
  return verify_parsed(keys_, sig, what, [&](Sm2Stream& s) { return s.update(file_bytes.data(), file_bytes.size()); });
}

Status TrustedSigners::verify(std::string_view file_bytes, std::string_view sig_json, const std::string& what) const {
  return verified_signer(file_bytes, sig_json, what).status();
}

Result<std::string> TrustedSigners::verify_file_signer(const std::string& path, const std::string& sig_path) const {
  Result<std::string> sig_json = read_small_file(sig_path, kMaxSignatureFileSize);
  if (!sig_json.ok() && sig_json.status().code() == StatusCode::kNotFound) {
    return not_found("model ", path, " is not signed (no ", sig_path, ")");
  }
  if (!sig_json.ok()) return sig_json.status().with_context(str_cat(path, ": signature file"));
  HEARTH_ASSIGN_OR_RETURN(ParsedSignature sig, parse_for(*sig_json, path));
  return verify_parsed(keys_, sig, path, [&](Sm2Stream& s) {
    return for_each_chunk(path, [&](const char* p, size_t n) { return s.update(p, n); });
  });
}

Status TrustedSigners::verify_file(const std::string& path) const {
  return verify_file_signer(path, path + kSignatureSuffix).status();
}

}  // namespace hearth::security
