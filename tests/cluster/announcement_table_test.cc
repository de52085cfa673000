// The announcement table (what each member can apply) and the apply-time rule
// of the replicated state machine that uses it: pure, deterministic.
#include "cluster/announcement_table.hpp"

#include <gtest/gtest.h>

#include "catga/application.hpp"
#include "catga/testing.hpp"
#include "cluster/envelope.hpp"
#include "cluster/replicated_state_machine.hpp"
#include "core/application_access.hpp"
#include "support/bank.hpp"

using catga::Code;
using catga::MessageKind;
using catga::internal::Announcement;
using catga::internal::AnnouncementTable;
using catga::internal::ApplyInfo;
using catga::internal::FormatRange;
using catga::internal::ReplicatedStateMachine;
using namespace catga::testing;
using ::testing::HasSubstr;

namespace {

using bank::Withdraw;

Announcement v1(std::uint64_t id, FormatRange formats = {1, 1}) {
  return {.node_id = id,
          .formats = formats,
          .handles = {{"bank.open.v1", MessageKind::command},
                      {"bank.deposit.v1", MessageKind::command},
                      {"bank.close.v1", MessageKind::command},
                      {"bank.deposited.v1", MessageKind::event}}};
}
Announcement v2(std::uint64_t id, FormatRange formats = {1, 1}) {
  Announcement a = v1(id, formats);
  a.handles.emplace("bank.withdraw.v1", MessageKind::command);
  return a;
}

std::unique_ptr<catga::Application> make_app(bool with_withdraw) {
  catga::ApplicationBuilder<bank::State> b;
  bank::register_handlers(b).on<bank::Deposited>([](const bank::Deposited&) {});
  if (with_withdraw) {
    b.command<Withdraw>(bank::withdraw);
  }
  b.in_memory();
  auto app = b.build();
  EXPECT_THAT(app, IsOk());
  return std::move(*app);
}

// One node's state machine over an in-memory application's mediator.
struct Machine {
  explicit Machine(bool with_withdraw, FormatRange formats = catga::internal::kBuildFormats)
      : app(make_app(with_withdraw)), sm(catga::internal::mediator_of(*app)) {
    sm.set_formats_for_test(formats);
  }
  std::string apply(std::string_view wire_name, const std::string& payload) {
    return sm.apply(ApplyInfo{++index, 1, 1'000'000'000, 0},
                    catga::internal::encode_envelope({MessageKind::command, wire_name, payload, 0, 0, 0, {}}));
  }
  std::string announce(const Announcement& a) {
    return apply(catga::internal::kAnnounceRecord, catga::internal::encode_announcement(a));
  }
  std::string withdraw(std::uint64_t id) {
    return apply(catga::internal::kWithdrawRecord, catga::internal::encode_number_record(id));
  }
  std::string state() {
    std::shared_lock lock(catga::internal::mediator_of(*app).state().mutex());
    return catga::internal::mediator_of(*app).state().snapshot();
  }
  std::unique_ptr<catga::Application> app;
  ReplicatedStateMachine sm;
  std::uint64_t index = 0;
};

catga::Result<std::int64_t> as_balance(const std::string& encoded) {
  return catga::detail::decode_result<std::int64_t>(encoded);
}

}  // namespace

TEST(AnnouncementTable, AMemberLackingAHandlerBlocksItUntilItAnnouncesOneOrIsWithdrawn) {
  AnnouncementTable t;
  EXPECT_FALSE(t.refusal("bank.withdraw.v1", MessageKind::command)) << "no announcement blocks nothing";
  t.announce(v2(1));
  t.announce(v1(2));
  t.announce(v1(3));
  EXPECT_FALSE(t.refusal("bank.deposit.v1", MessageKind::command));
  auto refused = t.refusal("bank.withdraw.v1", MessageKind::command);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->code(), Code::failed_precondition);
  EXPECT_THAT(std::string(refused->message()), HasSubstr("command bank.withdraw.v1 is not handled by members 2, 3"));
  EXPECT_EQ(t.lacking("bank.withdraw.v1", MessageKind::command), (std::vector<std::uint64_t>{2, 3}));
  // The wrong kind is not handled either.
  EXPECT_TRUE(t.refusal("bank.deposit.v1", MessageKind::event));

