// The peer channel against bad input: garbage, oversized frames, wrong
// protocol versions, wrong cluster ids or secrets. Each closes that one
// connection; the node keeps serving. Plus the protocol's own codec.
#include <gtest/gtest.h>

#include <asio/connect.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>

#include "catga/testing.hpp"
#include "cluster/peer_channel.hpp"
#include "cluster/peer_protocol.hpp"
#include "support/bank.hpp"
#include "support/cluster.hpp"

using catga::Code;
using namespace catga::internal;
using namespace catga::testing;
using ::testing::HasSubstr;
using testsupport::LocalCluster;

namespace {

// A raw client: writes bytes, reads what comes back until the peer closes.
class RawClient {
 public:
  explicit RawClient(const std::string& address) : socket_(io_) {
    auto colon = address.rfind(':');
    asio::ip::tcp::endpoint ep(asio::ip::make_address(address.substr(0, colon)),
                               static_cast<unsigned short>(std::stoi(address.substr(colon + 1))));
    socket_.connect(ep);
  }
  void write(const std::string& bytes) { asio::write(socket_, asio::buffer(bytes)); }
  // Everything until EOF (the server closed the connection).
  std::string read_until_closed() {
    std::string all;
    char buf[4096];
    asio::error_code ec;
    while (true) {
      auto n = socket_.read_some(asio::buffer(buf), ec);
      if (ec) break;
      all.append(buf, n);
    }
    return all;
  }
  std::string read_frame_body() {
    std::string header(peer::kHeaderBytes, '\0');
    asio::read(socket_, asio::buffer(header));
    auto len = peer::body_length(header, 1 << 20);
    std::string body(*len, '\0');
    asio::read(socket_, asio::buffer(body));
    return body;
  }

 private:
  asio::io_context io_;
  asio::ip::tcp::socket socket_;
};

std::string hello(unsigned version = peer::kVersion, std::string cluster = "catga",
                  std::string secret = testsupport::kClusterSecret) {
  std::string out;
  peer::append_hello(out, {version, std::move(cluster), std::move(secret), 99});
  return out;
}

void register_bank(catga::ApplicationBuilder<bank::State>& b, std::size_t) { bank::register_handlers(b); }

}  // namespace

TEST(PeerProtocol, RoundTripsEveryMessage) {
  std::string bytes;
  peer::Message m;
  m.type = peer::Type::forward;
  m.id = 7;
  m.records = {"a", std::string(300, 'b')};
  peer::append_message(bytes, m);
  auto len = peer::body_length(std::string_view(bytes).substr(0, 4), 1 << 20);
  ASSERT_THAT(len, IsOk());
  auto back = peer::decode_message(std::string_view(bytes).substr(4), 100);
  ASSERT_THAT(back, IsOk());
  EXPECT_EQ(back->records, m.records);
  EXPECT_EQ(back->id, 7u);

  std::string reply;
  peer::Message r;
  r.type = peer::Type::forwarded;
  r.id = 7;
  r.outcomes = {{Code::ok, "res", 12}, {Code::unavailable, "not the leader", 0}};
  peer::append_message(reply, r);
  auto rb = peer::decode_message(std::string_view(reply).substr(4), 100);
  ASSERT_THAT(rb, IsOk());
  ASSERT_EQ(rb->outcomes.size(), 2u);
  EXPECT_EQ(rb->outcomes[0].index, 12u);
  EXPECT_EQ(rb->outcomes[1].code, Code::unavailable);
}

TEST(PeerProtocol, RejectsBadFrames) {
  EXPECT_THAT(peer::body_length(std::string("\xff\xff\xff\x7f", 4), 1 << 20), HasError(Code::invalid_argument, HasSubstr("exceeds")));
  EXPECT_THAT(peer::body_length(std::string("\0\0\0\0", 4), 1 << 20), HasCode(Code::invalid_argument));
  EXPECT_THAT(peer::decode_hello("garbage"), HasCode(Code::invalid_argument));
  EXPECT_THAT(peer::decode_message(catga::encode(std::vector<int>{9, 1}), 10), HasError(Code::invalid_argument, HasSubstr("unknown message type")));
  std::string bytes;
  peer::Message m;
  m.type = peer::Type::forward;
  m.id = 1;
  m.records = {"x", "y", "z"};
  peer::append_message(bytes, m);
  EXPECT_THAT(peer::decode_message(std::string_view(bytes).substr(4), 2), HasCode(Code::invalid_argument));
  for (std::size_t cut = 4; cut < bytes.size(); ++cut) {
    EXPECT_THAT(peer::decode_message(std::string_view(bytes).substr(4, cut - 4), 10), HasCode(Code::invalid_argument));
  }
}

