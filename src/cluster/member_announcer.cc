#include "cluster/member_announcer.hpp"

#include <algorithm>

#include "cluster/replicated_state_machine.hpp"
#include "cluster/envelope.hpp"

namespace catga::internal {
namespace {

std::string record(std::string_view wire_name, std::string payload) {
  return encode_envelope({MessageKind::command, wire_name, payload, 0, 0, 0, {}});
}

}  // namespace

MemberAnnouncer::MemberAnnouncer(const ReplicatedStateMachine& machine, std::uint64_t self)
    : machine_(machine), announcement_(machine.announcement(self)) {}

Announcement MemberAnnouncer::current() const {
  Announcement a = announcement_;
  if (machine_.cluster_format() >= kDataDirFormat) a.data_dir = data_dir_identity_;
  return a;
}

std::string MemberAnnouncer::next_record(const NodeStatus& s) {
  if (s.leader_id == 0 || !s.failure.empty() || (s.role == NodeRole::leader && !s.ready)) return {};
  if (catch_up_to_ == 0) catch_up_to_ = std::max<std::uint64_t>(s.commit_index, 1);
  if (s.applied_index < catch_up_to_) return {};
  const auto in_configuration = [&](std::uint64_t id) {
    return std::any_of(s.members.begin(), s.members.end(), [&](const MemberStatus& m) { return m.member.id == id; });
  };
  if (const auto announcement = current(); in_configuration(announcement.node_id) && !machine_.announced(announcement)) {
    return record(kAnnounceRecord, encode_announcement(announcement));
  }
  if (s.role != NodeRole::leader) return {};
  for (const std::uint64_t id : machine_.announced_members()) {
    if (!in_configuration(id)) return record(kWithdrawRecord, encode_number_record(id));
  }
  const std::uint32_t agreed = machine_.agreed_format();
  if (agreed <= machine_.cluster_format()) return {};
  const auto announced = machine_.announced_members();
  const bool all = std::all_of(s.members.begin(), s.members.end(), [&](const MemberStatus& m) {
    return m.member.role == MemberRole::spare ||
           std::find(announced.begin(), announced.end(), m.member.id) != announced.end();
  });
  return all ? record(kFormatRecord, encode_number_record(agreed)) : std::string();
}

peer::MemberState MemberAnnouncer::member_state(std::uint64_t id, const NodeStatus& s) const {
  peer::MemberState m;
  m.node_id = id;
  if (auto identity = machine_.announced_data_dir(id)) {
    m.announced = true;
    m.identity = std::move(*identity);
  }
  m.term = s.term;
  // Only a ready leader has applied everything the cluster committed.
  m.settled = s.failure.empty() && s.role == NodeRole::leader && s.ready && s.applied_index >= s.commit_index;
  return m;
}

}  // namespace catga::internal
