// catga/hosting.hpp: the member-list parser on good and bad input, the
// signal-owned shutdown (real signals, delivered to this thread), and the
// JSON log format.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "catga/hosting.hpp"
#include "catga/logging.hpp"
#include "http/http_test_support.hpp"

namespace catga::testing {
namespace {

using ::testing::HasSubstr;

TEST(ParseMembers, ReadsIdsAndAddresses) {
  auto members = hosting::parse_members("1=127.0.0.1:7001, 2=node-b.orders.svc:7011,3=[::1]:7021");
  ASSERT_TRUE(members) << members.error();
  ASSERT_EQ(members->size(), 3u);
  EXPECT_EQ((*members)[0], (Member{.id = 1, .address = "127.0.0.1:7001"}));
  EXPECT_EQ((*members)[1].address, "node-b.orders.svc:7011");
  EXPECT_EQ((*members)[2].id, 3u);
  EXPECT_EQ((*members)[2].address, "[::1]:7021");
}

TEST(ParseMembers, ReadsPeerAddressesAfterASlash) {
  auto members = hosting::parse_members("1=127.0.0.1:7001/127.0.0.1:8001, 2=node-b:7002 / [::1]:8002,3=node-c:7003");
  ASSERT_TRUE(members) << members.error();
  ASSERT_EQ(members->size(), 3u);
  EXPECT_EQ((*members)[0], (Member{.id = 1, .address = "127.0.0.1:7001", .peer_address = "127.0.0.1:8001"}));
  EXPECT_EQ((*members)[1], (Member{.id = 2, .address = "node-b:7002", .peer_address = "[::1]:8002"}));
  EXPECT_EQ((*members)[2].peer_address, "");
}

struct BadList {
  const char* list;
  const char* says;
};

class ParseMembersBadInput : public ::testing::TestWithParam<BadList> {};

TEST_P(ParseMembersBadInput, IsRefusedNamingTheItem) {
  auto members = hosting::parse_members(GetParam().list);
  ASSERT_FALSE(members) << GetParam().list;
  EXPECT_EQ(members.error().code(), Code::invalid_argument);
  EXPECT_THAT(members.error().message(), HasSubstr(GetParam().says));
}

INSTANTIATE_TEST_SUITE_P(Lists, ParseMembersBadInput,
                         ::testing::Values(BadList{"", "empty"}, BadList{"  ", "empty"},
                                           BadList{"127.0.0.1:7001", "has no '='"},
                                           BadList{"x=127.0.0.1:7001", "positive integer id"},
                                           BadList{"0=h:1", "positive integer id"},
                                           BadList{"-1=h:1", "positive integer id"},
                                           BadList{"1=h:1,1=h:2", "repeats id 1"}, BadList{"1=:7001", "no HOST:PORT"},
                                           BadList{"1=host", "no HOST:PORT"}, BadList{"1=h:0", "port outside"},
                                           BadList{"1=h:70000", "port outside"}, BadList{"1=h:7001x", "port outside"},
                                           BadList{"1=h:1,", "empty item"}, BadList{"1=h:1,,2=h:2", "empty item"},
                                           BadList{"1=h:1/", "no HOST:PORT"}, BadList{"1=h:1/h", "no HOST:PORT"},
                                           BadList{"1=h:1/h:0", "port outside"}, BadList{"1=/h:2", "no HOST:PORT"},
                                           BadList{"1=h:1/h:2/h:3", "more than one '/'"}));

TEST(ShutdownSignals, RequestStopBeforeWaitIsNotLost) {
  hosting::ShutdownSignals signals;
  signals.request_stop();
  auto received = signals.wait();
  ASSERT_TRUE(received) << received.error();
  EXPECT_EQ(*received, 0);
}

TEST(ShutdownSignals, SigtermAndSigintEndTheWaitInsteadOfTheProcess) {
  for (int signal : {SIGTERM, SIGINT}) {
    hosting::ShutdownSignals signals;
    ASSERT_EQ(pthread_kill(pthread_self(), signal), 0);  // pending: blocked by `signals`
    auto received = signals.wait();
    ASSERT_TRUE(received) << received.error();
    EXPECT_EQ(*received, signal);
  }
}

// SIGHUP runs the reload handler and the wait goes on (it used to end the
// process: nobody blocked it); without a handler it is ignored.
TEST(ShutdownSignals, SighupRunsTheReloadHandlerAndTheWaitGoesOn) {
  {
    hosting::ShutdownSignals signals;
    int reloads = 0;
    signals.on_reload([&] {
      ++reloads;
      signals.request_stop();
    });
    ASSERT_EQ(pthread_kill(pthread_self(), SIGHUP), 0);  // pending: blocked by `signals`
    auto received = signals.wait();
    ASSERT_TRUE(received) << received.error();
    EXPECT_EQ(*received, 0);  // request_stop, not SIGHUP, ended the wait
    EXPECT_EQ(reloads, 1);
  }
  hosting::ShutdownSignals signals;  // no handler
  ASSERT_EQ(pthread_kill(pthread_self(), SIGHUP), 0);
  ASSERT_EQ(pthread_kill(pthread_self(), SIGTERM), 0);
  auto received = signals.wait();
  ASSERT_TRUE(received) << received.error();
  EXPECT_EQ(*received, SIGTERM);  // SIGHUP came first and was ignored
}

TEST(ShutdownSignals, ServeUntilSignalStopsTheServerThenTheApplication) {
  hosting::ShutdownSignals signals;
  catga::ApplicationBuilder<bank::State> builder;
  register_test_handlers(builder).in_memory();
  auto app = builder.build();
  ASSERT_TRUE(app) << app.error();
  http::Server server(**app);
  add_bank_routes(server);
  server.map_health();
  ASSERT_TRUE(server.start());
  const auto port = server.port();
  EXPECT_EQ(HttpClient(port).post("/accounts", R"({"owner":"ada"})").status, 201);

  std::thread stopper([&] {
    ASSERT_EQ(HttpClient(port).get("/health/live").status, 200);
    signals.request_stop();
  });
  auto stopped = hosting::serve_until_signal(signals, server, *app);
  stopper.join();
  ASSERT_TRUE(stopped) << stopped.error();
  EXPECT_EQ(*stopped, 0);
  EXPECT_EQ(*app, nullptr);
  EXPECT_THROW(HttpClient{port}, std::system_error);  // nothing listens any more
}

// Runs `body` with standard error redirected to a file; returns what it wrote.
template <class Body>
std::string capture_stderr(Body body) {
  char path[] = "/tmp/catga-log-XXXXXX";
  const int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  std::fflush(stderr);
  const int saved = dup(2);
  dup2(fd, 2);
  body();
  std::fflush(stderr);
  dup2(saved, 2);
  close(saved);
  close(fd);
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  unlink(path);
  return text.str();
}

TEST(LogFormat, JsonWritesOneEscapedObjectPerLine) {
  LogFormat format{};
  ASSERT_TRUE(parse_log_format("json", format));
  EXPECT_FALSE(parse_log_format("xml", format));
  const std::string written = capture_stderr([&] {
    set_log_format(LogFormat::json);
    log_message(LogLevel::warn, "a \"quoted\" line\nwith a newline, a tab\t, \xc3\xa9 and a stray \xff byte");
    log_message(LogLevel::debug, "below the level: dropped");
    set_log_format(LogFormat::text);
    log_message(LogLevel::info, "back to text");
  });
  std::istringstream lines(written);
  std::string line;
  ASSERT_TRUE(std::getline(lines, line));
  auto entry = nlohmann::json::parse(line);  // throws, failing the test, if not JSON
  EXPECT_EQ(entry["level"], "warn");
  EXPECT_EQ(entry["logger"], "catga");
  EXPECT_EQ(entry["message"], "a \"quoted\" line\nwith a newline, a tab\t, \xc3\xa9 and a stray \xef\xbf\xbd byte");
  EXPECT_THAT(entry["time"].get<std::string>(), ::testing::MatchesRegex("....-..-..T..:..:..\\.......Z"));
  ASSERT_TRUE(std::getline(lines, line));
  EXPECT_THAT(line, HasSubstr("[info] back to text"));
  EXPECT_FALSE(std::getline(lines, line));
}

}  // namespace
}  // namespace catga::testing
