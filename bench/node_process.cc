#include "node_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string_view>
#include <system_error>
#include <thread>

namespace bench {

NodeProcess::NodeProcess(const std::vector<std::string>& args) {
  // Everything the child needs is prepared before fork: after it, only
  // async-signal-safe calls.
  std::vector<char*> argv;
  std::string name = "catga-bench";
  argv.push_back(name.data());
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  int in[2], out[2];  // O_CLOEXEC: no other child inherits these ends
  if (::pipe2(in, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "pipe");
  if (::pipe2(out, O_CLOEXEC) != 0) {
    ::close(in[0]), ::close(in[1]);
    throw std::system_error(errno, std::generic_category(), "pipe");
  }
  // CATGA_BENCH_NODE_GLIBC_TUNABLES: GLIBC_TUNABLES for the node processes
  // only (e.g. huge pages for their heaps), not for the callers' process.
  // The environment is built before fork, like argv.
  std::vector<std::string> env_storage;
  std::vector<char*> envp;
  const char* node_tunables = std::getenv("CATGA_BENCH_NODE_GLIBC_TUNABLES");
  if (node_tunables != nullptr) {
    for (char** e = environ; *e != nullptr; ++e) {
      if (std::string_view(*e).starts_with("GLIBC_TUNABLES=")) continue;
      env_storage.emplace_back(*e);
    }
    env_storage.push_back(std::string("GLIBC_TUNABLES=") + node_tunables);
    for (auto& e : env_storage) envp.push_back(e.data());
    envp.push_back(nullptr);
  }
  const pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // the parent died before prctl
    ::signal(SIGPIPE, SIG_DFL);               // the parent ignores it; exec keeps that
    ::dup2(in[0], STDIN_FILENO);
    ::dup2(out[1], STDOUT_FILENO);
    if (node_tunables != nullptr) {
      ::execve("/proc/self/exe", argv.data(), envp.data());
    } else {
      ::execv("/proc/self/exe", argv.data());
    }
    ::_exit(127);
  }
  const int fork_errno = errno;
  ::close(in[0]);
  ::close(out[1]);
  to_child_ = in[1];
  from_child_ = out[0];
  if (pid_ < 0) {
    close_pipes();
    throw std::system_error(fork_errno, std::generic_category(), "fork");
  }
}

NodeProcess::~NodeProcess() {
  if (running()) kill();
  close_pipes();
}

void NodeProcess::close_pipes() {
  if (to_child_ >= 0) ::close(to_child_);
  if (from_child_ >= 0) ::close(from_child_);
  to_child_ = from_child_ = -1;
}

bool NodeProcess::send(std::string_view line) {
  std::string data(line);
  data += '\n';
  std::size_t done = 0;
  while (to_child_ >= 0 && done < data.size()) {
    const ssize_t n = ::write(to_child_, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;  // EPIPE: the child is gone (SIGPIPE is ignored)
    done += static_cast<std::size_t>(n);
  }
  return done == data.size();
}

std::optional<std::string> NodeProcess::read_line(std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (from_child_ >= 0) {
    if (auto eol = buffer_.find('\n'); eol != std::string::npos) {
      std::string line = buffer_.substr(0, eol);
      buffer_.erase(0, eol + 1);
      return line;
    }
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    pollfd p{from_child_, POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno != EINTR) return std::nullopt;
    if (ready <= 0) continue;
    char chunk[4096];
    const ssize_t n = ::read(from_child_, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;  // end of output: the child exited
    buffer_.append(chunk, static_cast<std::size_t>(n));
  }
  return std::nullopt;
}

bool NodeProcess::stop(std::chrono::milliseconds limit) {
  if (!running()) return false;
  ::close(to_child_);
  to_child_ = -1;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill();
  return false;
}

void NodeProcess::kill() {
  if (!running()) return;
  ::kill(pid_, SIGKILL);
  while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
  close_pipes();
  buffer_.clear();
}

}  // namespace bench
