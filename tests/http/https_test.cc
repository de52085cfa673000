// HTTPS, client certificates, caller identity and bad input on the TLS port:
// catga::http::Server over an in-memory Application, real sockets on
// 127.0.0.1, certificates made for each test (tls_test_support.hpp).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <mutex>
#include <thread>

#include "http/http_test_support.hpp"
#include "http/tls_test_support.hpp"

namespace catga::testing {
namespace {

using http::ClientCertificates;
using http::Request;
using http::Responder;
using ::testing::HasSubstr;

// Lets commands through for principals with the role "writer" only; queries
// for anyone authenticated. Records who it saw.
class WriterOnly final : public Behavior {
 public:
  void handle(catga::Request& request, Next& next) override {
    const Principal* who = request.principal();
    {
      std::lock_guard lock(mutex_);
      seen_.push_back(who ? who->name : "");
    }
    if (!who) return next.reject(Error{Code::unauthenticated, "sign in first"});
    if (request.kind() == MessageKind::command && !who->has_role("writer")) {
      return next.reject(Error{Code::permission_denied, who->name + " may not send " + std::string(request.wire_name())});
    }
    next();
  }
  std::vector<std::string> seen() {
    std::lock_guard lock(mutex_);
    return seen_;
  }

 private:
  std::mutex mutex_;
  std::vector<std::string> seen_;
};

void write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

class HttpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ca_ = pki_.ca("ca");
    server_cert_ = pki_.issue(ca_, "server", "node-one", true);
    writer_ = pki_.issue(ca_, "writer", "orders-writer", false);
    credentials_ = (pki_.dir() / "credentials").string();
    write_file(credentials_,
               "# kind credential principal roles\n"
               "token  r3ader-token  rita   reader\n"
               "token  wr1ter-token  walt   reader,writer\n"
               "subject orders-writer  writer-service writer\n");
  }

  http::TlsOptions tls(ClientCertificates client = ClientCertificates::none) const {
    http::TlsOptions options;
    options.cert_file = server_cert_.certificate;
    options.key_file = server_cert_.key;
    options.client_ca_file = ca_.certificate;
    options.client_certificates = client;
    options.handshake_timeout = std::chrono::milliseconds(400);
    return options;
  }

  Result<void> start(http::ServerOptions options) {
    server_.reset();
    auto behaviour = std::make_unique<WriterOnly>();
    behaviour_ = behaviour.get();
    catga::ApplicationBuilder<bank::State> builder;
    register_test_handlers(builder).use(std::move(behaviour)).in_memory();
    auto app = builder.build();
    if (!app) return app.error();
    app_ = std::move(*app);
    server_ = std::make_unique<http::Server>(*app_, options);
    add_bank_routes(*server_);
    server_->map_health();
    server_->get("/whoami", [](const Request& r, Responder respond) {
      if (!r.principal()) return respond.json(200, R"({"name":null})");
      nlohmann::json body = {{"name", r.principal()->name},
                             {"roles", r.principal()->roles},
                             {"by", r.principal()->authenticated_by}};
      respond.json(200, body.dump());
    });
    return server_->start();
  }

  HttpsOutcome call(HttpsCall c) {
    if (c.ca_file.empty()) c.ca_file = ca_.certificate;
    return https_call(server_->port(), c);
  }

  // Sends raw bytes on a plain TCP connection and reads until the server
  // closes it (bounded): what came back.
  std::string raw_exchange(const std::string& bytes) {
    asio::io_context io;
    asio::ip::tcp::socket socket(io);
    std::string got;
    std::array<char, 4096> chunk{};
    bool closed = false;
    std::function<void()> read_more = [&] {
      socket.async_read_some(asio::buffer(chunk), [&](asio::error_code ec, std::size_t n) {
        got.append(chunk.data(), n);
        if (ec) closed = true;
        else read_more();
      });
    };
    socket.async_connect({asio::ip::make_address("127.0.0.1"), server_->port()}, [&](asio::error_code ec) {
      if (ec) return;
      if (bytes.empty()) return read_more();
      asio::async_write(socket, asio::buffer(bytes), [&](asio::error_code ec, std::size_t) {
        if (!ec) read_more();
      });
    });
    io.run_for(std::chrono::seconds(20));
    EXPECT_TRUE(closed) << "the server did not close the connection";
    return got;
  }

  void expect_still_serving() {
    auto ok = call({});
    EXPECT_EQ(ok.status, 200) << ok.handshake_error;
  }

  TestPki pki_;
  TestPki::Issued ca_, server_cert_, writer_;
  std::string credentials_;
  std::unique_ptr<Application> app_;
  std::unique_ptr<http::Server> server_;
  WriterOnly* behaviour_ = nullptr;
};

