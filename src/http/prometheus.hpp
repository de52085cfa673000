// Prometheus text exposition (format 0.0.4) helpers and a lock-free latency
// histogram shared by the per-message metrics and the HTTP server's own
// series. Recording: relaxed atomics, any thread. Rendering reads the atomics
// without stopping writers (a scrape may see a request counted in one bucket
// and not yet in the sum: Prometheus tolerates that).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace catga::http::internal {

// "# HELP name help\n# TYPE name type\n"
void write_header(std::string& out, std::string_view name, std::string_view type, std::string_view help);
// `name{labels} value\n` (labels already formatted, may be empty).
void write_sample(std::string& out, std::string_view name, std::string_view labels, std::uint64_t value);
void write_sample(std::string& out, std::string_view name, std::string_view labels, double value);
// Appends `key="value"` (escaped) to a label list, with a comma when needed.
void add_label(std::string& labels, std::string_view key, std::string_view value);

class LatencyHistogram {
 public:
  // Upper bounds in seconds: 50 µs … 10 s, then +Inf.
  static constexpr std::array<double, 17> kBounds = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                                     0.005,   0.01,   0.025,   0.05,   0.1,   0.25,
                                                     0.5,     1.0,    2.5,     5.0,    10.0};

  void record(std::chrono::nanoseconds latency) noexcept;
  std::uint64_t count() const noexcept;
  // name_bucket{labels,le="…"} (cumulative), name_sum, name_count.
  void render(std::string& out, std::string_view name, std::string_view labels) const;

 private:
  std::array<std::atomic<std::uint64_t>, kBounds.size() + 1> buckets_{};
  std::atomic<std::uint64_t> sum_ns_{0};
};

}  // namespace catga::http::internal
