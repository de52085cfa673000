// Metrics: a fixed-capacity, insert-only hash table of per-message series.
// Lookups are lock-free; the first sight of a wire name takes a mutex once.
#include "catga/metrics.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <mutex>
#include <vector>

#include "http/prometheus.hpp"

namespace catga {
namespace {

constexpr std::size_t kCodes = static_cast<std::size_t>(Code::unauthenticated) + 1;

struct Series {
  Series(std::string_view n, MessageKind k) : name(n), kind(k) {}
  void record(Code code, std::chrono::nanoseconds latency) noexcept {
    const auto index = std::min(static_cast<std::size_t>(code), kCodes - 1);
    by_code[index].fetch_add(1, std::memory_order_relaxed);
    latency_histogram.record(latency);
  }
  const std::string name;
  const MessageKind kind;
  std::array<std::atomic<std::uint64_t>, kCodes> by_code{};
  http::internal::LatencyHistogram latency_histogram;
};

std::uint64_t fnv1a(std::string_view s) noexcept {
  std::uint64_t h = 1469598103934665603ull;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace

struct Metrics::Table {
  static constexpr std::size_t kSlots = 2 * kMaxSeries;  // load factor <= 1/2
  static_assert((kSlots & (kSlots - 1)) == 0);

  ~Table() {
    for (auto& slot : slots) delete slot.load(std::memory_order_relaxed);
  }

  // The series for `name`, or nullptr when absent (and `insert` is false).
  Series* find(std::string_view name, MessageKind kind, bool insert) noexcept {
    const std::uint64_t h = fnv1a(name);
    for (std::size_t i = 0; i < kSlots; ++i) {
      Series* s = slots[(h + i) & (kSlots - 1)].load(std::memory_order_acquire);
      if (!s) return insert ? add(name, kind, h) : nullptr;
      if (s->name == name) return s;
    }
    return insert ? &other : nullptr;
  }

  Series* add(std::string_view name, MessageKind kind, std::uint64_t h) noexcept {
    std::lock_guard lock(mutex);
    for (std::size_t i = 0; i < kSlots; ++i) {
      auto& slot = slots[(h + i) & (kSlots - 1)];
      Series* s = slot.load(std::memory_order_acquire);
      if (s && s->name == name) return s;
      if (s) continue;
      if (size >= kMaxSeries) return &other;
      try {
        s = new Series(name, kind);
      } catch (...) {
        return &other;
      }
      slot.store(s, std::memory_order_release);
      ++size;
      return s;
    }
    return &other;
  }

  std::array<std::atomic<Series*>, kSlots> slots{};
  std::mutex mutex;        // inserts only
  std::size_t size = 0;    // under mutex
  Series other{"_other", MessageKind::command};
};

namespace {

class MetricsBehavior final : public Behavior {
 public:
  explicit MetricsBehavior(Metrics& metrics) : metrics_(metrics) {}
  void handle(Request& request, Next& next) override {
    // The capture fits the observer's inline storage (no allocation per
    // request). The wire name has static storage (the message type's).
    const auto start = std::chrono::steady_clock::now();
    Metrics* metrics = &metrics_;
    const char* name = request.wire_name().data();
    const auto size = static_cast<std::uint32_t>(request.wire_name().size());
    const MessageKind kind = request.kind();
    next([metrics, name, start, size, kind](const Result<void>& outcome) {
      metrics->record(kind, std::string_view(name, size), outcome ? Code::ok : outcome.error().code(),
                      std::chrono::steady_clock::now() - start);
    });
  }
  Metrics& metrics() const noexcept { return metrics_; }

 private:
  Metrics& metrics_;
};

}  // namespace

Metrics::Metrics() : table_(std::make_unique<Table>()) {}
Metrics::~Metrics() = default;

std::unique_ptr<Behavior> Metrics::behavior() { return std::make_unique<MetricsBehavior>(*this); }

void Metrics::record(MessageKind kind, std::string_view wire_name, Code code, std::chrono::nanoseconds latency) noexcept {
  table_->find(wire_name, kind, true)->record(code, latency);
}

std::uint64_t Metrics::count(std::string_view wire_name, Code code) const noexcept {
  const Series* s = table_->find(wire_name, MessageKind::command, false);
  if (!s && wire_name == "_other") s = &table_->other;
  if (!s) return 0;
  return s->by_code[std::min(static_cast<std::size_t>(code), kCodes - 1)].load(std::memory_order_relaxed);
}

void Metrics::render_prometheus(std::string& out) const {
  using namespace http::internal;
  std::vector<const Series*> series;
  for (const auto& slot : table_->slots) {
    if (const Series* s = slot.load(std::memory_order_acquire)) series.push_back(s);
  }
  std::sort(series.begin(), series.end(), [](const Series* a, const Series* b) { return a->name < b->name; });
  if (table_->other.latency_histogram.count() > 0) series.push_back(&table_->other);

  write_header(out, "catga_messages_total", "counter",
               "Completed commands, queries and events sent on this node, by outcome code.");
  for (const Series* s : series) {
    for (std::size_t code = 0; code < kCodes; ++code) {
      const std::uint64_t n = s->by_code[code].load(std::memory_order_relaxed);
      if (n == 0 && code != 0) continue;
      std::string labels;
      add_label(labels, "kind", catga::to_string(s->kind));
      add_label(labels, "message", s->name);
      add_label(labels, "code", to_string(static_cast<Code>(code)));
      write_sample(out, "catga_messages_total", labels, n);
    }
  }
  write_header(out, "catga_message_duration_seconds", "histogram",
               "Time from the pipeline to the outcome (replication included for commands).");
  for (const Series* s : series) {
    std::string labels;
    add_label(labels, "kind", catga::to_string(s->kind));
    add_label(labels, "message", s->name);
    s->latency_histogram.render(out, "catga_message_duration_seconds", labels);
  }
}

}  // namespace catga
