// Access-control policy: names, glob matching (against fnmatch(3) as the
// reference), the built-in roles, YAML parsing with errors that name the line,
// and allows() with model-scoped rules.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fnmatch.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>

#include "security/policy.h"

namespace hearth::security {
namespace {

using R = Resource;
using A = Action;

const std::vector<std::string> kAllRes = {"models", "inference", "repository", "keys",
                                           "users",  "audit",     "system_config", "training"};

TEST(PolicyNames, RoundTripEveryResourceAndAction) {
  for (int i = 0; i < kResourceCount; ++i) {
    auto r = static_cast<Resource>(i);
    EXPECT_EQ(resource_name(r), kAllRes[i]);
    ASSERT_TRUE(parse_resource(resource_name(r)).ok());
    EXPECT_EQ(*parse_resource(resource_name(r)), r);
  }
  const std::vector<std::string> actions = {"create", "read", "update", "delete", "infer", "deploy", "export"};
  for (int i = 0; i < kActionCount; ++i) {
    auto a = static_cast<Action>(i);
    EXPECT_EQ(action_name(a), actions[i]);
    EXPECT_EQ(*parse_action(actions[i]), a);
  }
  EXPECT_EQ(parse_resource("Models").status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(parse_action("execute").status().message().find("unknown action 'execute'"), std::string::npos);
}

TEST(GlobMatch, Basics) {
  EXPECT_TRUE(glob_match("fraud-*", "fraud-v2"));
  EXPECT_TRUE(glob_match("fraud-*", "fraud-"));
  EXPECT_FALSE(glob_match("fraud-*", "fraud"));
  EXPECT_FALSE(glob_match("fraud-*", "xfraud-v2"));
  EXPECT_TRUE(glob_match("*", ""));
  EXPECT_TRUE(glob_match("", ""));
  EXPECT_FALSE(glob_match("", "a"));
  EXPECT_TRUE(glob_match("res?et*", "resnet50"));
  EXPECT_FALSE(glob_match("res?et", "reset"));
  EXPECT_TRUE(glob_match("*a*b*c", "xxaxxbxxc"));
  EXPECT_FALSE(glob_match("*a*b*c", "xxaxxcxxb"));
  EXPECT_TRUE(glob_match("a**b", "ab"));
}

TEST(GlobMatch, AgreesWithFnmatchOnRandomInputs) {
  std::mt19937 rng(7);
  const std::string pat_chars = "ab*?", text_chars = "ab";
  for (int iter = 0; iter < 20000; ++iter) {
    std::string p, t;
    for (int i = rng() % 7; i > 0; --i) p += pat_chars[rng() % pat_chars.size()];
    for (int i = rng() % 9; i > 0; --i) t += text_chars[rng() % text_chars.size()];
    bool expected = ::fnmatch(p.c_str(), t.c_str(), 0) == 0;
    ASSERT_EQ(glob_match(p, t), expected) << "pattern '" << p << "' text '" << t << "'";
  }
}

TEST(GlobMatch, PathologicalPatternIsFast) {
  std::string pattern, text(4000, 'a');
  for (int i = 0; i < 100; ++i) pattern += "a*";
  pattern += "b";
  auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(glob_match(pattern, text));
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(ms, 500) << "backtracking blew up";
}

TEST(BuiltinPolicy, HasExactlyTheThreeRoles) {
  Policy p = Policy::builtin();
  ASSERT_EQ(p.roles().size(), 3u);
  EXPECT_NE(p.find_role("admin"), nullptr);
  EXPECT_NE(p.find_role("operator"), nullptr);
  EXPECT_NE(p.find_role("viewer"), nullptr);
  EXPECT_EQ(p.find_role("root"), nullptr);
  for (const Role& r : p.roles()) EXPECT_TRUE(r.builtin);
}

TEST(BuiltinPolicy, AdminMayDoEverything) {
  Policy p = Policy::builtin();
  for (int r = 0; r < kResourceCount; ++r) {
    for (int a = 0; a < kActionCount; ++a) {
      EXPECT_TRUE(p.allows({"admin"}, static_cast<R>(r), static_cast<A>(a), ""));
      EXPECT_TRUE(p.allows({"admin"}, static_cast<R>(r), static_cast<A>(a), "mlp"));
    }
  }
}

// The full matrix for operator and viewer, written out from the specification.
TEST(BuiltinPolicy, OperatorAndViewerMatrix) {
  Policy p = Policy::builtin();
  // rows: resources in enum order; columns: create read update delete infer deploy export
  const char* op[kResourceCount] = {"1111011", "0100100", "0110000", "0000000",
                                    "0000000", "0000000", "0100000", "1111000"};
  const char* viewer[kResourceCount] = {"0100000", "0100000", "0100000", "0000000",
                                        "0000000", "0000000", "0100000", "0100000"};
  for (int r = 0; r < kResourceCount; ++r) {
    for (int a = 0; a < kActionCount; ++a) {
      EXPECT_EQ(p.allows({"operator"}, static_cast<R>(r), static_cast<A>(a), "m"), op[r][a] == '1')
          << "operator " << kAllRes[r] << " " << action_name(static_cast<A>(a));
      EXPECT_EQ(p.allows({"viewer"}, static_cast<R>(r), static_cast<A>(a), "m"), viewer[r][a] == '1')
          << "viewer " << kAllRes[r] << " " << action_name(static_cast<A>(a));
    }
  }
  EXPECT_FALSE(p.allows({"viewer"}, R::kInference, A::kInfer, "mlp"));
  EXPECT_FALSE(p.allows({}, R::kModels, A::kRead, ""));
  EXPECT_FALSE(p.allows({"nobody"}, R::kModels, A::kRead, ""));
  EXPECT_TRUE(p.allows({"nobody", "viewer"}, R::kModels, A::kRead, ""));
}

constexpr const char* kExample = R"(roles:
  fraud-analyst:
    description: Runs and inspects the fraud models
    rules:
      - resource: inference
        actions: [infer, read]
        models: ["fraud-*"]
      - resource: models
        actions: [read]
        models: ["fraud-*"]
  ops-all:
    rules:
      - resource: system_config
        actions: ["*"]
)";

TEST(PolicyParse, ExampleRolesAndScopedRules) {
  Result<Policy> p = Policy::parse(kExample, "policy.yaml");
  ASSERT_TRUE(p.ok()) << p.status().message();
  ASSERT_EQ(p->roles().size(), 5u);
  const Role* fraud = p->find_role("fraud-analyst");
  ASSERT_NE(fraud, nullptr);
  EXPECT_FALSE(fraud->builtin);
  EXPECT_EQ(fraud->description, "Runs and inspects the fraud models");
  ASSERT_EQ(fraud->rules.size(), 2u);
  EXPECT_EQ(fraud->rules[0].line, 5);
  EXPECT_EQ(fraud->rules[0].actions, action_bit(A::kInfer) | action_bit(A::kRead));
  EXPECT_EQ(fraud->rules[1].line, 8);

  const std::vector<std::string> roles = {"fraud-analyst"};
  EXPECT_TRUE(p->allows(roles, R::kInference, A::kInfer, "fraud-v2"));
  EXPECT_FALSE(p->allows(roles, R::kInference, A::kInfer, "mlp"));
  EXPECT_FALSE(p->allows(roles, R::kInference, A::kInfer, ""));  // scoped rules never cover non-model requests
  EXPECT_FALSE(p->allows(roles, R::kModels, A::kUpdate, "fraud-v2"));
  EXPECT_TRUE(p->allows(roles, R::kModels, A::kRead, "fraud-v2"));
  for (int a = 0; a < kActionCount; ++a) {
    EXPECT_TRUE(p->allows({"ops-all"}, R::kSystemConfig, static_cast<A>(a), ""));
  }
  EXPECT_FALSE(p->allows({"ops-all"}, R::kModels, A::kRead, ""));
}

TEST(PolicyParse, ShippedExampleFileLoads) {
  std::filesystem::path file = std::filesystem::path(__FILE__).parent_path() / "../../examples/security/policy.yaml";
  Result<Policy> p = Policy::load_file(file.string());
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_NE(p->find_role("fraud-analyst"), nullptr);
  EXPECT_TRUE(p->allows({"fraud-analyst"}, R::kInference, A::kInfer, "fraud-detector"));
}

// Whoever can change the policy grants roles: a file others may write is refused.
TEST(PolicyParse, FileWritableByOthersIsRefused) {
  std::filesystem::path file =
      std::filesystem::temp_directory_path() / ("hearth_policy_" + std::to_string(::getpid()) + ".yaml");
  { std::ofstream(file) << "roles: {}\n"; }
  std::filesystem::permissions(file, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write |
                                         std::filesystem::perms::others_write);
  Result<Policy> p = Policy::load_file(file.string());
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(p.status().message().find("chmod go-w"), std::string::npos) << p.status().message();
  std::filesystem::permissions(file, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  EXPECT_TRUE(Policy::load_file(file.string()).ok());
  std::filesystem::remove(file);
}

TEST(PolicyParse, MissingFileIsNotFound) {
  EXPECT_EQ(Policy::load_file("/nonexistent/policy.yaml").status().code(), StatusCode::kNotFound);
}

struct BadPolicy {
  const char* name;
  const char* yaml;
  const char* expected;  // substring of the message, which starts with "p.yaml:<line>: "
};

class PolicyErrors : public ::testing::TestWithParam<BadPolicy> {};

TEST_P(PolicyErrors, NameTheLine) {
  Result<Policy> p = Policy::parse(GetParam().yaml, "p.yaml");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(p.status().message().find(GetParam().expected), std::string::npos) << p.status().message();
}

INSTANTIATE_TEST_SUITE_P(
    All, PolicyErrors,
    ::testing::Values(
        BadPolicy{"empty", "", "p.yaml:1: a policy must be a map"},
        BadPolicy{"unknown_top_key", "roles: {}\nusers: []\n", "p.yaml:2: unknown key 'users'"},
        BadPolicy{"roles_is_list", "roles:\n  - a\n", "p.yaml:2: 'roles' must be a map, got a list"},
        BadPolicy{"bad_role_name", "roles:\n  Fraud:\n    rules: []\n", "p.yaml:2: invalid role name 'Fraud'"},
        BadPolicy{"redefine_builtin", "roles:\n  admin:\n    rules: []\n", "p.yaml:2: role 'admin' is built in"},
        BadPolicy{"duplicate_role", "roles:\n  a:\n    rules: []\n  a:\n    rules: []\n",
                  "p.yaml:4: role 'a' is defined twice"},
        BadPolicy{"missing_rules", "roles:\n  a:\n    description: x\n", "p.yaml:2: role 'a': missing key 'rules'"},
        BadPolicy{"unknown_role_key", "roles:\n  a:\n    rules: []\n    color: red\n",
                  "p.yaml:4: role 'a': unknown key 'color'"},
        BadPolicy{"unknown_resource", "roles:\n  a:\n    rules:\n      - resource: gpus\n        actions: [read]\n",
                  "p.yaml:4: role 'a' rule 1: unknown resource 'gpus'"},
        BadPolicy{"unknown_action",
                  "roles:\n  a:\n    rules:\n      - resource: models\n        actions:\n          - read\n"
                  "          - fly\n",
                  "p.yaml:7: role 'a' rule 1: unknown action 'fly'"},
        BadPolicy{"actions_scalar", "roles:\n  a:\n    rules:\n      - resource: models\n        actions: read\n",
                  "p.yaml:5: role 'a' rule 1: 'actions' must be a list, got a scalar"},
        BadPolicy{"models_scalar",
                  "roles:\n  a:\n    rules:\n      - resource: models\n        actions: [read]\n        models: m\n",
                  "p.yaml:6: role 'a' rule 1: 'models' must be a list"},
        BadPolicy{"empty_actions", "roles:\n  a:\n    rules:\n      - resource: models\n        actions: []\n",
                  "p.yaml:5: role 'a' rule 1: 'actions' is empty"},
        BadPolicy{"missing_resource", "roles:\n  a:\n    rules:\n      - actions: [read]\n",
                  "p.yaml:4: role 'a' rule 1: missing key 'resource'"},
        BadPolicy{"unknown_rule_key",
                  "roles:\n  a:\n    rules:\n      - resource: models\n        actions: [read]\n        model: [x]\n",
                  "p.yaml:6: role 'a' rule 1: unknown key 'model'"},
        BadPolicy{"duplicate_rule_key",
                  "roles:\n  a:\n    rules:\n      - resource: models\n        resource: keys\n        actions: [read]\n",
                  "p.yaml:5: role 'a' rule 1: duplicate key 'resource'"},
        BadPolicy{"rule_not_map", "roles:\n  a:\n    rules:\n      - models\n", "p.yaml:4: role 'a' rule 1 must be a map"},
        BadPolicy{"second_rule", "roles:\n  a:\n    rules:\n      - resource: models\n        actions: [read]\n"
                                 "      - resource: models\n        actions: [jump]\n",
                  "p.yaml:7: role 'a' rule 2: unknown action 'jump'"},
        BadPolicy{"yaml_syntax", "roles:\n  a: [\n", "p.yaml:3: invalid YAML"},
        BadPolicy{"nested_action_list",
                  "roles:\n  a:\n    rules:\n      - resource: models\n        actions: [[read]]\n",
                  "p.yaml:5: role 'a' rule 1: an action must be a scalar"}),
    [](const ::testing::TestParamInfo<BadPolicy>& info) { return std::string(info.param.name); });

TEST(PolicyParse, DeepNestingIsAnErrorNotACrash) {
  std::string deep = "roles: " + std::string(100000, '[');
  Result<Policy> p = Policy::parse(deep, "deep.yaml");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(p.status().message().rfind("deep.yaml:", 0), 0u) << p.status().message();
}

TEST(PolicyParse, ErrorLinesCountFromOneWithComments) {
  Result<Policy> p = Policy::parse("# comment\n\nroles:\n  x:\n    rules:\n      - resource: nope\n"
                                   "        actions: [read]\n",
                                   "c.yaml");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().message().rfind("c.yaml:6: ", 0), 0u) << p.status().message();
}

}  // namespace
}  // namespace hearth::security
