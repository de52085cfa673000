// The peer channel against bad input: garbage, oversized frames, wrong
// protocol versions, wrong cluster ids or secrets. Each closes that one
// connection; the node keeps serving. Plus the protocol's own codec.
#include <gtest/gtest.h>

#include <future>

#include <asio/connect.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>

#include "catga/testing.hpp"
#include "cluster/peer_channel.hpp"
#include "cluster/peer_protocol.hpp"
#include "cluster/raft_auth.h"
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

constexpr std::uint64_t kRawClientId = 99;
const std::string kRawNonce(peer::kNonceBytes, 'n');

std::string hello(unsigned version = peer::kVersion, std::string cluster = "catga", std::string nonce = kRawNonce) {
  std::string out;
  peer::append_hello(out, {version, std::move(cluster), std::move(nonce), kRawClientId});
  return out;
}

// The client's side of the handshake with `secret` (src/cluster/raft_auth.h,
// channel "peer"): hello, challenge, proof; returns the server's last word.
catga::Result<peer::Welcome> greet(RawClient& c, const std::string& secret = testsupport::kClusterSecret) {
  c.write(hello());
  const std::string body = c.read_frame_body();
  auto challenge = peer::decode_challenge(body);
  if (!challenge) return peer::decode_welcome(body);
  std::string mac(peer::kMacBytes, '\0');
  const int rv = catga_auth_mac(secret.data(), secret.size(), "peer", 'D', "catga",
                                reinterpret_cast<const std::uint8_t*>(kRawNonce.data()),
                                reinterpret_cast<const std::uint8_t*>(challenge->nonce.data()), kRawClientId,
                                challenge->node_id, reinterpret_cast<std::uint8_t*>(mac.data()));
  EXPECT_EQ(rv, 0);
  std::string proof;
  peer::append_proof(proof, mac);
  c.write(proof);
  return peer::decode_welcome(c.read_frame_body());
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

// The bootstrap guard's question and its answer (bootstrap_guard.hpp).
TEST(PeerProtocol, RoundTripsTheMemberQuestionAndItsAnswer) {
  std::string bytes;
  peer::Message q;
  q.type = peer::Type::member;
  q.id = 3;
  q.member.node_id = 42;
  peer::append_message(bytes, q);
  auto qb = peer::decode_message(std::string_view(bytes).substr(4), 100);
  ASSERT_THAT(qb, IsOk());
  EXPECT_EQ(qb->type, peer::Type::member);
  EXPECT_EQ(qb->member.node_id, 42u);

  for (const peer::MemberState& state : {peer::MemberState{42, true, "10952968.1795994340386094448", 9, true},
                                         peer::MemberState{42, false, "", 1, false}}) {
    std::string reply;
    peer::Message a;
    a.type = peer::Type::member_state;
    a.id = 3;
    a.member = state;
    peer::append_message(reply, a);
    auto ab = peer::decode_message(std::string_view(reply).substr(4), 100);
    ASSERT_THAT(ab, IsOk());
    EXPECT_EQ(ab->type, peer::Type::member_state);
    EXPECT_EQ(ab->member, state);
    // Cut short: refused, never half-read.
    EXPECT_FALSE(peer::decode_message(std::string_view(reply).substr(4, reply.size() - 5), 100));
  }
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
  auto welcome = greet(c);
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
  LocalCluster<bank::State> cluster(3, register_bank);
  auto leader = cluster.leader();
  ASSERT_TRUE(leader);
  {
    // A hello without a nonce: a client without the secret.
    RawClient c(cluster.member(*leader).peer_address);
    c.write(hello(peer::kVersion, "catga", ""));
    auto welcome = peer::decode_welcome(c.read_frame_body());
    ASSERT_THAT(welcome, IsOk());
    EXPECT_FALSE(welcome->accepted);
    EXPECT_THAT(welcome->reason, HasSubstr("secret"));
  }
  {
    RawClient c(cluster.member(*leader).peer_address);
    auto welcome = greet(c, "a-guess-at-the-secret");
    ASSERT_THAT(welcome, IsOk());
    EXPECT_FALSE(welcome->accepted);
    EXPECT_THAT(welcome->reason, HasSubstr("wrong peer secret"));
  }
  {
    // The same exchange with the secret is welcomed: the refusal above is the secret's doing.
    RawClient c(cluster.member(*leader).peer_address);
    auto welcome = greet(c);
    ASSERT_THAT(welcome, IsOk());
    EXPECT_TRUE(welcome->accepted);
  }
  // Members that share the secret forward as usual.
  std::size_t follower = (*leader + 1) % 3;
  ASSERT_TRUE(testsupport::wait_for([&] { return cluster.app(follower).status().leader_id != 0; }));
  EXPECT_THAT(cluster.app(follower).send(bank::Open{.owner = "ok"}), IsOk());
}

// Slowloris on the peer port: a client that connects and says nothing, or
// stops after its hello, is closed once peer_handshake_timeout has passed.
TEST(PeerChannelSecret, AStalledHandshakeIsClosedAfterTheBound) {
  LocalCluster<bank::State> cluster(3, register_bank, [](catga::ClusterOptions& o) {
    o.peer_handshake_timeout = std::chrono::milliseconds(300);
  });
  auto leader = cluster.leader();
  ASSERT_TRUE(leader);
  RawClient silent(cluster.member(*leader).peer_address);
  RawClient after_hello(cluster.member(*leader).peer_address);
  after_hello.write(hello());
  EXPECT_EQ(silent.read_until_closed(), "");
  auto challenge = peer::decode_challenge(after_hello.read_frame_body());
  EXPECT_THAT(challenge, IsOk());
  EXPECT_EQ(after_hello.read_until_closed(), "");
  std::size_t follower = (*leader + 1) % 3;
  ASSERT_TRUE(testsupport::wait_for([&] { return cluster.app(follower).status().leader_id != 0; }));
  EXPECT_THAT(cluster.app(follower).send(bank::Open{.owner = "ok"}), IsOk());
}

// A member configured with another secret cannot forward: its forwarded
// commands fail as unavailable, nothing reaches the leader's log.
TEST(PeerChannelSecret, AMemberWithAnotherSecretCannotForward) {
  PeerChannel::Handler handler;
  handler.forward = [](std::vector<std::string>, PeerChannel::RecordDone) { ADD_FAILURE() << "forwarded"; };
  handler.read_index = [](PeerChannel::IndexDone) { ADD_FAILURE() << "read index"; };
  const int port = testsupport::free_port();
  auto server = PeerChannel::start({.listen_address = "127.0.0.1:" + std::to_string(port), .node_id = 1,
                                    .cluster_id = "catga", .secret = testsupport::kClusterSecret},
                                   handler);
  ASSERT_THAT(server, IsOk());
  auto client = PeerChannel::start({.node_id = 2, .cluster_id = "catga", .secret = "another-secret-16b"}, {});
  ASSERT_THAT(client, IsOk());
  std::promise<peer::Outcome> outcome;
  (*client)->forward("127.0.0.1:" + std::to_string(port), "record",
                     [&](peer::Outcome o) { outcome.set_value(std::move(o)); });
  auto f = outcome.get_future();
  ASSERT_EQ(f.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  const peer::Outcome o = f.get();
  EXPECT_EQ(o.code, Code::unavailable);
  EXPECT_THAT(o.bytes, HasSubstr("secret"));
}