class PeerChannelAbuse : public ::testing::Test {
 protected:
  void SetUp() override {
    leader_ = cluster_.leader();
    ASSERT_TRUE(leader_);
    follower_ = (*leader_ + 1) % 3;
  }
  std::string peer_address(std::size_t i) { return cluster_.member(i).peer_address; }
  // The cluster still serves, including forwarding from a follower.
  void expect_still_serving() {
    ASSERT_TRUE(testsupport::wait_for([&] { return cluster_.app(follower_).status().leader_id != 0; }));
    EXPECT_THAT(cluster_.app(follower_).send(bank::Open{.owner = "still-here"}), IsOk());
  }

  LocalCluster<bank::State> cluster_{3, register_bank};
  std::optional<std::size_t> leader_;
  std::size_t follower_ = 0;
};

TEST_F(PeerChannelAbuse, GarbageClosesTheConnection) {
  RawClient c(peer_address(*leader_));
  c.write(std::string("\x10\x00\x00\x00", 4) + std::string(16, '\xc1'));
  (void)c.read_until_closed();
  expect_still_serving();
}

TEST_F(PeerChannelAbuse, OversizedFrameClosesTheConnection) {
  RawClient c(peer_address(*leader_));
  c.write(std::string("\xff\xff\xff\x7f", 4));
  EXPECT_EQ(c.read_until_closed(), "");
  expect_still_serving();
}

TEST_F(PeerChannelAbuse, WrongVersionIsRefused) {
  RawClient c(peer_address(*leader_));
  c.write(hello(peer::kVersion + 1));
  auto welcome = peer::decode_welcome(c.read_frame_body());
  ASSERT_THAT(welcome, IsOk());
  EXPECT_FALSE(welcome->accepted);
  EXPECT_THAT(welcome->reason, HasSubstr("version"));
  (void)c.read_until_closed();
  expect_still_serving();
}

TEST_F(PeerChannelAbuse, WrongClusterIdIsRefused) {
  RawClient c(peer_address(*leader_));
  c.write(hello(peer::kVersion, "another-cluster"));
  auto welcome = peer::decode_welcome(c.read_frame_body());
  ASSERT_THAT(welcome, IsOk());
  EXPECT_FALSE(welcome->accepted);
  EXPECT_THAT(welcome->reason, HasSubstr("cluster id"));
  expect_still_serving();
}

TEST_F(PeerChannelAbuse, ForwardBeforeHelloIsRefused) {
  RawClient c(peer_address(*leader_));
  std::string bytes;
  peer::Message m;
  m.type = peer::Type::forward;
  m.id = 1;
  m.records = {"anything"};
  peer::append_message(bytes, m);
  c.write(bytes);
  auto welcome = peer::decode_welcome(c.read_frame_body());
  ASSERT_THAT(welcome, IsOk());
  EXPECT_FALSE(welcome->accepted);
  expect_still_serving();
}

TEST_F(PeerChannelAbuse, GarbageRecordAfterHelloIsRefusedBeforeTheLog) {
  RawClient c(peer_address(*leader_));
  c.write(hello());
  auto welcome = peer::decode_welcome(c.read_frame_body());
  ASSERT_THAT(welcome, IsOk());
  ASSERT_TRUE(welcome->accepted);
  std::string bytes;
  peer::Message m;
  m.type = peer::Type::forward;
  m.id = 5;
  m.records = {"not an envelope"};
  peer::append_message(bytes, m);
  c.write(bytes);
  auto reply = peer::decode_message(c.read_frame_body(), 10);
  ASSERT_THAT(reply, IsOk());
  ASSERT_EQ(reply->outcomes.size(), 1u);
  EXPECT_EQ(reply->outcomes[0].code, Code::invalid_argument);
  EXPECT_THAT(reply->outcomes[0].bytes, HasSubstr("envelope"));
  expect_still_serving();
}

TEST(PeerChannelSecret, PeersWithoutTheSecretAreRefused) {
  LocalCluster<bank::State> cluster(3, register_bank, [](catga::ClusterOptions& o) { o.peer_secret = "s3cret-s3cret-s3cret"; });
  auto leader = cluster.leader();
  ASSERT_TRUE(leader);
  RawClient c(cluster.member(*leader).peer_address);
  c.write(hello(peer::kVersion, "catga", "guess"));
  auto welcome = peer::decode_welcome(c.read_frame_body());
  ASSERT_THAT(welcome, IsOk());
  EXPECT_FALSE(welcome->accepted);
  EXPECT_THAT(welcome->reason, HasSubstr("secret"));
  // Members that share the secret forward as usual.
  std::size_t follower = (*leader + 1) % 3;
  ASSERT_TRUE(testsupport::wait_for([&] { return cluster.app(follower).status().leader_id != 0; }));
  EXPECT_THAT(cluster.app(follower).send(bank::Open{.owner = "ok"}), IsOk());
}
