// TLS for the serving front ends: `hearth certs self-signed` material
// (security/certs.h), HttpServer over HTTPS and mutual TLS (a Boost.Beast
// client), the limits and the disconnect watch over TLS, start() errors
// naming the bad file, and gRPC with TLS / mTLS, including that gRPC's
// "x509_subject" is the same RFC 2253 text as the HTTP side.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>

#include "grpc_service.grpc.pb.h"
#include "security/certs.h"
#include "frontend/grpc_server.h"
#include "frontend/http_server.h"
#include "serving/serving_test_util.h"

namespace hearth::frontend {

using namespace serving;
using namespace repository;
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using hearth::serving::test::eventually;
using hearth::testing::TempDir;

std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Shuts a socket down from another thread after a deadline, so that a
// blocking client call in a test can never hang.
class Watchdog {
 public:
  Watchdog(int fd, std::chrono::seconds limit)
      : thread_([this, fd, limit] {
          std::unique_lock<std::mutex> lock(mu_);
          if (!cv_.wait_for(lock, limit, [this] { return done_; })) ::shutdown(fd, SHUT_RDWR);
        }) {}
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

// Runs functions later, each on a thread of its own (a model worker's answer
// arriving after a while). join() before the server goes: an answer posts to
// the server's I/O context.
class Later {
 public:
  ~Later() { join(); }
  void join() {
    std::lock_guard<std::mutex> lock(mu_);
    for (std::thread& t : threads_) t.join();
    threads_.clear();
  }
  void run(std::chrono::milliseconds delay, std::function<void()> fn) {
    std::lock_guard<std::mutex> lock(mu_);
    threads_.emplace_back([delay, fn = std::move(fn)] {
      std::this_thread::sleep_for(delay);
      fn();
    });
  }

 private:
  std::mutex mu_;
  std::vector<std::thread> threads_;
};

struct ClientCert {
  std::string cert, key;
};

struct Exchange {
  bool handshake_ok = false;
  std::vector<int> statuses;  // one per answered request
  std::vector<std::string> bodies;
  std::string error;  // the first failure, "" when all went through
};

// An HTTPS client: verifies the server against `ca` for `host`, optionally
// presents a client certificate, sends `bodies.size()` POSTs on one
// keep-alive connection.
Exchange https_exchange(uint16_t port, const std::string& ca, const ClientCert& client = {},
                        std::vector<std::string> bodies = {""}, const std::string& host = "localhost") {
  Exchange out;
  try {
    net::io_context ioc;
    ssl::context ctx(ssl::context::tls_client);
    ctx.load_verify_file(ca);
    ctx.set_verify_mode(ssl::verify_peer);
    if (!client.cert.empty()) {
      ctx.use_certificate_chain_file(client.cert);
      ctx.use_private_key_file(client.key, ssl::context::pem);
    }
    beast::ssl_stream<beast::tcp_stream> stream(ioc, ctx);
    SSL_set_tlsext_host_name(stream.native_handle(), host.c_str());
    stream.set_verify_callback(ssl::host_name_verification(host));
    beast::get_lowest_layer(stream).connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
    Watchdog watchdog(beast::get_lowest_layer(stream).socket().native_handle(), std::chrono::seconds(15));
    stream.handshake(ssl::stream_base::client);
    out.handshake_ok = true;
    beast::flat_buffer buffer;
    for (auto& body : bodies) {
      http::request<http::string_body> req{http::verb::post, "/echo", 11};
      req.set(http::field::host, host);
      req.body() = body;
      req.prepare_payload();
      http::write(stream, req);
      http::response<http::string_body> res;
      http::read(stream, buffer, res);
      out.statuses.push_back(static_cast<int>(res.result_int()));
      out.bodies.push_back(res.body());
    }
    beast::error_code ec;
    stream.shutdown(ec);
  } catch (const std::exception& e) {
    out.error = e.what();
  }
  return out;
}

// GET `target` on an open plain-HTTP connection; the reply's body.
std::string get_on(beast::tcp_stream& stream, const char* target) {
  http::request<http::string_body> req{http::verb::get, target, 11};
  req.set(http::field::host, "x");
  http::write(stream, req);
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(stream, buffer, res);
  return res.body();
}

// GET / over a new plain-HTTP connection; the reply's body.
std::string plain_get(net::io_context& ioc, const tcp::endpoint& at) {
  beast::tcp_stream stream(ioc);
  stream.connect(at);
  return get_on(stream, "/");
}

// Records what the handler saw; answers "<remote>|<subject>".
struct Recorder {
  std::mutex mu;
  int calls = 0;
  std::string remote, subject;

