// The users-and-tokens file, token text and token verification (see auth_store.h).
#include "security/auth_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "security/crypto.h"
#include "security/private_file.h"
#include "security/sm3_fast.h"
#include "security/policy.h"

namespace hearth::security {

namespace {

using nlohmann::json;

constexpr size_t kMaxStoreBytes = 16 << 20;
constexpr size_t kMaxSubjectSize = 1024;
constexpr size_t kMaxDescriptionSize = 256;
constexpr std::string_view kTokenPrefix = "hth_";
constexpr int kStoreVersion = 1;

Status unauthenticated(const std::string& msg) { return Status(StatusCode::kUnauthenticated, msg); }

bool is_lower_hex(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

int base64url_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

std::string base64url_encode(std::string_view bytes) {
  std::string s = base64_encode(bytes);
  while (!s.empty() && s.back() == '=') s.pop_back();
  for (char& c : s) c = c == '+' ? '-' : c == '/' ? '_' : c;
  return s;
}

// Runs on every authenticated request: the hand-written SM3 (checked against
// OpenSSL in sm3_fast_test) costs two compressions and no allocation, where
// OpenSSL's EVP_MAC allocates a context per call.
Result<std::string> hmac_sm3(std::string_view key, std::string_view message) {
  sm3::HmacKey k;
  if (sm3::hmac_key(reinterpret_cast<const uint8_t*>(key.data()), key.size(), k)) {
    std::string out(kSm3Size, '\0');
    sm3::hmac(k, reinterpret_cast<const uint8_t*>(message.data()), message.size(),
              reinterpret_cast<uint8_t*>(out.data()));
    cleanse(&k, sizeof(k));
    return out;
  }
  HmacSm3 mac(key);
  HEARTH_RETURN_IF_ERROR(mac.update(message.data(), message.size()));
  return mac.final();
}

// ---- JSON reading: each error names the source and the field path. ----

struct Reader {
  const std::string& source;
  template <typename... Args>
  Status error(const std::string& where, const Args&... args) const {
    return invalid_argument(source, ": ", where, ": ", args...);
  }
  Status check_keys(const json& obj, const std::string& where, std::initializer_list<std::string_view> allowed) const {
    if (!obj.is_object()) return error(where, "expected an object");
    for (const auto& item : obj.items()) {
      if (std::find(allowed.begin(), allowed.end(), item.key()) == allowed.end()) {
        return error(where, "unknown key '", item.key(), "'");
      }
    }
    return ok_status();
  }
  Result<std::string> string(const json& obj, const std::string& where, const char* key, bool required) const {
    auto it = obj.find(key);
    if (it == obj.end()) {
      if (required) return error(where, "missing key '", key, "'");
      return std::string();
    }
    if (!it->is_string()) return error(str_cat(where, ".", key), "expected a string");
    return it->get<std::string>();
  }
  Result<int64_t> integer(const json& obj, const std::string& where, const char* key) const {
    auto it = obj.find(key);
    if (it == obj.end()) return int64_t{0};
    if (!it->is_number_integer() ||
        (it->is_number_unsigned() && it->get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max())) ||
        (!it->is_number_unsigned() && it->get<int64_t>() < 0)) {
      return error(str_cat(where, ".", key), "expected a non-negative integer (unix seconds)");
    }
    return it->get<int64_t>();
  }
  Result<std::vector<std::string>> strings(const json& obj, const std::string& where, const char* key,
                                           bool required) const {
    std::vector<std::string> out;
    auto it = obj.find(key);
    if (it == obj.end()) {
      if (required) return error(where, "missing key '", key, "'");
      return out;
    }
    if (!it->is_array()) return error(str_cat(where, ".", key), "expected a list of strings");
    for (const json& v : *it) {
      if (!v.is_string()) return error(str_cat(where, ".", key), "expected a list of strings");
      out.push_back(v.get<std::string>());
    }
    return out;
  }
};

Result<User> read_user(const Reader& r, const json& j, const std::string& where) {
  HEARTH_RETURN_IF_ERROR(r.check_keys(j, where, {"name", "roles", "cert_subjects", "created"}));
  User u;
  HEARTH_ASSIGN_OR_RETURN(u.name, r.string(j, where, "name", true));
  if (Status s = validate_user_name(u.name); !s.ok()) return r.error(where + ".name", s.message());
  HEARTH_ASSIGN_OR_RETURN(u.roles, r.strings(j, where, "roles", true));
  std::set<std::string> seen;
  for (const std::string& role : u.roles) {
    if (Status s = validate_role_name(role); !s.ok()) return r.error(where + ".roles", s.message());
    if (!seen.insert(role).second) return r.error(where + ".roles", "role '", role, "' appears twice");
  }
  HEARTH_ASSIGN_OR_RETURN(u.cert_subjects, r.strings(j, where, "cert_subjects", false));
  for (const std::string& subject : u.cert_subjects) {
    if (Status s = validate_cert_subject(subject); !s.ok()) return r.error(where + ".cert_subjects", s.message());
  }
  HEARTH_ASSIGN_OR_RETURN(u.created_unix, r.integer(j, where, "created"));
  return u;
}

Result<TokenRecord> read_token(const Reader& r, const json& j, const std::string& where) {
  HEARTH_RETURN_IF_ERROR(
      r.check_keys(j, where, {"id", "user", "salt", "hash", "created", "expires", "description"}));
  TokenRecord t;
  HEARTH_ASSIGN_OR_RETURN(t.id, r.string(j, where, "id", true));
  if (t.id.size() != kTokenIdSize || !is_lower_hex(t.id)) {
    return r.error(where + ".id", "expected ", kTokenIdSize, " lowercase hex characters");
  }
  HEARTH_ASSIGN_OR_RETURN(t.user, r.string(j, where, "user", true));
  HEARTH_ASSIGN_OR_RETURN(t.salt, r.string(j, where, "salt", true));
  HEARTH_ASSIGN_OR_RETURN(t.hash, r.string(j, where, "hash", true));
  Result<std::string> salt = base64_decode(t.salt);
  if (!salt.ok() || salt->size() != kTokenSaltBytes) {
    return r.error(where + ".salt", "expected ", kTokenSaltBytes, " bytes of base64");
  }
  Result<std::string> hash = base64_decode(t.hash);
  if (!hash.ok() || hash->size() != kSm3Size) return r.error(where + ".hash", "expected ", kSm3Size, " bytes of base64");
  HEARTH_ASSIGN_OR_RETURN(t.created_unix, r.integer(j, where, "created"));
  HEARTH_ASSIGN_OR_RETURN(t.expires_unix, r.integer(j, where, "expires"));
  HEARTH_ASSIGN_OR_RETURN(t.description, r.string(j, where, "description", false));
  return t;
}

}  // namespace

Result<TokenParts> parse_token(std::string_view text) {
  const Status malformed = unauthenticated("malformed token");
  constexpr size_t kSize = kTokenPrefix.size() + kTokenIdSize + 1 + kTokenSecretSize;
  if (text.size() != kSize || text.substr(0, kTokenPrefix.size()) != kTokenPrefix) return malformed;
  std::string_view id = text.substr(kTokenPrefix.size(), kTokenIdSize);
  if (!is_lower_hex(id) || text[kTokenPrefix.size() + kTokenIdSize] != '_') return malformed;
  std::string_view secret = text.substr(kSize - kTokenSecretSize);
  for (char c : secret) {
    if (base64url_value(c) < 0) return malformed;
  }
  // 43 characters carry 258 bits; the last character's low 2 bits must be zero (canonical form).
  if ((base64url_value(secret.back()) & 3) != 0) return malformed;
  std::string standard(secret);
  for (char& c : standard) c = c == '-' ? '+' : c == '_' ? '/' : c;
  standard += '=';
  Result<std::string> bytes = base64_decode(standard);
  cleanse(standard);
  if (!bytes.ok() || bytes->size() != kTokenSecretBytes) return malformed;
  return TokenParts{std::string(id), std::move(bytes).value()};
}

Status validate_user_name(std::string_view name) {
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); };
  bool ok = !name.empty() && name.size() <= 64 && alnum(name[0]);
  for (size_t i = 1; ok && i < name.size(); ++i) {
    char c = name[i];
    ok = alnum(c) || c == '.' || c == '_' || c == '@' || c == '-';
  }
  if (ok) return ok_status();
  return invalid_argument("invalid user name '", name.substr(0, 80),
                          "' (1 to 64 characters of letters, digits, '.', '_', '@', '-', starting with a letter or "
                          "digit)");
}

