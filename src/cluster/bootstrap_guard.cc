#include "cluster/bootstrap_guard.hpp"

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "cluster/peer_channel.hpp"
#include "core/log.hpp"

namespace catga::internal {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto kAskAgainAfter = 100ms;
// How often the guard's clock is ticked (GuardClock).
constexpr auto kGuardTick = 10ms;

std::string ms(std::chrono::milliseconds d) { return std::to_string(d.count()) + " ms"; }

std::string refusal(std::uint64_t self, const std::string& data_dir, const std::string& what) {
  const std::string id = std::to_string(self);
  return "member " + id + " refuses to bootstrap on the empty data directory " + data_dir + ": " + what +
         ". A voter whose data is gone has forgotten its log and its vote; bootstrapping would let it help elect "
         "a leader that never had the committed entries. Bring it back by remove -> wipe -> add: remove member " +
         id + " (catgactl members remove " + id + ", or DELETE /raft/members/" + id +
         " on the leader), start it on an empty data directory with --join (ClusterOptions::join), then add it "
         "again (catgactl members add / POST /raft/members); docs/operations.md, \"Data directory rules\"";
}

// What a refusal adds when this process was not running for a good part of
// the wait (stopped, throttled, starved): both figures, so that an operator
// sees the bounds were counted in time run.
std::string not_run_note(const GuardClock& clock, Clock::time_point started, Clock::time_point now) {
  const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(now - started);
  const auto not_run = std::chrono::duration_cast<std::chrono::milliseconds>(clock.not_run(now));
  if (not_run * 10 < waited) return {};
  return " (the bounds count the time this process ran: " + ms(clock.elapsed(now)) + " of the " + ms(waited) +
         " it asked; it was stopped, throttled or not given a core for the rest)";
}

}  // namespace

BootstrapBounds BootstrapBounds::for_election_timeout(std::chrono::milliseconds election_timeout) {
  return {std::max<std::chrono::milliseconds>(election_timeout, 200ms),
          std::max<std::chrono::milliseconds>(election_timeout * 10, 3000ms),
          std::max<std::chrono::milliseconds>(election_timeout * 30, 3000ms)};
}

std::chrono::milliseconds BootstrapBounds::most_patience(std::chrono::milliseconds election_timeout) const {
  return std::max(election_timeout, silent_bound / 4);
}

GuardClock::Clock::duration GuardClock::lost(Clock::time_point now) const {
  const auto gap = now - last_;
  return gap > 2 * tick_ ? gap - tick_ : Clock::duration::zero();
}

void GuardClock::tick(Clock::time_point now) {
  if (now <= last_) return;
  not_run_ += lost(now);
  last_ = now;
}

GuardClock::Clock::duration GuardClock::not_run(Clock::time_point now) const {
  return not_run_ + (now > last_ ? lost(now) : Clock::duration::zero());
}

std::chrono::milliseconds GuardClock::elapsed(Clock::time_point now) const {
  if (now <= start_) return std::chrono::milliseconds::zero();
  const auto run = (now - start_) - not_run(now);
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::max(run, Clock::duration::zero()));
}

BootstrapVerdict judge_bootstrap(std::uint64_t self, const std::string& data_dir, std::size_t peers,
                                 const PeerAnswers& answers, std::chrono::milliseconds elapsed,
                                 std::chrono::milliseconds settling, const BootstrapBounds& bounds, bool new_cluster) {
  // Any announcement wins: some peer saw this member join.
  for (const auto& [id, state] : answers) {
    if (!state || !state->announced) continue;
    const std::string identity = state->identity.empty() ? std::string()
                                                         : " with data directory identity " + state->identity;
    return {BootstrapVerdict::refuse,
            refusal(self, data_dir, "member " + std::to_string(id) + " says it already joined this cluster (it announced itself" +
                                        identity + ")")};
  }
  std::size_t answered = 0;
  std::optional<std::uint64_t> undecided;  // a peer that has seen an election but cannot tell
  for (const auto& [id, state] : answers) {
    if (!state) continue;
    ++answered;
    if (state->settled) {
      return {BootstrapVerdict::bootstrap,
              "member " + std::to_string(id) + ", leading and caught up, holds no announcement of member " +
                  std::to_string(self) + ": it never joined before; bootstrapping"};
    }
    if (state->term > 1 && !undecided) undecided = id;
  }
  if (answered == peers && !undecided) {
    return {BootstrapVerdict::bootstrap, "every peer answered and none has seen an election: a new cluster is forming; bootstrapping"};
  }
  if (undecided) {
    if (settling < bounds.settle_bound) return {};
    return {BootstrapVerdict::refuse,
            refusal(self, data_dir,
                    "member " + std::to_string(*undecided) + " holds a cluster log, but no leader could say within " +
                        ms(bounds.settle_bound) + " whether member " + std::to_string(self) +
                        " joined before (start it again once the cluster has a leader; if it never did join, it "
                        "then bootstraps)")};
  }
  const std::string heard = std::to_string(answered) + " of " + std::to_string(peers) + " peers answered";
  if (new_cluster) {
    if (elapsed < bounds.quiet_bound) return {};
    return {BootstrapVerdict::bootstrap,
            heard + " within " + ms(bounds.quiet_bound) +
                " and none has seen an election; new_cluster (--new-cluster) is set: bootstrapping a new cluster"};
  }
  if (elapsed < bounds.silent_bound) return {};
  return {BootstrapVerdict::refuse,
          refusal(self, data_dir,
                  heard + " within " + ms(bounds.silent_bound) +
                      ", none has seen an election, and the silent ones may hold the cluster's log (a whole-cluster "
                      "outage looks the same as a cluster still forming). If this is the first start of a new "
                      "cluster, start every member (members waiting on empty directories answer each other), or "
                      "start this one with --new-cluster (ClusterOptions::new_cluster) to bootstrap without its "
                      "peers")};
}

