// --trace with catga::otel: an SDK TracerProvider (batch span processor,
// every span sampled) exporting to stdout or OTLP/HTTP.
#include <catga/otel.hpp>

#include <opentelemetry/exporters/ostream/span_exporter_factory.h>
#include <opentelemetry/exporters/otlp/otlp_http_exporter_factory.h>
#include <opentelemetry/sdk/resource/resource.h>
#include <opentelemetry/sdk/trace/batch_span_processor_factory.h>
#include <opentelemetry/sdk/trace/batch_span_processor_options.h>
#include <opentelemetry/sdk/trace/tracer_provider.h>
#include <opentelemetry/sdk/trace/tracer_provider_factory.h>
#include <opentelemetry/trace/noop.h>
#include <opentelemetry/trace/provider.h>

#include "tracing.hpp"

namespace orders {
namespace {

namespace sdktrace = opentelemetry::sdk::trace;
using opentelemetry::nostd::shared_ptr;

class OtelExport final : public TraceExport {
 public:
  explicit OtelExport(std::unique_ptr<sdktrace::SpanExporter> exporter) {
    auto processor = sdktrace::BatchSpanProcessorFactory::Create(std::move(exporter), sdktrace::BatchSpanProcessorOptions{});
    auto resource = opentelemetry::sdk::resource::Resource::Create({{"service.name", "catga-orders"}});
    provider_ = sdktrace::TracerProviderFactory::Create(std::move(processor), resource);
    opentelemetry::trace::Provider::SetTracerProvider(shared_ptr<opentelemetry::trace::TracerProvider>(provider_));
    tracing_ = std::make_unique<catga::otel::Tracing>();
  }
  ~OtelExport() override {
    provider_->Shutdown();
    opentelemetry::trace::Provider::SetTracerProvider(
        shared_ptr<opentelemetry::trace::TracerProvider>(new opentelemetry::trace::NoopTracerProvider()));
  }
  std::unique_ptr<catga::Behavior> behavior() const override { return tracing_->behavior(); }
  std::shared_ptr<catga::Tracer> cluster_tracer() const override { return tracing_->cluster_tracer(); }

 private:
  std::shared_ptr<sdktrace::TracerProvider> provider_;
  std::unique_ptr<catga::otel::Tracing> tracing_;
};

}  // namespace

std::vector<std::string> TraceExport::modes() { return {"off", "stdout", "otlp"}; }

catga::Result<std::unique_ptr<TraceExport>> TraceExport::start(const std::string& mode) {
  if (mode == "off") return std::unique_ptr<TraceExport>();
  if (mode == "stdout") {
    return std::unique_ptr<TraceExport>(
        std::make_unique<OtelExport>(opentelemetry::exporter::trace::OStreamSpanExporterFactory::Create()));
  }
  if (mode == "otlp") {
    return std::unique_ptr<TraceExport>(
        std::make_unique<OtelExport>(opentelemetry::exporter::otlp::OtlpHttpExporterFactory::Create()));
  }
  return catga::Error{catga::Code::invalid_argument, "--trace " + mode + ": expected off, stdout or otlp"};
}

}  // namespace orders
