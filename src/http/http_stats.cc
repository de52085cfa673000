#include <algorithm>

#include "http/server_impl.hpp"

namespace catga::http::internal {

HttpStats::HttpStats(const Router& router) {
  for (std::size_t id = 0; id <= router.size(); ++id) {
    auto series = std::make_unique<RouteSeries>();
    if (id < router.size()) {
      series->pattern = std::string(router.pattern(id));
      series->method = std::string(to_string(router.method(id)));
    } else {
      series->pattern = "unmatched";
    }
    routes_.push_back(std::move(series));
  }
}

void HttpStats::record(std::size_t route, int status, std::chrono::nanoseconds latency) noexcept {
  RouteSeries& series = *routes_[std::min(route, unmatched())];
  const auto* found = std::find(kStatuses.begin(), kStatuses.end(), status);
  const auto index = static_cast<std::size_t>(found - kStatuses.begin());  // kStatuses.size(): "other"
  series.by_status[index].fetch_add(1, std::memory_order_relaxed);
  series.latency.record(latency);
}

void HttpStats::render(std::string& out) const {
  write_header(out, "catga_http_requests_total", "counter", "HTTP requests answered, by route and status.");
  for (const auto& series : routes_) {
    for (std::size_t i = 0; i <= kStatuses.size(); ++i) {
      const std::uint64_t n = series->by_status[i].load(std::memory_order_relaxed);
      if (n == 0) continue;
      std::string labels;
      add_label(labels, "method", series->method);
      add_label(labels, "route", series->pattern);
      add_label(labels, "status", i < kStatuses.size() ? std::to_string(kStatuses[i]) : "other");
      write_sample(out, "catga_http_requests_total", labels, n);
    }
  }
  write_header(out, "catga_http_request_duration_seconds", "histogram",
               "Time from a request's arrival to its response being handed to the connection.");
  for (const auto& series : routes_) {
    if (series->latency.count() == 0) continue;
    std::string labels;
    add_label(labels, "method", series->method);
    add_label(labels, "route", series->pattern);
    series->latency.render(out, "catga_http_request_duration_seconds", labels);
  }
}

}  // namespace catga::http::internal
