// The membership half of RaftNode: adding, promoting, demoting and removing
// members and moving leadership — one configuration change at a time,
// started on the loop thread and completed by libraft's callbacks. The
// public calls may come from any thread; the rest runs on the loop thread.
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "cluster/member_address.hpp"
#include "cluster/raft_c.h"
#include "cluster/raft_node.hpp"
#include "cluster/raft_node_common.hpp"

namespace catga::internal {

using namespace raft_node_common;

struct RaftNode::ChangeOp {
  enum Kind { add, assign, remove, transfer } kind;
  Member member;  // id / address / role as relevant
  bool assign_after_add = false;
  VoidCompletion done;
};

namespace {

// spare < standby (receives the log) < voter (receives it and votes).
int rank(MemberRole role) {
  switch (role) {
    case MemberRole::spare: return 0;
    case MemberRole::standby: return 1;
    default: return 2;
  }
}

}  // namespace

// ------------------------------------------------------------------ any thread

void RaftNode::add_member(Member member, VoidCompletion done) {
  if (auto valid = internal::check_member_addresses("member " + std::to_string(member.id), member); !valid) {
    return done(valid.error());
  }
  auto op = std::make_unique<ChangeOp>();
  op->kind = ChangeOp::add;
  op->member = std::move(member);
  op->assign_after_add = op->member.role != MemberRole::spare;
  op->done = std::move(done);
  post([this, op = std::move(op)]() mutable { start_change(op.release()); });
}

void RaftNode::assign_role(std::uint64_t id, MemberRole role, VoidCompletion done) {
  auto op = std::make_unique<ChangeOp>();
  op->kind = ChangeOp::assign;
  op->member.id = id;
  op->member.role = role;
  op->done = std::move(done);
  post([this, op = std::move(op)]() mutable { start_change(op.release()); });
}

void RaftNode::remove_member(std::uint64_t id, VoidCompletion done) {
  auto op = std::make_unique<ChangeOp>();
  op->kind = ChangeOp::remove;
  op->member.id = id;
  op->done = std::move(done);
  post([this, op = std::move(op)]() mutable { start_change(op.release()); });
}

void RaftNode::transfer_leadership(std::uint64_t to, VoidCompletion done) {
  auto op = std::make_unique<ChangeOp>();
  op->kind = ChangeOp::transfer;
  op->member.id = to;
  op->done = std::move(done);
  post([this, op = std::move(op)]() mutable { start_change(op.release()); });
}

// ------------------------------------------------------------------ loop thread

Error RaftNode::change_error(int status) const {
  switch (status) {
    case CATGA_RAFT_NOTLEADER: return not_leader_error();
    case CATGA_RAFT_LEADERSHIPLOST: return outcome_unknown();
    case CATGA_RAFT_SHUTDOWN:
    case CATGA_RAFT_CANCELED: return node_stopped();
    case CATGA_RAFT_DUPLICATEID: return Error(Code::already_exists, "a member with this id already exists");
    case CATGA_RAFT_DUPLICATEADDRESS:
      return Error(Code::already_exists, "a member with this address already exists");
    case CATGA_RAFT_BADID:
    case CATGA_RAFT_NOTFOUND: return Error(Code::not_found, "no such member");
    case CATGA_RAFT_BADROLE: return Error(Code::invalid_argument, "the member already has this role");
    case CATGA_RAFT_CANTCHANGE:
    case CATGA_RAFT_BUSY: {
      // libraft's refusal: its last configuration entry is not committed yet
      // (a new leader commits it with its first entry, within an election
      // timeout when a majority answers), or a promotion's catch-up runs.
      catga_raft_info info{};
      catga_raft_get_info(raft_, &info);
      std::string why = "another configuration change is in progress";
      if (info.config_uncommitted_index != 0 && info.config_uncommitted_index <= info.commit_index) {
        // Committed, yet held as uncommitted: what libraft's wrong index for
        // an entry received behind others led to (raft_change_index.h keeps
        // that away). A restart recomputes it from the log.
        return Error(Code::failed_precondition,
                     "another configuration change is in progress: libraft holds configuration entry " +
                         std::to_string(info.config_uncommitted_index) + " as uncommitted though the commit index is " +
                         std::to_string(info.commit_index) + "; restart this node to clear it");
      }
      if (info.config_uncommitted_index != 0) {
        why += " (configuration entry " + std::to_string(info.config_uncommitted_index) +
               " is not committed yet; commit index " + std::to_string(info.commit_index) + ")";
      } else {
        why += " (a new member's catch-up)";
      }
      return Error(Code::failed_precondition, why + ": retry once it completes");
    }
    case CATGA_RAFT_NOCONNECTION: return Error(Code::unavailable, "catch-up of the new member failed");
    default:
      return Error(Code::internal, std::string(catga_raft_strerror(status)) + ": " + catga_raft_errmsg(raft_));
  }
}

std::optional<std::pair<MemberRole, std::string>> RaftNode::configured(std::uint64_t id) const {
  const unsigned n = catga_raft_n_members(raft_);
  for (unsigned i = 0; i < n; ++i) {
    catga_raft_member m{};
    catga_raft_get_member(raft_, i, &m);
    if (m.id == id) return std::pair{member_role(m.role), std::string(m.address)};
  }
  return std::nullopt;
}

void RaftNode::start_change(ChangeOp* raw) {
  std::unique_ptr<ChangeOp> op(raw);
  if (stopping_) return op->done(node_stopped());
  if (failed_) return op->done(stopped(failure_));
  if (change_busy_) {
    return op->done(Error(Code::failed_precondition,
                          "another configuration change is in progress (one sent to this leader has not "
                          "answered yet): retry once it answers"));
  }
  if (last_state_ != CATGA_STATE_LEADER) return op->done(not_leader_error());
  int rv = 0;
  switch (op->kind) {
    case ChangeOp::add:
      if (auto present = configured(op->member.id)) {
        // A repeated add — the first one's catch-up failed, which leaves the
        // member a spare, or its answer was lost — resumes it, so that an
        // operator's or a client's retry converges.
        const auto address = internal::configuration_address(op->member);
        if (present->second != address) {
          return op->done(Error(Code::already_exists, "member " + std::to_string(op->member.id) +
                                                          " already exists at " + present->second));
        }
        const MemberRole want = op->member.role;
        if (present->first == want) return op->done(ok());
        if (rank(present->first) > rank(want)) {
          return op->done(Error(Code::already_exists, "member " + std::to_string(op->member.id) + " is already a " +
                                                          std::string(to_string(present->first)) +
                                                          " (assign a role to demote it)"));
        }
        op->kind = ChangeOp::assign;
        op->assign_after_add = false;
        rv = catga_raft_assign(raft_, op->member.id, c_role(want), op.get());
        break;
      }
      rv = catga_raft_add(raft_, op->member.id, internal::configuration_address(op->member).c_str(), op.get());
      break;
    case ChangeOp::assign:
      rv = catga_raft_assign(raft_, op->member.id, c_role(op->member.role), op.get());
      break;
    case ChangeOp::remove:
      rv = catga_raft_remove(raft_, op->member.id, op.get());
      break;
    case ChangeOp::transfer:
      rv = catga_raft_transfer(raft_, op->member.id, op.get());
      break;
  }
  if (rv != 0) return op->done(change_error(rv));
  change_busy_ = true;
  op.release();
}

// ------------------------------------------------------------------ C callbacks

void RaftNode::c_change_done(void* ctx, void* req, int status) {
  auto* self = static_cast<RaftNode*>(ctx);
  std::unique_ptr<ChangeOp> op(static_cast<ChangeOp*>(req));
  self->change_busy_ = false;
  if (status != 0) return op->done(self->change_error(status));
  if (op->kind == ChangeOp::add && op->assign_after_add && !self->stopping_) {
    op->assign_after_add = false;
    op->kind = ChangeOp::assign;
    // Not from inside libraft's callback: queue it as a task.
    auto* raw = op.release();
    detail::UniqueFunction<void()> task = [self, raw] { self->start_change(raw); };
    if (!self->enqueue_task(task)) task();
    return;
  }
  op->done(ok());
}

void RaftNode::c_transfer_done(void* ctx, void* req) {
  auto* self = static_cast<RaftNode*>(ctx);
  std::unique_ptr<ChangeOp> op(static_cast<ChangeOp*>(req));
  self->change_busy_ = false;
  catga_raft_info info{};
  catga_raft_get_info(self->raft_, &info);
  if (self->stopping_) return op->done(node_stopped());
  if (info.state != CATGA_STATE_LEADER) return op->done(ok());
  op->done(Error(Code::aborted, "leadership transfer did not complete"));
}

}  // namespace catga::internal
