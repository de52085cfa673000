// PeerChannel: the TCP channel between cluster members (standalone Asio, one
// I/O thread). As a server it accepts followers' connections and hands their
// forwarded records and read-index requests to the local node; as a client it
// keeps one pipelined connection per remote peer and batches every record
// queued while a write is in progress into one frame. TCP_NODELAY and TCP
// keep-alive on every socket. A client connection that waits for an answer
// (connect, handshake, a forward or a read index) and receives nothing for
// `answer_timeout` is closed as dead, so a peer that went silent without a
// reset (a partition, a frozen host) is given up after that long rather than
// at the caller's deadline. Silence ends with a frame's header, and
// bytes this process has not read yet (it was descheduled) are not silence. With TLS files set every connection is mutual
// TLS 1.3 first (tls_stream.hpp). Protocol: peer_protocol.hpp.
//
// Threading: every public method may be called from any thread. Completions
// (`done`) run on the channel's I/O thread, or on the node's loop thread when
// the server's handler completes there — keep them short. The Handler's
// functions are called on the I/O thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cluster/peer_protocol.hpp"
#include "catga/detail/unique_function.hpp"
#include "catga/result.hpp"

namespace catga {
struct ClusterOptions;
}

namespace catga::internal {

class PeerChannel {
 public:
  using OutcomeDone = detail::UniqueFunction<void(peer::Outcome)>;
  using IndexDone = detail::UniqueFunction<void(Result<std::uint64_t>)>;
  using MemberDone = detail::UniqueFunction<void(Result<peer::MemberState>)>;
  using BuildDone = detail::UniqueFunction<void(Result<peer::BuildInfo>)>;

  // Completes record `i` of a forwarded frame; called once per record, from
  // any thread.
  using RecordDone = std::function<void(std::size_t i, peer::Outcome)>;

  // What the server side asks of the local node.
  struct Handler {
    // Every record of one forwarded frame at once, so they can share a log entry.
    std::function<void(std::vector<std::string> records, RecordDone done)> forward;
    std::function<void(IndexDone done)> read_index;
    // What this node knows of a member (the bootstrap guard's question);
    // unset: the question closes the connection, as an older build does.
    std::function<peer::MemberState(std::uint64_t node_id)> member_state;
    // The apply formats this node's build implements (the channel fills in
    // the node id); unset: the question closes the connection, as an older
    // build does.
    std::function<peer::BuildInfo()> build;
  };

  struct Options {
    // "HOST:PORT" (an IPv4 address, a name — resolved once, its first IPv4
    // address bound — or "[IPV6]:PORT"); empty: no server (client side and
    // timers only).
    std::string listen_address;
    std::uint64_t node_id = 0;
    std::string cluster_id;
    // The cluster secret: both ends prove it (challenge-response, see
    // peer_protocol.hpp); empty: insecure mode, anyone may forward.
    std::string secret;
    // Also accepted from peers, never used to prove this node (a rotation):
    // a client answers with whichever secret the server proved.
    std::vector<std::string> accepted_secrets;
    // Instead of the two above: their file (peer_secrets.h), read again for
    // new connections on SIGHUP (reload_cluster_tls).
    std::string secret_file;
    std::size_t max_frame_bytes = 64u << 20;
    std::size_t max_records_per_frame = 65'536;
    // A client connection waiting for the peer that receives nothing for this
    // long fails (written requests: deadline_exceeded, outcome unknown;
    // queued ones: unavailable). Zero: wait forever. The node uses its
    // election timeout: a live leader answers well within it.
    std::chrono::milliseconds answer_timeout{0};
    // TCP keep-alive on every connection: probes after this long idle, then
    // every third of it, three unanswered probes close the connection (also
    // the bound on unacknowledged written data, TCP_USER_TIMEOUT). Whole
    // seconds, at least 1. Zero: the system's keep-alive defaults.
    std::chrono::milliseconds keepalive_idle{0};
    // A server connection not welcomed within this long is closed (one
    // rate-limited log line): a stalled client holds nothing for long.
    std::chrono::milliseconds handshake_timeout{5000};
    // Mutual TLS 1.3 on every connection, both ways, when the certificate
    // file is set (tls_context.h): the peer's certificate must name the node
    // id its hello (server) or welcome/challenge (client) claims. The secret's
    // exchange, if any, runs inside TLS. Files reload when they change.
    std::string tls_ca_file;
    std::string tls_cert_file;
    std::string tls_key_file;
    std::string tls_crl_file;  // optional revocation lists (tls_context.h)
  };

  static Result<std::unique_ptr<PeerChannel>> start(Options options, Handler handler);
  virtual ~PeerChannel() = default;

  // Peer addresses are written as listen_address; a name is resolved again
  // for every new connection (after a failure), each address tried in turn.
  // Sends `record` to the peer listening at `address`; `done` gets the
  // leader's outcome, or `unavailable` if the connection failed before the
  // record was written, or `deadline_exceeded` if it broke after (a silent
  // peer: after `answer_timeout`).
  virtual void forward(const std::string& address, std::string record, OutcomeDone done) = 0;
  // Asks the peer at `address` for an index it has confirmed as committed.
  virtual void read_index(const std::string& address, IndexDone done) = 0;
  // Asks the peer at `address` what it knows of member `node_id`;
  // `unavailable` if it could not be asked or did not answer. The connection
  // waits through up to `patience` of silence (never less than
  // `answer_timeout`): an answer is worth having whenever it comes, and a
  // peer on a loaded host may need longer than an election timeout.
  virtual void ask_member(const std::string& address, std::uint64_t node_id, std::chrono::milliseconds patience,
                          MemberDone done) = 0;
  // Asks the node at `address` who it is and what its build implements
  // (authenticated like every connection: the answer is from the node the
  // handshake proved). Errors tell what was found: `unavailable` — the
  // question could not be asked (nothing listens there, no connection);
  // `unauthenticated` — something accepted the connection but did not
  // complete this node's handshake: it refused it, failed to prove itself or
  // went silent (another cluster, secret, CA or protocol version, or not a
  // peer channel at all); `unimplemented` — it was asked and closed the
  // connection or went silent instead of answering (a build that does not
  // know the question). Bounded by `answer_timeout`.
  virtual void ask_build(const std::string& address, BuildDone done) = 0;
  // Runs `f` on the I/O thread after `delay`.
  virtual void after(std::chrono::milliseconds delay, detail::UniqueFunction<void()> f) = 0;
  // The port the server listens on.
  virtual std::uint16_t port() const = 0;
  // Closes every connection and joins the I/O thread; pending client
  // requests complete with `unavailable`. Idempotent; the destructor calls it.
  virtual void stop() = 0;
};

// "HOST:PORT+1" for a Raft address "HOST:PORT" (the default peer address).
std::string default_peer_address(const std::string& raft_address);

// The options of a channel of the member `options` describes, listening at
// `listen_address` (empty: none): its id, cluster id, secrets, TLS files, frame
// bound and timeouts. Every channel a node opens — the bootstrap guard's and
// the node's own — is made from these, so none of them misses a setting.
PeerChannel::Options member_channel_options(const ClusterOptions& options, std::string listen_address);

}  // namespace catga::internal