TEST_F(HttpsTest, ServesHttpsOnTls13AndVerifiesAgainstTheCa) {
  ASSERT_TRUE(start({.tls = tls()}));
  auto out = call({});
  EXPECT_EQ(out.handshake_error, "");
  EXPECT_EQ(out.status, 200);
  EXPECT_EQ(out.protocol, "TLSv1.3");
  EXPECT_EQ(out.server_name, "node-one");
}

TEST_F(HttpsTest, AClientTrustingAnotherCaRefusesTheServerAndTheServerLogsIt) {
  ASSERT_TRUE(start({.tls = tls()}));
  auto other = pki_.ca("other-ca");
  StderrCapture capture(pki_.dir() / "log");
  auto out = https_call(server_->port(), {.ca_file = other.certificate});
  expect_still_serving();
  const std::string log = capture.wait_lines(1);
  EXPECT_THAT(out.handshake_error, HasSubstr("certificate verify failed"));
  EXPECT_EQ(out.status, 0);
  EXPECT_THAT(log, HasSubstr("HTTPS: refused the connection from 127.0.0.1:"));
  EXPECT_THAT(log, HasSubstr("does not trust this server's certificate"));
}

TEST_F(HttpsTest, PlaintextHttpOnTheTlsPortIsRefusedWithOneLogLine) {
  ASSERT_TRUE(start({.tls = tls()}));
  StderrCapture capture(pki_.dir() / "log");
  const std::string got = raw_exchange("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
  expect_still_serving();
  const std::string log = capture.wait_lines(1);
  EXPECT_EQ(got.find("HTTP/1.1 200"), std::string::npos) << got;
  EXPECT_THAT(log, HasSubstr("plaintext HTTP on the TLS port"));
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 1) << log;
}

TEST_F(HttpsTest, GarbageBeforeTheHandshakeIsRefused) {
  ASSERT_TRUE(start({.tls = tls()}));
  StderrCapture capture(pki_.dir() / "log");
  raw_exchange(std::string("\x16\x03\x01\xff\xff garbage garbage garbage", 27) + std::string(64, '\x01'));
  raw_exchange(std::string(300, '\0'));
  expect_still_serving();
  const std::string log = capture.wait_lines(2);
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 2) << log;
  EXPECT_THAT(log, HasSubstr("HTTPS: refused the connection from 127.0.0.1:"));
}

TEST_F(HttpsTest, AStalledHandshakeIsClosedAfterTheBound) {
  ASSERT_TRUE(start({.tls = tls()}));
  StderrCapture capture(pki_.dir() / "log");
  raw_exchange("");                              // connects and says nothing
  raw_exchange(std::string("\x16\x03\x01", 3));  // the first bytes of a hello, then nothing
  expect_still_serving();
  const std::string log = capture.wait_lines(2);
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 2) << log;
  EXPECT_THAT(log, HasSubstr("its TLS handshake did not finish within 400 ms"));
}

TEST_F(HttpsTest, RequiredClientCertificatesRefuseNoneWrongCaAndExpired) {
  ASSERT_TRUE(start({.tls = tls(ClientCertificates::required), .credentials_file = credentials_}));
  auto other_ca = pki_.ca("other-ca");
  auto stranger = pki_.issue(other_ca, "stranger", "orders-writer", false);
  auto expired = pki_.issue(ca_, "expired", "orders-writer", false, -30, -1);

  StderrCapture capture(pki_.dir() / "log");
  EXPECT_EQ(call({}).status, 0);
  EXPECT_EQ(call({.client = stranger}).status, 0);
  EXPECT_EQ(call({.client = expired}).status, 0);
  auto ok = call({.path = "/whoami", .client = writer_});
  const std::string log = capture.wait_lines(3);

  EXPECT_THAT(log, HasSubstr("presented no certificate and one is required"));
  EXPECT_THAT(log, HasSubstr("the client certificate is not accepted: unable to get local issuer certificate"));
  EXPECT_THAT(log, HasSubstr("the client certificate is not accepted: certificate has expired"));
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 3) << log;
  ASSERT_EQ(ok.status, 200) << ok.handshake_error;
  auto who = nlohmann::json::parse(ok.body);
  EXPECT_EQ(who["name"], "writer-service");
  EXPECT_EQ(who["roles"], nlohmann::json::array({"writer"}));
  EXPECT_EQ(who["by"], "certificate");
}

