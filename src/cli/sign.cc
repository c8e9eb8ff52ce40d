// `hearth sign` and `hearth verify`: SM2-SM3 signatures next to model files
// (plain .onnx or .sm4 packages), checked against a set of trusted public keys
// the way `hearth serve --trusted-signers` checks them (see security/signing.h).
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "security/keystore.h"
#include "security/signing.h"

namespace hearth::cli {

namespace {

namespace fs = std::filesystem;

struct SignOptions {
  std::string file;
  std::string key_id;
  std::string key_store;
  std::string key_file;
  std::string output;  // signature file (default FILE.sig)
  std::string trusted_signers;
  bool json = false;
};

std::string sig_path(const SignOptions& o) {
  return o.output.empty() ? o.file + security::kSignatureSuffix : o.output;
}

// --key-file, else --key-store, else the default store.
Result<security::Key> signing_key(const SignOptions& o) {
  if (!o.key_file.empty()) {
    HEARTH_ASSIGN_OR_RETURN(std::unique_ptr<security::KeyResolver> keys, security::key_from_file(o.key_file));
    return keys->find(o.key_id);
  }
  std::string path = o.key_store.empty() ? security::KeyStore::default_path() : o.key_store;
  HEARTH_ASSIGN_OR_RETURN(security::KeyStore store, security::KeyStore::open(path));
  return store.find(o.key_id);
}

// Writes the signature next to the model: a temporary file, then rename, so a
// reader never sees half a signature. Refuses to write over the signed file.
Status write_signature(const std::string& path, const std::string& model, const std::string& text) {
  std::error_code ec;
  if (fs::exists(path, ec) && fs::equivalent(path, model, ec)) {
    return invalid_argument("the signature file ", path, " would replace the file being signed");
  }
  std::string tmp = str_cat(path, ".tmp.", ::getpid());
  ::unlink(tmp.c_str());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return internal_error("cannot create ", tmp, ": ", std::strerror(errno));
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ok = ::close(fd) == 0 && ok;
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return internal_error("cannot write ", path, ": ", std::strerror(err));
  }
  return ok_status();
}

Status sign(const SignOptions& o) {
  HEARTH_ASSIGN_OR_RETURN(security::Key key, signing_key(o));
  HEARTH_ASSIGN_OR_RETURN(std::string sig, security::sign_file(o.file, key));
  std::string out = sig_path(o);
  HEARTH_RETURN_IF_ERROR(write_signature(out, o.file, sig));
  if (o.json) {
    std::cout << nlohmann::json{{"file", o.file}, {"signature", out}, {"signer", key.id}}.dump() << "\n";
  } else {
    std::cout << "signed " << o.file << " with key " << key.id << ": " << out << "\n";
  }
  return ok_status();
}

Status verify(const SignOptions& o) {
  HEARTH_ASSIGN_OR_RETURN(security::TrustedSigners signers, security::TrustedSigners::load(o.trusted_signers));
  HEARTH_ASSIGN_OR_RETURN(std::string signer, signers.verify_file_signer(o.file, sig_path(o)));
  if (o.json) {
    std::cout << nlohmann::json{{"file", o.file}, {"ok", true}, {"signer", signer}}.dump() << "\n";
  } else {
    std::cout << "signature OK: signed by " << signer << "\n";
  }
  return ok_status();
}

}  // namespace

void add_sign_command(CLI::App& app) {
  auto o = std::make_shared<SignOptions>();
  CLI::App* sign_cmd = app.add_subcommand("sign", "Sign a model file or .sm4 package with an SM2 key (writes FILE.sig)");
  sign_cmd->add_option("file", o->file, "model file (.onnx) or encrypted package (.sm4)")->required();
  sign_cmd->add_option("--key", o->key_id, "SM2 key id (hearth keys create ID --type sm2)")->required();
  sign_cmd->add_option("--key-store", o->key_store, "key store file (default $HEARTH_KEY_STORE or ~/.config/hearth/keys)");
  sign_cmd->add_option("--key-file", o->key_file, "standalone key file holding the key");
  sign_cmd->add_option("-o,--output", o->output, "signature file (default FILE.sig)");
  sign_cmd->add_flag("--json", o->json, "print JSON");
  sign_cmd->callback([o] { run_reporting(o, sign); });

  auto v = std::make_shared<SignOptions>();
  CLI::App* verify_cmd = app.add_subcommand("verify", "Check a model's signature against trusted SM2 public keys");
  verify_cmd->add_option("file", v->file, "signed model file or package")->required();
  verify_cmd->add_option("--trusted-signers", v->trusted_signers, "public key PEM file, or a folder of *.pem")
      ->required();
  verify_cmd->add_option("--signature", v->output, "signature file (default FILE.sig)");
  verify_cmd->add_flag("--json", v->json, "print JSON");
  verify_cmd->callback([v] { run_reporting(v, verify); });
}

}  // namespace hearth::cli