  HttpHandler handler() {
    return [this](HttpRequest req, HttpResponder respond) {
      {
        std::lock_guard<std::mutex> lock(mu);
        ++calls;
        remote = req.remote_address;
        subject = req.client_cert_subject;
      }
      respond(HttpReply{200, req.remote_address + "|" + req.client_cert_subject, "text/plain"});
    };
  }
  int count() {
    std::lock_guard<std::mutex> lock(mu);
    return calls;
  }
};

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    security::SelfSignedOptions o;
    o.out_dir = (dir_.path() / "certs").string();
    o.clients = {"alice"};
    Status s = security::create_self_signed(o);
    ASSERT_TRUE(s.ok()) << s.to_string();
    security::SelfSignedOptions other;  // an unrelated CA and client
    other.out_dir = (dir_.path() / "other").string();
    other.clients = {"mallory"};
    s = security::create_self_signed(other);
    ASSERT_TRUE(s.ok()) << s.to_string();
  }

  std::string file(const std::string& name) const { return (dir_.path() / "certs" / name).string(); }
  std::string other(const std::string& name) const { return (dir_.path() / "other" / name).string(); }
  TlsOptions tls(bool mutual = false) const {
    TlsOptions t;
    t.cert_file = file("server.pem");
    t.key_file = file("server.key");
    if (mutual) t.client_ca_file = file("ca.pem");
    return t;
  }
  ClientCert alice() const { return {file("client-alice.pem"), file("client-alice.key")}; }

  std::unique_ptr<HttpServer> start(HttpHandler handler, TlsOptions t, int header_timeout = 5, size_t max_conn = 64) {
    HttpServerOptions o;
    o.port = 0;
    o.threads = 2;
    o.tls = std::move(t);
    o.header_timeout_seconds = header_timeout;
    o.body_limit = 1024;
    o.max_connections = max_conn;
    auto server = std::make_unique<HttpServer>(std::move(handler), o);
    Status s = server->start();
    EXPECT_TRUE(s.ok()) << s.to_string();
    return s.ok() ? std::move(server) : nullptr;
  }

  TempDir dir_;
  Recorder recorder_;
};

// ---- certificates ----

TEST_F(TlsTest, SelfSignedWritesPrivateKeysOwnerOnlyAndNamesClients) {
  for (const char* key : {"ca.key", "server.key", "client-alice.key"}) {
    struct stat st {};
    ASSERT_EQ(::stat(file(key).c_str(), &st), 0) << key;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << key;
  }
  EXPECT_NE(read_text(file("server.key")).find("BEGIN PRIVATE KEY"), std::string::npos);
  auto subject = security::certificate_subject(file("client-alice.pem"));
  ASSERT_TRUE(subject.ok()) << subject.status().to_string();
  EXPECT_EQ(*subject, "CN=alice");
  EXPECT_FALSE(security::certificate_subject(file("server.key")).ok());
}

TEST_F(TlsTest, SelfSignedRefusesToOverwriteAndWritesNothing) {
  std::string before = read_text(file("ca.pem"));
  security::SelfSignedOptions o;
  o.out_dir = (dir_.path() / "certs").string();
  o.clients = {"bob"};
  Status s = security::create_self_signed(o);
  EXPECT_EQ(s.code(), StatusCode::kAlreadyExists) << s.to_string();
  EXPECT_NE(s.message().find("ca.pem"), std::string::npos) << s.message();
  EXPECT_EQ(read_text(file("ca.pem")), before);
  EXPECT_FALSE(std::filesystem::exists(file("client-bob.pem")));
}

