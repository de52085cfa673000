// The version guard of explicit peer addresses (member_address.hpp): the
// configuration stores them as "RAFT/PEER", which a build older than apply
// format 2 would dial as written, so the leader adds a member with one only
// once every member has announced a build that reads it — and once the node
// listening at that peer address, asked over the peer channel, said it is the
// member being added and implements format 2 (the joiner check).
#include <gtest/gtest.h>

#include <string>
#include <thread>

#include "catga/testing.hpp"
#include "cluster/member_address.hpp"
#include "cluster/peer_channel.hpp"
#include "support/bank.hpp"
#include "support/cluster.hpp"

using catga::Code;
using catga::Member;
using catga::MemberAnnouncement;
using catga::MemberRole;
using catga::NodeStatus;
using catga::internal::joiner_refusal;
using catga::internal::peer_address_refusal;
namespace peer = catga::internal::peer;
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

std::vector<std::pair<std::uint64_t, std::string>> configuration(catga::Application& app) {
  std::vector<std::pair<std::uint64_t, std::string>> held;
  for (const auto& m : app.status().members) held.emplace_back(m.member.id, m.member.address + "/" + m.member.peer_address);
  return held;
}

// A 3-member cluster whose members all announced, and its leader.
struct AnnouncedCluster {
  LocalCluster<bank::State> cluster{3, register_bank};
  catga::Application* leader = nullptr;
  AnnouncedCluster() {
    auto i = cluster.leader();
    if (!i) throw std::runtime_error("no leader");
    leader = &cluster.app(*i);
    if (!wait_for([&] { return leader->status().announcements.size() == 3; })) throw std::runtime_error("no announcements");
  }
};

// Member 4 is added with a peer address where `answering` (another member,
// something else, or nothing) sits: refused with `says`, nothing changed.
void expect_refused_with_nothing_changed(AnnouncedCluster& c, const std::string& peer_address, const std::string& says) {
  const auto before = configuration(*c.leader);
  const Member m{4, "127.0.0.1:" + std::to_string(testsupport::free_port()), MemberRole::voter, peer_address};
  EXPECT_THAT(add_when_idle(*c.leader, m), HasError(Code::failed_precondition, HasSubstr(says)));
  EXPECT_EQ(configuration(*c.leader), before);
}

// A peer channel at a free port that answers as node `id`, with the
// cluster's id and secret (or `secret`), like an old build when `build` is
// unset (it closes the connection on the question) or says `formats`.
struct PlayedNode {
  std::unique_ptr<catga::internal::PeerChannel> channel;
  std::string address;
  PlayedNode(const catga::ClusterOptions& cluster, std::uint64_t id, std::optional<peer::BuildInfo> build,
             std::string secret = testsupport::kClusterSecret) {
    address = "127.0.0.1:" + std::to_string(testsupport::free_port());
    auto o = catga::internal::member_channel_options(cluster, address);
    o.node_id = id;
    o.secret = std::move(secret);
    catga::internal::PeerChannel::Handler handler;
    if (build) handler.build = [b = *build] { return b; };
    auto started = catga::internal::PeerChannel::start(std::move(o), std::move(handler));
    if (!started) throw std::runtime_error(started.error().to_string());
    channel = std::move(*started);
  }
};

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

const peer::BuildInfo kCurrentBuild{4, 1, 2};

TEST(JoinerCheck, TheMemberBeingAddedAtFormatTwoLetsItThrough) {
  EXPECT_FALSE(joiner_refusal(kWithPeer, catga::Result<peer::BuildInfo>(kCurrentBuild)));
  EXPECT_FALSE(joiner_refusal(kWithPeer, catga::Result<peer::BuildInfo>(peer::BuildInfo{4, 2, 3})));
}

TEST(JoinerCheck, EachFindingIsNamed) {
  auto says = [](const catga::Result<peer::BuildInfo>& answer) {
    auto refused = joiner_refusal(kWithPeer, answer);
    EXPECT_TRUE(refused);
    if (!refused) return std::string();
    EXPECT_EQ(refused->code(), Code::failed_precondition);
    EXPECT_THAT(std::string(refused->message()), HasSubstr("member 4 cannot be added with the peer address 127.0.0.1:8004"));
    EXPECT_THAT(std::string(refused->message()), HasSubstr("nothing was changed"));
    return std::string(refused->message());
  };
  EXPECT_THAT(says(peer::BuildInfo{5, 1, 2}), HasSubstr("member 5 answers there, not 4"));
  EXPECT_THAT(says(peer::BuildInfo{4, 1, 1}), HasSubstr("apply formats up to 1"));
  EXPECT_THAT(says(catga::Error{Code::unavailable, "cannot connect: Connection refused"}),
              HasSubstr("nothing answers the peer protocol at 127.0.0.1:8004 (cannot connect: Connection refused)"));
  EXPECT_THAT(says(catga::Error{Code::unimplemented, "End of file"}), HasSubstr("does not say what build it runs"));
  EXPECT_THAT(says(catga::Error{Code::unauthenticated, "refused: wrong peer secret"}),
              HasSubstr("did not complete this cluster's peer handshake (refused: wrong peer secret)"));
}

