#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "catga/cluster.hpp"

namespace catga {
namespace {

ClusterOptions valid() {
  ClusterOptions o;
  o.node_id = 1;
  o.members = {{1, "127.0.0.1:7001"}, {2, "127.0.0.1:7002"}, {3, "localhost:7003"}};
  o.data_dir = "/tmp/catga-options-test";
  return o;
}

void expect_invalid(const std::function<void(ClusterOptions&)>& mutate, const std::string& field) {
  ClusterOptions o = valid();
  mutate(o);
  auto r = o.validate();
  ASSERT_FALSE(r.has_value()) << "expected an error naming " << field;
  EXPECT_EQ(r.error().code(), Code::invalid_argument);
  EXPECT_NE(r.error().message().find(field), std::string::npos) << r.error().message();
}

TEST(ClusterOptions, DefaultsWithMembersAreValid) {
  auto r = valid().validate();
  EXPECT_TRUE(r.has_value()) << r.error().message();
}

TEST(ClusterOptions, SingleNodeIsValid) {
  ClusterOptions o = valid();
  o.members = {{1, "127.0.0.1:7001"}};
  EXPECT_TRUE(o.validate().has_value());
}

TEST(ClusterOptions, ShortPeerSecret) { expect_invalid([](auto& o) { o.peer_secret = "short"; }, "peer_secret"); }
TEST(ClusterOptions, PeerSecretOfSixteenBytesIsValid) {
  ClusterOptions o = valid();
  o.peer_secret = std::string(16, 's');
  EXPECT_TRUE(o.validate().has_value());
}
TEST(ClusterOptions, TlsNeedsAllThreeFiles) {
  expect_invalid([](auto& o) { o.tls_cert_file = "node-1.pem"; }, "tls_ca_file, tls_cert_file, tls_key_file");
  expect_invalid([](auto& o) {
    o.tls_ca_file = "ca.pem";
    o.tls_key_file = "node-1.key";
  }, "tls_ca_file, tls_cert_file, tls_key_file");
  ClusterOptions o = valid();
  o.tls_ca_file = "ca.pem";
  o.tls_cert_file = "node-1.pem";
  o.tls_key_file = "node-1.key";
  EXPECT_TRUE(o.tls_enabled());
  EXPECT_TRUE(o.validate().has_value());  // the files are read at start (raft_tls_test.cc)
}
TEST(ClusterOptions, AcceptedSecretsNeedASecretAndEach16Bytes) {
  expect_invalid([](auto& o) {
    o.peer_secret.clear();
    o.accepted_peer_secrets = {"an-accepted-secret-of-24"};
  }, "accepted_peer_secrets: needs peer_secret");
  expect_invalid([](auto& o) {
    o.peer_secret = "the-cluster-secret-of-24";
    o.accepted_peer_secrets = {"short"};
  }, "accepted_peer_secrets: each must be at least 16 bytes");
  ClusterOptions o = valid();
  o.peer_secret = "the-cluster-secret-of-24";
  o.accepted_peer_secrets = {"an-accepted-secret-of-24"};
  EXPECT_TRUE(o.validate().has_value());
}
TEST(ClusterOptions, CrlNeedsTls) {
  expect_invalid([](auto& o) { o.tls_crl_file = "cluster.crl"; }, "tls_crl_file: needs the three TLS files");
}
TEST(ClusterOptions, PeerHandshakeTimeoutZero) {
  expect_invalid([](auto& o) { o.peer_handshake_timeout = std::chrono::milliseconds(0); }, "peer_handshake_timeout");
}
TEST(ClusterOptions, NodeIdZero) { expect_invalid([](auto& o) { o.node_id = 0; }, "node_id"); }
TEST(ClusterOptions, NoMembers) { expect_invalid([](auto& o) { o.members.clear(); }, "members"); }
TEST(ClusterOptions, SelfNotInMembers) { expect_invalid([](auto& o) { o.node_id = 9; }, "members"); }
TEST(ClusterOptions, MemberIdZero) { expect_invalid([](auto& o) { o.members[1].id = 0; }, "members"); }
TEST(ClusterOptions, DuplicateId) { expect_invalid([](auto& o) { o.members[2].id = 2; }, "duplicate id"); }
TEST(ClusterOptions, DuplicateAddress) {
  expect_invalid([](auto& o) { o.members[2].address = "127.0.0.1:7002"; }, "duplicate address");
}
TEST(ClusterOptions, AddressWithoutPort) {
  expect_invalid([](auto& o) { o.members[0].address = "127.0.0.1"; }, "address");
}
TEST(ClusterOptions, AddressEmptyPort) {
  expect_invalid([](auto& o) { o.members[0].address = "127.0.0.1:"; }, "address");
}
TEST(ClusterOptions, AddressEmptyHost) { expect_invalid([](auto& o) { o.members[0].address = ":7001"; }, "address"); }
TEST(ClusterOptions, AddressPortZero) {
  expect_invalid([](auto& o) { o.members[0].address = "127.0.0.1:0"; }, "port");
}
TEST(ClusterOptions, AddressPortTooLarge) {
  expect_invalid([](auto& o) { o.members[0].address = "127.0.0.1:65536"; }, "port");
}
TEST(ClusterOptions, AddressPortNotNumeric) {
  expect_invalid([](auto& o) { o.members[0].address = "127.0.0.1:http"; }, "port");
}
TEST(ClusterOptions, AddressHostNamesAreValid) {
  ClusterOptions o = valid();
  o.members[0].address = "orders-0.orders.default.svc.cluster.local:7001";
  o.members[1].address = "node-2:7002";
  o.members[2].address = "node3.example.:7003";  // a fully qualified name with its trailing dot
  o.members[2].peer_address = "node3.example:8003";
  auto r = o.validate();
  EXPECT_TRUE(r.has_value()) << r.error().message();
}
TEST(ClusterOptions, AddressBadHostName) {
  expect_invalid([](auto& o) { o.members[0].address = "-node1:7001"; }, "DNS name");
  expect_invalid([](auto& o) { o.members[0].address = "node1-.example:7001"; }, "DNS name");
  expect_invalid([](auto& o) { o.members[0].address = "node..example:7001"; }, "DNS name");
  expect_invalid([](auto& o) { o.members[0].address = "node_1:7001"; }, "DNS name");
  expect_invalid([](auto& o) { o.members[0].address = "node1/x:7001"; }, "DNS name");
  expect_invalid([](auto& o) { o.members[0].address = std::string(64, 'a') + ".example:7001"; }, "DNS name");
  expect_invalid([](auto& o) { o.members[0].address = "300.1.1.1:7001"; }, "IPv4");
}
TEST(ClusterOptions, AddressTooLongForTheRaftHandshake) {
  std::string name;
  for (int i = 0; i < 5; ++i) name += std::string(50, 'a') + ".";
  expect_invalid([&](auto& o) { o.members[0].address = name + "x:7001"; }, "longer than 255");
}
TEST(ClusterOptions, AddressIpv6) {
  expect_invalid([](auto& o) { o.members[0].address = "[::1]:7001"; }, "IPv6 is not supported by the Raft transport");
  expect_invalid([](auto& o) { o.members[0].address = "::1:7001"; }, "IPv6");
}
TEST(ClusterOptions, PeerAddressIpv6IsValid) {
  ClusterOptions o = valid();
  o.members[0].peer_address = "[::1]:8001";
  o.members[1].peer_address = "[fd00::2]:8002";
  auto r = o.validate();
  EXPECT_TRUE(r.has_value()) << r.error().message();
}
TEST(ClusterOptions, PeerAddressBadIpv6) {
  expect_invalid([](auto& o) { o.members[0].peer_address = "::1:8001"; }, "[ADDRESS]:PORT");
  expect_invalid([](auto& o) { o.members[0].peer_address = "[::g]:8001"; }, "[ADDRESS]:PORT");
  expect_invalid([](auto& o) { o.members[0].peer_address = "[]:8001"; }, "[ADDRESS]:PORT");
}
TEST(ClusterOptions, NoVoter) {
  expect_invalid(
      [](auto& o) {
        for (auto& m : o.members) m.role = MemberRole::standby;
      },
      "voter");
}
TEST(ClusterOptions, UnknownRole) {
  expect_invalid([](auto& o) { o.members[1].role = static_cast<MemberRole>(7); }, "role");
}
TEST(ClusterOptions, DataDirEmpty) { expect_invalid([](auto& o) { o.data_dir.clear(); }, "data_dir"); }
TEST(ClusterOptions, ElectionTimeoutZero) {
  expect_invalid([](auto& o) { o.election_timeout = std::chrono::milliseconds(0); }, "election_timeout");
}
TEST(ClusterOptions, HeartbeatZero) {
  expect_invalid([](auto& o) { o.heartbeat_interval = std::chrono::milliseconds(0); }, "heartbeat_interval");
}
TEST(ClusterOptions, NegativeTimeouts) {
  expect_invalid([](auto& o) { o.election_timeout = std::chrono::milliseconds(-5); }, "election_timeout");
  expect_invalid([](auto& o) { o.heartbeat_interval = std::chrono::milliseconds(-5); }, "heartbeat_interval");
}
TEST(ClusterOptions, HeartbeatNotShorterThanElection) {
  expect_invalid([](auto& o) { o.heartbeat_interval = o.election_timeout; }, "heartbeat_interval");
  expect_invalid([](auto& o) { o.heartbeat_interval = o.election_timeout * 2; }, "heartbeat_interval");
}
TEST(ClusterOptions, SnapshotThresholdZero) {
  expect_invalid([](auto& o) { o.snapshot_threshold = 0; }, "snapshot_threshold");
}
TEST(ClusterOptions, SnapshotValuesTooLarge) {
  expect_invalid([](auto& o) { o.snapshot_threshold = 1ull << 40; }, "snapshot_threshold");
  expect_invalid([](auto& o) { o.snapshot_trailing = 1ull << 40; }, "snapshot_trailing");
}
TEST(ClusterOptions, SnapshotTrailingZero) {
  // libraft 0.22.1 would take the snapshot for an installed one.
  expect_invalid([](auto& o) { o.snapshot_trailing = 0; }, "snapshot_trailing");
}
TEST(ClusterOptions, SnapshotThresholdBytesBelowOneMiB) {
  expect_invalid([](auto& o) { o.snapshot_threshold_bytes = (1u << 20) - 1; }, "snapshot_threshold_bytes");
  expect_invalid([](auto& o) { o.snapshot_threshold_bytes = 64; }, "snapshot_threshold_bytes");
}
TEST(ClusterOptions, SnapshotThresholdBytesBelowMaxEntryBytes) {
  expect_invalid(
      [](auto& o) {
        o.max_entry_bytes = 4u << 20;
        o.snapshot_threshold_bytes = 2u << 20;
        o.snapshot_trailing_bytes = 1u << 20;
      },
      "snapshot_threshold_bytes");
}
TEST(ClusterOptions, SnapshotTrailingBytesAboveThresholdBytes) {
  expect_invalid(
      [](auto& o) {
        o.snapshot_threshold_bytes = 2u << 20;
        o.snapshot_trailing_bytes = (2u << 20) + 1;
      },
      "snapshot_trailing_bytes");
}
TEST(ClusterOptions, SmallestSnapshotByteBoundsAreValid) {
  ClusterOptions o = valid();
  o.snapshot_threshold_bytes = 1u << 20;  // = max_entry_bytes by default
  o.snapshot_trailing_bytes = 0;          // keeps one entry
  o.snapshot_trailing = 1;
  auto r = o.validate();
  EXPECT_TRUE(r.has_value()) << r.error().message();
  o.snapshot_trailing_bytes = o.snapshot_threshold_bytes;
  EXPECT_TRUE(o.validate().has_value());
}
TEST(ClusterOptions, MaxEntryBytesTooSmall) {
  expect_invalid([](auto& o) { o.max_entry_bytes = 16; }, "max_entry_bytes");
}
TEST(ClusterOptions, MaxEntryBytesTooLarge) {
  expect_invalid([](auto& o) { o.max_entry_bytes = std::size_t{1} << 30; }, "max_entry_bytes");
}
TEST(ClusterOptions, MaxEntriesInFlightZero) {
  expect_invalid([](auto& o) { o.max_entries_in_flight = 0; }, "max_entries_in_flight");
}
TEST(ClusterOptions, ToString) {
  EXPECT_EQ(to_string(MemberRole::voter), "voter");
  EXPECT_EQ(to_string(MemberRole::standby), "standby");
  EXPECT_EQ(to_string(MemberRole::spare), "spare");
  EXPECT_EQ(to_string(NodeRole::leader), "leader");
  EXPECT_EQ(to_string(NodeRole::follower), "follower");
  EXPECT_EQ(to_string(NodeRole::candidate), "candidate");
  EXPECT_EQ(to_string(NodeRole::unavailable), "unavailable");
}

}  // namespace
}  // namespace catga