TEST_F(TlsTest, SelfSignedRejectsBadInput) {
  security::SelfSignedOptions o;
  o.out_dir = (dir_.path() / "bad").string();
  o.clients = {"../evil"};
  EXPECT_EQ(security::create_self_signed(o).code(), StatusCode::kInvalidArgument);
  o.clients = {"a", "a"};
  EXPECT_EQ(security::create_self_signed(o).code(), StatusCode::kInvalidArgument);
  o.clients = {};
  o.hosts = {"bad host"};
  EXPECT_EQ(security::create_self_signed(o).code(), StatusCode::kInvalidArgument);
  o.hosts = {};
  o.days = 0;
  EXPECT_EQ(security::create_self_signed(o).code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(std::filesystem::exists(dir_.path() / "bad"));
}

// ---- HTTPS ----

TEST_F(TlsTest, HttpsRequestsWorkOnOneConnectionAndSeeTheRemoteAddress) {
  auto server = start(recorder_.handler(), tls());
  ASSERT_TRUE(server);
  Exchange e = https_exchange(server->port(), file("ca.pem"), {}, {"a", "b"});
  ASSERT_EQ(e.error, "");
  ASSERT_EQ(e.statuses, (std::vector<int>{200, 200}));
  EXPECT_EQ(e.bodies[0], "127.0.0.1|");  // no client certificate without mTLS
  EXPECT_EQ(recorder_.count(), 2);
  // The SAN holds the IP addresses too.
  Exchange by_ip = https_exchange(server->port(), file("ca.pem"), {}, {""}, "127.0.0.1");
  EXPECT_EQ(by_ip.error, "");
  EXPECT_EQ(by_ip.statuses, (std::vector<int>{200}));
}

TEST_F(TlsTest, PlainHttpServerFillsRemoteAddressToo) {
  HttpServerOptions o;
  o.port = 0;
  HttpServer server(recorder_.handler(), o);
  ASSERT_TRUE(server.start().ok());
  net::io_context ioc;
  EXPECT_EQ(plain_get(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), server.port())), "127.0.0.1|");
}

// Bodies of every size (fixed length and chunked), sent back to back with
// pipelined requests in one write, each reach the handler whole and in order.
// (The connection's read buffer grows for large bodies and shrinks after them,
// keeping bytes of the next request that already arrived.)
TEST_F(TlsTest, PlainHttpLargeBodiesAndPipelinedRequestsArriveWhole) {
  HttpServerOptions o;
  o.port = 0;
  HttpServer server(
      [](HttpRequest req, HttpResponder respond) {
        respond(HttpReply{200, str_cat(req.target, " ", req.body.size(), " ", std::hash<std::string>{}(req.body)),
                          "text/plain"});
      },
      o);
  ASSERT_TRUE(server.start().ok());
  auto body = [](size_t n, unsigned seed) {
    std::string b(n, '\0');
    for (size_t i = 0; i < n; ++i) b[i] = static_cast<char>((i * 131 + seed) >> 3);
    return b;
  };
  const std::vector<std::string> bodies = {body(3u << 20, 1), body(100, 2), body(70000, 3), body(16384, 4),
                                           body(600000, 5)};
  std::string wire;
  for (size_t i = 0; i < bodies.size(); ++i)
    wire += str_cat("POST /", i, " HTTP/1.1\r\nHost: x\r\nContent-Length: ", bodies[i].size(), "\r\n\r\n", bodies[i]);
  const std::string chunked = body(200000, 6);
  wire += "POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (size_t at = 0; at < chunked.size(); at += 50000)
    wire += str_cat(std::hex, std::min<size_t>(50000, chunked.size() - at), "\r\n", chunked.substr(at, 50000), "\r\n");
  wire += "0\r\n\r\nGET /last HTTP/1.1\r\nHost: x\r\n\r\n";

  net::io_context ioc;
  beast::tcp_stream stream(ioc);
  stream.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), server.port()));
  std::thread writer([&] {
    beast::error_code ec;
    net::write(stream.socket(), net::buffer(wire), ec);
  });
  beast::flat_buffer buffer;
  for (size_t i = 0; i <= bodies.size() + 1; ++i) {
    const std::string& b = i < bodies.size() ? bodies[i] : i == bodies.size() ? chunked : std::string();
    const std::string target = i < bodies.size() ? str_cat("/", i) : i == bodies.size() ? "/chunked" : "/last";
    http::response<http::string_body> res;
    beast::error_code ec;
    http::read(stream, buffer, res, ec);
    if (ec) {
      ADD_FAILURE() << target << ": " << ec.message();
      break;
    }
    EXPECT_EQ(res.result_int(), 200u);
    EXPECT_EQ(res.body(), str_cat(target, " ", b.size(), " ", std::hash<std::string>{}(b))) << target;
  }
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);  // unblocks the writer if the server stopped reading
  writer.join();
}