TEST_F(HttpsTest, ARevokedClientCertificateIsRefusedAndANewListIsPickedUpByAReload) {
  auto revoked = pki_.issue(ca_, "revoked", "orders-writer", false);
  auto options = tls(ClientCertificates::required);
  options.crl_file = pki_.crl(ca_, "clients", {revoked.serial});
  ASSERT_TRUE(start({.tls = options}));

  StderrCapture capture(pki_.dir() / "log");
  auto refused = call({.client = revoked});
  EXPECT_EQ(refused.status, 0);
  const std::string log = capture.wait_lines(1);
  EXPECT_THAT(log, HasSubstr("the client certificate is not accepted: certificate revoked"));
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 1) << log;
  auto served = call({.client = writer_});
  EXPECT_EQ(served.status, 200) << served.handshake_error;

  // The CA revokes the writer too and lifts the first revocation: a reload
  // (what SIGHUP does) picks the new list up for new connections.
  pki_.crl(ca_, "clients", {writer_.serial});
  EXPECT_EQ(call({.client = writer_}).status, 200);  // not yet reloaded
  ASSERT_TRUE(server_->reload());
  EXPECT_EQ(call({.client = writer_}).status, 0);
  auto readmitted = call({.client = revoked});
  EXPECT_EQ(readmitted.status, 200) << readmitted.handshake_error;

  // A broken list is refused by name and the current one stays.
  write_file(options.crl_file, "not a CRL");
  auto broken = server_->reload();
  ASSERT_FALSE(broken);
  EXPECT_THAT(broken.error().message(), HasSubstr("TlsOptions::crl_file " + options.crl_file));
  EXPECT_EQ(call({.client = writer_}).status, 0);
}

TEST_F(HttpsTest, ACrlNeedsClientCertificates) {
  auto options = tls();
  options.crl_file = pki_.crl(ca_, "clients", {});
  auto started = start({.tls = options});
  ASSERT_FALSE(started);
  EXPECT_THAT(started.error().message(), HasSubstr("tls.crl_file needs client certificates"));
}

TEST_F(HttpsTest, OptionalClientCertificatesServeAnonymousCallersAndNameTheOthers) {
  ASSERT_TRUE(start({.tls = tls(ClientCertificates::optional)}));
  auto anonymous = call({.path = "/whoami"});
  ASSERT_EQ(anonymous.status, 200);
  EXPECT_TRUE(nlohmann::json::parse(anonymous.body)["name"].is_null());
  auto named = call({.path = "/whoami", .client = writer_});
  ASSERT_EQ(named.status, 200);
  EXPECT_EQ(nlohmann::json::parse(named.body)["name"], "orders-writer");  // no credentials file: the CN
  auto expired = pki_.issue(ca_, "expired", "orders-writer", false, -30, -1);
  EXPECT_EQ(call({.path = "/whoami", .client = expired}).status, 0);
}

TEST_F(HttpsTest, TokensMapToPrincipalsThatBehavioursAuthorize) {
  ASSERT_TRUE(start({.tls = tls(), .credentials_file = credentials_}));
  const std::string open = R"({"owner":"ann","initial":5})";
  auto by_reader = call({.method = "POST", .path = "/accounts", .body = open, .token = "r3ader-token"});
  EXPECT_EQ(by_reader.status, 403);
  EXPECT_THAT(by_reader.body, HasSubstr("rita may not send bank.open.v1"));
  auto by_writer = call({.method = "POST", .path = "/accounts", .body = open, .token = "wr1ter-token"});
  EXPECT_EQ(by_writer.status, 201) << by_writer.body;
  EXPECT_EQ(call({.path = "/accounts/1", .token = "r3ader-token"}).status, 200);
  auto anonymous = call({.path = "/accounts/1"});
  EXPECT_EQ(anonymous.status, 401);
  auto unknown = call({.path = "/accounts/1", .token = "made-up"});
  EXPECT_EQ(unknown.status, 401);
  EXPECT_THAT(unknown.body, HasSubstr("the bearer token is not known"));
  EXPECT_THAT(behaviour_->seen(), ::testing::ElementsAre("rita", "walt", "rita", ""));
}

TEST_F(HttpsTest, TokensWorkOverPlainHttpToo) {
  ASSERT_TRUE(start({.credentials_file = credentials_}));
  HttpClient client(server_->port());
  auto who = client.request("GET", "/whoami", "", {{"Authorization", "Bearer wr1ter-token"}});
  ASSERT_EQ(who.status, 200);
  EXPECT_EQ(who.json()["name"], "walt");
}

