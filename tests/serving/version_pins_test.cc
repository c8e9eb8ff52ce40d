// The seams releases (rollout/) build on: versions pinned in or out whatever the
// version policy says, and a router whose binding carries a watch over the answer.
#include <gtest/gtest.h>

#include <atomic>
#include <set>

#include "serving/model_version.h"
#include "serving/server.h"
#include "serving/version_router.h"
#include "serving_test_util.h"

namespace hearth::serving::test {
namespace {

std::set<std::string> ready_versions(const InferenceServer& server, const std::string& model) {
  std::set<std::string> out;
  for (const auto& e : server.repository_index(true))
    if (e.name == model) out.insert(e.version);
  return out;
}

TEST_F(ServerTest, pinned_versions_load_beside_the_policy_and_excluded_ones_leave) {
  add_relu("relu", 1);
  add_relu("relu", 2);
  add_relu("relu", 3);
  auto server = start();  // default policy latest{1}: only version 3
  ASSERT_TRUE(server);
  EXPECT_EQ(ready_versions(*server, "relu"), (std::set<std::string>{"3"}));

  ASSERT_TRUE(server->pin_versions("relu", {{1}, {}}).ok());
  EXPECT_EQ(ready_versions(*server, "relu"), (std::set<std::string>{"1", "3"}));
  ASSERT_TRUE(server->find_version("relu", "1").ok());

  ASSERT_TRUE(server->pin_versions("relu", {{1, 2}, {3}}).ok());
  EXPECT_TRUE(eventually([&] { return ready_versions(*server, "relu") == std::set<std::string>{"1", "2"}; }, 3000));
  // Requests without a version go to the highest ready one, as in Triton.
  auto r = server->infer(relu_request({1, 2, 3, 4}));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->model_version, "2");

  // A held version without a folder is not loaded; the rest still is.
  ASSERT_TRUE(server->pin_versions("relu", {{7}, {}}).ok());
  EXPECT_TRUE(eventually([&] { return ready_versions(*server, "relu") == std::set<std::string>{"3"}; }, 3000));
  // Excluding every version leaves the model with nothing to load: an error, and what served stays.
  Status none = server->pin_versions("relu", {{}, {1, 2, 3}});
  EXPECT_EQ(none.code(), StatusCode::kNotFound);
  EXPECT_NE(none.message().find("excluded"), std::string::npos) << none.to_string();
  ASSERT_TRUE(server->pin_versions("relu", {}).ok());
  EXPECT_EQ(ready_versions(*server, "relu"), (std::set<std::string>{"3"}));
}

TEST_F(ServerTest, pins_given_at_start_apply_to_the_first_load) {
  add_relu("relu", 1);
  add_relu("relu", 2);
  ServerOptions options;
  options.version_pins["relu"] = {{1}, {2}};
  auto server = start(options);
  ASSERT_TRUE(server);
  EXPECT_EQ(ready_versions(*server, "relu"), (std::set<std::string>{"1"}));
}

// Answers from version 1 and counts what it saw; the client's callback still runs once.
class CountingRouter final : public VersionRouter {
 public:
  explicit CountingRouter(const InferenceServer& server) : server_(server) {}
  Result<Binding> route(const InferRequest& request) const override {
    HEARTH_ASSIGN_OR_RETURN(auto v, server_.find_version(request.model_name, "1"));
    class Watch final : public RequestWatch {
     public:
      explicit Watch(const CountingRouter& r) : r_(r) {}
      InferCallback watch(const InferRequest& request, InferCallback done) override {
        r_.keys.insert(request.routing_key);
        return [this, done = std::move(done)](Result<InferResponse> answer) {
          (answer.ok() ? r_.answered : r_.failed)++;
          done(std::move(answer));
        };
      }
      const CountingRouter& r_;
    };
    return Binding{v, std::make_shared<Watch>(*this)};
  }
  mutable std::atomic<int> answered{0}, failed{0};
  mutable std::multiset<std::string> keys;

 private:
  const InferenceServer& server_;
};

TEST_F(ServerTest, a_router_binds_each_request_and_its_watch_sees_the_answer) {
  add_relu("relu", 1);
  add_relu("relu", 2);
  ServerOptions options;
  options.version_pins["relu"] = {{1}, {}};
  auto server = start(options);
  ASSERT_TRUE(server);
  auto router = std::make_shared<CountingRouter>(*server);
  server->set_version_router(router);
  InferRequest request = relu_request({-1, 2, -3, 4});
  request.routing_key = "tenant-a";
  auto r = server->infer(request);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->model_version, "1");
  EXPECT_EQ(values(r->outputs[0].data), (std::vector<float>{0, 2, 0, 4}));
  auto bad = server->infer(relu_request({1, 2, 3}));  // 3 values do not make rows of 4
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(router->answered.load(), 1);
  EXPECT_EQ(router->failed.load(), 1);
  EXPECT_EQ(router->keys.count("tenant-a"), 1u);
  server->set_version_router(nullptr);  // back to the default
  auto latest = server->infer(relu_request({1, 2, 3, 4}));
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ(latest->model_version, "2");
  EXPECT_EQ(router->answered.load(), 1);
}

}  // namespace
}  // namespace hearth::serving::test
