// Hosting: the member-list parser and the signal-owned shutdown (and SIGHUP
// reload) of a service process (catga/hosting.hpp). Signals arrive through a signalfd, request_stop
// through an eventfd; wait() polls both.
#include "catga/hosting.hpp"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <functional>
#include <optional>
#include <set>
#include <string>

#include "catga/http.hpp"
#include "catga/logging.hpp"

namespace catga::hosting {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

Error bad_item(std::string_view item, std::string_view why) {
  return Error{Code::invalid_argument,
               "member list: '" + std::string(item) + "' " + std::string(why) + " (expected ID=HOST:PORT or ID=HOST:PORT/PEER_HOST:PEER_PORT)"};
}

template <class T>
bool parse_number(std::string_view text, T& out) {
  if (text.empty()) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc{} && end == text.data() + text.size();
}

// The syntax only: the host itself is checked by ClusterOptions::validate().
Result<void> check_host_port(std::string_view item, std::string_view address) {
  const std::size_t colon = address.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return bad_item(item, "has no HOST:PORT address");
  unsigned port = 0;
  if (!parse_number(address.substr(colon + 1), port) || port == 0 || port > 65535) {
    return bad_item(item, "has a port outside 1..65535");
  }
  return {};
}

sigset_t shutdown_set() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  return set;
}

Error system_error(const char* what, int error) {
  return Error{Code::internal, std::string("shutdown signals: ") + what + ": " + std::strerror(error)};
}

}  // namespace

Result<std::vector<Member>> parse_members(std::string_view list) {
  std::vector<Member> members;
  std::set<std::uint64_t> ids;
  if (trim(list).empty()) return Error{Code::invalid_argument, "member list: empty (expected ID=HOST:PORT,...)"};
  while (true) {
    const std::size_t comma = list.find(',');
    const std::string_view item = trim(list.substr(0, comma));
    if (item.empty())
      return Error{Code::invalid_argument, "member list: an empty item (two commas, or a trailing one)"};
    const std::size_t eq = item.find('=');
    if (eq == std::string_view::npos) return bad_item(item, "has no '='");
    Member member;
    if (!parse_number(trim(item.substr(0, eq)), member.id) || member.id == 0) {
      return bad_item(item, "does not start with a positive integer id");
    }
    if (!ids.insert(member.id).second) return bad_item(item, "repeats id " + std::to_string(member.id));
    const std::string_view addresses = trim(item.substr(eq + 1));
    const std::size_t slash = addresses.find('/');
    const std::string_view address = trim(addresses.substr(0, slash));
    if (auto r = check_host_port(item, address); !r) return r.error();
    member.address = std::string(address);
    if (slash != std::string_view::npos) {
      const std::string_view peer = trim(addresses.substr(slash + 1));
      if (peer.find('/') != std::string_view::npos) return bad_item(item, "has more than one '/'");
      if (auto r = check_host_port(item, peer); !r) return r.error();
      member.peer_address = std::string(peer);
    }
    members.push_back(std::move(member));
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return members;
}

struct ShutdownSignals::State {
  sigset_t previous;
  bool masked = false;
  int signal_fd = -1;
  int stop_fd = -1;
  std::optional<Error> failure;  // set when the constructor could not set up
  std::function<void()> reload;  // SIGHUP
};

ShutdownSignals::ShutdownSignals() : state_(std::make_unique<State>()) {
  const sigset_t set = shutdown_set();
  if (int e = pthread_sigmask(SIG_BLOCK, &set, &state_->previous); e != 0) {
    state_->failure = system_error("pthread_sigmask", e);
    return;
  }
  state_->masked = true;
  state_->signal_fd = signalfd(-1, &set, SFD_CLOEXEC);
  if (state_->signal_fd < 0) state_->failure = system_error("signalfd", errno);
  state_->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (state_->stop_fd < 0 && !state_->failure) state_->failure = system_error("eventfd", errno);
}

ShutdownSignals::~ShutdownSignals() {
  if (state_->signal_fd >= 0) ::close(state_->signal_fd);
  if (state_->stop_fd >= 0) ::close(state_->stop_fd);
  if (state_->masked) pthread_sigmask(SIG_SETMASK, &state_->previous, nullptr);
}

Result<int> ShutdownSignals::wait() {
  if (state_->failure) return *state_->failure;
  pollfd fds[2] = {{state_->signal_fd, POLLIN, 0}, {state_->stop_fd, POLLIN, 0}};
  while (true) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return system_error("poll", errno);
    }
    if (fds[1].revents & POLLIN) return 0;
    if (fds[0].revents & POLLIN) {
      signalfd_siginfo info{};
      if (::read(state_->signal_fd, &info, sizeof info) != static_cast<ssize_t>(sizeof info)) continue;
      if (info.ssi_signo != SIGHUP) return static_cast<int>(info.ssi_signo);
      if (!state_->reload) {
        log_message(LogLevel::info, "SIGHUP: nothing to reload");
        continue;
      }
      state_->reload();
    }
  }
}

void ShutdownSignals::request_stop() noexcept {
  if (state_->stop_fd < 0) return;
  const std::uint64_t one = 1;
  [[maybe_unused]] auto written = ::write(state_->stop_fd, &one, sizeof one);
}

void ShutdownSignals::on_reload(std::function<void()> reload) { state_->reload = std::move(reload); }

Result<int> serve_until_signal(ShutdownSignals& signals, http::Server& server, std::unique_ptr<Application>& app) {
  signals.on_reload([&server] {
    log_message(LogLevel::info, "SIGHUP: reloading certificates and credentials");
    if (auto reloaded = server.reload(); reloaded) {
      log_message(LogLevel::info, "HTTP server on port " + std::to_string(server.port()) +
                                      ": its TLS and credentials files (those configured) reloaded");
    } else {
      log_message(LogLevel::error, "HTTP server on port " + std::to_string(server.port()) + ": not reloaded: " +
                                       reloaded.error().message() + " (keeping the previous files)");
    }
    for (const auto& line : reload_cluster_tls()) {
      const bool failed = line.find(": TLS credentials not reloaded: ") != std::string::npos ||
                          line.find(": peer secrets not reloaded: ") != std::string::npos;
      log_message(failed ? LogLevel::error : LogLevel::info, line);
    }
  });
  auto waited = signals.wait();
  signals.on_reload(nullptr);
  if (!waited) return waited;  // the server and application keep running: the caller decides
  const int received = *waited;
  const std::string why = received == 0 ? std::string("stop requested") : std::string(strsignal(received));
  log_message(LogLevel::info,
              "shutting down (" + why + "): stopping the HTTP server on port " + std::to_string(server.port()));
  server.stop();
  log_message(LogLevel::info, "HTTP server stopped; stopping the application");
  app.reset();
  log_message(LogLevel::info, "stopped");
  return received;
}

}  // namespace catga::hosting
