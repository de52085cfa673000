// The endpoints every service gets by asking: health checks, Prometheus
// metrics, the generic message endpoints and cluster administration. They are
// ordinary routes on the public Server API (plus the server's own HTTP stats).
#include <nlohmann/json.hpp>

#include <memory>
#include <mutex>
#include <optional>
#include <utility>

#include "catga/logging.hpp"
#include "catga/metrics.hpp"
#include "core/application_access.hpp"
#include "http/json_codec.hpp"
#include "http/server_impl.hpp"
#include "http/transport_access.hpp"

namespace catga::http {
namespace {

using nlohmann::json;

// POST /raft/members
struct MemberBody {
  std::uint64_t id = 0;
  std::string address;
  std::string role = "voter";
  std::string peer_address;
  MSGPACK_DEFINE_MAP(id, address, role, peer_address);
};

// PUT /raft/members/{id}/role
struct RoleBody {
  std::string role;
  MSGPACK_DEFINE_MAP(role);
};

bool parse_role(std::string_view name, MemberRole& role) {
  for (MemberRole r : {MemberRole::voter, MemberRole::standby, MemberRole::spare}) {
    if (name == to_string(r)) {
      role = r;
      return true;
    }
  }
  return false;
}

// POST /raft/leadership
struct TransferBody {
  std::uint64_t to = 0;  // 0: the most up-to-date voter
  MSGPACK_DEFINE_MAP(to);
};

// The answer to one cluster administration request (a membership change or a
// leadership transfer): the change's outcome, or — whichever comes first —
// 504 deadline_exceeded once the request timeout has passed. The change is
// not cancelled (libraft cannot take a configuration change back): it may
// still take effect, and its outcome is logged when it comes. Any thread.
class ChangeAnswer : public std::enable_shared_from_this<ChangeAnswer> {
 public:
  ChangeAnswer(std::string what, Responder responder) : what_(std::move(what)), responder_(std::move(responder)) {}

  // Arms the deadline on the server's timers (none: the change's outcome is
  // the only answer).
  void expire_after(std::chrono::milliseconds timeout) {
    auto* pending = internal::ResponderAccess::pending(*responder_);
    if (pending == nullptr) return;
    pending->after(timeout, [self = shared_from_this(), timeout] {
      auto responder = self->take();
      if (!responder) return;
      responder->error(Error{Code::deadline_exceeded,
                             self->what_ + " did not complete within " + std::to_string(timeout.count()) +
                                 " ms; the change goes on and may still take effect (a new voter still catching "
                                 "up, or no quorum to commit it): check GET /raft/status (members and their roles, "
                                 "leader) before asking again"});
    });
  }

  void complete(Result<void> done) {
    auto responder = take();
    if (!responder) {
      log_message(done ? LogLevel::info : LogLevel::warn,
                  what_ + ", answered 504 after the request timeout, has now " +
                      (done ? std::string("completed") : "failed: " + done.error().to_string()));
      return;
    }
    if (!done) return responder->error(done.error());
    responder->empty(204);
  }

