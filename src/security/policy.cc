// Built-in roles, the YAML policy parser and the access check (see policy.h).
#include "security/policy.h"

#include <sys/stat.h>
#include <unistd.h>

#include <yaml-cpp/yaml.h>

#include <array>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <system_error>

namespace hearth::security {

namespace {

constexpr std::array<std::string_view, kResourceCount> kResourceNames = {
    "models", "inference", "repository", "keys", "users", "audit", "system_config", "training"};
constexpr std::array<std::string_view, kActionCount> kActionNames = {"create", "read",   "update", "delete",
                                                                     "infer",  "deploy", "export"};
constexpr size_t kMaxPolicyBytes = 4 << 20;
constexpr size_t kMaxGlobSize = 256;
constexpr size_t kMaxDescriptionSize = 1024;

template <size_t N>
std::string join_names(const std::array<std::string_view, N>& names) {
  std::string out;
  for (std::string_view n : names) out += str_cat(out.empty() ? "" : ", ", n);
  return out;
}

uint32_t bits(std::initializer_list<Action> actions) {
  uint32_t b = 0;
  for (Action a : actions) b |= action_bit(a);
  return b;
}

Rule builtin_rule(Resource r, uint32_t actions) {
  Rule rule;
  rule.resource = r;
  rule.actions = actions;
  return rule;
}

// ---- YAML helpers: every error names the 1-based line of the node. ----

class PolicyParser {
 public:
  explicit PolicyParser(const std::string& source) : source_(source) {}

  Result<std::vector<Role>> parse_document(const YAML::Node& root);

 private:
  int line_of(const YAML::Node& n, int fallback) const {
    YAML::Mark m = n.Mark();
    return m.is_null() ? fallback : m.line + 1;
  }
  template <typename... Args>
  Status error(int line, const Args&... args) const {
    return invalid_argument(source_, ":", line, ": ", args...);
  }
  Status expect_type(const YAML::Node& n, YAML::NodeType::value type, const std::string& what, int line) const;
  Result<std::string> scalar(const YAML::Node& n, const std::string& what, int line) const;
  Result<Role> parse_role(const std::string& name, const YAML::Node& body, int line);
  Result<Rule> parse_rule(const YAML::Node& n, const std::string& where, int line);
  Result<uint32_t> parse_actions(const YAML::Node& n, const std::string& where, int line);
  Result<std::vector<std::string>> parse_models(const YAML::Node& n, const std::string& where, int line);

