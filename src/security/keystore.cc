// Key store file, key files and HEARTH_MODEL_KEY (see keystore.h).
#include "security/keystore.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <sstream>

#include "security/crypto.h"
#include "security/private_file.h"
#include "security/signing.h"

namespace hearth::security {

namespace {

constexpr size_t kMaxKeyFileSize = 1 << 20;

// Decodes and checks the secret of a key of `type` (cleansed on failure).
Result<std::string> decode_secret(const std::string& b64, KeyType type, const std::string& id) {
  Result<std::string> secret = base64_decode(b64);
  if (type == KeyType::kSm4) {
    if (secret.ok() && secret->size() == kKeySecretSize) return secret;
    if (secret.ok()) cleanse(*secret);
    return invalid_argument("key '", id, "' secret is not ", kKeySecretSize, " bytes of base64");
  }
  Status valid = secret.ok() ? validate_sm2_private_key(*secret) : secret.status();
  if (valid.ok()) return secret;
  if (secret.ok()) cleanse(*secret);
  return invalid_argument("key '", id, "' is not a base64 DER (PKCS#8) SM2 private key");
}

// Builds a key from the fields of one store line; `where` names the line.
Result<Key> make_key(const std::string& id, const std::string& b64, const std::string& created,
                     const std::string& type_name, const std::string& where) {
  HEARTH_RETURN_IF_ERROR(validate_key_id(id).with_context(where));
  int64_t when = 0;
  auto [ptr, ec] = std::from_chars(created.data(), created.data() + created.size(), when);
  if (ec != std::errc() || ptr != created.data() + created.size() || when < 0) {
    return invalid_argument(where, ": creation time '", created, "' is not a number of seconds");
  }
  KeyType type = KeyType::kSm4;
  if (!type_name.empty()) {
    Result<KeyType> parsed = parse_key_type(type_name);
    if (!parsed.ok()) return parsed.status().with_context(where);
    type = *parsed;
  }
  Result<std::string> secret = decode_secret(b64, type, id);
  if (!secret.ok()) return secret.status().with_context(where);
  return Key(id, std::move(secret).value(), when, type);
}

// Parses one non-comment line "<id> <base64> <created> [<type>]".
Result<Key> parse_key_line(const std::string& line, const std::string& where) {
  std::istringstream fields(line);
  std::string id, b64, created, type_name, extra;
  fields >> id >> b64 >> created >> type_name >> extra;
  Result<Key> key = invalid_argument(where, ": expected '<id> <base64 secret> <created unix seconds> [sm4|sm2]'");
  if (!b64.empty() && !created.empty() && extra.empty()) key = make_key(id, b64, created, type_name, where);
  cleanse(b64);
  return key;
}

// Parses the key store text; `what` names the file in messages.
Result<std::vector<Key>> parse_keys(std::string& text, const std::string& what) {
  std::vector<Key> keys;
  std::istringstream in(text);
  std::string line;
  int lineno = 0;
  Status bad;
  while (bad.ok() && std::getline(in, line)) {
    ++lineno;
    size_t first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    std::string where = str_cat(what, " line ", lineno);
    Result<Key> key = parse_key_line(line, where);
    cleanse(line);
    if (!key.ok()) {
      bad = key.status();
      break;
    }
    for (const Key& k : keys) {
      if (k.id == key->id) bad = invalid_argument(where, ": key '", k.id, "' appears twice");
    }
    if (bad.ok()) keys.push_back(std::move(key).value());
  }
  cleanse(line);
  cleanse(text);
  if (!bad.ok()) return bad;
  return keys;
}

std::string serialize_keys(const std::vector<Key>& keys) {
  std::string out =
      "# hearth key store: <id> <base64 secret> <created unix seconds> [sm2]. Keep it private (mode 0600).\n";
  for (const Key& k : keys) {
    std::string b64 = base64_encode(k.secret);
    // sm4 lines keep the three-field form older Hearth versions read.
    out += str_cat(k.id, " ", b64, " ", k.created_unix, k.type == KeyType::kSm2 ? " sm2" : "", "\n");
    cleanse(b64);
  }
  return out;
}

}  // namespace

Key::~Key() { cleanse(secret); }

const char* key_type_name(KeyType type) { return type == KeyType::kSm2 ? "sm2" : "sm4"; }

Result<KeyType> parse_key_type(std::string_view name) {
  std::string lower;
  for (char c : name) lower.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c));
  if (lower == "sm4") return KeyType::kSm4;
  if (lower == "sm2") return KeyType::kSm2;
  return invalid_argument("unknown key type '", name, "' (expected sm4 or sm2)");
}

Status validate_key_id(std::string_view id) {
  if (id.empty() || id.size() > kMaxKeyIdSize) {
    return invalid_argument("key id must be 1 to ", kMaxKeyIdSize, " characters, got ", id.size());
  }
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-';
    if (!ok) return invalid_argument("key id may only hold letters, digits, '.', '_' and '-'");
  }
  if (id[0] == '.' || id[0] == '-') return invalid_argument("key id '", id, "' may not start with '.' or '-'");
  return ok_status();
}

Result<Key> generate_key(const std::string& id, KeyType type) {
  std::string key_id = id;
  if (key_id.empty()) {
    HEARTH_ASSIGN_OR_RETURN(std::string r, random_bytes(4));
    key_id = "key-" + to_hex(r);
  }
  HEARTH_RETURN_IF_ERROR(validate_key_id(key_id));
  Result<std::string> secret = type == KeyType::kSm2 ? generate_sm2_private_key() : random_bytes(kKeySecretSize);
  HEARTH_RETURN_IF_ERROR(secret.status());
  return Key(key_id, std::move(secret).value(), static_cast<int64_t>(std::time(nullptr)), type);
}

