// tests/sim/sim_checker.cc — the simulation's Checker (the invariants every
// node is held to) and SequenceMachine (the state machine that records what it
// applied), declared in simulation.hpp.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <iterator>

#include "simulation.hpp"

namespace catga::internal::sim_test {

std::string describe(const Applied1& a) {
  return "(index " + std::to_string(a.index) + ", position " + std::to_string(a.position) + ", \"" + a.record + "\")";
}

void Checker::on_apply(unsigned node, std::size_t k, const Applied1& a) {
  if (k < canonical_.size()) {
    if (!(canonical_[k] == a)) {
      fail("node " + std::to_string(node + 1) + " applied " + describe(a) + " as record #" + std::to_string(k) +
           " but another node applied " + describe(canonical_[k]) + " there");
    }
    return;
  }
  if (k > canonical_.size()) {
    fail("node " + std::to_string(node + 1) + " has record #" + std::to_string(k) + " beyond the canonical sequence");
    return;
  }
  if (!canonical_.empty() && (a.index < canonical_.back().index ||
                              (a.index == canonical_.back().index && a.position <= canonical_.back().position))) {
    fail("record " + describe(a) + " applied after " + describe(canonical_.back()));
  }
  canonical_.push_back(a);
  if (!pos_of_.emplace(a.record, k).second) fail("record \"" + a.record + "\" applied twice");
  if (const Proposal* p = proposal_of(a.record); p != nullptr && p->code && (*p->code == Code::unavailable ||
                                                                            *p->code == Code::invalid_argument)) {
    fail("record \"" + a.record + "\" applied although its proposal completed with code " +
         std::to_string(static_cast<int>(*p->code)));
  }
}

void Checker::on_complete(std::size_t id, const Result<internal::Applied>& r, std::size_t max_record) {
  Proposal& p = proposals_[id];
  if (++p.completions > 1) {
    fail("proposal \"" + p.record + "\" completed " + std::to_string(p.completions) + " times");
    return;
  }
  if (!r) {
    p.code = r.error().code();
    switch (r.error().code()) {
      case Code::unavailable:
      case Code::deadline_exceeded:
        break;
      case Code::invalid_argument:
        if (p.record.size() <= max_record) fail("proposal \"" + p.record + "\" refused: " + r.error().message());
        break;
      default:
        fail("proposal \"" + p.record + "\" failed with code " + std::to_string(static_cast<int>(r.error().code())) +
             ": " + r.error().message());
    }
    if (p.code != Code::deadline_exceeded && pos_of_.count(p.record) != 0) {
      fail("proposal \"" + p.record + "\" completed with code " + std::to_string(static_cast<int>(*p.code)) +
           " although it applied");
    }
    return;
  }
  p.code = Code::ok;
  p.index = r->index;
  if (r->result != "ok:" + p.record) fail("proposal \"" + p.record + "\" got result \"" + r->result + "\"");
  auto it = pos_of_.find(p.record);
  if (it == pos_of_.end()) {
    fail("proposal \"" + p.record + "\" acknowledged at index " + std::to_string(r->index) + " but never applied");
    return;
  }
  if (canonical_[it->second].index != r->index) {
    fail("proposal \"" + p.record + "\" acknowledged at index " + std::to_string(r->index) + " but applied at " +
         describe(canonical_[it->second]));
  }
  auto& pos = acked_[r->index];
  pos = std::max(pos, it->second);
}

std::optional<std::size_t> Checker::last_acked_through(std::uint64_t index) const {
  auto it = acked_.upper_bound(index);
  if (it == acked_.begin()) return std::nullopt;
  return std::prev(it)->second;
}

void Checker::saw_leader(unsigned node, std::uint64_t term) {
  auto [it, fresh] = leader_of_term_.emplace(term, node);
  if (!fresh && it->second != node) {
    fail("two leaders in term " + std::to_string(term) + ": nodes " + std::to_string(it->second + 1) + " and " +
         std::to_string(node + 1));
  }
}

std::optional<std::size_t> Checker::position_of(const std::string& record) const {
  auto it = pos_of_.find(record);
  if (it == pos_of_.end()) return std::nullopt;
  return it->second;
}

const Checker::Proposal* Checker::proposal_of(const std::string& record) const {
  // Records are "p<id>." followed by padding.
  if (record.size() < 2 || record[0] != 'p') return nullptr;
  const std::size_t id = std::strtoull(record.c_str() + 1, nullptr, 10);
  return id < proposals_.size() && proposals_[id].record == record ? &proposals_[id] : nullptr;
}

std::string SequenceMachine::apply(const ApplyInfo& info, std::string_view record) {
  Applied1 a{info.index, info.position, std::string(record)};
  seq_.push_back(a);
  checker_.on_apply(node_, seq_.size() - 1, a);
  return "ok:" + a.record;
}

std::string SequenceMachine::snapshot() {
  std::string out;
  for (const auto& a : seq_) {
    const std::uint32_t len = static_cast<std::uint32_t>(a.record.size());
    out.append(reinterpret_cast<const char*>(&a.index), 8);
    out.append(reinterpret_cast<const char*>(&a.position), 4);
    out.append(reinterpret_cast<const char*>(&len), 4);
    out.append(a.record);
  }
  return out;
}

Result<void> SequenceMachine::restore(std::string_view s) {
  std::vector<Applied1> seq;
  while (!s.empty()) {
    Applied1 a;
    std::uint32_t len = 0;
    if (s.size() < 16) return Error(Code::data_loss, "truncated snapshot");
    std::memcpy(&a.index, s.data(), 8);
    std::memcpy(&a.position, s.data() + 8, 4);
    std::memcpy(&len, s.data() + 12, 4);
    s.remove_prefix(16);
    if (s.size() < len) return Error(Code::data_loss, "truncated snapshot");
    a.record.assign(s.substr(0, len));
    s.remove_prefix(len);
    seq.push_back(std::move(a));
  }
  seq_ = std::move(seq);
  ++restores_;
  for (std::size_t k = 0; k < seq_.size(); ++k) checker_.on_apply(node_, k, seq_[k]);
  return ok();
}

}  // namespace catga::internal::sim_test