 private:
  std::optional<Responder> take() {
    std::lock_guard lock(mu_);
    return std::exchange(responder_, std::nullopt);
  }
  const std::string what_;
  std::mutex mu_;
  std::optional<Responder> responder_;
};

// A voter that has not answered the leader for this long counts as unreachable.
constexpr std::chrono::seconds kStaleContact{5};

bool leader_known(const NodeStatus& s) { return s.role == NodeRole::leader || s.leader_id != 0; }

// True when this node can reach a majority through a leader. A leader can:
// libraft steps a leader down when it has not heard from a majority within an
// election timeout. Others trust that they have a leader.
bool consensus_reachable(const NodeStatus& s) { return s.failure.empty() && leader_known(s); }

// False when the leader knows a voter has not answered for kStaleContact.
// (libraft 0.22 does not expose per-follower contact times, so `last_contact`
// is usually unknown; unknown does not count as unreachable.)
bool all_voters_reachable(const NodeStatus& s) {
  if (s.role != NodeRole::leader) return true;
  for (const auto& m : s.members) {
    if (m.member.role != MemberRole::voter || m.member.id == s.id) continue;
    if (m.last_contact && *m.last_contact > kStaleContact) return false;
  }
  return true;
}

// Empty when ready, otherwise why not.
std::string not_ready_reason(const NodeStatus& s) {
  if (!s.failure.empty()) return "the node stopped: " + s.failure;
  if (!leader_known(s)) return "no leader is known";
  if (s.role == NodeRole::leader && !s.ready) return "the leader has not yet committed an entry of its term";
  if (s.applied_index < s.commit_index) {
    return "applied index " + std::to_string(s.applied_index) + " is behind commit index " +
           std::to_string(s.commit_index);
  }
  return {};
}

json status_json(const NodeStatus& s, bool replicated) {
  json members = json::array();
  for (const auto& m : s.members) {
    json member = {{"id", m.member.id},
                   {"address", m.member.address},
                   {"peer_address", m.member.peer_address},
                   {"role", to_string(m.member.role)}};
    member["last_contact_ms"] = m.last_contact ? json(m.last_contact->count()) : json(nullptr);
    members.push_back(std::move(member));
  }
  json announcements = json::array();
  for (const auto& a : s.announcements) {
    announcements.push_back({{"id", a.id},
                             {"formats", {a.min_format, a.max_format}},
                             {"commands", a.commands},
                             {"events", a.events}});
  }
  return {{"id", s.id},
          {"address", s.address},
          {"replicated", replicated},
          {"role", to_string(s.role)},
          {"term", s.term},
          {"leader", {{"id", s.leader_id}, {"address", s.leader_address}, {"known", leader_known(s)}}},
          {"commit_index", s.commit_index},
          {"applied_index", s.applied_index},
          {"last_snapshot_index", s.last_snapshot_index},
          {"bytes_since_snapshot", s.bytes_since_snapshot},
          {"leader_last_contact_ms", s.leader_last_contact ? json(s.leader_last_contact->count()) : json(nullptr)},
          {"can_serve_writes", s.failure.empty() && leader_known(s)},
          {"can_serve_linearizable_reads", s.failure.empty() && (s.role == NodeRole::leader ? s.ready : leader_known(s))},
          {"ready", s.ready},
          {"members", std::move(members)},
          {"announcements", std::move(announcements)},
          {"apply_format", s.apply_format},
          {"failure", s.failure}};
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// Bearer-token check for mutating admin endpoints (constant-time compare).
bool authorized(const Request& request, const std::string& token) {
  if (token.empty()) return true;
  auto header = request.header("Authorization");
  constexpr std::string_view kScheme = "Bearer ";
  if (!header || !header->starts_with(kScheme)) return false;
  return internal::same_secret(header->substr(kScheme.size()), token);
}

// Renders `detail::encode_result` bytes: the value as JSON (204 for nil), or
// the error it carries.
// Answers the error of a generic endpoint: an unknown wire name is 404.
void reply_error(Responder& responder, const Error& error, Headers headers) {
  const int status = error.code() == Code::unimplemented ? 404 : 0;
  responder.error(error, std::move(headers), status);
}

// The error of a call, or the one inside its encoded result (a replicated
// message is answered with what applying it produced, e.g. no handler).
std::optional<Error> error_of(const Result<std::string>& encoded, catga::detail::Unpacked& handle,
                              const msgpack::object*& body) {
  if (!encoded) return encoded.error();
  Code code{};
  if (auto head = catga::detail::decode_result_head(*encoded, handle, code, body); !head) {
    return Error{Code::internal, "unreadable result: " + head.error().message()};
  }
  if (code == Code::ok) return std::nullopt;
  std::string message;
  if (body->type == msgpack::type::STR) message.assign(body->via.str.ptr, body->via.str.size);
  return Error{code, std::move(message)};
}

void reply_encoded(Responder& responder, const Result<std::string>& encoded, std::uint64_t index) {
  Headers headers = detail::index_headers(index);
  catga::detail::Unpacked handle;
  const msgpack::object* body = nullptr;
  if (auto error = error_of(encoded, handle, body)) return reply_error(responder, *error, std::move(headers));
  if (body->type == msgpack::type::NIL) return responder.empty(204, std::move(headers));
  std::string text;
  if (auto rendered = internal::msgpack_object_to_json(*body, text); !rendered) {
    return responder.error(Error{Code::internal, "cannot render the result as JSON: " + rendered.error().message()},
                           std::move(headers));
  }
  responder.json(200, std::move(text), std::move(headers));
}

void write_gauge(std::string& out, std::string_view name, std::string_view help, std::uint64_t value) {
  internal::write_header(out, name, "gauge", help);
  internal::write_sample(out, name, "", value);
}

void render_node(std::string& out, const NodeStatus& s, bool replicated) {
  write_gauge(out, "catga_node_replicated", "1 when the application is a Raft node, 0 when in-memory.", replicated);
  write_gauge(out, "catga_node_term", "Current Raft term (an increase means an election).", s.term);
  write_gauge(out, "catga_node_commit_index", "Highest log index known to be committed.", s.commit_index);
  write_gauge(out, "catga_node_applied_index", "Highest log index applied to the state.", s.applied_index);
  write_gauge(out, "catga_node_last_snapshot_index", "Log index of the latest snapshot.", s.last_snapshot_index);
  write_gauge(out, "catga_node_bytes_since_snapshot",
              "Bytes of log entries applied since the last snapshot (compare with snapshot_threshold_bytes).",
              s.bytes_since_snapshot);
  write_gauge(out, "catga_node_leader_id", "Id of the known leader (0: none or in-memory).", s.leader_id);
  write_gauge(out, "catga_node_leader_known", "1 when this node knows a leader.", leader_known(s));
  write_gauge(out, "catga_node_ready", "1 when /health/ready would answer 200.", not_ready_reason(s).empty());
  write_gauge(out, "catga_cluster_members", "Members in the configuration this node knows.", s.members.size());
  const auto counter = [&out](std::string_view name, std::string_view help, std::uint64_t value) {
    internal::write_header(out, name, "counter", help);
    internal::write_sample(out, name, "", value);
  };
  const NodeCounters& c = s.counters;
  counter("catga_raft_entries_appended_total", "Log entries this node appended as leader (group commits).", c.entries_appended);
  counter("catga_raft_records_appended_total", "Commands and events packed into them (divide for the batch size).",
          c.records_appended);
  counter("catga_commands_forwarded_total", "Commands this node forwarded to the leader.", c.commands_forwarded);
  counter("catga_commands_retried_total", "Command attempts after the first (leader change, broken connection).",
          c.commands_retried);
  counter("catga_leader_changes_total", "Times the known leader changed.", c.leader_changes);
  counter("catga_snapshots_taken_total", "Snapshots this node wrote of its own state.", c.snapshots_taken);
  counter("catga_snapshots_installed_total", "Snapshots restored (at start or from the leader).", c.snapshots_installed);
  counter("catga_snapshots_in_child_total", "Snapshots encoded by a forked child process.", c.snapshots_in_child);
  counter("catga_snapshot_write_failures_total",
          "Snapshots libraft could not write (a full disk; it retries them and takes no other meanwhile).",
          c.snapshot_write_failures);
  counter("catga_snapshots_sent_total", "Snapshots sent to followers (installs).", c.snapshots_sent);
  counter("catga_snapshot_sends_skipped_total", "Snapshot sends refused: one to that follower was still on its way.",
          c.snapshot_sends_skipped);
  const auto seconds = [&](const char* name, const char* help, std::chrono::microseconds value) {
    internal::write_header(out, name, "gauge", help);
    internal::write_sample(out, name, "", static_cast<double>(value.count()) / 1e6);
  };
  seconds("catga_snapshot_encode_seconds", "Time to encode the state for the last snapshot (in the child, if forked).",
          c.snapshot_encode_time);
  seconds("catga_snapshot_pause_seconds", "Time the loop thread stopped for the last snapshot (the fork, or the encode).",
          c.snapshot_pause);
  seconds("catga_snapshot_pause_max_seconds", "The longest such pause since the node started.", c.snapshot_pause_max);
  write_gauge(out, "catga_snapshot_bytes", "Size of the last snapshot written or restored.", c.snapshot_bytes);
  internal::write_header(out, "catga_node_role", "gauge", "1 for the node's current role.");
  for (NodeRole role : {NodeRole::unavailable, NodeRole::follower, NodeRole::candidate, NodeRole::leader}) {
    std::string labels;
    internal::add_label(labels, "role", to_string(role));
    internal::write_sample(out, "catga_node_role", labels, std::uint64_t{s.role == role});
  }
}

}  // namespace

Server& Server::map_health() {
  get("/health", [this](const Request&, Responder responder) {
    const NodeStatus s = app_.status();
    const bool reachable = consensus_reachable(s);
    const std::string reason = not_ready_reason(s);
    std::string_view status = "healthy";
    if (!s.failure.empty() || s.role == NodeRole::unavailable || !reachable) status = "unhealthy";
    else if (!reason.empty() || !all_voters_reachable(s)) status = "degraded";
    json body = status_json(s, app_.replicated());
    body["status"] = status;
    body["consensus_reachable"] = reachable;
    if (!reason.empty()) body["not_ready_reason"] = reason;
    responder.json(status == "unhealthy" ? 503 : 200, dump(body));
  });
  get("/health/live", [](const Request&, Responder responder) { responder.json(200, R"({"status":"alive"})"); });
  get("/health/ready", [this](const Request&, Responder responder) {
    const NodeStatus s = app_.status();
    const std::string reason = not_ready_reason(s);
    if (reason.empty()) return responder.json(200, R"({"status":"ready"})");
    responder.json(503, dump(json{{"status", "not_ready"}, {"reason", reason}}), {{"Retry-After", "1"}});
  });
  return *this;
}

Server& Server::map_metrics(const Metrics* metrics) {
  return get("/metrics", [this, metrics](const Request&, Responder responder) {
    std::string out;
    out.reserve(16u << 10);
    render_node(out, app_.status(), app_.replicated());
    auto& counters = catga::internal::mediator_of(app_).counters();
    internal::write_header(out, "catga_events_delivered_total", "counter", "Event handler calls that succeeded on this node.");
    internal::write_sample(out, "catga_events_delivered_total", "", counters.events_delivered.load());
    internal::write_header(out, "catga_event_handler_failures_total", "counter", "Event handler calls that failed on this node.");
    internal::write_sample(out, "catga_event_handler_failures_total", "", counters.event_handler_failures.load());
    if (impl_->stats) impl_->stats->render(out);
    if (metrics) metrics->render_prometheus(out);
    responder.send(200, std::move(out), "text/plain; version=0.0.4; charset=utf-8");
  });
}

Server& Server::map_message_endpoints() {
  impl_->message_endpoints = true;
  post("/commands/{wire_name}", [this](const Request& request, Responder responder) {
    auto payload = request.json_as_msgpack();
    auto options = detail::command_options(request, options_.request_timeout);
    if (const auto* failure = request.failure()) return responder.fail(*failure);
    app_.send_encoded(request.param("wire_name"), *payload, *options,
                      [responder = std::move(responder)](Result<std::string> encoded, std::uint64_t index) mutable {
                        reply_encoded(responder, encoded, index);
                      });
  });
  post("/events/{wire_name}", [this](const Request& request, Responder responder) {
    auto payload = request.json_as_msgpack();
    auto options = detail::command_options(request, options_.request_timeout);
    if (const auto* failure = request.failure()) return responder.fail(*failure);
    app_.publish_encoded(request.param("wire_name"), *payload, *options,
                         [responder = std::move(responder)](Result<std::string> encoded, std::uint64_t index) mutable {
                           catga::detail::Unpacked handle;
                           const msgpack::object* body = nullptr;
                           Headers headers = detail::index_headers(index);
                           if (auto error = error_of(encoded, handle, body)) {
                             return reply_error(responder, *error, std::move(headers));
                           }
                           responder.empty(202, std::move(headers));
                         });
  });
  post("/queries/{wire_name}", [this](const Request& request, Responder responder) {
    auto payload = request.json_as_msgpack();
    auto options = detail::query_options(request, Consistency::local, options_.request_timeout);
    if (const auto* failure = request.failure()) return responder.fail(*failure);
    app_.query_encoded(request.param("wire_name"), *payload, *options,
                       [responder = std::move(responder)](Result<std::string> encoded, std::uint64_t) mutable {
                         reply_encoded(responder, encoded, 0);
                       });
  });
  get("/messages", [this](const Request&, Responder responder) {
    json list = json::array();
    for (const MessageInfo& message : app_.messages()) {
      list.push_back({{"wire_name", message.wire_name}, {"kind", to_string(message.kind)}});
    }
    responder.json(200, dump(json{{"messages", std::move(list)}}));
  });
  return *this;
}

Server& Server::map_cluster_admin() {
  impl_->cluster_admin = true;
  get("/raft/status", [this](const Request&, Responder responder) {
    responder.json(200, dump(status_json(app_.status(), app_.replicated())));
  });
  // The mutating endpoints: authorize, validate the request into a change,
  // run it, answer 204 (or the error: unavailable on a follower, naming the
  // leader; failed_precondition while another change runs or in memory).
  using Done = UniqueFunction<void(Result<void>)>;
  using Change = UniqueFunction<void(Done)>;
  // False (and the 401 sent) when the request lacks the admin token.
  auto allowed = [this](const Request& request, Responder& responder) {
    if (authorized(request, options_.admin_token)) return true;
    responder.error(Error{Code::unauthenticated, "this endpoint requires Authorization: Bearer <admin token>"},
                    {{"WWW-Authenticate", "Bearer"}});
    return false;
  };
  // A change answers within request_timeout, before the transport's cut-off:
  // one that has not completed by then (a new voter still catching up — libraft
  // gives a silent one 30 s — or a commit without a quorum) answers 504
  // deadline_exceeded and runs on; its outcome is logged when it comes.
  auto admin = [allowed, timeout = options_.request_timeout](auto validate) {
    return [allowed, validate, timeout](const Request& request, Responder responder) mutable {
      if (!allowed(request, responder)) return;
      Result<Change> change = validate(request);
      if (const auto* failure = request.failure()) return responder.fail(*failure);
      if (!change) return responder.error(change.error());
      auto answer = std::make_shared<ChangeAnswer>(std::string(to_string(request.method())) + " " +
                                                   std::string(request.path()), std::move(responder));
      answer->expire_after(timeout);
      (*change)([answer](Result<void> done) { answer->complete(std::move(done)); });
    };
  };
  auto bad = [](const Request& request, std::string message) {
    return request.fail(400, Error{Code::invalid_argument, std::move(message)});
  };
  post("/raft/members", admin([this, bad](const Request& request) -> Result<Change> {
         auto body = request.json<MemberBody>();
         if (!body) return body.error();
         Member member{.id = body->id, .address = body->address, .peer_address = body->peer_address};
         if (member.id == 0) return bad(request, "member: id must be positive");
         if (member.address.empty()) return bad(request, "member: address is required");
         if (!parse_role(body->role, member.role)) return bad(request, "member: role must be voter, standby or spare");
         return Change([this, member = std::move(member)](Done done) mutable {
           app_.add_member(std::move(member), std::move(done));
         });
       }));
  put("/raft/members/{id}/role", admin([this, bad](const Request& request) -> Result<Change> {
        const auto id = request.param<std::uint64_t>("id");
        auto body = request.json<RoleBody>();
        if (!body) return body.error();
        MemberRole role{};
        if (!parse_role(body->role, role)) return bad(request, "role must be voter, standby or spare");
        return Change([this, id, role](Done done) { app_.assign_role(id, role, std::move(done)); });
      }));
  del("/raft/members/{id}", admin([this](const Request& request) -> Result<Change> {
        const auto id = request.param<std::uint64_t>("id");
        return Change([this, id](Done done) { app_.remove_member(id, std::move(done)); });
      }));
  post("/raft/leadership", admin([this](const Request& request) -> Result<Change> {
         auto body = request.json<TransferBody>();
         if (!body) return body.error();
         return Change([this, to = body->to](Done done) { app_.transfer_leadership(to, std::move(done)); });
       }));
  // The snapshot endpoints wait for the write at most request_timeout (the
  // library calls wait 30 s, longer than the transport keeps a request): on a
  // full disk they answer 504 deadline_exceeded, and libraft still writes the
  // snapshot once it can.
  auto* replicator = catga::internal::ApplicationAccess::replicator(app_);
  // 202 {"index": N}: a snapshot covering at least index N is written.
  post("/raft/snapshot", [this, allowed, replicator](const Request& request, Responder responder) {
    if (!allowed(request, responder)) return;
    auto done = [responder = std::move(responder)](Result<std::uint64_t> index) mutable {
      if (!index) return responder.error(index.error());
      responder.json(202, dump(json{{"index", *index}}));
    };
    if (replicator == nullptr) return app_.take_snapshot(std::move(done));
    replicator->take_snapshot(std::move(done), options_.request_timeout);
  });
  // 200, the backup file (catga/backup.hpp) as application/octet-stream: the
  // leader takes a snapshot now and sends it with cluster id, index, term,
  // configuration and checksum. 503 on a follower (naming the leader).
  post("/raft/backup", [this, allowed, replicator](const Request& request, Responder responder) {
    if (!allowed(request, responder)) return;
    auto done = [responder = std::move(responder)](Result<std::string> bytes) mutable {
      if (!bytes) return responder.error(bytes.error());
      auto info = inspect_backup(*bytes);
      if (!info) return responder.error(info.error());
      const std::string name = info->cluster_id + "-" + std::to_string(info->index) + ".catga-backup";
      responder.send(200, std::move(*bytes), "application/octet-stream",
                     {{"X-Catga-Backup-Index", std::to_string(info->index)},
                      {"X-Catga-Backup-Term", std::to_string(info->term)},
                      {"Content-Disposition", "attachment; filename=\"" + name + "\""}});
    };
    if (replicator == nullptr) return app_.backup(std::move(done));
    replicator->backup(std::move(done), options_.request_timeout);
  });
  return *this;
}

}  // namespace catga::http