// A client that pipelines two requests and then shuts its sending side has not
// left: the first request, whose successor is already read, is not cancelled.
TEST_F(TlsTest, PlainHttpPipelinedRequestsThenHalfCloseAreNotCancelled) {
  HttpServerOptions o;
  o.port = 0;
  Later later;  // answers off the HTTP thread, as a model would, after time for the watch to look
  HttpServer server(
      [&later](HttpRequest req, HttpResponder respond) {
        later.run(std::chrono::milliseconds(300), [cancelled = req.cancelled, respond = std::move(respond)] {
          respond(HttpReply{200, cancelled && cancelled->load() ? "cancelled" : "ran", "text/plain"});
        });
      },
      o);
  ASSERT_TRUE(server.start().ok());
  net::io_context ioc;
  beast::tcp_stream stream(ioc);
  stream.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), server.port()));
  Watchdog watchdog(stream.socket().native_handle(), std::chrono::seconds(15));
  net::write(stream.socket(), net::buffer(std::string("GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                                                      "GET /b HTTP/1.1\r\nHost: x\r\n\r\n")));
  stream.socket().shutdown(tcp::socket::shutdown_send);
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(stream, buffer, res);
  EXPECT_EQ(res.body(), "ran");
  server.stop();
  later.join();
}

// With busy polling on, requests are answered as usual; gaps longer than the
// window stop the polling, both between a client's requests and while a slow
// model works (else each gap would burn a window of CPU); stop() still
// returns at once.
TEST_F(TlsTest, PlainHttpBusyPollingServesAdaptsAndStops) {
  HttpServerOptions o;
  o.port = 0;
  o.busy_poll_us = 8000;
  Later later;  // the "slow model": answers 12 ms later from another thread
  auto server = std::make_unique<HttpServer>(
      [&later](HttpRequest req, HttpResponder respond) {
        if (req.target != "/slow") return respond(HttpReply{200, "fast", "text/plain"});
        later.run(std::chrono::milliseconds(12),
                  [respond = std::move(respond)] { respond(HttpReply{200, "slow", "text/plain"}); });
      },
      o);
  ASSERT_TRUE(server->start().ok());
  net::io_context ioc;
  beast::tcp_stream stream(ioc);
  stream.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), server->port()));
  auto get = [&](const char* target) { return get_on(stream, target); };
  auto cpu_seconds = [] {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  };
  for (int i = 0; i < 50; ++i) ASSERT_EQ(get("/"), "fast");  // back to back: the polling case
  // 80 back-to-back requests to a model that takes 12 ms: polling through every
  // model wait would take 8 of each 12 ms (0.64 s of CPU); after a few misses
  // the thread sleeps through them instead. The bounds leave room for a loaded
  // machine (a CI run under parallel tests used 0.16 s for 40 gaps).
  double before = cpu_seconds();
  for (int i = 0; i < 80; ++i) ASSERT_EQ(get("/slow"), "slow");
  EXPECT_LT(cpu_seconds() - before, 0.3) << "the server kept polling while the model worked";
  // 80 requests 12 ms apart: polling through every gap would take 8 of each
  // 12 ms (0.64 s of CPU); after a few misses the thread sleeps instead.
  before = cpu_seconds();
  for (int i = 0; i < 80; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(12));
    ASSERT_EQ(get("/"), "fast");
  }
  EXPECT_LT(cpu_seconds() - before, 0.3) << "the server kept polling through long client gaps";
  later.join();
  const auto t0 = std::chrono::steady_clock::now();
  server.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
}

// After an error reply the server closes its sending side and reads what the
// client still sends, so the client sees the reply rather than a reset; a
// client that never stops sending is cut off once the 5 s linger is over.
TEST_F(TlsTest, PlainHttpLingerAfterAnErrorReplyEnds) {
  HttpServerOptions o;
  o.port = 0;
  o.body_limit = 1024;
  HttpServer server([](HttpRequest, HttpResponder respond) { respond(HttpReply{200, "ok", "text/plain"}); }, o);
  ASSERT_TRUE(server.start().ok());
  net::io_context ioc;
  tcp::socket s(ioc);
  s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), server.port()));
  Watchdog watchdog(s.native_handle(), std::chrono::seconds(15));
  net::write(s, net::buffer(std::string("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n")));
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(s, buffer, res);
  EXPECT_EQ(res.result_int(), 413u);
  EXPECT_FALSE(res.keep_alive());
  // Keep sending the announced body: the server reads and drops it, then gives up.
  const auto t0 = std::chrono::steady_clock::now();
  const std::string chunk(1 << 16, 'b');
  beast::error_code ec;
  while (!ec) {
    net::write(s, net::buffer(chunk), ec);
    if (!ec) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_GT(took, std::chrono::seconds(3)) << "the server did not linger: " << ec.message();
  EXPECT_LT(took, std::chrono::seconds(9)) << "the lingering connection was not cut off";
}

