// catga/hosting.hpp — running a Catga service as a process: the member list
// of a command line or config file, the orderly shutdown on SIGINT or
// SIGTERM of the HTTP server and the application, and the reload of their
// certificates on SIGHUP.
//
//   int main(int argc, char** argv) {
//     catga::hosting::ShutdownSignals signals;  // first: before any thread starts
//     ... parse options, builder.cluster({.members = *catga::hosting::parse_members(list), ...}) ...
//     auto app = builder.build();
//     catga::http::Server server(**app, {...});
//     if (auto started = server.start(); !started) return 1;
//     auto stopped = catga::hosting::serve_until_signal(signals, server, *app);
//     return stopped ? 0 : 1;
//   }
//
// Threading: construct ShutdownSignals on the main thread before any other
// thread starts (threads inherit the signal mask that makes SIGINT, SIGTERM
// and SIGHUP wait for `wait()` instead of killing the process).
// `request_stop()` may be called from any thread. Linux only (signalfd).
#pragma once

#include <functional>
#include <memory>
#include <string_view>
#include <vector>

#include "catga/export.hpp"
#include "catga/application.hpp"
#include "catga/cluster.hpp"
#include "catga/result.hpp"

namespace catga::http {
class Server;
}  // namespace catga::http

namespace catga::hosting {

// Parses "ID=HOST:PORT,ID=HOST:PORT/PEER_HOST:PEER_PORT,..." (the Raft
// address of each member, then optionally its peer channel address — by
// default the Raft host and port + 1; spaces around items are ignored). HOST
// is an IPv4 address or a DNS name; a peer address may also be "[IPV6]:PORT".
// Errors (invalid_argument, naming the item): an empty list or item, a
// missing '=', an id that is not a positive integer, an id listed twice, a
// missing host, a port outside 1..65535. The hosts themselves are checked by
// ClusterOptions::validate().
CATGA_EXPORT Result<std::vector<Member>> parse_members(std::string_view list);

// Owns SIGINT, SIGTERM and SIGHUP for the process while it lives: the
// constructor blocks them in the calling thread (and so in every thread
// started after it) and the destructor restores the previous mask.
class CATGA_EXPORT ShutdownSignals {
 public:
  ShutdownSignals();
  ~ShutdownSignals();
  ShutdownSignals(const ShutdownSignals&) = delete;
  ShutdownSignals& operator=(const ShutdownSignals&) = delete;

  // Blocks until SIGINT or SIGTERM arrives (returns its number) or
  // request_stop() is called (returns 0). A signal that arrived before the
  // call is not lost. SIGHUP does not end the wait: it runs the reload
  // handler (on the waiting thread), or is logged and ignored without one.
  // Fails (internal) only when the constructor could not set up (no file
  // descriptors left); the constructor itself never throws.
  Result<int> wait();
  // What SIGHUP does during wait(); replaces the previous handler.
  void on_reload(std::function<void()> reload);
  // Makes wait() return 0; from any thread, at any time (also before wait()).
  void request_stop() noexcept;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// Serves until `signals` fires, then shuts down in order: the server stops
// accepting and answers what it accepted (bounded by its request_timeout),
// then the application is destroyed (its node stops after the work queued
// before). Logs the signal and each step at info. Returns the signal number
// (0 for request_stop()), or wait()'s error with nothing stopped. Meanwhile
// each SIGHUP reloads the server's certificate and credentials files
// (Server::reload) and the cluster's TLS and peer secret files
// (reload_cluster_tls), logging at info what was reloaded and at error what
// was not (the previous files stay in use).
CATGA_EXPORT Result<int> serve_until_signal(ShutdownSignals& signals, http::Server& server, std::unique_ptr<Application>& app);

}  // namespace catga::hosting
