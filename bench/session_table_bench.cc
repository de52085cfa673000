// Costs of the exactly-once table (Google Benchmark): a keyed command when
// the table is full (1,000,000 idempotency keys, so every new key evicts the
// oldest), a command on a client session, and encoding the full table.
#include <benchmark/benchmark.h>

#include <string>

#include "core/mediator.hpp"
#include "cluster/session_table.hpp"

namespace {

using catga::internal::SessionTable;

std::string small_result() {
  std::string out;
  catga::detail::encode_result(out, catga::Result<int>(7));
  return out;
}

// A table holding kMaxKeys keys recorded over the last few hours.
SessionTable& full_table(std::int64_t& now, std::uint64_t& next_key) {
  static SessionTable table;
  static std::int64_t clock = 1'800'000'000'000;
  static std::uint64_t keys = 0;
  if (keys == 0) {
    const std::string result = small_result();
    for (; keys < SessionTable::kMaxKeys; ++keys) {
      const std::string key = "key-" + std::to_string(keys);
      if (keys % 64 == 0) ++clock;
      (void)table.check(0, 0, 0, key, clock);
      table.record(0, 0, key, result, clock);
    }
  }
  now = clock;
  next_key = keys;
  return table;
}

// One keyed command (check + record of a new key) at 1,000,000 keys: the
// record evicts the oldest key.
void BM_KeyedCommandAtOneMillionKeys(benchmark::State& state) {
  std::int64_t now = 0;
  std::uint64_t first = 0;
  SessionTable& table = full_table(now, first);
  static std::uint64_t next = first;  // every iteration of every run records a new key
  const std::string result = small_result();
  std::string key;
  for (auto _ : state) {
    key = "bench-" + std::to_string(next++);
    auto verdict = table.check(0, 0, 0, key, now);
    benchmark::DoNotOptimize(verdict);
    table.record(0, 0, key, result, now);
  }
  state.counters["keys"] = static_cast<double>(table.keys());
}
BENCHMARK(BM_KeyedCommandAtOneMillionKeys)->Unit(benchmark::kMicrosecond);

// One command on a session (check + record, the floor rising behind it).
void BM_SessionCommand(benchmark::State& state) {
  SessionTable table;
  std::int64_t now = 1'800'000'000'000;
  const auto session = table.open(1, 0, now);
  const std::string result = small_result();
  std::uint64_t sequence = 0;
  for (auto _ : state) {
    ++sequence;
    if (sequence % 1024 == 0) ++now;
    auto verdict = table.check(session, sequence, sequence > 16 ? sequence - 16 : 1, {}, now);
    benchmark::DoNotOptimize(verdict);
    table.record(session, sequence, {}, result, now);
  }
}
BENCHMARK(BM_SessionCommand);

// Encoding the full table (what a snapshot does with it).
void BM_EncodeOneMillionKeys(benchmark::State& state) {
  std::int64_t now = 0;
  std::uint64_t next = 0;
  SessionTable& table = full_table(now, next);
  for (auto _ : state) {
    auto bytes = table.encode();
    benchmark::DoNotOptimize(bytes);
    state.counters["bytes"] = static_cast<double>(bytes.size());
  }
}
BENCHMARK(BM_EncodeOneMillionKeys)->Unit(benchmark::kMillisecond)->Iterations(3);

}  // namespace

BENCHMARK_MAIN();
