// --trace of catga-orders: OpenTelemetry tracing through catga::otel, with a
// batch span processor sampling every command and one of two exporters:
//   stdout  every span printed to standard output (OpenTelemetry's ostream exporter)
//   otlp    OTLP/HTTP to a collector; OTEL_EXPORTER_OTLP_ENDPOINT (default
//           http://localhost:4318) and the other OTEL_EXPORTER_OTLP_* variables apply
// Built only when catga::otel is (tracing_none.cc otherwise: --trace refuses
// anything but off).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <catga/behavior.hpp>
#include <catga/result.hpp>
#include <catga/tracing.hpp>

namespace orders {

class TraceExport {
 public:
  // The modes this build offers ("off" first).
  static std::vector<std::string> modes();
  // Installs the global TracerProvider for `mode`; nullptr for "off".
  static catga::Result<std::unique_ptr<TraceExport>> start(const std::string& mode);
  // Exports what is still batched, then restores a no-op provider.
  virtual ~TraceExport() = default;
  // The "send" span of every request (ApplicationBuilder::use).
  virtual std::unique_ptr<catga::Behavior> behavior() const = 0;
  // The "forward" and "apply" spans (ClusterOptions::tracer).
  virtual std::shared_ptr<catga::Tracer> cluster_tracer() const = 0;
};

}  // namespace orders
