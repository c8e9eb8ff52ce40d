// Users and API tokens: who may call the server, with which roles.
//
// Everything lives in one JSON file (default ~/.config/hearth/auth.json) with
// the same rules as the key store (keystore.h): Hearth refuses a file whose
// mode is wider than 0600 or that another user owns, and saves it atomically
// (temporary file with mode 0600 + rename).
//
// A token's text "hth_<id>_<secret>" is shown once when issued and never
// stored: the file keeps only the id, a random 16-byte salt and
// HMAC-SM3(key = salt, message = the 32 secret bytes).
//
// An AuthStore is a plain value: not thread-safe to mutate, safe to read from
// several threads (the Authorizer shares it read-only).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"

namespace hearth::security {

inline constexpr const char* kAuthStoreEnv = "HEARTH_AUTH_STORE";
inline constexpr size_t kTokenIdSize = 12;      // lowercase hex characters
inline constexpr size_t kTokenSecretBytes = 32;
inline constexpr size_t kTokenSecretSize = 43;  // base64url characters, no padding
inline constexpr size_t kTokenSaltBytes = 16;

struct User {
  std::string name;
  std::vector<std::string> roles;
  std::vector<std::string> cert_subjects;  // RFC 2253 subjects of client certificates mapped to this user
  int64_t created_unix = 0;
};

struct TokenRecord {
  std::string id;
  std::string user;
  std::string salt;  // base64 of kTokenSaltBytes
  std::string hash;  // base64 of the 32-byte HMAC-SM3
  int64_t created_unix = 0;
  int64_t expires_unix = 0;  // 0 = never
  std::string description;
};

// The token text is shown once, never stored.
struct IssuedToken {
  std::string token;
  TokenRecord record;
};

struct TokenParts {
  std::string id;
  std::string secret;  // the 32 decoded secret bytes
};

// Token text "hth_<id>_<secret>": id 12 lowercase hex chars, secret 43
// base64url chars (32 random bytes). Anything else is kUnauthenticated
// "malformed token", always the same message whatever was wrong.
Result<TokenParts> parse_token(std::string_view text);
// [A-Za-z0-9][A-Za-z0-9._@-]{0,63}
Status validate_user_name(std::string_view name);
// 1 to 1024 printable characters.
Status validate_cert_subject(std::string_view subject);

class AuthStore {
 public:
  // $HEARTH_AUTH_STORE, else $HOME/.config/hearth/auth.json.
  static std::string default_path();
  // NOT_FOUND when missing, PERMISSION_DENIED when the mode is wider than 0600
  // or another user owns it, INVALID_ARGUMENT naming the file and the field.
  static Result<AuthStore> open(const std::string& path);
  // As open(), but an empty store when the file does not exist yet.
  static Result<AuthStore> open_or_empty(const std::string& path);
  // Parses store text without any file checks (fuzzing, tests); `source`
  // names it in messages. path() is `source`.
  static Result<AuthStore> parse(std::string_view json_text, const std::string& source);

  const std::string& path() const { return path_; }
  const std::vector<User>& users() const { return users_; }
  const std::vector<TokenRecord>& tokens() const { return tokens_; }
  // Whether a token with this id exists (revoked ones do not), for throttling by credential.
  bool has_token_id(std::string_view id) const { return token_index_.count(std::string(id)) != 0; }
  const User* find_user(std::string_view name) const;
  // Exact match of an RFC 2253 subject; nullptr when no user has it.
  const User* find_user_by_subject(std::string_view cert_subject) const;

  // The mutators change memory only; call save() to write the file.
  Status add_user(const std::string& name, std::vector<std::string> roles);  // ALREADY_EXISTS
  Status remove_user(const std::string& name);                              // also removes its tokens
  Status grant(const std::string& user, const std::string& role);
  Status revoke(const std::string& user, const std::string& role);
  // ALREADY_EXISTS when any user already has the subject.
  Status add_subject(const std::string& user, const std::string& cert_subject);
  Result<IssuedToken> issue_token(const std::string& user, int64_t ttl_seconds /*0 = never*/, std::string description,
                                  int64_t now_unix);
  Status revoke_token(const std::string& id);  // NOT_FOUND
  // The user a presented token belongs to; kUnauthenticated "invalid token" or
  // "token expired" otherwise (an unknown id costs the same HMAC as a known one).
  // The pointer stays valid until the store is changed or destroyed.
  Result<const User*> verify_token(std::string_view token, int64_t now_unix) const;

  // Writes the file atomically (temporary file in the same folder, mode 0600, rename).
  Status save() const;
  // The JSON text save() writes.
  std::string to_json() const;

 private:
  void reindex();
  User* mutable_user(std::string_view name);

  std::string path_;
  std::vector<User> users_;
  std::vector<TokenRecord> tokens_;
  std::unordered_map<std::string, size_t> user_index_;   // name -> users_ index
  std::unordered_map<std::string, size_t> token_index_;  // id -> tokens_ index
  // Decoded salt and hash per token (parallel to tokens_), so verification decodes nothing.
  std::vector<std::pair<std::string, std::string>> token_keys_;
};

}  // namespace hearth::security
