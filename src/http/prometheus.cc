#include "http/prometheus.hpp"

#include <algorithm>
#include <cstdio>

namespace catga::http::internal {
namespace {

void write_labels(std::string& out, std::string_view name, std::string_view labels) {
  out += name;
  if (!labels.empty()) {
    out += '{';
    out += labels;
    out += '}';
  }
  out += ' ';
}

std::string format_double(double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.9g", value);
  return buffer;
}

}  // namespace

void write_header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void write_sample(std::string& out, std::string_view name, std::string_view labels, std::uint64_t value) {
  write_labels(out, name, labels);
  out += std::to_string(value);
  out += '\n';
}

void write_sample(std::string& out, std::string_view name, std::string_view labels, double value) {
  write_labels(out, name, labels);
  out += format_double(value);
  out += '\n';
}

void add_label(std::string& labels, std::string_view key, std::string_view value) {
  if (!labels.empty()) labels += ',';
  labels += key;
  labels += "=\"";
  for (char c : value) {
    if (c == '\\') labels += "\\\\";
    else if (c == '"') labels += "\\\"";
    else if (c == '\n') labels += "\\n";
    else labels += c;
  }
  labels += '"';
}

void LatencyHistogram::record(std::chrono::nanoseconds latency) noexcept {
  const double seconds = std::chrono::duration<double>(latency).count();
  const auto bucket = static_cast<std::size_t>(std::lower_bound(kBounds.begin(), kBounds.end(), seconds) - kBounds.begin());
  buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(static_cast<std::uint64_t>(std::max<std::int64_t>(latency.count(), 0)), std::memory_order_relaxed);
}

std::uint64_t LatencyHistogram::count() const noexcept {
  std::uint64_t total = 0;
  for (const auto& b : buckets_) total += b.load(std::memory_order_relaxed);
  return total;
}

void LatencyHistogram::render(std::string& out, std::string_view name, std::string_view labels) const {
  const std::string bucket_name = std::string(name) + "_bucket";
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i <= kBounds.size(); ++i) {
    cumulative += buckets_[i].load(std::memory_order_relaxed);
    std::string with_le(labels);
    add_label(with_le, "le", i < kBounds.size() ? format_double(kBounds[i]) : "+Inf");
    write_sample(out, bucket_name, with_le, cumulative);
  }
  write_sample(out, std::string(name) + "_sum", labels, static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9);
  write_sample(out, std::string(name) + "_count", labels, cumulative);
}

}  // namespace catga::http::internal