TEST_F(HttpsTest, CertificatesReloadForNewConnections) {
  ASSERT_TRUE(start({.tls = tls(), .credentials_file = credentials_}));
  EXPECT_EQ(call({}).server_name, "node-one");
  // The files are replaced in place, as a certificate manager does.
  auto renewed = pki_.issue(ca_, "renewed", "node-one-renewed", true);
  std::filesystem::copy_file(renewed.certificate, server_cert_.certificate, std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(renewed.key, server_cert_.key, std::filesystem::copy_options::overwrite_existing);
  write_file(credentials_, "token fresh-token fred reader\n");
  EXPECT_EQ(call({}).server_name, "node-one");  // not yet reloaded
  ASSERT_TRUE(server_->reload());
  auto after = call({.path = "/whoami", .token = "fresh-token"});
  EXPECT_EQ(after.server_name, "node-one-renewed");
  EXPECT_EQ(nlohmann::json::parse(after.body)["name"], "fred");

  // A broken file is refused by name and the current certificate stays.
  write_file(server_cert_.key, "not a key");
  auto broken = server_->reload();
  ASSERT_FALSE(broken);
  EXPECT_THAT(broken.error().message(), HasSubstr(server_cert_.key));
  EXPECT_EQ(call({}).server_name, "node-one-renewed");
}

TEST_F(HttpsTest, ChangedFilesAreReloadedEveryInterval) {
  auto options = tls();
  options.reload_interval = std::chrono::milliseconds(50);
  ASSERT_TRUE(start({.tls = options}));
  EXPECT_EQ(call({}).server_name, "node-one");
  auto renewed = pki_.issue(ca_, "renewed", "node-one-renewed", true);
  std::filesystem::copy_file(renewed.key, server_cert_.key, std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(renewed.certificate, server_cert_.certificate, std::filesystem::copy_options::overwrite_existing);
  EXPECT_TRUE(testsupport::wait_for([&] { return call({}).server_name == "node-one-renewed"; }));
}

TEST_F(HttpsTest, BadTlsOptionsAreRefusedAtStartByName) {
  auto missing = tls();
  missing.cert_file = (pki_.dir() / "absent.crt").string();
  auto started = start({.tls = missing});
  ASSERT_FALSE(started);
  EXPECT_THAT(started.error().message(), HasSubstr("TlsOptions::cert_file"));
  EXPECT_THAT(started.error().message(), HasSubstr("absent.crt"));

  auto mismatched = tls();
  mismatched.key_file = writer_.key;
  started = start({.tls = mismatched});
  ASSERT_FALSE(started);
  EXPECT_THAT(started.error().message(), HasSubstr("does not match"));

  auto expired = tls();
  auto old = pki_.issue(ca_, "old-server", "node-old", true, -30, -1);
  expired.cert_file = old.certificate;
  expired.key_file = old.key;
  started = start({.tls = expired});
  ASSERT_FALSE(started);
  EXPECT_THAT(started.error().message(), HasSubstr("has expired"));

  auto no_ca = tls(ClientCertificates::required);
  no_ca.client_ca_file.clear();
  started = start({.tls = no_ca});
  ASSERT_FALSE(started);
  EXPECT_THAT(started.error().message(), HasSubstr("client_ca_file is empty"));

  write_file(credentials_, "token only-two-words\n");
  started = start({.credentials_file = credentials_});
  ASSERT_FALSE(started);
  EXPECT_THAT(started.error().message(), HasSubstr("credentials:1: expected"));
}

}  // namespace
}  // namespace catga::testing

namespace catga::testing {
namespace {

// The principal is the caller's to set on CommandOptions/QueryOptions; HTTP is
// one caller. A behaviour sees it, and nullptr when none was given.
TEST(PrincipalTest, ReachesBehavioursFromTheOptionsOfAnyCaller) {
  auto behaviour = std::make_unique<WriterOnly>();
  WriterOnly* seen = behaviour.get();
  catga::ApplicationBuilder<bank::State> builder;
  register_test_handlers(builder).use(std::move(behaviour)).in_memory();
  auto app = builder.build();
  ASSERT_TRUE(app) << app.error();
  auto writer = std::make_shared<const Principal>(Principal{.name = "walt", .roles = {"writer"}, .authenticated_by = "token"});
  auto reader = std::make_shared<const Principal>(Principal{.name = "rita", .roles = {"reader"}, .authenticated_by = "token"});
  EXPECT_TRUE((*app)->send(bank::Open{.owner = "ann", .initial = 1}, CommandOptions{.principal = writer}));
  auto refused = (*app)->send(bank::Open{.owner = "bob", .initial = 1}, CommandOptions{.principal = reader});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), Code::permission_denied);
  EXPECT_TRUE((*app)->send(bank::GetAccount{.account = 1}, QueryOptions{.principal = reader}));
  EXPECT_EQ((*app)->send(bank::GetAccount{.account = 1}).error().code(), Code::unauthenticated);
  EXPECT_THAT(seen->seen(), ::testing::ElementsAre("walt", "rita", "rita", ""));
}

}  // namespace
}  // namespace catga::testing