Result<void> run_bootstrap_guard(const ClusterOptions& options, const std::string& listen_address,
                                 const std::map<std::uint64_t, std::string>& peers, const BootstrapBounds& bounds) {
  if (peers.empty()) return {};
  // Answers the guards of members starting beside it: nothing known, no election seen.
  PeerChannel::Handler waiting;
  waiting.member_state = [](std::uint64_t id) { return peer::MemberState{.node_id = id}; };
  auto channel = PeerChannel::start(member_channel_options(options, listen_address), std::move(waiting));
  if (!channel) return channel.error();
  const auto started = Clock::now();
  std::mutex mu;
  std::condition_variable cv;
  // The bounds count the time this process ran (GuardClock), ticked by a
  // thread of its own while the guard asks.
  GuardClock clock(started, kGuardTick);
  std::jthread ticker([&](std::stop_token stop) {
    while (!stop.stop_requested()) {
      std::this_thread::sleep_for(kGuardTick);
      std::lock_guard lock(mu);
      clock.tick(Clock::now());
    }
  });
  PeerAnswers answers;
  std::optional<std::chrono::milliseconds> election_seen_at;  // on the guard's clock
  std::size_t outstanding = 0;
  BootstrapVerdict verdict;
  // How long each peer's next question waits through silence: one election
  // timeout, doubled after each question it did not answer (and kept after
  // an answer: a peer that needed longer once is likely to again).
  std::map<std::uint64_t, std::chrono::milliseconds> patience;
  for (const auto& [id, address] : peers) patience[id] = options.election_timeout;
  const auto most_patience = bounds.most_patience(options.election_timeout);
  for (;;) {
    std::map<std::uint64_t, std::chrono::milliseconds> waits;
    {
      std::lock_guard lock(mu);
      outstanding = peers.size();
      waits = patience;
    }
    for (const auto& [id, address] : peers) {
      (*channel)->ask_member(address, options.node_id, waits[id], [&, id = id](Result<peer::MemberState> state) {
        std::lock_guard lock(mu);
        auto& next = patience[id];
        if (!state) next = std::min(next * 2, most_patience);
        answers.insert_or_assign(id, std::move(state));
        if (--outstanding == 0) cv.notify_all();
      });
    }
    {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return outstanding == 0; });  // each question is bounded by its patience
      const auto now = Clock::now();
      const auto elapsed = clock.elapsed(now);
      // The cluster gets settle_bound to elect a leader from the first answer
      // that showed an election, not from the start: members that bootstrapped
      // while this one still asked may need a while (their elections on a
      // stalled host) before a leader can say whether this member joined.
      const bool election_seen = std::any_of(answers.begin(), answers.end(), [](const auto& a) {
        return a.second && a.second->term > 1;
      });
      if (election_seen && !election_seen_at) election_seen_at = elapsed;
      verdict = judge_bootstrap(options.node_id, options.data_dir.string(), peers.size(), answers, elapsed,
                                election_seen_at ? elapsed - *election_seen_at : std::chrono::milliseconds::zero(),
                                bounds, options.new_cluster);
      if (verdict.kind == BootstrapVerdict::refuse) verdict.why += not_run_note(clock, started, now);
    }
    if (verdict.kind != BootstrapVerdict::ask_again) break;
    std::this_thread::sleep_for(kAskAgainAfter);
  }
  ticker.request_stop();
  ticker.join();
  (*channel)->stop();
  if (verdict.kind == BootstrapVerdict::refuse) {
    internal::log().error("raft node {}: {}", options.node_id, verdict.why);
    return Error{Code::failed_precondition, verdict.why};
  }
  internal::log().info("raft node {}: {}", options.node_id, verdict.why);
  return {};
}

}  // namespace catga::internal
