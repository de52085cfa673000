// The peer channel's addresses: a listener on an IPv6 literal, a name that
// resolves to several addresses (each tried in turn), a name that does not
// resolve. Real sockets on loopback.
#include <gtest/gtest.h>

#include <future>

#include "cluster/peer_channel.hpp"

using catga::Code;
using namespace catga::internal;

namespace {

// A listening channel whose read_index answers 42.
std::unique_ptr<PeerChannel> server(const std::string& listen_address) {
  PeerChannel::Handler handler;
  handler.forward = [](std::vector<std::string>, PeerChannel::RecordDone) {};
  handler.read_index = [](PeerChannel::IndexDone done) { done(std::uint64_t{42}); };
  auto channel = PeerChannel::start({.listen_address = listen_address, .node_id = 1, .cluster_id = "c"}, handler);
  if (!channel) return nullptr;
  return std::move(*channel);
}

catga::Result<std::uint64_t> read_index_at(const std::string& address) {
  auto client = PeerChannel::start({.node_id = 2, .cluster_id = "c"}, {});
  if (!client) return client.error();
  std::promise<catga::Result<std::uint64_t>> answer;
  auto f = answer.get_future();
  (*client)->read_index(address, [&answer](catga::Result<std::uint64_t> r) { answer.set_value(std::move(r)); });
  if (f.wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
    return catga::Error{Code::deadline_exceeded, "no answer"};
  }
  return f.get();
}

void expect_answer(const std::string& address) {
  auto r = read_index_at(address);
  ASSERT_TRUE(r) << address << ": " << r.error().message();
  EXPECT_EQ(*r, 42u);
}

TEST(PeerChannelAddress, ListensAndDialsAnIpv6Literal) {
  auto s = server("[::1]:0");
  if (!s) GTEST_SKIP() << "no IPv6 loopback here";
  expect_answer("[::1]:" + std::to_string(s->port()));
}

// "localhost" may resolve to ::1 before 127.0.0.1: the dialler tries each.
TEST(PeerChannelAddress, ANameIsResolvedAndEachAddressTried) {
  auto s = server("127.0.0.1:0");
  ASSERT_TRUE(s);
  expect_answer("localhost:" + std::to_string(s->port()));
}

TEST(PeerChannelAddress, AListenerTakesAName) {
  auto s = server("localhost:0");
  ASSERT_TRUE(s);
  expect_answer("127.0.0.1:" + std::to_string(s->port()));  // bound to localhost's IPv4 address
}

TEST(PeerChannelAddress, AnUnresolvableNameIsUnavailable) {
  auto r = read_index_at("no-such-member.invalid:7002");  // .invalid never resolves (RFC 6761)
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::unavailable);
  EXPECT_NE(r.error().message().find("cannot resolve"), std::string::npos) << r.error().message();
}

TEST(PeerChannelAddress, AListenerOnAnUnresolvableNameFailsToStart) {
  auto channel = PeerChannel::start({.listen_address = "no-such-member.invalid:0", .node_id = 1, .cluster_id = "c"}, {});
  ASSERT_FALSE(channel);
  EXPECT_NE(channel.error().message().find("cannot resolve"), std::string::npos) << channel.error().message();
}

}  // namespace