  t.announce(v2(2));  // upgraded: announces again
  refused = t.refusal("bank.withdraw.v1", MessageKind::command);
  ASSERT_TRUE(refused);
  EXPECT_THAT(std::string(refused->message()), HasSubstr("member 3 "));
  EXPECT_TRUE(t.withdraw(3));  // removed
  EXPECT_FALSE(t.withdraw(3));
  EXPECT_FALSE(t.refusal("bank.withdraw.v1", MessageKind::command));
  EXPECT_EQ(t.members(), (std::vector<std::uint64_t>{1, 2}));
}

TEST(AnnouncementTable, WhatNoMemberHandlesIsUnimplementedAndALeaderLackingItIsNamed) {
  AnnouncementTable t;
  // A leader (1) lacking what a member forwarded, before anyone announced.
  auto early = t.refusal("bank.withdraw.v1", MessageKind::command, 1);
  ASSERT_TRUE(early);
  EXPECT_EQ(early->code(), Code::failed_precondition);
  EXPECT_THAT(std::string(early->message()), HasSubstr("member 1 "));
  t.announce(v1(1));
  t.announce(v2(2));
  EXPECT_EQ(t.refusal("bank.nope.v1", MessageKind::command)->code(), Code::unimplemented);
  // Member 2 (say, the leader) knows it lacks withdraw although its old
  // announcement says otherwise (downgraded, not announced again yet).
  auto leader = t.refusal("bank.withdraw.v1", MessageKind::command, 2);
  ASSERT_TRUE(leader);
  EXPECT_EQ(leader->code(), Code::failed_precondition);
  EXPECT_THAT(std::string(leader->message()), HasSubstr("members 1, 2"));
}

TEST(AnnouncementTable, TheFormatRisesOnlyToOneEveryAnnouncedMemberImplementsAndNeverGoesDown) {
  AnnouncementTable t;
  EXPECT_EQ(t.format(), 1u);
  t.announce(v1(1, {1, 2}));
  EXPECT_EQ(t.agreed_format(), 2u);
  t.announce(v1(2, {1, 1}));
  EXPECT_EQ(t.agreed_format(), 1u);
  EXPECT_THAT(t.raise_format(2), HasError(Code::failed_precondition, HasSubstr("member 2")));
  EXPECT_EQ(t.format(), 1u);
  t.announce(v1(2, {1, 3}));
  EXPECT_EQ(t.agreed_format(), 2u);
  EXPECT_THAT(t.raise_format(2), IsOk());
  EXPECT_EQ(t.format(), 2u);
  EXPECT_THAT(t.raise_format(1), IsOk()) << "never down: a no-op";
  EXPECT_EQ(t.format(), 2u);
  t.announce(v1(3, {1, 1}));  // an older build joins: too late, the log is at 2
  EXPECT_EQ(t.format(), 2u);
  EXPECT_EQ(t.agreed_format(), 2u);
}

TEST(AnnouncementTable, RoundTripsAndRefusesGarbage) {
  AnnouncementTable t;
  t.announce(v2(1, {1, 2}));
  t.announce(v1(7, {1, 2}));
  ASSERT_THAT(t.raise_format(2), IsOk());
  AnnouncementTable back;
  ASSERT_THAT(back.decode(t.encode()), IsOk());
  EXPECT_EQ(back.encode(), t.encode());
  EXPECT_EQ(back.format(), 2u);
  ASSERT_NE(back.find(7), nullptr);
  EXPECT_EQ(*back.find(7), v1(7, {1, 2}));
  EXPECT_TRUE(back.refusal("bank.withdraw.v1", MessageKind::command));

  EXPECT_THAT(back.decode("\x93\x01"), HasCode(Code::data_loss));
  EXPECT_THAT(catga::internal::decode_announcement(catga::encode(42)), HasCode(Code::data_loss));
  Announcement empty_range = v1(1);
  empty_range.formats = {3, 2};
  EXPECT_THAT(catga::internal::decode_announcement(catga::internal::encode_announcement(empty_range)),
              HasCode(Code::data_loss));
  EXPECT_EQ(back.encode(), t.encode()) << "a failed decode leaves the table as it was";
}