Status validate_cert_subject(std::string_view subject) {
  if (subject.empty() || subject.size() > kMaxSubjectSize) {
    return invalid_argument("certificate subject must be 1 to ", kMaxSubjectSize, " characters");
  }
  for (unsigned char c : subject) {
    if (c < 0x20 || c == 0x7f) return invalid_argument("certificate subject holds a control character");
  }
  return ok_status();
}

std::string AuthStore::default_path() {
  if (const char* p = std::getenv(kAuthStoreEnv); p && *p) return p;
  const char* home = std::getenv("HOME");
  return str_cat(home && *home ? home : ".", "/.config/hearth/auth.json");
}

Result<AuthStore> AuthStore::open(const std::string& path) {
  HEARTH_ASSIGN_OR_RETURN(std::string text, read_private_file(path, "auth store", kMaxStoreBytes));
  Result<AuthStore> store = parse(text, "auth store " + path);
  if (store.ok()) store->path_ = path;
  return store;
}

Result<AuthStore> AuthStore::open_or_empty(const std::string& path) {
  Result<AuthStore> store = open(path);
  if (store.ok() || store.status().code() != StatusCode::kNotFound) return store;
  AuthStore empty;
  empty.path_ = path;
  return empty;
}

Result<AuthStore> AuthStore::parse(std::string_view json_text, const std::string& source) {
  AuthStore store;
  store.path_ = source;
  Reader r{source};
  try {
    json root = json::parse(json_text);
    HEARTH_RETURN_IF_ERROR(r.check_keys(root, "top level", {"version", "users", "tokens"}));
    auto version = root.find("version");
    if (version == root.end() || !version->is_number_integer() || version->get<int64_t>() != kStoreVersion) {
      return r.error("version", "expected version ", kStoreVersion);
    }
    for (const char* key : {"users", "tokens"}) {
      if (!root.contains(key) || !root[key].is_array()) return r.error(key, "expected a list");
    }
    std::set<std::string> subjects;
    for (size_t i = 0; i < root["users"].size(); ++i) {
      std::string where = str_cat("users[", i, "]");
      HEARTH_ASSIGN_OR_RETURN(User u, read_user(r, root["users"][i], where));
      if (store.find_user(u.name)) return r.error(where, "user '", u.name, "' appears twice");
      for (const std::string& s : u.cert_subjects) {
        if (!subjects.insert(s).second) return r.error(where, "certificate subject '", s, "' is mapped twice");
      }
      store.users_.push_back(std::move(u));
      store.user_index_[store.users_.back().name] = store.users_.size() - 1;
    }
    std::set<std::string> ids;
    for (size_t i = 0; i < root["tokens"].size(); ++i) {
      std::string where = str_cat("tokens[", i, "]");
      HEARTH_ASSIGN_OR_RETURN(TokenRecord t, read_token(r, root["tokens"][i], where));
      if (!store.find_user(t.user)) return r.error(where, "token ", t.id, " belongs to unknown user '", t.user, "'");
      if (!ids.insert(t.id).second) return r.error(where, "token id ", t.id, " appears twice");
      store.tokens_.push_back(std::move(t));
    }
  } catch (const std::exception& e) {
    return invalid_argument(source, ": invalid JSON: ", e.what());
  }
  store.reindex();
  return store;
}

