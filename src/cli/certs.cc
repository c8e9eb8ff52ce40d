// `hearth certs self-signed -o DIR [--host H]... [--days N] [--client NAME]...`:
// a private CA, a server certificate and optional client certificates for
// `hearth serve --tls-cert/--tls-key [--tls-client-ca]` (see
// docs/security/tls.md). Prints the files written (never key contents) and
// each client certificate's subject in RFC 2253 form, the text
// `hearth users add --cert-subject` takes.
#include <iostream>
#include <memory>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "security/certs.h"

namespace hearth::cli {

namespace {

struct CertsOptions {
  security::SelfSignedOptions self_signed;
  bool json = false;
};

// What each written file is, for the summary.
std::string describe(size_t index, const security::SelfSignedOptions& o) {
  static const char* kFixed[] = {"CA certificate; clients trust it, and --tls-client-ca takes it for mutual TLS",
                                 "CA private key, mode 0600; keep it offline", "server certificate, for --tls-cert",
                                 "server private key, mode 0600, for --tls-key"};
  if (index < 4) return kFixed[index];
  const std::string& name = o.clients[(index - 4) / 2];
  return index % 2 == 0 ? "client certificate for " + name : "client private key for " + name + ", mode 0600";
}

Status self_signed(const CertsOptions& o) {
  const security::SelfSignedOptions& so = o.self_signed;
  HEARTH_RETURN_IF_ERROR(security::create_self_signed(so));
  std::vector<std::string> paths = security::self_signed_paths(so);
  nlohmann::json clients = nlohmann::json::array();
  for (const auto& name : so.clients) {
    std::string cert = security::client_cert_path(so.out_dir, name);
    HEARTH_ASSIGN_OR_RETURN(std::string subject, security::certificate_subject(cert));
    clients.push_back({{"name", name}, {"cert", cert}, {"subject", subject}});
  }
  if (o.json) {
    std::vector<std::string> hosts = so.hosts.empty() ? security::default_self_signed_hosts() : so.hosts;
    nlohmann::json j = {{"files", paths}, {"hosts", hosts}, {"days", so.days}, {"clients", clients}};
    std::cout << j.dump(2) << "\n";
    return ok_status();
  }
  for (size_t i = 0; i < paths.size(); ++i) std::cout << "wrote " << paths[i] << ": " << describe(i, so) << "\n";
  for (const auto& c : clients)
    std::cout << "client " << c["name"].get<std::string>() << " subject: " << c["subject"].get<std::string>()
              << "  (hearth users add --cert-subject '" << c["subject"].get<std::string>() << "')\n";
  return ok_status();
}

}  // namespace

void add_certs_command(CLI::App& app) {
  auto o = std::make_shared<CertsOptions>();
  CLI::App* certs = app.add_subcommand("certs", "Create TLS certificates for hearth serve");
  certs->require_subcommand(1);

  CLI::App* ss = certs->add_subcommand(
      "self-signed", "Create a private CA, a server certificate and optional client certificates (EC P-256)");
  ss->add_option("-o,--out", o->self_signed.out_dir,
                 "folder to write into (created; existing files are never replaced)")
      ->required();
  ss->add_option("--host", o->self_signed.hosts,
                 "DNS name or IP address the server is reached by (repeatable; default localhost, 127.0.0.1, ::1)");
  ss->add_option("--days", o->self_signed.days, "validity in days")->capture_default_str();
  ss->add_option("--client", o->self_signed.clients,
                 "also create client-NAME.pem/.key with subject CN=NAME for mutual TLS (repeatable)");
  ss->add_flag("--json", o->json, "print JSON");
  ss->callback([o] {
    Status s = self_signed(*o);
    if (!s.ok()) report_error(s);
  });
}

}  // namespace hearth::cli
