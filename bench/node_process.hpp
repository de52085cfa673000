// A child process of catga-bench, talked to in lines over its stdin and
// stdout. The child gets SIGKILL if the thread that started it dies
// (PR_SET_PDEATHSIG), so start and own NodeProcesses from the main thread.
// Every wait is bounded; the destructor kills and reaps a child still running.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bench {

class NodeProcess {
 public:
  // Runs this executable (/proc/self/exe) with `args` (argv[1..]); throws
  // std::system_error if it cannot be started.
  explicit NodeProcess(const std::vector<std::string>& args);
  ~NodeProcess();
  NodeProcess(const NodeProcess&) = delete;
  NodeProcess& operator=(const NodeProcess&) = delete;

  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }

  // Writes `line` and a newline; false if the child is gone.
  bool send(std::string_view line);
  // The next line the child writes (without the newline), or nothing if it
  // closed stdout or `limit` passed first.
  std::optional<std::string> read_line(std::chrono::milliseconds limit);

  // Closes the child's stdin (it exits on end of input) and reaps it, sending
  // SIGKILL if it has not exited within `limit`. True if it exited by itself
  // with status 0.
  bool stop(std::chrono::milliseconds limit);
  // SIGKILL, then reap.
  void kill();

 private:
  void close_pipes();
  pid_t pid_ = -1;
  int to_child_ = -1, from_child_ = -1;
  std::string buffer_;
};

}  // namespace bench