void AuthStore::reindex() {
  user_index_.clear();
  token_index_.clear();
  token_keys_.clear();
  for (size_t i = 0; i < users_.size(); ++i) user_index_[users_[i].name] = i;
  for (size_t i = 0; i < tokens_.size(); ++i) {
    token_index_[tokens_[i].id] = i;
    Result<std::string> salt = base64_decode(tokens_[i].salt);
    Result<std::string> hash = base64_decode(tokens_[i].hash);
    token_keys_.emplace_back(salt.ok() ? *salt : std::string(), hash.ok() ? *hash : std::string());
  }
}

const User* AuthStore::find_user(std::string_view name) const {
  auto it = user_index_.find(std::string(name));
  return it == user_index_.end() ? nullptr : &users_[it->second];
}

User* AuthStore::mutable_user(std::string_view name) { return const_cast<User*>(find_user(name)); }

const User* AuthStore::find_user_by_subject(std::string_view cert_subject) const {
  if (cert_subject.empty()) return nullptr;
  for (const User& u : users_) {
    for (const std::string& s : u.cert_subjects) {
      if (s == cert_subject) return &u;
    }
  }
  return nullptr;
}

Status AuthStore::add_user(const std::string& name, std::vector<std::string> roles) {
  HEARTH_RETURN_IF_ERROR(validate_user_name(name));
  if (find_user(name)) return Status(StatusCode::kAlreadyExists, str_cat("user '", name, "' already exists"));
  std::vector<std::string> unique;
  for (std::string& role : roles) {
    HEARTH_RETURN_IF_ERROR(validate_role_name(role));
    if (std::find(unique.begin(), unique.end(), role) == unique.end()) unique.push_back(std::move(role));
  }
  User u;
  u.name = name;
  u.roles = std::move(unique);
  u.created_unix = static_cast<int64_t>(std::time(nullptr));
  users_.push_back(std::move(u));
  reindex();
  return ok_status();
}