// The body and reply-write deadlines (the connection sweep of http_server.cc):
// a client that stops sending its body, and one that stops reading a large
// reply, are both cut off after body_timeout_seconds.
TEST_F(TlsTest, PlainHttpStalledBodyAndStalledReaderAreCutOff) {
  HttpServerOptions o;
  o.port = 0;
  o.body_timeout_seconds = 1;
  const std::string big(32u << 20, 'z');  // far more than the socket buffers hold
  HttpServer server(
      [&big](HttpRequest req, HttpResponder respond) {
        respond(HttpReply{200, req.target == "/big" ? big : std::string("ok"), "text/plain"});
      },
      o);
  ASSERT_TRUE(server.start().ok());
  const tcp::endpoint at(net::ip::make_address("127.0.0.1"), server.port());
  net::io_context ioc;
  {  // announces 100 bytes, sends 10, then nothing
    tcp::socket s(ioc);
    s.connect(at);
    Watchdog watchdog(s.native_handle(), std::chrono::seconds(15));
    const std::string head = "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789";
    net::write(s, net::buffer(head));
    const auto t0 = std::chrono::steady_clock::now();
    char c;
    beast::error_code ec;
    s.read_some(net::buffer(&c, 1), ec);
    EXPECT_TRUE(ec) << "the server answered a request whose body never came";
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  }
  {  // asks for 32 MiB and reads none of it for 3 s: the server gives up on the write
    tcp::socket s(ioc);
    s.connect(at);
    Watchdog watchdog(s.native_handle(), std::chrono::seconds(20));
    net::write(s, net::buffer(std::string("GET /big HTTP/1.1\r\nHost: x\r\n\r\n")));
    std::this_thread::sleep_for(std::chrono::seconds(3));
    size_t got = 0;
    std::vector<char> chunk(1 << 16);
    beast::error_code ec;
    while (!ec) got += s.read_some(net::buffer(chunk), ec);
    EXPECT_LT(got, big.size()) << "the whole reply arrived: the stalled write was not cut off";
  }
  EXPECT_EQ(plain_get(ioc, at), "ok") << "the server still answers";
}

TEST_F(TlsTest, ClientTrustingAnotherCaRejectsTheServer) {
  auto server = start(recorder_.handler(), tls());
  ASSERT_TRUE(server);
  Exchange e = https_exchange(server->port(), other("ca.pem"));
  EXPECT_FALSE(e.handshake_ok);
  EXPECT_NE(e.error, "");
  EXPECT_EQ(recorder_.count(), 0);
}

TEST_F(TlsTest, PlainHttpToTheTlsPortGetsNoHttpAnswerAndTheServerKeepsServing) {
  auto server = start(recorder_.handler(), tls());
  ASSERT_TRUE(server);
  net::io_context ioc;
  tcp::socket socket(ioc);
  socket.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), server->port()));
  {
    Watchdog watchdog(socket.native_handle(), std::chrono::seconds(15));
    net::write(socket, net::buffer(std::string("GET / HTTP/1.1\r\nHost: x\r\n\r\n")));
    std::string got;
    beast::error_code ec;
    char buf[4096];
    for (;;) {
      size_t n = socket.read_some(net::buffer(buf), ec);
      if (ec) break;
      got.append(buf, n);
    }
    EXPECT_EQ(got.rfind("HTTP/", 0), std::string::npos) << got;
  }
  EXPECT_EQ(recorder_.count(), 0);
  Exchange e = https_exchange(server->port(), file("ca.pem"));
  EXPECT_EQ(e.error, "");
  EXPECT_EQ(e.statuses, (std::vector<int>{200}));
}

