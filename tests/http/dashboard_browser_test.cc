// The cluster dashboard as Debian's headless Chromium renders it (DOM after
// the script ran, and a screenshot). The tests are skipped, saying so, when
// /usr/bin/chromium is not installed (scripts/setup installs it). Waits are
// bounded; nothing asserts timing. The page and its JSON without a browser:
// dashboard_test.cc.
//
// CATGA_CHROMIUM=PATH runs another browser binary; CATGA_DASHBOARD_SCREENSHOT=PATH
// copies the 3-node screenshot, with a longer history, to PATH (that is how
// docs/dashboard.png is made).
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "http/dashboard_test_support.hpp"
#include "support/cluster.hpp"

extern char** environ;

namespace catga::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// Debian's chromium; CATGA_CHROMIUM=PATH names another binary.
std::string chromium_binary() {
  const char* path = std::getenv("CATGA_CHROMIUM");
  return path && *path ? path : "/usr/bin/chromium";
}

// Gives the server's throughput history a few points: between two samples
// (taken about a second apart by polling /cluster/overview, as the page does)
// a varying number of commands.
void build_throughput_history(std::uint16_t port, const std::vector<int>& commands_per_point) {
  std::size_t points = overview(port)["throughput"]["points"].size();
  for (int commands : commands_per_point) {
    open_accounts(port, commands);
    ASSERT_TRUE(testsupport::wait_for(
        [&] {
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
          return overview(port)["throughput"]["points"].size() > points;
        },
        std::chrono::seconds(20)));
    points = overview(port)["throughput"]["points"].size();
  }
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The text of the element with this id in serialized HTML, when that text has
// no child elements; nullopt when there is no such element.
std::optional<std::string> element_text(const std::string& html, const std::string& id) {
  std::smatch match;
  if (!std::regex_search(html, match, std::regex("<[a-z]+[^>]*\\sid=\"" + id + "\"[^>]*>([^<]*)<")))
    return std::nullopt;
  return match[1].str();
}

// The serialized element with this id up to its closing tag (for containers).
std::string element_html(const std::string& html, const std::string& id, const std::string& tag) {
  auto start = html.find("id=\"" + id + "\"");
  if (start == std::string::npos) return {};
  auto end = html.find("</" + tag + ">", start);
  return html.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

// ------------------------------------------------------------------ chromium

struct BrowserRun {
  bool finished = false;  // exited before the limit
  int exit_code = -1;
  std::string out;  // stdout (the DOM for --dump-dom)
  std::string err;  // stderr, for failure messages
};

// Runs Debian's headless Chromium on `url` with a fresh profile (and HOME)
// under `scratch`, `action` being "--dump-dom" or "--screenshot=PATH". The
// browser runs in its own process group, which is killed when it is done or
// when `limit` passes.
BrowserRun run_chromium(const fs::path& scratch, const std::string& action, const std::string& url,
                        std::chrono::seconds limit = std::chrono::seconds(120)) {
  static int runs = 0;
  const fs::path dir = scratch / ("chromium-" + std::to_string(++runs));
  fs::create_directories(dir / "profile");
  fs::create_directories(dir / "home");
  const fs::path out_path = dir / "stdout", err_path = dir / "stderr";

  // Everything the child needs is built before fork: after it, only
  // async-signal-safe calls.
  std::vector<std::string> args = {chromium_binary(),
                                   "--headless",
                                   "--no-sandbox",
                                   "--disable-gpu",
                                   "--disable-quic",
                                   "--no-first-run",
                                   "--disable-background-networking",
                                   "--disable-component-update",
                                   "--disable-sync",
                                   "--disable-dev-shm-usage",
                                   "--hide-scrollbars",
                                   "--user-data-dir=" + (dir / "profile").string(),
                                   "--window-size=1280,800",
                                   "--virtual-time-budget=5000",
                                   action,
                                   url};
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string_view entry(*e);
    if (entry.starts_with("HOME=") || entry.starts_with("XDG_CONFIG_HOME=") || entry.starts_with("XDG_CACHE_HOME=")) {
      continue;
    }
    env.emplace_back(entry);
  }
  env.push_back("HOME=" + (dir / "home").string());
  env.push_back("XDG_CONFIG_HOME=" + (dir / "home" / ".config").string());
  env.push_back("XDG_CACHE_HOME=" + (dir / "home" / ".cache").string());
  std::vector<char*> argv, envp;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  const std::string out_file = out_path.string(), err_file = err_path.string();

  BrowserRun run;
  const pid_t pid = ::fork();
  if (pid < 0) {
    run.err = "fork failed";
    return run;
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    const int devnull = ::open("/dev/null", O_RDONLY);
    const int out = ::open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int err = ::open(err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (devnull < 0 || out < 0 || err < 0) ::_exit(126);
    ::dup2(devnull, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // also here: whichever runs first
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (true) {
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) {
      run.finished = true;
      break;
    }
    if (done < 0 || std::chrono::steady_clock::now() >= deadline) {
      ::kill(-pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ::kill(-pid, SIGKILL);  // helpers the browser left behind, if any
  if (run.finished && WIFEXITED(status)) run.exit_code = WEXITSTATUS(status);
  run.out = read_file(out_path);
  run.err = read_file(err_path);
  if (run.err.size() > 4000) run.err = "..." + run.err.substr(run.err.size() - 4000);
  return run;
}

// Asserts a screenshot is a real PNG of a rendered page (not an empty canvas).
void expect_screenshot(const fs::path& png) {
  ASSERT_TRUE(fs::exists(png)) << png;
  const std::string bytes = read_file(png);
  ASSERT_GE(bytes.size(), 24u);
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  // IHDR: width and height, big-endian, at offsets 16 and 20.
  auto be32 = [&](std::size_t at) {
    return (std::uint32_t{static_cast<unsigned char>(bytes[at])} << 24) |
           (std::uint32_t{static_cast<unsigned char>(bytes[at + 1])} << 16) |
           (std::uint32_t{static_cast<unsigned char>(bytes[at + 2])} << 8) |
           std::uint32_t{static_cast<unsigned char>(bytes[at + 3])};
  };
  EXPECT_EQ(be32(16), 1280u);
  EXPECT_EQ(be32(20), 800u);
  // A blank 1280x800 page compresses to a few KB; text, tables and a chart do not.
  EXPECT_GT(bytes.size(), 20u * 1024) << "the screenshot looks empty";
}

// ------------------------------------------------------------------ in a browser

class DashboardBrowserTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access(chromium_binary().c_str(), X_OK) != 0) {
      GTEST_SKIP() << chromium_binary() << " is not installed, so the dashboard was not tested in a browser "
                   << "(scripts/setup installs Debian's chromium package)";
    }
  }

  std::string dump_dom(const std::string& url) {
    BrowserRun run = run_chromium(scratch_.path(), "--dump-dom", url);
    EXPECT_TRUE(run.finished) << "chromium did not finish; stderr:\n" << run.err;
    EXPECT_EQ(run.exit_code, 0) << "stderr:\n" << run.err;
    EXPECT_THAT(run.out, HasSubstr("</html>")) << "stderr:\n" << run.err;
    return run.out;
  }

  fs::path screenshot(const std::string& url, const std::string& name) {
    const fs::path png = scratch_.path() / name;
    BrowserRun run = run_chromium(scratch_.path(), "--screenshot=" + png.string(), url);
    EXPECT_TRUE(run.finished) << "chromium did not finish; stderr:\n" << run.err;
    EXPECT_EQ(run.exit_code, 0) << "stderr:\n" << run.err;
    return png;
  }

  testsupport::TempDir scratch_;
};

TEST_F(DashboardBrowserTest, RendersASingleDurableNode) {
  testsupport::TempDir data;
  catga::ApplicationBuilder<bank::State> builder;
  register_test_handlers(builder).data_dir(data.path() / "node");
  auto app = builder.build();
  ASSERT_TRUE(app) << app.error();
  auto server = serve_dashboard(**app);
  const std::uint16_t port = server->port();
  ASSERT_TRUE(wait_ready(port));
  ASSERT_NO_FATAL_FAILURE(build_throughput_history(port, {4, 9}));
  // Idle from here on once the node has announced itself, raised the
  // cluster's apply format to its build's, and announced again at that
  // format (its data directory's identity): a log entry each, the last ones
  // after the history was built. Settled: the same commit index for 1 s.
  auto settled = [&] {
    const NodeStatus st = (*app)->status();
    if (st.announcements.empty() || st.apply_format != st.announcements.front().max_format) return false;
    std::this_thread::sleep_for(std::chrono::seconds(1));
    return (*app)->status().commit_index == st.commit_index;
  };
  bool quiet = false;
  for (int i = 0; i < 20 && !quiet; ++i) quiet = settled();
  ASSERT_TRUE(quiet) << "the node's log never went quiet";
  const NodeStatus s = (*app)->status();
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/";

  const std::string dom = dump_dom(url);
  EXPECT_EQ(element_text(dom, "role"), "leader");
  EXPECT_EQ(element_text(dom, "term"), std::to_string(s.term));
  EXPECT_EQ(element_text(dom, "commit-index"), std::to_string(s.commit_index));
  EXPECT_EQ(element_text(dom, "applied-index"), std::to_string(s.applied_index));
  EXPECT_EQ(element_text(dom, "conn"), "live");
  EXPECT_THAT(element_text(dom, "updated").value_or(""), StartsWith("updated "));
  EXPECT_THAT(element_text(dom, "leader").value_or(""), HasSubstr("leader: node " + std::to_string(s.id)));
  // The history built above: a current rate and a line.
  const auto rate = element_text(dom, "throughput");
  ASSERT_TRUE(rate);
  EXPECT_THAT(*rate, ::testing::MatchesRegex("[0-9.]+"));
  EXPECT_THAT(dom, HasSubstr("id=\"sparkline-line\""));
  const std::string members = element_html(dom, "members-body", "tbody");
  EXPECT_EQ(count_of(members, "<tr"), 1u) << members;
  EXPECT_THAT(members, HasSubstr(s.address));
  EXPECT_THAT(members, HasSubstr("badge leader"));
  EXPECT_THAT(members, HasSubstr("this node"));

  expect_screenshot(screenshot(url, "single-node.png"));
}

TEST_F(DashboardBrowserTest, ShowsEveryMemberOfAThreeNodeCluster) {
  testsupport::LocalCluster<bank::State> cluster(3, [](auto& b, std::size_t) { register_test_handlers(b); });
  auto leader = cluster.leader();
  ASSERT_TRUE(leader);
  auto server = serve_dashboard(cluster.app(*leader));
  const std::uint16_t port = server->port();
  const char* keep = std::getenv("CATGA_DASHBOARD_SCREENSHOT");
  std::vector<int> history = {6, 14, 9, 20, 12};
  if (keep && *keep) {  // for the documentation: most of the minute
    history.clear();
    for (int i = 0; i < 40; ++i)
      history.push_back(static_cast<int>(18 + 10 * std::sin(i * 0.4) + 5 * std::sin(i * 1.7)));
  }
  ASSERT_NO_FATAL_FAILURE(build_throughput_history(port, history));
  ASSERT_TRUE(cluster.wait_applied(cluster.app(*leader).status().commit_index));
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/";

  // Some traffic while the browser looks (nothing below depends on it).
  std::atomic<bool> stop{false};
  std::thread traffic([&] {
    try {
      HttpClient c(port);
      while (!stop.load()) {
        c.post("/accounts", R"({"owner":"live"})");
        std::this_thread::sleep_for(std::chrono::milliseconds(40));
      }
    } catch (const std::exception&) {
      // The traffic is decoration; a failed request ends it.
    }
  });
  struct Join {
    std::atomic<bool>& stop;
    std::thread& thread;
    ~Join() {
      stop = true;
      thread.join();
    }
  } join{stop, traffic};

  const std::string dom = dump_dom(url);
  EXPECT_TRUE(element_text(dom, "role"));
  EXPECT_EQ(element_text(dom, "conn"), "live");
  const std::string members = element_html(dom, "members-body", "tbody");
  EXPECT_EQ(count_of(members, "<tr"), 3u) << members;
  for (std::size_t i = 0; i < 3; ++i) EXPECT_THAT(members, HasSubstr(cluster.member(i).address)) << members;
  EXPECT_EQ(count_of(members, "badge leader"), 1u) << members;  // (a leader change would still show one)
  EXPECT_EQ(count_of(members, "this node"), 1u) << members;

  const fs::path png = screenshot(url, "cluster.png");
  expect_screenshot(png);
  if (keep && *keep && fs::exists(png)) {
    fs::copy_file(png, keep, fs::copy_options::overwrite_existing);
  }
}

TEST_F(DashboardBrowserTest, ShowsUnreachableWhenThePollFails) {
  // The page saved to a file: its poll of cluster/overview cannot succeed there.
  catga::ApplicationBuilder<bank::State> builder;
  register_test_handlers(builder).in_memory();
  auto app = builder.build();
  ASSERT_TRUE(app) << app.error();
  std::string page;
  {
    auto server = serve_dashboard(**app);
    page = HttpClient(server->port()).get("/").body;
  }
  ASSERT_THAT(page, StartsWith("<!doctype html>"));
  const fs::path file = scratch_.path() / "dashboard.html";
  std::ofstream(file, std::ios::binary) << page;

  const std::string dom = dump_dom("file://" + file.string());
  EXPECT_EQ(element_text(dom, "conn"), "unreachable");
  EXPECT_EQ(element_text(dom, "updated"), "never updated");
  EXPECT_THAT(dom, HasSubstr("id=\"main\" class=\"stale\""));
}

}  // namespace
}  // namespace catga::testing
