// SM2 model signatures: `hearth sign` writes "<file>.sig" next to a model file
// (plain .onnx or an .sm4 package) and a server started with
// --trusted-signers refuses models without a valid signature by a trusted key.
//
// The signature file is JSON:
//   {"format":"hearth-signature-1","signer":"<key id>","algorithm":"SM2-SM3",
//    "file_sm3":"<hex SM3 of the file>","signature":"<base64 DER SM2 signature>"}
// The signature is SM2 with SM3 over the whole file bytes, with the default
// SM2 distinguishing ID "1234567812345678" (GB/T 32918) set explicitly, so
// other SM2 tools verify it (e.g. openssl dgst -sm3 -sigopt distid:1234567812345678).
// "file_sm3" is informative: it lets a refusal say "file changed after signing"
// rather than "bad signature"; the SM2 signature is what is trusted.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"
#include "security/keystore.h"

struct evp_pkey_st;

namespace hearth::security {

inline constexpr const char* kSignatureSuffix = ".sig";
inline constexpr const char* kSignatureFormat = "hearth-signature-1";
inline constexpr const char* kSignatureAlgorithm = "SM2-SM3";
// The GB/T 32918 default user id, used on both sides.
inline constexpr std::string_view kSm2DistinguishingId = "1234567812345678";

// A new SM2 private key as DER PKCS#8 (what an sm2 Key holds as its secret).
Result<std::string> generate_sm2_private_key();
// OK when `der` is a DER PKCS#8 SM2 private key; INVALID_ARGUMENT otherwise.
Status validate_sm2_private_key(std::string_view der);
// The public half of an sm2 key as a PEM "PUBLIC KEY" (SubjectPublicKeyInfo).
// FAILED_PRECONDITION for an sm4 key.
Result<std::string> sm2_public_key_pem(const Key& key);

// Signs `file_bytes` with an sm2 key; returns the signature file text (JSON).
// FAILED_PRECONDITION for an sm4 key.
Result<std::string> sign_bytes(std::string_view file_bytes, const Key& sm2_key);
// As sign_bytes, reading the file at `path` in chunks.
Result<std::string> sign_file(const std::string& path, const Key& sm2_key);

// The public keys whose signatures a server accepts, by signer id.
// Immutable after load; verify* may be called from several threads.
class TrustedSigners {
 public:
  // A PEM public key file, or a folder of *.pem / *.pub.pem files (other files
  // and sub-folders are ignored); the signer id is the file name without
  // .pub.pem / .pem. Every key must be an SM2 public key; a folder must hold at
  // least one. INVALID_ARGUMENT / NOT_FOUND naming the file otherwise.
  static Result<TrustedSigners> load(const std::string& path);

  size_t size() const { return keys_.size(); }
  // Signer ids, sorted.
  std::string ids() const;

  // OK when sig_json is a well-formed signature by a trusted signer over
  // exactly `file_bytes`. Otherwise INVALID_ARGUMENT (malformed signature file)
  // or PERMISSION_DENIED (unknown signer 'x', digest mismatch (file changed
  // after signing), bad signature), the message starting with `what`.
  Status verify(std::string_view file_bytes, std::string_view sig_json, const std::string& what) const;
  // As verify, returning the signer id.
  Result<std::string> verified_signer(std::string_view file_bytes, std::string_view sig_json,
                                      const std::string& what) const;

  // Reads `path` (in chunks) and `path`.sig and verifies. NOT_FOUND
  // "model <path> is not signed (no <path>.sig)" when the signature is absent.
  Status verify_file(const std::string& path) const;
  // As verify_file with the signature at `sig_path`; returns the signer id.
  Result<std::string> verify_file_signer(const std::string& path, const std::string& sig_path) const;

 private:
  std::map<std::string, std::shared_ptr<evp_pkey_st>> keys_;
};

}  // namespace hearth::security