TEST_F(TlsTest, MutualTlsWithoutAClientCertificateFails) {
  auto server = start(recorder_.handler(), tls(true));
  ASSERT_TRUE(server);
  // TLS 1.3 clients finish their side of the handshake before the server
  // checks the certificate; the refusal then ends the first read.
  Exchange e = https_exchange(server->port(), file("ca.pem"));
  EXPECT_NE(e.error, "");
  EXPECT_TRUE(e.statuses.empty());
  // A certificate from another CA is refused too.
  Exchange foreign =
      https_exchange(server->port(), file("ca.pem"), {other("client-mallory.pem"), other("client-mallory.key")});
  EXPECT_NE(foreign.error, "");
  EXPECT_TRUE(foreign.statuses.empty());
  EXPECT_EQ(recorder_.count(), 0);
}

TEST_F(TlsTest, MutualTlsHandlerSeesTheClientCertificateSubject) {
  auto server = start(recorder_.handler(), tls(true));
  ASSERT_TRUE(server);
  Exchange e = https_exchange(server->port(), file("ca.pem"), alice(), {"x", "y"});
  ASSERT_EQ(e.error, "");
  ASSERT_EQ(e.statuses, (std::vector<int>{200, 200}));
  EXPECT_EQ(e.bodies[1], "127.0.0.1|CN=alice");
  std::lock_guard<std::mutex> lock(recorder_.mu);
  EXPECT_EQ(recorder_.subject, "CN=alice");
  EXPECT_EQ(recorder_.remote, "127.0.0.1");
}

TEST_F(TlsTest, LimitsStillApplyOverTls) {
  auto server = start(recorder_.handler(), tls(), /*header_timeout=*/1, /*max_conn=*/64);
  ASSERT_TRUE(server);
  Exchange big = https_exchange(server->port(), file("ca.pem"), {}, {std::string(4096, 'x')});
  EXPECT_EQ(big.statuses, (std::vector<int>{413})) << big.error;
  EXPECT_EQ(recorder_.count(), 0);
  // A connection that never starts the handshake is closed after the header timeout.
  net::io_context ioc;
  tcp::socket idle(ioc);
  idle.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), server->port()));
  Watchdog watchdog(idle.native_handle(), std::chrono::seconds(15));
  auto t0 = std::chrono::steady_clock::now();
  char c;
  beast::error_code ec;
  idle.read_some(net::buffer(&c, 1), ec);
  auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_TRUE(ec);
  EXPECT_LT(waited, std::chrono::seconds(10));
}

TEST_F(TlsTest, TooManyConnectionsGet503OverTls) {
  auto server = start(recorder_.handler(), tls(), 5, /*max_conn=*/1);
  ASSERT_TRUE(server);
  net::io_context ioc;
  tcp::socket holder(ioc);  // occupies the only slot (handshake pending)
  holder.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), server->port()));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  Exchange e = https_exchange(server->port(), file("ca.pem"));
  EXPECT_EQ(e.statuses, (std::vector<int>{503})) << e.error;
}

TEST_F(TlsTest, ClientThatDisconnectsMidRequestIsNoticedOverTls) {
  std::mutex mu;
  std::shared_ptr<std::atomic<bool>> cancelled;
  HttpResponder pending;
  auto server = start(
      [&](HttpRequest req, HttpResponder respond) {
        std::lock_guard<std::mutex> lock(mu);
        cancelled = req.cancelled;
        pending = std::move(respond);  // answered at the end of the test
      },
      tls());
  ASSERT_TRUE(server);
  {
    net::io_context ioc;
    ssl::context ctx(ssl::context::tls_client);
    ctx.load_verify_file(file("ca.pem"));
    ctx.set_verify_mode(ssl::verify_peer);
    beast::ssl_stream<beast::tcp_stream> stream(ioc, ctx);
    beast::get_lowest_layer(stream).connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), server->port()));
    stream.handshake(ssl::stream_base::client);
    http::request<http::string_body> req{http::verb::post, "/slow", 11};
    req.set(http::field::host, "localhost");
    req.prepare_payload();
    http::write(stream, req);
    ASSERT_TRUE(eventually(
        [&] {
          std::lock_guard<std::mutex> l(mu);
          return cancelled != nullptr;
        },
        5000));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    EXPECT_FALSE(cancelled->load());  // still connected
    beast::error_code ec;
    beast::get_lowest_layer(stream).socket().shutdown(tcp::socket::shutdown_both, ec);
    beast::get_lowest_layer(stream).socket().close(ec);
  }
  EXPECT_TRUE(eventually([&] { return cancelled->load(); }, 3000));
  HttpResponder respond;
  {
    std::lock_guard<std::mutex> lock(mu);
    respond = std::move(pending);
    pending = nullptr;
  }
  respond(HttpReply{200, "late"});  // the connection is gone: dropped quietly
  respond = nullptr;                // no connection outlives the server
}

