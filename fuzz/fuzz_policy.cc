// libFuzzer target: access-control policy files. Bytes are parsed as a YAML
// policy; a policy that parses must answer allows() for every resource and
// action of its custom roles, and every error must name the source and a
// line ("fuzz.yaml:<n>: ..."). Any crash, leak, undefined behaviour, escaped
// exception or abort is a bug; errors are expected and fine.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "security/policy.h"

using hearth::security::Action;
using hearth::security::Policy;
using hearth::security::Resource;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto policy = Policy::parse(text, "fuzz.yaml");
  if (!policy.ok()) {
    if (policy.status().message().rfind("fuzz.yaml:", 0) != 0) abort();
    return 0;
  }
  std::vector<std::string> names;
  for (const auto& role : policy->roles()) {
    if (hearth::security::validate_role_name(role.name).ok() == false) abort();
    names.push_back(role.name);
  }
  for (int r = 0; r < hearth::security::kResourceCount; ++r) {
    for (int a = 0; a < hearth::security::kActionCount; ++a) {
      auto res = static_cast<Resource>(r);
      auto act = static_cast<Action>(a);
      // admin is always there and allows everything.
      if (!policy->allows({"admin"}, res, act, "")) abort();
      (void)policy->allows(names, res, act, "");
      (void)policy->allows(names, res, act, text.substr(0, 64));
    }
  }
  // The glob matcher on arbitrary pattern/text splits.
  size_t cut = size ? data[0] % (size + 1) : 0;
  (void)hearth::security::glob_match(text.substr(0, cut), text.substr(cut));
  return 0;
}
