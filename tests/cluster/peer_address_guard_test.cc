// The version guard of explicit peer addresses (member_address.hpp): the
// configuration stores them as "RAFT/PEER", which a build older than apply
// format 2 would dial as written, so the leader adds a member with one only
// once every member has announced a build that reads it.
#include <gtest/gtest.h>

#include <string>
#include <thread>

#include "catga/testing.hpp"
#include "cluster/member_address.hpp"
#include "support/bank.hpp"
#include "support/cluster.hpp"

using catga::Code;
using catga::Member;
using catga::MemberAnnouncement;
using catga::MemberRole;
using catga::NodeStatus;
using catga::internal::peer_address_refusal;
using namespace catga::testing;
using ::testing::HasSubstr;
using testsupport::LocalCluster;
using testsupport::wait_for;

namespace {

NodeStatus members_with(std::vector<MemberAnnouncement> announcements) {
  NodeStatus s;
  for (std::uint64_t id : {1, 2, 3}) s.members.push_back({Member{id, "127.0.0.1:700" + std::to_string(id)}, {}});
  s.announcements = std::move(announcements);
  return s;
}

MemberAnnouncement announced(std::uint64_t id, std::uint32_t max_format) {
  return {.id = id, .min_format = 1, .max_format = max_format, .commands = {}, .events = {}};
}

const Member kWithPeer{4, "127.0.0.1:7004", MemberRole::voter, "127.0.0.1:8004"};
const Member kWithoutPeer{4, "127.0.0.1:7004", MemberRole::voter, {}};

void register_bank(catga::ApplicationBuilder<bank::State>& b, std::size_t) { bank::register_handlers(b); }

// add_member, asked again while an earlier membership change still runs.
catga::Result<void> add_when_idle(catga::Application& leader, const Member& m) {
  catga::Result<void> r = catga::Error{Code::unavailable, "not tried"};
  for (int attempt = 0; attempt < 50; ++attempt) {
    r = leader.add_member(m);
    if (r || r.error().message().find("in progress") == std::string::npos) return r;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return r;
}

}  // namespace

TEST(PeerAddressGuard, EveryMemberAtFormatTwoLetsItThrough) {
  const auto s = members_with({announced(1, 2), announced(2, 2), announced(3, 3)});
  EXPECT_FALSE(peer_address_refusal(kWithPeer, s));
}

TEST(PeerAddressGuard, AMemberAtFormatOneOrWithoutAnnouncementRefusesNamingIt) {
  const auto refused = peer_address_refusal(kWithPeer, members_with({announced(1, 2), announced(2, 1)}));
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->code(), Code::failed_precondition);
  const std::string message(refused->message());
  EXPECT_NE(message.find("2 (apply formats up to 1), 3 (no announcement yet)"), std::string::npos) << message;
  EXPECT_NE(message.find("127.0.0.1:8004"), std::string::npos) << message;
  EXPECT_EQ(message.find("1 ("), std::string::npos) << message;
}

TEST(PeerAddressGuard, NoPeerAddressNeedsNoGuard) {
  EXPECT_FALSE(peer_address_refusal(kWithoutPeer, members_with({})));
}

// A real cluster: a spare added but never started has no announcement, so a
// member with a peer address waits until it is gone.
TEST(PeerAddressGuard, TheLeaderRefusesAPeerAddressWhileAMemberHasNotAnnounced) {
  LocalCluster<bank::State> cluster(3, register_bank);
  auto leader = cluster.leader();
  ASSERT_TRUE(leader);
  catga::Application& app = cluster.app(*leader);
  ASSERT_TRUE(wait_for([&] { return app.status().announcements.size() == 3; }));

  const int silent_port = testsupport::free_port();
  ASSERT_THAT(add_when_idle(app, Member{4, "127.0.0.1:" + std::to_string(silent_port), MemberRole::spare, {}}), IsOk());
  const Member with_peer{5, "127.0.0.1:" + std::to_string(testsupport::free_port()), MemberRole::spare,
                         "127.0.0.1:" + std::to_string(testsupport::free_port())};
  auto refused = app.add_member(with_peer);
  EXPECT_THAT(refused, HasError(Code::failed_precondition, HasSubstr("4 (no announcement yet)")));
  for (const auto& m : app.status().members) EXPECT_NE(m.member.id, 5u);

  ASSERT_THAT(app.remove_member(4), IsOk());
  ASSERT_THAT(add_when_idle(app, with_peer), IsOk());
  bool listed = false;
  for (const auto& m : app.status().members) {
    if (m.member.id == 5) listed = m.member.peer_address == with_peer.peer_address;
  }
  EXPECT_TRUE(listed);
}
