#include "cluster/session_client.hpp"

#include <atomic>
#include <utility>

#include "cluster/envelope.hpp"
#include "cluster/replicated_state_machine.hpp"
#include "cluster/session_table.hpp"

namespace catga::internal {
namespace {

// A keep-alive is given this long to be applied; the next one follows anyway.
constexpr auto kKeepAliveTimeout = std::chrono::seconds(10);

std::atomic<std::int64_t> keep_alive_every_ms{SessionTable::kKeepAliveEvery.count()};

}  // namespace

std::chrono::milliseconds keep_alive_every() {
  return std::chrono::milliseconds(keep_alive_every_ms.load(std::memory_order_relaxed));
}

void set_keep_alive_every_for_test(std::chrono::milliseconds every) {
  keep_alive_every_ms.store(every.count(), std::memory_order_relaxed);
}

std::uint64_t SequenceWindow::next() {
  done_.push_back(false);
  return base_ + done_.size() - 1;
}

void SequenceWindow::complete(std::uint64_t sequence) {
  if (sequence < base_ || sequence - base_ >= done_.size()) return;
  done_[sequence - base_] = true;
  while (!done_.empty() && done_.front()) {
    done_.pop_front();
    ++base_;
  }
}

SessionClient::SessionClient(Dispatch dispatch, Trace trace)
    : dispatch_(std::move(dispatch)), trace_(std::move(trace)) {}

void SessionClient::submit(MessageKind kind, std::string_view wire_name, std::string payload, std::string_view key,
                           Clock::time_point deadline, const TraceContext& trace, Done done) {
  std::unique_lock lock(mu_);
  if (session_ == 0) {
    // This client's first command opens its session through the log;
    // commands sent meanwhile wait for it.
    waiting_.push_back(
        Waiting{kind, std::string(wire_name), std::move(payload), std::string(key), deadline, trace, std::move(done)});
    if (!opening_) {
      opening_ = true;
      lock.unlock();
      open_session(deadline);
    }
    return;
  }
  const std::uint64_t session = session_;
  const std::uint64_t sequence = window_.next();
  const std::uint64_t floor = window_.floor();
  last_sent_ = Clock::now();
  lock.unlock();
  // Only a traced command on a node with a tracer puts a trace context in the
  // log (without one the entry is byte-identical to an untraced build's).
  Traced traced;
  if (trace.valid()) [[unlikely]] {
    traced = trace_(wire_name, trace);
  }
  dispatch_(encode_envelope({kind, wire_name, payload, session, sequence, floor, key, traced.carried}), deadline,
            session, sequence, std::move(done), std::move(traced.span));
}

void SessionClient::keep_alive(Clock::time_point now) {
  std::unique_lock lock(mu_);
  if (session_ == 0 || opening_ || keep_alive_out_ || now - last_sent_ < keep_alive_every()) return;
  keep_alive_out_ = true;
  last_sent_ = now;
  const std::uint64_t session = session_;
  const std::uint64_t floor = window_.floor();
  lock.unlock();
  dispatch_(
      encode_envelope({MessageKind::command, kKeepAliveRecord, {}, session, 0, floor, {}}), now + kKeepAliveTimeout,
      session, 0,
      [this](Result<std::string>, std::uint64_t) {
        std::lock_guard lock(mu_);
        keep_alive_out_ = false;
      },
      nullptr);
}

void SessionClient::completed(std::uint64_t session, std::uint64_t sequence) {
  if (session == 0) return;
  std::lock_guard lock(mu_);
  if (session == session_) window_.complete(sequence);
}

void SessionClient::drop(std::uint64_t session) {
  std::lock_guard lock(mu_);
  if (session != 0 && session == session_) session_ = 0;
}

void SessionClient::fail_waiting(const Error& error) {
  std::vector<Waiting> waiting;
  {
    std::lock_guard lock(mu_);
    waiting.swap(waiting_);
  }
  for (auto& w : waiting) w.done(error, 0);
}

void SessionClient::open_session(Clock::time_point deadline) {
  dispatch_(
      encode_envelope({MessageKind::command, kOpenSessionRecord, {}, 0, 0, 0, {}}), deadline, 0, 0,
      [this](Result<std::string> encoded, std::uint64_t) {
        opened(encoded ? detail::decode_result<std::uint64_t>(*encoded)
                       : Result<std::uint64_t>(std::move(encoded).error()));
      },
      nullptr);
}

void SessionClient::opened(Result<std::uint64_t> session) {
  std::vector<Waiting> waiting;
  {
    std::lock_guard lock(mu_);
    opening_ = false;
    if (session) {
      session_ = *session;
      window_ = SequenceWindow();
    }
    waiting.swap(waiting_);
  }
  for (auto& w : waiting) {
    if (!session)
      w.done(session.error(), 0);
    else
      submit(w.kind, w.wire_name, std::move(w.payload), w.key, w.deadline, w.trace, std::move(w.done));
  }
}

}  // namespace catga::internal