  std::string source_;
};

const char* type_name(YAML::NodeType::value t) {
  switch (t) {
    case YAML::NodeType::Null: return "nothing";
    case YAML::NodeType::Scalar: return "a scalar";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a map";
    default: return "an undefined node";
  }
}

Status PolicyParser::expect_type(const YAML::Node& n, YAML::NodeType::value type, const std::string& what,
                                 int line) const {
  if (n.Type() == type) return ok_status();
  return error(line_of(n, line), what, " must be ", type_name(type), ", got ", type_name(n.Type()));
}

Result<std::string> PolicyParser::scalar(const YAML::Node& n, const std::string& what, int line) const {
  HEARTH_RETURN_IF_ERROR(expect_type(n, YAML::NodeType::Scalar, what, line));
  return n.Scalar();
}

Result<std::vector<Role>> PolicyParser::parse_document(const YAML::Node& root) {
  if (root.Type() != YAML::NodeType::Map) {
    return error(line_of(root, 1), "a policy must be a map with a 'roles' key, got ", type_name(root.Type()));
  }
  YAML::Node roles;
  bool have_roles = false;
  for (auto it = root.begin(); it != root.end(); ++it) {
    int line = line_of(it->first, 1);
    HEARTH_ASSIGN_OR_RETURN(std::string key, scalar(it->first, "a top-level key", line));
    if (key != "roles") return error(line, "unknown key '", key, "' (a policy has only 'roles')");
    if (have_roles) return error(line, "duplicate key 'roles'");
    have_roles = true;
    roles = it->second;
    HEARTH_RETURN_IF_ERROR(expect_type(roles, YAML::NodeType::Map, "'roles'", line));
  }
  if (!have_roles) return error(line_of(root, 1), "missing key 'roles'");
  std::vector<Role> out;
  std::set<std::string> seen;
  for (auto it = roles.begin(); it != roles.end(); ++it) {
    int line = line_of(it->first, 1);
    HEARTH_ASSIGN_OR_RETURN(std::string name, scalar(it->first, "a role name", line));
    if (Status s = validate_role_name(name); !s.ok()) return error(line, s.message());
    if (name == "admin" || name == "operator" || name == "viewer") {
      return error(line, "role '", name, "' is built in and cannot be redefined");
    }
    if (!seen.insert(name).second) return error(line, "role '", name, "' is defined twice");
    HEARTH_ASSIGN_OR_RETURN(Role role, parse_role(name, it->second, line));
    out.push_back(std::move(role));
  }
  return out;
}

Result<Role> PolicyParser::parse_role(const std::string& name, const YAML::Node& body, int line) {
  std::string where = str_cat("role '", name, "'");
  HEARTH_RETURN_IF_ERROR(expect_type(body, YAML::NodeType::Map, where, line));
  Role role;
  role.name = name;
  bool have_rules = false, have_description = false;
  for (auto it = body.begin(); it != body.end(); ++it) {
    int kline = line_of(it->first, line);
    HEARTH_ASSIGN_OR_RETURN(std::string key, scalar(it->first, where + ": a key", kline));
    if (key == "description") {
      if (have_description) return error(kline, where, ": duplicate key 'description'");
      have_description = true;
      HEARTH_ASSIGN_OR_RETURN(role.description, scalar(it->second, where + ": 'description'", kline));
      if (role.description.size() > kMaxDescriptionSize) {
        return error(kline, where, ": description is longer than ", kMaxDescriptionSize, " characters");
      }
    } else if (key == "rules") {
      if (have_rules) return error(kline, where, ": duplicate key 'rules'");
      have_rules = true;
      const YAML::Node rules = it->second;
      HEARTH_RETURN_IF_ERROR(expect_type(rules, YAML::NodeType::Sequence, where + ": 'rules'", kline));
      int index = 0;
      for (const YAML::Node& r : rules) {
        HEARTH_ASSIGN_OR_RETURN(Rule rule, parse_rule(r, str_cat(where, " rule ", ++index), kline));
        role.rules.push_back(std::move(rule));
      }
    } else {
      return error(kline, where, ": unknown key '", key, "' (expected description, rules)");
    }
  }
  if (!have_rules) return error(line, where, ": missing key 'rules'");
  return role;
}

Result<Rule> PolicyParser::parse_rule(const YAML::Node& n, const std::string& where, int line) {
  line = line_of(n, line);
  HEARTH_RETURN_IF_ERROR(expect_type(n, YAML::NodeType::Map, where, line));
  Rule rule;
  rule.line = line;
  bool have_resource = false, have_actions = false, have_models = false;
  for (auto it = n.begin(); it != n.end(); ++it) {
    int kline = line_of(it->first, line);
    HEARTH_ASSIGN_OR_RETURN(std::string key, scalar(it->first, where + ": a key", kline));
    bool* seen = key == "resource" ? &have_resource : key == "actions" ? &have_actions
                                                     : key == "models"  ? &have_models
                                                                        : nullptr;
    if (!seen) return error(kline, where, ": unknown key '", key, "' (expected resource, actions, models)");
    if (*seen) return error(kline, where, ": duplicate key '", key, "'");
    *seen = true;
    if (key == "resource") {
      HEARTH_ASSIGN_OR_RETURN(std::string name, scalar(it->second, where + ": 'resource'", kline));
      Result<Resource> r = parse_resource(name);
      if (!r.ok()) return error(line_of(it->second, kline), where, ": ", r.status().message());
      rule.resource = *r;
    } else if (key == "actions") {
      HEARTH_ASSIGN_OR_RETURN(rule.actions, parse_actions(it->second, where, kline));
    } else {
      HEARTH_ASSIGN_OR_RETURN(rule.models, parse_models(it->second, where, kline));
    }
  }
  if (!have_resource) return error(line, where, ": missing key 'resource'");
  if (!have_actions) return error(line, where, ": missing key 'actions'");
  return rule;
}

Result<uint32_t> PolicyParser::parse_actions(const YAML::Node& n, const std::string& where, int line) {
  HEARTH_RETURN_IF_ERROR(expect_type(n, YAML::NodeType::Sequence, where + ": 'actions'", line));
  uint32_t actions = 0;
  for (const YAML::Node& a : n) {
    int aline = line_of(a, line);
    HEARTH_ASSIGN_OR_RETURN(std::string name, scalar(a, where + ": an action", aline));
    if (name == "*") {
      actions |= kAllActions;
      continue;
    }
    Result<Action> action = parse_action(name);
    if (!action.ok()) return error(aline, where, ": ", action.status().message());
    actions |= action_bit(*action);
  }
  if (actions == 0) return error(line_of(n, line), where, ": 'actions' is empty");
  return actions;
}

Result<std::vector<std::string>> PolicyParser::parse_models(const YAML::Node& n, const std::string& where, int line) {
  HEARTH_RETURN_IF_ERROR(expect_type(n, YAML::NodeType::Sequence, where + ": 'models'", line));
  std::vector<std::string> models;
  for (const YAML::Node& m : n) {
    int mline = line_of(m, line);
    HEARTH_ASSIGN_OR_RETURN(std::string glob, scalar(m, where + ": a model pattern", mline));
    if (glob.empty() || glob.size() > kMaxGlobSize) {
      return error(mline, where, ": a model pattern must be 1 to ", kMaxGlobSize, " characters");
    }
    for (unsigned char c : glob) {
      if (c < 0x20 || c == 0x7f) return error(mline, where, ": model pattern holds a control character");
    }
    models.push_back(std::move(glob));
  }
  if (models.empty()) {
    return error(line_of(n, line), where, ": 'models' is empty (leave it out to cover every model)");
  }
  return models;
}

bool rule_covers(const Rule& rule, Resource resource, Action action, std::string_view model) {
  if (rule.resource != resource || (rule.actions & action_bit(action)) == 0) return false;
  if (rule.models.empty()) return true;
  if (model.empty()) return false;
  for (const std::string& g : rule.models) {
    if (glob_match(g, model)) return true;
  }
  return false;
}

}  // namespace

std::string_view resource_name(Resource r) {
  size_t i = static_cast<size_t>(r);
  return i < kResourceNames.size() ? kResourceNames[i] : "unknown";
}

std::string_view action_name(Action a) {
  size_t i = static_cast<size_t>(a);
  return i < kActionNames.size() ? kActionNames[i] : "unknown";
}

Result<Resource> parse_resource(std::string_view name) {
  for (size_t i = 0; i < kResourceNames.size(); ++i) {
    if (kResourceNames[i] == name) return static_cast<Resource>(i);
  }
  return invalid_argument("unknown resource '", name, "' (expected one of ", join_names(kResourceNames), ")");
}

Result<Action> parse_action(std::string_view name) {
  for (size_t i = 0; i < kActionNames.size(); ++i) {
    if (kActionNames[i] == name) return static_cast<Action>(i);
  }
  return invalid_argument("unknown action '", name, "' (expected one of ", join_names(kActionNames), " or '*')");
}

bool glob_match(std::string_view pattern, std::string_view text) {
  size_t p = 0, t = 0;
  size_t star = std::string_view::npos, star_text = 0;
  while (t < text.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || (pattern[p] != '*' && pattern[p] == text[t]))) {
      ++p;
      ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;  // try matching the empty run first; remember where to widen it
      star_text = t;
    } else if (star != std::string_view::npos) {
      p = star + 1;  // let the last '*' swallow one more character
      t = ++star_text;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

Status validate_role_name(std::string_view name) {
  auto lower_or_digit = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  bool ok = !name.empty() && name.size() <= 64 && lower_or_digit(name[0]);
  for (size_t i = 1; ok && i < name.size(); ++i) {
    char c = name[i];
    ok = lower_or_digit(c) || c == '.' || c == '_' || c == '-';
  }
  if (ok) return ok_status();
  return invalid_argument("invalid role name '", name.substr(0, 80),
                          "' (1 to 64 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit)");
}

Policy Policy::builtin() {
  using A = Action;
  using R = Resource;
  Policy p;
  Role admin{"admin", "Every action on every resource", {}, true};
  for (int r = 0; r < kResourceCount; ++r) admin.rules.push_back(builtin_rule(static_cast<R>(r), kAllActions));

  Role op{"operator", "Runs and manages models; no keys, users or audit", {}, true};
  op.rules.push_back(
      builtin_rule(R::kModels, bits({A::kCreate, A::kRead, A::kUpdate, A::kDelete, A::kDeploy, A::kExport})));
  op.rules.push_back(builtin_rule(R::kInference, bits({A::kRead, A::kInfer})));
  op.rules.push_back(builtin_rule(R::kRepository, bits({A::kRead, A::kUpdate})));
  op.rules.push_back(builtin_rule(R::kSystemConfig, bits({A::kRead})));
  op.rules.push_back(builtin_rule(R::kTraining, bits({A::kCreate, A::kRead, A::kUpdate, A::kDelete})));

  Role viewer{"viewer", "Reads models, repository, configuration and training; no inference", {}, true};
  for (R r : {R::kModels, R::kInference, R::kRepository, R::kSystemConfig, R::kTraining}) {
    viewer.rules.push_back(builtin_rule(r, bits({A::kRead})));
  }
  p.roles_ = {std::move(admin), std::move(op), std::move(viewer)};
  return p;
}

Result<Policy> Policy::parse(std::string_view yaml_text, const std::string& source) {
  if (yaml_text.size() > kMaxPolicyBytes) {
    return invalid_argument(source, ":1: policy is ", yaml_text.size(), " bytes, more than ", kMaxPolicyBytes);
  }
  Policy policy = builtin();
  try {
    YAML::Node root = YAML::Load(std::string(yaml_text));
    PolicyParser parser(source);
    HEARTH_ASSIGN_OR_RETURN(std::vector<Role> custom, parser.parse_document(root));
    for (Role& r : custom) policy.roles_.push_back(std::move(r));
  } catch (const YAML::Exception& e) {
    int line = e.mark.is_null() ? 1 : e.mark.line + 1;
    return invalid_argument(source, ":", line, ": invalid YAML: ", e.msg);
  } catch (const std::exception& e) {
    return invalid_argument(source, ": cannot parse policy: ", e.what());
  }
  return policy;
}

Result<Policy> Policy::load_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return not_found("policy file ", path, " does not exist");
  if (!std::filesystem::is_regular_file(path, ec)) return invalid_argument("policy file ", path, " is not a regular file");
  // The policy is not secret, but whoever can change it grants roles: refuse a
  // file others may write or another user (other than root) owns.
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
      char mode[8];
      std::snprintf(mode, sizeof(mode), "%03o", static_cast<unsigned>(st.st_mode & 0777));
      return Status(StatusCode::kPermissionDenied, str_cat("policy file ", path, " is writable by group or others (mode ",
                                                           mode, "); refusing it (run: chmod go-w ", path, ")"));
    }
    if (st.st_uid != ::geteuid() && st.st_uid != 0)
      return Status(StatusCode::kPermissionDenied,
                    str_cat("policy file ", path, " is owned by another user (uid ", st.st_uid, "); refusing it"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return invalid_argument("cannot read policy file ", path);
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return invalid_argument("cannot read policy file ", path);
  return parse(text.str(), path);
}

const Role* Policy::find_role(std::string_view name) const {
  for (const Role& r : roles_) {
    if (r.name == name) return &r;
  }
  return nullptr;
}

bool Policy::allows(const std::vector<std::string>& roles, Resource resource, Action action,
                    std::string_view model) const {
  for (const std::string& name : roles) {
    const Role* role = find_role(name);
    if (!role) continue;
    for (const Rule& rule : role->rules) {
      if (rule_covers(rule, resource, action, model)) return true;
    }
  }
  return false;
}

}  // namespace hearth::security
