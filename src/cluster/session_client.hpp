// SessionClient: a node's client session, the client side of exactly-once
// (session_table.hpp is the state machine's side). Every command it sends
// carries the session, the next sequence number and the floor (the lowest
// sequence still awaited, which lets the state machine forget older
// answers). The first command opens the session through the log; commands
// sent meanwhile wait for it and go out, numbered, once it opened (or fail
// with its error). While it has a session and sends nothing, keep_alive()
// writes a keep-alive into the log every keep_alive_every(), so the session
// survives idleness. A session the table no longer knows (expired, evicted:
// the retry loop saw ReplicatedStateMachine::is_session_unknown) is dropped
// with drop(); the next command opens a new one.
//
// It numbers commands and keeps the session, nothing else: every record goes
// out through the `dispatch` it was given (CommandDispatcher, the retry/forward
// loop), which sends it until it has a definite answer or its deadline
// passed, and tells the client with completed() when a sequence is answered.
//
// Threading: every method may be called from any thread; a mutex guards the
// session, and `dispatch`, `trace` and the commands' completions are called
// outside it (a dispatch may complete at once, on the calling thread, and
// call back into the client).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "catga/application.hpp"
#include "catga/tracing.hpp"

namespace catga::internal {

// The sequences a client has in flight: floor() is the lowest one still
// awaited.
class SequenceWindow {
 public:
  std::uint64_t next();
  // Sequence `sequence` got its answer (one outside the window is ignored).
  void complete(std::uint64_t sequence);
  std::uint64_t floor() const { return base_; }

 private:
  std::uint64_t base_ = 1;
  std::deque<bool> done_;
};

class SessionClient {
 public:
  using Clock = std::chrono::steady_clock;
  using Done = EncodedDone;
  // Sends `record` until it has a definite answer or `deadline` passed, and
  // then calls `done`. `session` and `sequence` are what the record carries
  // (0 and 0 for the record opening a session, sequence 0 for a keep-alive);
  // `span` is the forward hop's span of a traced command, or null.
  using Dispatch = std::function<void(std::string record, Clock::time_point deadline, std::uint64_t session,
                                      std::uint64_t sequence, Done done, std::unique_ptr<Span> span)>;
  // What a command with a valid trace context carries into the log, and the
  // span of its forward hop (null when it is not forwarded or not traced).
  struct Traced {
    TraceContext carried;
    std::unique_ptr<Span> span;
  };
  using Trace = std::function<Traced(std::string_view wire_name, const TraceContext& trace)>;

  SessionClient(Dispatch dispatch, Trace trace);

  // Sends a command (or an event) under this client's session, opening one
  // first if it has none; `done` gets its answer.
  void submit(MessageKind kind, std::string_view wire_name, std::string payload, std::string_view key,
              Clock::time_point deadline, const TraceContext& trace, Done done);

  // Sends a keep-alive when the session has carried nothing for
  // keep_alive_every() (at most one out at a time). The node's sweep calls it.
  void keep_alive(Clock::time_point now);

  // The command sent as (session, sequence) has its answer: the floor may move.
  void completed(std::uint64_t session, std::uint64_t sequence);

  // Forgets `session` if it is still this client's (the table no longer knows it).
  void drop(std::uint64_t session);

  // Fails the commands waiting for a session to open with `error`.
  void fail_waiting(const Error& error);

 private:
  struct Waiting {
    MessageKind kind;
    std::string wire_name;
    std::string payload;
    std::string key;
    Clock::time_point deadline;
    TraceContext trace;
    Done done;
  };
  void open_session(Clock::time_point deadline);
  void opened(Result<std::uint64_t> session);

  const Dispatch dispatch_;
  const Trace trace_;
  std::mutex mu_;
  std::uint64_t session_ = 0;  // 0: none
  bool opening_ = false;
  bool keep_alive_out_ = false;
  Clock::time_point last_sent_{};  // the last command or keep-alive sent under session_
  SequenceWindow window_;
  std::vector<Waiting> waiting_;  // commands sent while the session opens
};

// How long a client with a session stays silent before it sends a
// keep-alive: SessionTable::kKeepAliveEvery, unless a test shortened it.
std::chrono::milliseconds keep_alive_every();
void set_keep_alive_every_for_test(std::chrono::milliseconds every);

}  // namespace catga::internal
