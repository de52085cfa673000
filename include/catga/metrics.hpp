// catga/metrics.hpp — per-message counters and latency histograms, collected
// by a pipeline behaviour and rendered as Prometheus text.
//
//   catga::Metrics metrics;                      // outlives the application
//   builder.use(metrics.behavior());             // records every send/publish
//   ...
//   server.map_metrics(&metrics);                // GET /metrics
//
// For every wire name it counts completed requests by outcome code and keeps
// a latency histogram (from the behaviour's `handle` to the outcome: includes
// replication for commands, waiting for consistency for queries).
//
// Series (Prometheus names):
//   catga_messages_total{kind,message,code}             counter
//   catga_message_duration_seconds{kind,message}        histogram
//
// Threading: recording is lock-free (relaxed atomics, one table lookup per
// request, no allocation after a wire name is first seen) and may happen on
// any thread; rendering may run concurrently with recording. At most
// `kMaxSeries` wire names are tracked; later ones are counted under
// message="_other".
//
// Ownership: the behaviour returned by `behavior()` borrows this object, which
// must outlive the application it is added to.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "catga/export.hpp"
#include "catga/behavior.hpp"
#include "catga/message.hpp"
#include "catga/result.hpp"

namespace catga {

class CATGA_EXPORT Metrics {
 public:
  static constexpr std::size_t kMaxSeries = 1024;

  Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;
  ~Metrics();

  // A behaviour recording into this object (add it first to time the whole
  // pipeline, last to time only the work behind it).
  std::unique_ptr<Behavior> behavior();

  // Records one completed request. Thread-safe, lock-free.
  void record(MessageKind kind, std::string_view wire_name, Code code, std::chrono::nanoseconds latency) noexcept;

  // How many requests for `wire_name` completed with `code` so far.
  std::uint64_t count(std::string_view wire_name, Code code) const noexcept;

  // Appends the Prometheus text exposition (format 0.0.4) of every series.
  void render_prometheus(std::string& out) const;

 private:
  struct Table;
  std::unique_ptr<Table> table_;
};

}  // namespace catga
