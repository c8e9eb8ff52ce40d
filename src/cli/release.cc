// `hearth release ...`: releases on a running `hearth serve`, over its REST API
// (docs/RELEASES.md). Each command prints the server's JSON answer.
//
//   hearth release start release.yaml          check the file here, then start it
//   hearth release status MODEL [--id N]       phase, weights, live windows, decisions
//   hearth release pause|resume|abort MODEL [--id N]
//   hearth release promote MODEL [--id N] [--version V]
//   hearth release history MODEL [--limit N]   past releases and why they ended
//   hearth release which MODEL [--key K] [--at T]   which version served key K at time T
//   hearth release production MODEL VERSION    set the production version by hand
//   hearth release feedback MODEL --request-id ID --label N
#include <cstdlib>
#include <iostream>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/file_util.h"
#include "rollout/http_client.h"
#include "rollout/release_spec.h"

namespace hearth::cli {

namespace {

struct ReleaseFlags {
  std::string server = "http://127.0.0.1:8000";
  std::string token;  // default $HEARTH_TOKEN
  std::string model, file;
  int64_t id = 0;
  int64_t version = 0;
  int64_t limit = 20;
  std::string key, at, request_id;
  int64_t label = -1;
  int timeout_secs = 60;
};

std::string encode_component(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out += {'%', hex[c >> 4], hex[c & 15]};
    }
  }
  return out;
}

// Calls the server and prints its answer; an HTTP error is a runtime error naming it.
Status call(const ReleaseFlags& f, const std::string& method, const std::string& path, const std::string& body) {
  HEARTH_ASSIGN_OR_RETURN(rollout::HttpTarget target, rollout::parse_http_url(f.server + path));
  std::vector<std::pair<std::string, std::string>> headers = {{"Content-Type", "application/json"}};
  std::string token = f.token;
  if (token.empty())
    if (const char* env = std::getenv("HEARTH_TOKEN")) token = env;
  if (!token.empty()) headers.emplace_back("Authorization", "Bearer " + token);
  HEARTH_ASSIGN_OR_RETURN(rollout::HttpAnswer answer,
                          rollout::http_call(method, target, body, headers, int64_t{f.timeout_secs} * 1000));
  auto doc = nlohmann::json::parse(answer.body, nullptr, false);
  if (answer.status != 200) {
    const std::string why = doc.is_object() && doc.contains("error") && doc["error"].is_string()
                                ? doc["error"].get<std::string>()
                                : answer.body;
    return Status(StatusCode::kUnavailable, str_cat("the server answered ", answer.status, ": ", why));
  }
  std::cout << (doc.is_discarded() ? answer.body : doc.dump(2)) << "\n";
  return ok_status();
}

std::string model_path(const std::string& model) { return "/v2/models/" + encode_component(model); }
std::string release_path(const ReleaseFlags& f) {
  return model_path(f.model) + "/releases/" + (f.id > 0 ? std::to_string(f.id) : std::string("current"));
}

Status start(const ReleaseFlags& f) {
  HEARTH_ASSIGN_OR_RETURN(std::string text, read_file(f.file));
  // Checked here first: a mistake is reported with this file's name and line.
  HEARTH_ASSIGN_OR_RETURN(rollout::ReleaseSpec spec, rollout::parse_release_spec(text, f.file));
  return call(f, "POST", model_path(spec.model) + "/releases", text);
}

void add_common(CLI::App* c, ReleaseFlags& f, bool with_id) {
  c->add_option("--server", f.server, "the server's HTTP address")->capture_default_str();
  c->add_option("--token", f.token, "bearer token (default: $HEARTH_TOKEN)");
  c->add_option("--timeout-secs", f.timeout_secs, "how long to wait for the answer")->capture_default_str();
  if (with_id) c->add_option("--id", f.id, "the release (default: the model's running one)");
}

}  // namespace

void add_release_command(CLI::App& app) {
  auto f = std::make_shared<ReleaseFlags>();
  CLI::App* cmd = app.add_subcommand("release", "Releases on a running server: gate, shadow, canary, rollback");
  cmd->require_subcommand(1);

  CLI::App* c = cmd->add_subcommand("start", "Start the release a release.yaml describes");
  c->add_option("file", f->file, "release.yaml (or .json)")->required();
  add_common(c, *f, false);
  c->callback([f] { run_reporting(f, start); });

  c = cmd->add_subcommand("status", "A release's phase, weights, live measurements and decisions");
  c->add_option("model", f->model)->required();
  add_common(c, *f, true);
  c->callback([f] { run_reporting(f, [](const ReleaseFlags& x) { return call(x, "GET", release_path(x), ""); }); });

  for (const char* action : {"pause", "resume", "abort"}) {
    c = cmd->add_subcommand(action, str_cat(char(std::toupper(action[0])), action + 1, " the model's running release"));
    c->add_option("model", f->model)->required();
    add_common(c, *f, true);
    const std::string a = action;
    c->callback([f, a] { run_reporting(f, [a](const ReleaseFlags& x) { return call(x, "POST", release_path(x) + "/" + a, ""); }); });
  }

  c = cmd->add_subcommand("promote", "Promote a candidate now (with A/B/n, name it with --version)");
  c->add_option("model", f->model)->required();
  c->add_option("--version", f->version, "the candidate to promote");
  add_common(c, *f, true);
  c->callback([f] {
    run_reporting(f, [](const ReleaseFlags& x) {
      const std::string body = x.version > 0 ? nlohmann::json{{"version", x.version}}.dump() : "";
      return call(x, "POST", release_path(x) + "/promote", body);
    });
  });

  c = cmd->add_subcommand("history", "A model's releases and the decisions that ended them");
  c->add_option("model", f->model)->required();
  c->add_option("--limit", f->limit, "how many releases, newest first")->capture_default_str();
  add_common(c, *f, false);
  c->callback([f] {
    run_reporting(f, [](const ReleaseFlags& x) {
      return call(x, "GET", model_path(x.model) + "/releases?limit=" + std::to_string(x.limit), "");
    });
  });

  c = cmd->add_subcommand("which", "Which version served a routing key (a tenant) at a time");
  c->add_option("model", f->model)->required();
  c->add_option("--key", f->key, "the routing key (without: the weights in force)");
  c->add_option("--at", f->at, "RFC 3339 UTC time or microseconds since the epoch (default: now)");
  add_common(c, *f, false);
  c->callback([f] {
    run_reporting(f, [](const ReleaseFlags& x) {
      return call(x, "GET",
                  model_path(x.model) + "/routing?key=" + encode_component(x.key) + "&at=" + encode_component(x.at), "");
    });
  });

  c = cmd->add_subcommand("production", "Set a model's production version by hand (no release running)");
  c->add_option("model", f->model)->required();
  c->add_option("version", f->version)->required();
  add_common(c, *f, false);
  c->callback([f] {
    run_reporting(f, [](const ReleaseFlags& x) {
      return call(x, "POST", model_path(x.model) + "/production", nlohmann::json{{"version", x.version}}.dump());
    });
  });

  c = cmd->add_subcommand("feedback", "Send the true label of an earlier request (by its id)");
  c->add_option("model", f->model)->required();
  c->add_option("--request-id", f->request_id, "the id the request carried")->required();
  c->add_option("--label", f->label, "the true class index")->required();
  add_common(c, *f, false);
  c->callback([f] {
    run_reporting(f, [](const ReleaseFlags& x) {
      return call(x, "POST", model_path(x.model) + "/feedback",
                  nlohmann::json{{"id", x.request_id}, {"label", x.label}}.dump());
    });
  });
}

}  // namespace hearth::cli
