// Replays every file of every fuzz corpus (tests/fuzz/corpus/<target>/)
// through the same target functions libFuzzer runs, in the normal build: the
// seeds, what the fuzzer found worth keeping, and every crash once fixed.
//
// Inputs that still crash because of an open bug are listed in
// tests/fuzz/known_failures.txt ("<target>/<file>  reason"). They are expected
// to die (a death test) — when the fix lands that test fails: delete the line
// and the input becomes an ordinary regression test.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "fuzz_support.hpp"

namespace catga::fuzz {
namespace {

namespace fs = std::filesystem;
using Target = std::function<int(const std::uint8_t*, std::size_t)>;

const std::map<std::string, Target>& targets() {
#define CATGA_FUZZ_ENTRY(name) {#name, &fuzz_##name},
  static const std::map<std::string, Target> all = {
      CATGA_FUZZ_CLUSTER_TARGETS(CATGA_FUZZ_ENTRY)
#ifdef CATGA_FUZZ_HAVE_HTTP
      CATGA_FUZZ_HTTP_TARGETS(CATGA_FUZZ_ENTRY)
#endif
  };
#undef CATGA_FUZZ_ENTRY
  return all;
}

const fs::path kCorpus = CATGA_FUZZ_CORPUS_DIR;

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// "<target>/<file>" → reason.
std::map<std::string, std::string> known_failures() {
  std::map<std::string, std::string> out;
  std::istringstream lines(read_file(CATGA_FUZZ_KNOWN_FAILURES));
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#') continue;
    const auto space = line.find_first_of(" \t");
    out[line.substr(0, space)] = space == std::string::npos ? "" : line.substr(line.find_first_not_of(" \t", space));
  }
  return out;
}

std::vector<fs::path> files_of(const std::string& target) {
  std::vector<fs::path> files;
  if (!fs::is_directory(kCorpus / target)) return files;
  for (const auto& e : fs::directory_iterator(kCorpus / target)) {
    if (e.is_regular_file()) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

void replay(const std::string& target, const fs::path& file) {
  const std::string bytes = read_file(file);
  set_current_input(file.string());
  targets().at(target)(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
  set_current_input({});
}

class FuzzCorpus : public ::testing::TestWithParam<std::string> {};

TEST_P(FuzzCorpus, EveryInputPassesItsTarget) {
  const std::string target = GetParam();
  const auto known = known_failures();
  const auto files = files_of(target);
  EXPECT_FALSE(files.empty()) << "no corpus in " << (kCorpus / target);
  for (const auto& file : files) {
    if (known.count(target + "/" + file.filename().string()) != 0) continue;
    SCOPED_TRACE(file.string());
    replay(target, file);  // a failed property aborts, naming the file
  }
}

INSTANTIATE_TEST_SUITE_P(Targets, FuzzCorpus, ::testing::ValuesIn([] {
                           std::vector<std::string> names;
                           for (const auto& [name, fn] : targets()) names.push_back(name);
                           return names;
                         }()),
                         [](const auto& info) { return info.param; });

TEST(FuzzCorpusLayout, EveryCorpusDirectoryHasATarget) {
  for (const auto& e : fs::directory_iterator(kCorpus)) {
    if (!e.is_directory()) continue;
    const std::string name = e.path().filename().string();
#ifndef CATGA_FUZZ_HAVE_HTTP
    if (name == "json_to_msgpack") continue;  // catga::http not built here
#endif
    EXPECT_TRUE(targets().count(name) != 0) << "corpus without a target: " << e.path();
  }
}

TEST(FuzzKnownFailures, StillFailUntilFixed) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  for (const auto& [entry, reason] : known_failures()) {
    const auto slash = entry.find('/');
    ASSERT_NE(slash, std::string::npos) << entry;
    const std::string target = entry.substr(0, slash);
    if (targets().count(target) == 0) continue;
    const fs::path file = kCorpus / entry;
    ASSERT_TRUE(fs::is_regular_file(file)) << "listed in known_failures.txt but missing: " << file;
    EXPECT_DEATH(replay(target, file), "")
        << entry << " passes now (" << reason << "): the bug is fixed — delete its line from "
        << "tests/fuzz/known_failures.txt so it becomes an ordinary regression input";
  }
}

}  // namespace
}  // namespace catga::fuzz