// A real cluster: a spare added but never started has no announcement, so a
// member with a peer address waits until it is gone; then a joiner of this
// build, started with --join at its own peer address, is added and catches up.
TEST(PeerAddressGuard, TheLeaderRefusesAPeerAddressWhileAMemberHasNotAnnounced) {
  LocalCluster<bank::State> cluster(3, register_bank);
  auto leader = cluster.leader();
  ASSERT_TRUE(leader);
  catga::Application& app = cluster.app(*leader);
  ASSERT_TRUE(wait_for([&] { return app.status().announcements.size() == 3; }));

  const int silent_port = testsupport::free_port();
  ASSERT_THAT(add_when_idle(app, Member{9, "127.0.0.1:" + std::to_string(silent_port), MemberRole::spare, {}}), IsOk());
  const std::size_t joiner = cluster.add_node(/*explicit_peer_address=*/true);
  const Member with_peer = cluster.member(joiner);
  ASSERT_FALSE(with_peer.peer_address.empty());
  auto refused = app.add_member(with_peer);
  EXPECT_THAT(refused, HasError(Code::failed_precondition, HasSubstr("9 (no announcement yet)")));
  for (const auto& m : app.status().members) EXPECT_NE(m.member.id, with_peer.id);

  ASSERT_THAT(app.remove_member(9), IsOk());
  ASSERT_THAT(add_when_idle(app, with_peer), IsOk());
  bool listed = false;
  for (const auto& m : app.status().members) {
    if (m.member.id == with_peer.id) listed = m.member.peer_address == with_peer.peer_address;
  }
  EXPECT_TRUE(listed);
  EXPECT_TRUE(cluster.wait_applied(app.status().commit_index));
  EXPECT_TRUE(wait_for([&] { return app.status().announcements.size() == 4; }));
}

// The joiner check against what really sits at the peer address.
TEST(JoinerCheck, NothingListeningThereIsRefused) {
  AnnouncedCluster c;
  expect_refused_with_nothing_changed(c, "127.0.0.1:" + std::to_string(testsupport::free_port()),
                                      "nothing answers the peer protocol at");
}

TEST(JoinerCheck, AnotherMemberAnsweringThereIsRefused) {
  AnnouncedCluster c;
  expect_refused_with_nothing_changed(c, c.cluster.member(1).peer_address, "member 2 answers there, not 4");
}

TEST(JoinerCheck, ABuildAtFormatOneIsRefused) {
  AnnouncedCluster c;
  PlayedNode old(c.cluster.options(0), 4, peer::BuildInfo{0, 1, 1});
  expect_refused_with_nothing_changed(c, old.address, "its build implements apply formats up to 1");
}

TEST(JoinerCheck, ABuildThatDoesNotKnowTheQuestionIsRefused) {
  AnnouncedCluster c;
  PlayedNode old(c.cluster.options(0), 4, std::nullopt);
  expect_refused_with_nothing_changed(c, old.address, "does not say what build it runs");
}

TEST(JoinerCheck, ANodeWithoutTheClusterSecretIsRefused) {
  AnnouncedCluster c;
  PlayedNode stranger(c.cluster.options(0), 4, kCurrentBuild, "another cluster's secret");
  expect_refused_with_nothing_changed(c, stranger.address, "did not complete this cluster's peer handshake");
}

// The same node playing this build is accepted: the check is what stops the
// ones above (the add then runs; the played node never catches up, so only
// its place in the configuration is asserted).
TEST(JoinerCheck, ANodeSayingItIsTheMemberAtFormatTwoIsAdded) {
  AnnouncedCluster c;
  PlayedNode played(c.cluster.options(0), 4, kCurrentBuild);
  const Member m{4, "127.0.0.1:" + std::to_string(testsupport::free_port()), MemberRole::spare, played.address};
  ASSERT_THAT(add_when_idle(*c.leader, m), IsOk());
  bool listed = false;
  for (const auto& held : c.leader->status().members) listed = listed || held.member == m;
  EXPECT_TRUE(listed);
}
