// Role-based access control policy: which role may do which action on which
// resource, optionally only for models whose names match a glob.
//
// Three roles are built in (admin, operator, viewer); a YAML policy file adds
// custom roles (see docs/security/access_control.md). A Policy is immutable
// once built, so it may be shared between threads without locking.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace hearth::security {

enum class Resource : uint8_t { kModels, kInference, kRepository, kKeys, kUsers, kAudit, kSystemConfig, kTraining };
enum class Action : uint8_t { kCreate, kRead, kUpdate, kDelete, kInfer, kDeploy, kExport };

inline constexpr int kResourceCount = 8;
inline constexpr int kActionCount = 7;
inline constexpr uint32_t kAllActions = (1u << kActionCount) - 1;

constexpr uint32_t action_bit(Action a) { return 1u << static_cast<uint32_t>(a); }

// "models","inference","repository","keys","users","audit","system_config","training"
std::string_view resource_name(Resource r);
// "create","read","update","delete","infer","deploy","export"
std::string_view action_name(Action a);
// INVALID_ARGUMENT listing the valid names when `name` is none of them.
Result<Resource> parse_resource(std::string_view name);
Result<Action> parse_action(std::string_view name);

// Shell-style match of the whole text: '*' matches any run of characters
// (also empty), '?' exactly one; every other character matches itself.
// Iterative with one backtrack point, so O(len(pattern) * len(text)) at worst.
bool glob_match(std::string_view pattern, std::string_view text);

// Role names: [a-z0-9][a-z0-9._-]{0,63}.
Status validate_role_name(std::string_view name);

struct Rule {
  Resource resource = Resource::kModels;
  uint32_t actions = 0;             // bit (1u << Action)
  std::vector<std::string> models;  // globs; empty = every model and non-model requests
  int line = 0;                     // in the policy file (0 for built-ins)
};

struct Role {
  std::string name;
  std::string description;
  std::vector<Rule> rules;
  bool builtin = false;
};

class Policy {
 public:
  // admin, operator and viewer only.
  static Policy builtin();
  // Built-ins plus the custom roles of a YAML policy. Errors read
  // "<source>:<line>: <what>" (1-based lines). Never throws.
  static Result<Policy> parse(std::string_view yaml_text, const std::string& source);
  // Reads and parses a policy file (NOT_FOUND when missing).
  static Result<Policy> load_file(const std::string& path);

  // nullptr when unknown.
  const Role* find_role(std::string_view name) const;
  const std::vector<Role>& roles() const { return roles_; }
  // True when any of `roles` has a rule for (resource, action) that covers
  // `model`. `model` is "" for requests that are not about one model; a rule
  // with model globs matches only a non-empty model that matches a glob.
  // Unknown role names grant nothing.
  bool allows(const std::vector<std::string>& roles, Resource resource, Action action, std::string_view model) const;

 private:
  std::vector<Role> roles_;
};

}  // namespace hearth::security
