// Model keys: where the 32-byte secrets that seal model packages live, and the
// SM2 private keys that sign models.
//
// A key store is a text file readable by its owner only, one key a line:
//   <id> <base64 secret> <created, unix seconds> [<type>]
// (lines starting with '#' are comments). The type is "sm4" (the default when
// the field is absent, as in stores written before signing existed: the secret
// is 32 random bytes) or "sm2" (the secret is the DER PKCS#8 SM2 private key). Hearth refuses to read a store or
// key file whose mode is wider than 0600 or that another user owns. A key may
// also be given directly: a key file (same format, exactly one key) or the
// environment variable HEARTH_MODEL_KEY=<id>:<base64 secret>.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace hearth::security {

inline constexpr size_t kKeySecretSize = 32;
inline constexpr size_t kMaxKeyIdSize = 64;
inline constexpr const char* kModelKeyEnv = "HEARTH_MODEL_KEY";
inline constexpr const char* kKeyStoreEnv = "HEARTH_KEY_STORE";

// What a key is for: sealing model packages (sm4) or signing models (sm2).
enum class KeyType { kSm4, kSm2 };

// "sm4" / "sm2".
const char* key_type_name(KeyType type);
// Parses "sm4" / "sm2" (case-insensitive); INVALID_ARGUMENT otherwise.
Result<KeyType> parse_key_type(std::string_view name);

// One key. The secret is cleansed when the Key is destroyed.
struct Key {
  std::string id;
  std::string secret;  // sm4: kKeySecretSize raw bytes; sm2: DER PKCS#8 private key
  int64_t created_unix = 0;
  KeyType type = KeyType::kSm4;

  Key() = default;
  Key(std::string id_, std::string secret_, int64_t created = 0, KeyType type_ = KeyType::kSm4)
      : id(std::move(id_)), secret(std::move(secret_)), created_unix(created), type(type_) {}
  Key(const Key&) = default;
  Key(Key&&) noexcept = default;
  Key& operator=(const Key&) = default;
  Key& operator=(Key&&) noexcept = default;
  ~Key();
};

// Ids are 1..64 characters of [A-Za-z0-9._-], not starting with '.' or '-'.
Status validate_key_id(std::string_view id);
// A fresh key with a random secret (sm4) or a new SM2 key pair (sm2); a random
// id ("key-<8 hex>") when id is empty.
Result<Key> generate_key(const std::string& id = "", KeyType type = KeyType::kSm4);

// Finds keys by id. Implementations are safe to call from several threads.
class KeyResolver {
 public:
  virtual ~KeyResolver() = default;
  // The key, or NOT_FOUND with a message naming the id and where it was looked for.
  virtual Result<Key> find(const std::string& id) const = 0;
  // Where keys come from, for messages: "key store /home/u/.config/hearth/keys".
  virtual std::string describe() const = 0;
};

// The key store file, read into memory.
class KeyStore : public KeyResolver {
 public:
  // $HEARTH_KEY_STORE, else $HOME/.config/hearth/keys.
  static std::string default_path();
  // Reads the store: NOT_FOUND when missing, PERMISSION_DENIED when its mode is
  // wider than 0600 or another user owns it, INVALID_ARGUMENT naming the line.
  static Result<KeyStore> open(const std::string& path);
  // As open(), but an empty store when the file does not exist yet.
  static Result<KeyStore> open_or_empty(const std::string& path);

  const std::string& path() const { return path_; }
  const std::vector<Key>& keys() const { return keys_; }
  Result<Key> find(const std::string& id) const override;
  std::string describe() const override { return "key store " + path_; }

  // Adds a new random key (random id when empty) and saves the store.
  Result<Key> create(const std::string& id, KeyType type = KeyType::kSm4);
  // Adds a new key "<base>-N" (next free N >= 2) of the same type for a key;
  // the old one stays so existing packages still open (and existing signatures
  // still verify). Saves the store.
  Result<Key> rotate(const std::string& id);
  // Writes the store atomically (temporary file in the same folder, mode 0600, rename).
  Status save() const;

 private:
  std::string path_;
  std::vector<Key> keys_;
};

// Exactly one key, given directly (key file or environment).
class SingleKeyResolver : public KeyResolver {
 public:
  SingleKeyResolver(Key key, std::string source) : key_(std::move(key)), source_(std::move(source)) {}
  Result<Key> find(const std::string& id) const override;
  std::string describe() const override { return source_; }

 private:
  Key key_;
  std::string source_;
};

// Tries several resolvers in order; the first that has the id wins.
class ChainKeyResolver : public KeyResolver {
 public:
  explicit ChainKeyResolver(std::vector<std::unique_ptr<KeyResolver>> parts) : parts_(std::move(parts)) {}
  Result<Key> find(const std::string& id) const override;
  std::string describe() const override;

 private:
  std::vector<std::unique_ptr<KeyResolver>> parts_;
};

// Re-reads a key store file on every find (so a server sees rotated keys).
class KeyStoreFileResolver : public KeyResolver {
 public:
  explicit KeyStoreFileResolver(std::string path) : path_(std::move(path)) {}
  Result<Key> find(const std::string& id) const override;
  std::string describe() const override { return "key store " + path_; }

 private:
  std::string path_;
};

// Parses "<id>:<base64 secret>" (the HEARTH_MODEL_KEY format; always an sm4 key).
Result<Key> parse_key_spec(std::string_view spec);
// The key in environment variable `var`; NOT_FOUND when it is unset.
Result<std::unique_ptr<KeyResolver>> key_from_env(const char* var = kModelKeyEnv);
// A key file: the key store format with exactly one key, same permission rules.
Result<std::unique_ptr<KeyResolver>> key_from_file(const std::string& path);
// Writes a single-key file (mode 0600); fails when the file exists.
Status write_key_file(const std::string& path, const Key& key);

}  // namespace hearth::security
