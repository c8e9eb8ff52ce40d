// `hearth keys create|list|rotate|export-public`: the local key store that
// model packages are sealed with (see docs/SECURITY.md). Secrets are never
// printed; `create --key-file` writes a standalone key file for deployments
// that keep keys outside the store.
#include <ctime>
#include <iostream>
#include <memory>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "security/keystore.h"

namespace hearth::cli {

namespace {

struct KeysOptions {
  std::string key_store;
  std::string key_file;  // create: write a standalone key file instead
  std::string id;
  bool json = false;
};

std::string store_path(const KeysOptions& o) {
  return o.key_store.empty() ? security::KeyStore::default_path() : o.key_store;
}

std::string iso_time(int64_t unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm {};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

Status keys_create(const KeysOptions& o) {
  if (!o.key_file.empty()) {
    HEARTH_ASSIGN_OR_RETURN(security::Key key, security::generate_key(o.id));
    HEARTH_RETURN_IF_ERROR(security::write_key_file(o.key_file, key));
    std::cout << "created key " << key.id << " in key file " << o.key_file << "\n";
    return ok_status();
  }
  HEARTH_ASSIGN_OR_RETURN(security::KeyStore store, security::KeyStore::open_or_empty(store_path(o)));
  HEARTH_ASSIGN_OR_RETURN(security::Key key, store.create(o.id));
  std::cout << "created key " << key.id << " in " << store.path() << "\n";
  return ok_status();
}

Status keys_list(const KeysOptions& o) {
  Result<security::KeyStore> opened = security::KeyStore::open(store_path(o));
  if (!opened.ok() && opened.status().code() == StatusCode::kNotFound) {
    return not_found(opened.status().message(), " (create a key with: hearth keys create)");
  }
  HEARTH_ASSIGN_OR_RETURN(security::KeyStore store, std::move(opened));
  if (o.json) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& k : store.keys()) j.push_back({{"id", k.id}, {"created", iso_time(k.created_unix)}});
    std::cout << j.dump(2) << "\n";
    return ok_status();
  }
  if (store.keys().empty()) std::cout << "no keys in " << store.path() << "\n";
  for (const auto& k : store.keys()) std::cout << k.id << "\t" << iso_time(k.created_unix) << "\n";
  return ok_status();
}

Status keys_rotate(const KeysOptions& o) {
  HEARTH_ASSIGN_OR_RETURN(security::KeyStore store, security::KeyStore::open(store_path(o)));
  HEARTH_ASSIGN_OR_RETURN(security::Key key, store.rotate(o.id));
  std::cout << "rotated key " << o.id << " to " << key.id << " in " << store.path() << " (" << o.id
            << " is kept so existing packages still open; re-encrypt them with --key " << key.id << ")\n";
  return ok_status();
}

void add_store_option(CLI::App* cmd, KeysOptions& o) {
  cmd->add_option("--key-store", o.key_store, "key store file (default $HEARTH_KEY_STORE or ~/.config/hearth/keys)");
}

template <typename Fn>
void run_keys(const std::shared_ptr<KeysOptions>& o, Fn fn) {
  Status s = fn(*o);
  if (!s.ok()) report_error(s);
}

}  // namespace

void add_keys_command(CLI::App& app) {
  auto o = std::make_shared<KeysOptions>();
  CLI::App* keys = app.add_subcommand("keys", "Manage the keys model packages are encrypted with");
  keys->require_subcommand(1);

  CLI::App* create = keys->add_subcommand("create", "Create a key with a random 32-byte secret");
  create->add_option("--id", o->id, "key id (random when omitted)");
  add_store_option(create, *o);
  create->add_option("--key-file", o->key_file, "write the key to this new standalone key file instead of the store");
  create->callback([o] { run_keys(o, keys_create); });

  CLI::App* list = keys->add_subcommand("list", "List key ids and creation dates (never secrets)");
  add_store_option(list, *o);
  list->add_flag("--json", o->json, "print JSON");
  list->callback([o] { run_keys(o, keys_list); });

  CLI::App* rotate = keys->add_subcommand("rotate", "Add a new key ID-2 (ID-3, ...) next to ID; ID is kept");
  rotate->add_option("--id", o->id, "key to rotate")->required();
  add_store_option(rotate, *o);
  rotate->callback([o] { run_keys(o, keys_rotate); });

  CLI::App* pub = keys->add_subcommand("export-public", "Export the public half of an SM2 signing key");
  pub->add_option("--id", o->id, "signing key");
  add_store_option(pub, *o);
  pub->callback([] { report_error(unimplemented("export-public: signing keys are not supported yet")); });
}

}  // namespace hearth::cli