std::string KeyStore::default_path() {
  if (const char* p = std::getenv(kKeyStoreEnv); p && *p) return p;
  const char* home = std::getenv("HOME");
  return str_cat(home && *home ? home : ".", "/.config/hearth/keys");
}

Result<KeyStore> KeyStore::open(const std::string& path) {
  HEARTH_ASSIGN_OR_RETURN(std::string text, read_private_file(path, "key store", kMaxKeyFileSize));
  KeyStore store;
  store.path_ = path;
  HEARTH_ASSIGN_OR_RETURN(store.keys_, parse_keys(text, "key store " + path));
  return store;
}

Result<KeyStore> KeyStore::open_or_empty(const std::string& path) {
  Result<KeyStore> store = open(path);
  if (store.ok() || store.status().code() != StatusCode::kNotFound) return store;
  KeyStore empty;
  empty.path_ = path;
  return empty;
}

Result<Key> KeyStore::find(const std::string& id) const {
  for (const Key& k : keys_) {
    if (k.id == id) return k;
  }
  return not_found("key '", id, "' is not in the key store ", path_);
}

Result<Key> KeyStore::create(const std::string& id, KeyType type) {
  HEARTH_ASSIGN_OR_RETURN(Key key, generate_key(id, type));
  if (find(key.id).ok()) {
    return Status(StatusCode::kAlreadyExists, str_cat("key '", key.id, "' already exists in ", path_));
  }
  keys_.push_back(key);
  Status s = save();
  if (!s.ok()) {
    keys_.pop_back();
    return s;
  }
  return key;
}

Result<Key> KeyStore::rotate(const std::string& id) {
  HEARTH_ASSIGN_OR_RETURN(Key old, find(id));
  // "models-3" rotates to "models-4", "models" to "models-2".
  std::string base = id;
  size_t dash = id.find_last_of('-');
  if (dash != std::string::npos && dash > 0 && dash + 1 < id.size() &&
      id.find_first_not_of("0123456789", dash + 1) == std::string::npos) {
    base = id.substr(0, dash);
  }
  for (int n = 2; n < 1000000; ++n) {
    std::string next = str_cat(base, "-", n);
    if (next.size() > kMaxKeyIdSize) break;
    if (!find(next).ok()) return create(next, old.type);
  }
  return invalid_argument("cannot find a free id to rotate key '", id, "' to");
}

Status KeyStore::save() const {
  std::string text = serialize_keys(keys_);
  Status s = save_private_file(path_, text, "key store");
  cleanse(text);
  return s;
}

Result<Key> SingleKeyResolver::find(const std::string& id) const {
  if (id == key_.id) return key_;
  return not_found("key '", id, "' is not the key given by ", source_, " (which holds key '", key_.id, "')");
}

Result<Key> ChainKeyResolver::find(const std::string& id) const {
  std::string tried;
  for (const auto& part : parts_) {
    Result<Key> k = part->find(id);
    if (k.ok() || k.status().code() != StatusCode::kNotFound) return k;
    tried += (tried.empty() ? "" : ", ") + part->describe();
  }
  return not_found("key '", id, "' is not in any configured key source (", tried, ")");
}

std::string ChainKeyResolver::describe() const {
  std::string out;
  for (const auto& part : parts_) out += (out.empty() ? "" : ", ") + part->describe();
  return out;
}

Result<Key> KeyStoreFileResolver::find(const std::string& id) const {
  HEARTH_ASSIGN_OR_RETURN(KeyStore store, KeyStore::open(path_));
  return store.find(id);
}

Result<Key> parse_key_spec(std::string_view spec) {
  size_t colon = spec.find(':');
  if (colon == std::string_view::npos) return invalid_argument("expected '<id>:<base64 secret>'");
  std::string_view id = spec.substr(0, colon);
  HEARTH_RETURN_IF_ERROR(validate_key_id(id));
  Result<std::string> secret = base64_decode(spec.substr(colon + 1));
  if (!secret.ok() || secret->size() != kKeySecretSize) {
    if (secret.ok()) cleanse(*secret);
    return invalid_argument("key '", id, "': secret is not ", kKeySecretSize, " bytes of base64");
  }
  return Key(std::string(id), std::move(secret).value());
}

Result<std::unique_ptr<KeyResolver>> key_from_env(const char* var) {
  const char* v = std::getenv(var);
  if (!v || !*v) return not_found("environment variable ", var, " is not set");
  Result<Key> key = parse_key_spec(v);
  if (!key.ok()) return key.status().with_context(str_cat("environment variable ", var));
  return std::unique_ptr<KeyResolver>(
      std::make_unique<SingleKeyResolver>(std::move(key).value(), str_cat("environment variable ", var)));
}

Result<std::unique_ptr<KeyResolver>> key_from_file(const std::string& path) {
  HEARTH_ASSIGN_OR_RETURN(std::string text, read_private_file(path, "key file", kMaxKeyFileSize));
  HEARTH_ASSIGN_OR_RETURN(std::vector<Key> keys, parse_keys(text, "key file " + path));
  if (keys.size() != 1) return invalid_argument("key file ", path, " holds ", keys.size(), " keys, expected exactly 1");
  return std::unique_ptr<KeyResolver>(std::make_unique<SingleKeyResolver>(std::move(keys[0]), "key file " + path));
}

Status write_key_file(const std::string& path, const Key& key) {
  HEARTH_RETURN_IF_ERROR(ensure_private_parent_dir(path));
  std::string text = serialize_keys({key});
  Status s = write_new_private_file(path, text);
  cleanse(text);
  return s;
}

}  // namespace hearth::security