Status AuthStore::remove_user(const std::string& name) {
  if (!find_user(name)) return not_found("no user '", name, "' in ", path_);
  std::erase_if(users_, [&](const User& u) { return u.name == name; });
  std::erase_if(tokens_, [&](const TokenRecord& t) { return t.user == name; });
  reindex();
  return ok_status();
}

Status AuthStore::grant(const std::string& user, const std::string& role) {
  HEARTH_RETURN_IF_ERROR(validate_role_name(role));
  User* u = mutable_user(user);
  if (!u) return not_found("no user '", user, "' in ", path_);
  if (std::find(u->roles.begin(), u->roles.end(), role) != u->roles.end()) {
    return Status(StatusCode::kAlreadyExists, str_cat("user '", user, "' already has role '", role, "'"));
  }
  u->roles.push_back(role);
  return ok_status();
}

Status AuthStore::revoke(const std::string& user, const std::string& role) {
  User* u = mutable_user(user);
  if (!u) return not_found("no user '", user, "' in ", path_);
  auto it = std::find(u->roles.begin(), u->roles.end(), role);
  if (it == u->roles.end()) return not_found("user '", user, "' does not have role '", role, "'");
  u->roles.erase(it);
  return ok_status();
}

Status AuthStore::add_subject(const std::string& user, const std::string& cert_subject) {
  HEARTH_RETURN_IF_ERROR(validate_cert_subject(cert_subject));
  User* u = mutable_user(user);
  if (!u) return not_found("no user '", user, "' in ", path_);
  if (const User* other = find_user_by_subject(cert_subject)) {
    return Status(StatusCode::kAlreadyExists,
                  str_cat("certificate subject '", cert_subject, "' is already mapped to user '", other->name, "'"));
  }
  u->cert_subjects.push_back(cert_subject);
  return ok_status();
}