// Apply format 2: an announcement may carry the member's data directory
// identity (encoded as announcement format 2); one without it keeps format 1,
// so what a format-1 build wrote and reads stays byte for byte the same.
TEST(AnnouncementTable, ADataDirectoryIdentityTravelsAsAnnouncementFormat2) {
  Announcement with = v1(4, {1, 2});
  with.data_dir = "10952968.1795994340386094448";
  auto back = catga::internal::decode_announcement(catga::internal::encode_announcement(with));
  ASSERT_THAT(back, IsOk());
  EXPECT_EQ(*back, with);
  const std::string plain = catga::internal::encode_announcement(v1(4, {1, 2}));
  EXPECT_EQ(static_cast<unsigned char>(plain[1]), 1u) << "no identity: announcement format 1";
  EXPECT_NE(catga::internal::encode_announcement(with), plain);

  AnnouncementTable t;
  t.announce(with);
  t.announce(v1(5, {1, 2}));
  AnnouncementTable table_back;
  ASSERT_THAT(table_back.decode(t.encode()), IsOk());
  ASSERT_NE(table_back.find(4), nullptr);
  EXPECT_EQ(table_back.find(4)->data_dir, with.data_dir);
  EXPECT_EQ(table_back.find(5)->data_dir, "");
}

TEST(AnnouncedApply, AnAnnouncedDataDirectoryNeedsApplyFormat2) {
  Machine m(true);
  Announcement with = v1(2, {1, 2});
  with.data_dir = "1.2";
  m.announce(with);
  EXPECT_FALSE(m.sm.announced(with)) << "applied at format 1";
  EXPECT_EQ(m.sm.announced_data_dir(2), std::nullopt);
  m.announce(v1(2, {1, 2}));
  EXPECT_EQ(m.sm.announced_data_dir(2), std::optional<std::string>(""));
  m.apply(catga::internal::kFormatRecord, catga::internal::encode_number_record(2));
  ASSERT_EQ(m.sm.cluster_format(), 2u);
  m.announce(with);
  EXPECT_TRUE(m.sm.announced(with));
  EXPECT_EQ(m.sm.announced_data_dir(2), std::optional<std::string>("1.2"));
}

// ---- the replicated state machine's apply-time rule ----------------------

TEST(AnnouncedApply, WhatSomeMemberCannotHandleIsTheSameRecordedRefusalOnEveryNode) {
  Machine old_node(false), new_node(true);
  for (Machine* m : {&old_node, &new_node}) {
    m->announce(v2(1));
    m->announce(v1(2));
    ASSERT_THAT(catga::detail::decode_result<bank::Account>(m->apply("bank.open.v1", catga::encode(bank::Open{.owner = "a", .initial = 5}))),
                IsOk());
  }
  const std::string withdraw = catga::encode(Withdraw{.account = 1, .amount = 2});
  const std::string on_old = old_node.apply("bank.withdraw.v1", withdraw);
  const std::string on_new = new_node.apply("bank.withdraw.v1", withdraw);
  EXPECT_EQ(on_old, on_new);
  EXPECT_THAT(as_balance(on_new), HasError(Code::failed_precondition, HasSubstr("member 2")));
  EXPECT_EQ(old_node.state(), new_node.state());

  // Member 2 upgraded and announced: both apply it now... except the old
  // build, which stops instead of recording anything.
  for (Machine* m : {&old_node, &new_node}) m->announce(v2(2));
  EXPECT_THAT(as_balance(new_node.apply("bank.withdraw.v1", withdraw)), IsOkAndHolds(3));
  EXPECT_THROW(old_node.apply("bank.withdraw.v1", withdraw), std::runtime_error);
}

