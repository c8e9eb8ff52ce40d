// `hearth keys create|list|rotate|export-public`: the local key store that
// model packages are sealed with (sm4 keys) and models are signed with (sm2
// keys; see docs/SECURITY.md). Secrets are never printed; `create --key-file`
// writes a standalone key file for deployments that keep keys outside the
// store; `export-public` writes the public half of an sm2 key for servers.
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "security/file_lock.h"
#include "security/keystore.h"
#include "security/signing.h"

namespace hearth::cli {

namespace {

struct KeysOptions {
  std::string key_store;
  std::string key_file;  // create: write a standalone key file instead
  std::string id;
  std::string type = "sm4";
  std::string output;  // export-public: PEM file ("-" for stdout)
  bool force = false;
  bool json = false;
  std::string audit_log;
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
  HEARTH_ASSIGN_OR_RETURN(security::KeyType type, security::parse_key_type(o.type));
  const char* kind = security::key_type_name(type);
  if (!o.key_file.empty()) {
    HEARTH_ASSIGN_OR_RETURN(security::Key key, security::generate_key(o.id, type));
    HEARTH_RETURN_IF_ERROR(security::write_key_file(o.key_file, key));
    audit_cli_change(o.audit_log, "key.create", "keys", str_cat(kind, " key '", key.id, "' in key file ", o.key_file));
    std::cout << "created " << kind << " key " << key.id << " in key file " << o.key_file << "\n";
    return ok_status();
  }
  HEARTH_ASSIGN_OR_RETURN(security::StoreLock lock, security::StoreLock::acquire(store_path(o)));
  HEARTH_ASSIGN_OR_RETURN(security::KeyStore store, security::KeyStore::open_or_empty(store_path(o)));
  HEARTH_ASSIGN_OR_RETURN(security::Key key, store.create(o.id, type));
  audit_cli_change(o.audit_log, "key.create", "keys", str_cat(kind, " key '", key.id, "' in ", store.path()));
  std::cout << "created " << kind << " key " << key.id << " in " << store.path() << "\n";
  if (type == security::KeyType::kSm2) {
    std::cout << "export its public half for servers with: hearth keys export-public " << key.id << "\n";
  }
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
    for (const auto& k : store.keys()) {
      j.push_back({{"id", k.id}, {"type", security::key_type_name(k.type)}, {"created", iso_time(k.created_unix)}});
    }
    std::cout << j.dump(2) << "\n";
    return ok_status();
  }
  if (store.keys().empty()) std::cout << "no keys in " << store.path() << "\n";
  for (const auto& k : store.keys()) {
    std::cout << k.id << "\t" << security::key_type_name(k.type) << "\t" << iso_time(k.created_unix) << "\n";
  }
  return ok_status();
}

Status keys_rotate(const KeysOptions& o) {
  HEARTH_ASSIGN_OR_RETURN(security::StoreLock lock, security::StoreLock::acquire(store_path(o)));
  HEARTH_ASSIGN_OR_RETURN(security::KeyStore store, security::KeyStore::open(store_path(o)));
  HEARTH_ASSIGN_OR_RETURN(security::Key key, store.rotate(o.id));
  audit_cli_change(o.audit_log, "key.rotate", "keys", str_cat("key '", o.id, "' to '", key.id, "' in ", store.path()));
  std::cout << "rotated key " << o.id << " to " << key.id << " in " << store.path() << " (" << o.id;
  if (key.type == security::KeyType::kSm2) {
    std::cout << " is kept; re-sign models with --key " << key.id << " and export its public half)\n";
  } else {
    std::cout << " is kept so existing packages still open; re-encrypt them with --key " << key.id << ")\n";
  }
  return ok_status();
}

// Writes a public (not secret) file; refuses to replace one unless forced.
Status write_public_file(const std::string& path, const std::string& text, bool force) {
  std::error_code ec;
  if (!force && std::filesystem::exists(path, ec)) return failed_precondition(path, " exists (use --force to replace it)");
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) return internal_error("cannot write ", path);
  return ok_status();
}

Status keys_export_public(const KeysOptions& o) {
  HEARTH_ASSIGN_OR_RETURN(security::KeyStore store, security::KeyStore::open(store_path(o)));
  HEARTH_ASSIGN_OR_RETURN(security::Key key, store.find(o.id));
  HEARTH_ASSIGN_OR_RETURN(std::string pem, security::sm2_public_key_pem(key));
  if (o.output == "-") {
    std::cout << pem;
    return ok_status();
  }
  std::string path = o.output.empty() ? key.id + ".pub.pem" : o.output;
  HEARTH_RETURN_IF_ERROR(write_public_file(path, pem, o.force));
  audit_cli_change(o.audit_log, "key.export_public", "keys", str_cat("public half of '", key.id, "' to ", path));
  std::cout << "wrote the public key of " << key.id << " to " << path << " (give it to servers: --trusted-signers)\n";
  return ok_status();
}

void add_store_option(CLI::App* cmd, KeysOptions& o) {
  cmd->add_option("--key-store", o.key_store, "key store file (default $HEARTH_KEY_STORE or ~/.config/hearth/keys)");
  add_audit_log_option(cmd, o.audit_log);
}

}  // namespace

void add_keys_command(CLI::App& app) {
  auto o = std::make_shared<KeysOptions>();
  CLI::App* keys = app.add_subcommand("keys", "Manage the keys model packages are encrypted with");
  keys->require_subcommand(1);

  CLI::App* create =
      keys->add_subcommand("create", "Create an SM4 key (random 32-byte secret) or an SM2 signing key pair");
  create->add_option("id,--id", o->id, "key id (random when omitted)");
  create->add_option("--type", o->type, "sm4 (encrypt models, default) or sm2 (sign models)")
      ->check(CLI::IsMember({"sm4", "sm2"}, CLI::ignore_case));
  add_store_option(create, *o);
  create->add_option("--key-file", o->key_file, "write the key to this new standalone key file instead of the store");
  create->callback([o] { run_reporting(o, keys_create); });

  CLI::App* list = keys->add_subcommand("list", "List key ids and creation dates (never secrets)");
  add_store_option(list, *o);
  list->add_flag("--json", o->json, "print JSON");  // id, type, created
  list->callback([o] { run_reporting(o, keys_list); });

  CLI::App* rotate = keys->add_subcommand("rotate", "Add a new key ID-2 (ID-3, ...) next to ID; ID is kept");
  rotate->add_option("id,--id", o->id, "key to rotate")->required();
  add_store_option(rotate, *o);
  rotate->callback([o] { run_reporting(o, keys_rotate); });

  CLI::App* pub = keys->add_subcommand("export-public", "Export the public half of an SM2 signing key");
  pub->add_option("id,--id", o->id, "SM2 signing key")->required();
  add_store_option(pub, *o);
  pub->add_option("-o,--output", o->output, "PEM file to write (default ID.pub.pem; '-' for stdout)");
  pub->add_flag("--force", o->force, "replace an existing file");
  pub->callback([o] { run_reporting(o, keys_export_public); });
}

}  // namespace hearth::cli