Result<IssuedToken> AuthStore::issue_token(const std::string& user, int64_t ttl_seconds, std::string description,
                                           int64_t now_unix) {
  if (!find_user(user)) return not_found("no user '", user, "' in ", path_);
  if (ttl_seconds < 0) return invalid_argument("token lifetime must not be negative");
  if (description.size() > kMaxDescriptionSize) {
    return invalid_argument("token description is longer than ", kMaxDescriptionSize, " characters");
  }
  for (unsigned char c : description) {
    if (c < 0x20 || c == 0x7f) return invalid_argument("token description holds a control character");
  }
  IssuedToken out;
  TokenRecord& t = out.record;
  do {
    HEARTH_ASSIGN_OR_RETURN(std::string id_bytes, random_bytes(kTokenIdSize / 2));
    t.id = to_hex(id_bytes);
  } while (token_index_.count(t.id));
  HEARTH_ASSIGN_OR_RETURN(std::string secret, random_bytes(kTokenSecretBytes));
  HEARTH_ASSIGN_OR_RETURN(std::string salt, random_bytes(kTokenSaltBytes));
  Result<std::string> hash = hmac_sm3(salt, secret);
  if (!hash.ok()) {
    cleanse(secret);
    return hash.status();
  }
  out.token = str_cat(kTokenPrefix, t.id, "_", base64url_encode(secret));
  cleanse(secret);
  t.user = user;
  t.salt = base64_encode(salt);
  t.hash = base64_encode(*hash);
  t.created_unix = now_unix;
  t.expires_unix = ttl_seconds == 0 ? 0 : now_unix + ttl_seconds;
  t.description = std::move(description);
  tokens_.push_back(t);
  reindex();
  return out;
}

Status AuthStore::revoke_token(const std::string& id) {
  if (!token_index_.count(id)) return not_found("no token with id '", id, "' in ", path_);
  std::erase_if(tokens_, [&](const TokenRecord& t) { return t.id == id; });
  reindex();
  return ok_status();
}

Result<const User*> AuthStore::verify_token(std::string_view token, int64_t now_unix) const {
  Result<TokenParts> parts = parse_token(token);
  if (!parts.ok()) return unauthenticated("invalid token: malformed (expected hth_<id>_<secret>)");
  // An unknown id still costs one HMAC, so timing does not tell which ids exist.
  static const std::string kDummySalt(kTokenSaltBytes, '\0');
  static const std::string kDummyHash(kSm3Size, '\0');
  auto it = token_index_.find(parts->id);
  bool known = it != token_index_.end();
  const std::string& salt = known ? token_keys_[it->second].first : kDummySalt;
  const std::string& expected = known ? token_keys_[it->second].second : kDummyHash;
  Result<std::string> hash = hmac_sm3(salt, parts->secret);
  cleanse(parts->secret);
  if (!hash.ok()) return hash.status();
  bool match = equal_constant_time(*hash, expected);
  if (!known || !match) return unauthenticated("invalid token");
  const TokenRecord& record = tokens_[it->second];
  if (record.expires_unix != 0 && now_unix >= record.expires_unix) return unauthenticated("token expired");
  const User* user = find_user(record.user);
  if (!user) return unauthenticated("invalid token");
  return user;
}

std::string AuthStore::to_json() const {
  json users = json::array();
  for (const User& u : users_) {
    json ju = {{"name", u.name}, {"roles", u.roles}, {"created", u.created_unix}};
    if (!u.cert_subjects.empty()) ju["cert_subjects"] = u.cert_subjects;
    users.push_back(std::move(ju));
  }
  json tokens = json::array();
  for (const TokenRecord& t : tokens_) {
    tokens.push_back({{"id", t.id},
                      {"user", t.user},
                      {"salt", t.salt},
                      {"hash", t.hash},
                      {"created", t.created_unix},
                      {"expires", t.expires_unix},
                      {"description", t.description}});
  }
  json root = {{"version", kStoreVersion}, {"users", std::move(users)}, {"tokens", std::move(tokens)}};
  return root.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

Status AuthStore::save() const {
  if (path_.empty()) return failed_precondition("auth store has no file to save to");
  return save_private_file(path_, to_json(), "auth store");
}

}  // namespace hearth::security