TEST(AnnouncedApply, ANodeMissingAHandlerTheTableSaysItHasStopsLoudly) {
  // No announcement yet: nothing refuses; a node without the handler must not
  // record "unimplemented" while the others apply the command.
  Machine node(false);
  EXPECT_THROW(node.apply("bank.withdraw.v1", catga::encode(Withdraw{.account = 1, .amount = 1})), std::runtime_error);
  // What nobody announced a handler for is the same recorded answer everywhere.
  Machine other(false);
  other.announce(v1(1));
  EXPECT_THAT(as_balance(other.apply("bank.nope.v1", catga::encode(1))), HasCode(Code::unimplemented));
}

TEST(AnnouncedApply, TheTableTravelsInSnapshotsAndAnOldSnapshotRestoresWithAnEmptyTable) {
  Machine a(true);
  a.announce(v2(1));
  a.announce(v1(2));
  a.apply("bank.open.v1", catga::encode(bank::Open{.owner = "s", .initial = 1}));
  Machine b(true);
  ASSERT_THAT(b.sm.restore(a.sm.snapshot()), IsOk());
  EXPECT_EQ(b.state(), a.state());
  EXPECT_TRUE(b.sm.announced(v1(2)));
  EXPECT_TRUE(b.sm.admission("bank.withdraw.v1", MessageKind::command, 1));

  // Format 1: [1, state, sessions], written before announcements existed.
  std::string old;
  {
    catga::detail::StringSink sink{&old};
    msgpack::packer<catga::detail::StringSink> p(sink);
    p.pack_array(3);
    p.pack(1u);
    for (const std::string& bin : {a.state(), catga::internal::SessionTable().encode()}) {
      p.pack_bin(static_cast<std::uint32_t>(bin.size()));
      p.pack_bin_body(bin.data(), static_cast<std::uint32_t>(bin.size()));
    }
  }
  ASSERT_THAT(b.sm.restore(old), IsOk());
  EXPECT_EQ(b.state(), a.state());
  EXPECT_TRUE(b.sm.announced_members().empty());
  EXPECT_FALSE(b.sm.admission("bank.withdraw.v1", MessageKind::command, 1));
}

TEST(AnnouncedApply, ANodeAskedToApplyAFormatItDoesNotImplementStops) {
  Machine newer(true, {1, 2}), older(true, {1, 1});
  const auto raise = [](Machine& m, std::uint32_t f) {
    return m.apply(catga::internal::kFormatRecord, catga::internal::encode_number_record(f));
  };
  // Member 2 announces format 1 only: the raise is the same refusal everywhere.
  for (Machine* m : {&newer, &older}) {
    m->announce(v2(1, {1, 2}));
    m->announce(v2(2, {1, 1}));
    EXPECT_THAT(catga::detail::decode_result<void>(raise(*m, 2)), HasCode(Code::failed_precondition));
    EXPECT_EQ(m->sm.cluster_format(), 1u);
  }
  // Both announced 1-2 (the older build's binary was swapped back after it
  // announced): the cluster moves to 2, which the older build cannot apply.
  for (Machine* m : {&newer, &older}) m->announce(v2(2, {1, 2}));
  EXPECT_THAT(catga::detail::decode_result<void>(raise(newer, 2)), IsOk());
  EXPECT_EQ(newer.sm.cluster_format(), 2u);
  EXPECT_THROW(raise(older, 2), std::runtime_error);
  EXPECT_THAT(as_balance(newer.apply("bank.deposit.v1", catga::encode(bank::Deposit{.account = 9, .amount = 1}))),
              HasCode(Code::not_found));
  // A snapshot at format 2 does not restore on a build that implements only 1.
  Machine restarted(true, {1, 1});
  EXPECT_THAT(restarted.sm.restore(newer.sm.snapshot()), HasError(Code::failed_precondition, HasSubstr("apply format 2")));
  // A build that no longer implements format 1 stops at the first entry.
  Machine too_new(true, {2, 2});
  EXPECT_THROW(too_new.apply("bank.deposit.v1", catga::encode(bank::Deposit{.account = 9, .amount = 1})),
               std::runtime_error);
}