TEST_F(TlsTest, BadFilesFailStartNamingTheFile) {
  auto start_error = [&](TlsOptions t) {
    HttpServerOptions o;
    o.port = 0;
    o.tls = std::move(t);
    HttpServer server(recorder_.handler(), o);
    Status s = server.start();
    return s.ok() ? std::string() : s.message();
  };
  std::string garbage = (dir_.path() / "garbage.key").string();
  std::ofstream(garbage) << "not a key\n";
  TlsOptions t = tls();
  t.key_file = garbage;
  std::string msg = start_error(t);
  EXPECT_NE(msg.find(garbage), std::string::npos) << msg;

  t = tls();
  t.key_file = file("client-alice.key");  // a real key, but not the server's
  msg = start_error(t);
  EXPECT_NE(msg.find(file("client-alice.key")), std::string::npos) << msg;
  EXPECT_NE(msg.find("does not match"), std::string::npos) << msg;

  t = tls();
  t.cert_file = (dir_.path() / "missing.pem").string();
  msg = start_error(t);
  EXPECT_NE(msg.find("missing.pem"), std::string::npos) << msg;

  t = tls(true);
  t.client_ca_file = garbage;
  msg = start_error(t);
  EXPECT_NE(msg.find(garbage), std::string::npos) << msg;

  t = TlsOptions{};
  t.key_file = file("server.key");  // key without certificate
  EXPECT_NE(start_error(t), "");
  EXPECT_EQ(start_error(tls(true)), "");
}

// ---- gRPC ----

std::shared_ptr<grpc::Channel> tls_channel(uint16_t port, const std::string& ca, const ClientCert& client = {}) {
  grpc::SslCredentialsOptions o;
  o.pem_root_certs = read_text(ca);
  if (!client.cert.empty()) {
    o.pem_cert_chain = read_text(client.cert);
    o.pem_private_key = read_text(client.key);
  }
  return grpc::CreateChannel("localhost:" + std::to_string(port), grpc::SslCredentials(o));
}

grpc::Status server_live(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = inference::GRPCInferenceService::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  inference::ServerLiveResponse out;
  return stub->ServerLive(&ctx, inference::ServerLiveRequest(), &out);
}

class GrpcTlsTest : public TlsTest {
 protected:
  void SetUp() override {
    TlsTest::SetUp();
    ServerOptions so;
    so.model_repository = (dir_.path() / "repo").string();
    std::filesystem::create_directories(so.model_repository);
    so.total_threads = 1;
    auto s = InferenceServer::create(so);
    ASSERT_TRUE(s.ok()) << s.status().to_string();
    server_ = std::move(s).value();
  }

  std::unique_ptr<GrpcServer> start_grpc(TlsOptions t) {
    GrpcServerOptions o;
    o.port = 0;
    o.tls = std::move(t);
    auto g = GrpcServer::start(*server_, o);
    EXPECT_TRUE(g.ok()) << g.status().to_string();
    return g.ok() ? std::move(g).value() : nullptr;
  }

  std::unique_ptr<InferenceServer> server_;
};

TEST_F(GrpcTlsTest, TlsAndMutualTls) {
  auto tls_server = start_grpc(tls());
  ASSERT_TRUE(tls_server);
  EXPECT_TRUE(server_live(tls_channel(tls_server->port(), file("ca.pem"))).ok());
  EXPECT_FALSE(server_live(tls_channel(tls_server->port(), other("ca.pem"))).ok());  // untrusted server
  EXPECT_FALSE(server_live(grpc::CreateChannel("localhost:" + std::to_string(tls_server->port()),
                                               grpc::InsecureChannelCredentials()))
                   .ok());

  auto mtls_server = start_grpc(tls(true));
  ASSERT_TRUE(mtls_server);
  EXPECT_FALSE(server_live(tls_channel(mtls_server->port(), file("ca.pem"))).ok());
  EXPECT_FALSE(server_live(tls_channel(mtls_server->port(), file("ca.pem"),
                                       {other("client-mallory.pem"), other("client-mallory.key")}))
                   .ok());
  grpc::Status ok = server_live(tls_channel(mtls_server->port(), file("ca.pem"), alice()));
  EXPECT_TRUE(ok.ok()) << ok.error_message();
}

