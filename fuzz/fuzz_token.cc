// libFuzzer target: API tokens and the users-and-tokens file. The whole input
// goes to parse_token (every failure must be the one constant "malformed
// token"); then it is split at the first '\n': the first part is parsed as an
// auth store (JSON) and the rest is verified as a token against it. A store
// that parses must serialize and parse back to the same users and tokens.
// Any crash, leak, undefined behaviour, escaped exception or abort is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "security/auth_store.h"

using hearth::security::AuthStore;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parts = hearth::security::parse_token(text);
  if (!parts.ok() && (parts.status().code() != hearth::StatusCode::kUnauthenticated ||
                      parts.status().message() != "malformed token")) {
    abort();
  }
  if (parts.ok() && parts->secret.size() != hearth::security::kTokenSecretBytes) abort();

  size_t nl = text.find('\n');
  std::string_view json = text.substr(0, nl);
  std::string_view token = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
  auto store = AuthStore::parse(json, "fuzz.json");
  if (!store.ok()) return 0;
  auto user = store->verify_token(token, 1000);
  if (!user.ok() && user.status().code() != hearth::StatusCode::kUnauthenticated) abort();
  if (user.ok() && (*user == nullptr || !store->find_user((*user)->name))) abort();
  for (const auto& u : store->users()) {
    if (store->find_user(u.name) != &u) abort();
    for (const auto& s : u.cert_subjects) {
      if (store->find_user_by_subject(s) != &u) abort();
    }
  }
  auto again = AuthStore::parse(store->to_json(), "fuzz-again.json");
  if (!again.ok() || again->users().size() != store->users().size() ||
      again->tokens().size() != store->tokens().size()) {
    abort();
  }
  return 0;
}