TEST_F(GrpcTlsTest, BadFilesFailStartNamingTheFile) {
  TlsOptions t = tls();
  t.key_file = file("client-alice.key");
  GrpcServerOptions o;
  o.port = 0;
  o.tls = t;
  auto g = GrpcServer::start(*server_, o);
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find(file("client-alice.key")), std::string::npos) << g.status().message();
}

// A service that reports grpc_client_cert_subject() of each call.
class SubjectService final : public inference::GRPCInferenceService::Service {
 public:
  grpc::Status ServerMetadata(grpc::ServerContext* ctx, const inference::ServerMetadataRequest*,
                              inference::ServerMetadataResponse* out) override {
    out->set_name(grpc_client_cert_subject(*ctx));
    return grpc::Status::OK;
  }
};

// Signs a client certificate with a multi-attribute subject (needing
// escapes in RFC 2253) with the test CA, using the openssl tool.
bool make_fancy_client(const std::string& dir, const std::string& ca, const std::string& ca_key) {
  std::string ext = dir + "/ext.cnf";
  std::ofstream(ext) << "extendedKeyUsage=clientAuth\nbasicConstraints=critical,CA:FALSE\n";
  std::string cmd =
      "cd '" + dir +
      "' && openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
      "-keyout fancy.key -subj '/C=DE/O=Acme, Inc./OU=ML\\+Ops/CN=bob smith' -out fancy.csr 2>/dev/null && "
      "openssl x509 -req -in fancy.csr -CA '" +
      ca + "' -CAkey '" + ca_key + "' -CAcreateserial -days 2 -sha256 -extfile ext.cnf -out fancy.pem 2>/dev/null";
  return std::system(cmd.c_str()) == 0;
}

TEST_F(GrpcTlsTest, GrpcSubjectIsTheSameRfc2253TextAsHttp) {
  std::string work = (dir_.path() / "fancy").string();
  std::filesystem::create_directories(work);
  ClientCert fancy{work + "/fancy.pem", work + "/fancy.key"};
  bool have_fancy = make_fancy_client(work, file("ca.pem"), file("ca.key"));

  SubjectService service;
  grpc::SslServerCredentialsOptions so(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  so.pem_root_certs = read_text(file("ca.pem"));
  so.pem_key_cert_pairs.push_back({read_text(file("server.key")), read_text(file("server.pem"))});
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::SslServerCredentials(so), &port);
  builder.RegisterService(&service);
  auto grpc_server = builder.BuildAndStart();
  ASSERT_TRUE(grpc_server);
  auto http_server = start(recorder_.handler(), tls(true));
  ASSERT_TRUE(http_server);

  std::vector<ClientCert> clients{alice()};
  if (have_fancy) clients.push_back(fancy);
  for (const auto& client : clients) {
    auto stub =
        inference::GRPCInferenceService::NewStub(tls_channel(static_cast<uint16_t>(port), file("ca.pem"), client));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    inference::ServerMetadataResponse out;
    grpc::Status st = stub->ServerMetadata(&ctx, inference::ServerMetadataRequest(), &out);
    ASSERT_TRUE(st.ok()) << st.error_message();
    Exchange e = https_exchange(http_server->port(), file("ca.pem"), client);
    ASSERT_EQ(e.error, "");
    auto expected = security::certificate_subject(client.cert);
    ASSERT_TRUE(expected.ok());
    EXPECT_EQ(out.name(), *expected) << "gRPC x509_subject for " << client.cert;
    EXPECT_EQ(e.bodies.at(0), "127.0.0.1|" + *expected) << "HTTP subject for " << client.cert;
  }
  EXPECT_EQ(security::certificate_subject(alice().cert).value(), "CN=alice");
  if (have_fancy) {
    EXPECT_EQ(security::certificate_subject(fancy.cert).value(), "CN=bob smith,OU=ML\\+Ops,O=Acme\\, Inc.,C=DE");
  } else {
    std::cout << "[   NOTE   ] openssl tool missing: multi-attribute subject not compared\n";
  }
  grpc_server->Shutdown();
}

}  // namespace
}  // namespace hearth::frontend
