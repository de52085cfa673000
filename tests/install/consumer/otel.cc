// Uses catga::otel from an install (find_package(catga COMPONENTS otel)): an
// in-memory Application with the tracing behaviour, its spans recorded by
// OpenTelemetry's in-memory exporter; one command gives one "send" span with
// the caller's trace as its parent.
#include <catga/application.hpp>
#include <catga/otel.hpp>

#include <opentelemetry/exporters/memory/in_memory_span_data.h>
#include <opentelemetry/exporters/memory/in_memory_span_exporter_factory.h>
#include <opentelemetry/sdk/trace/simple_processor_factory.h>
#include <opentelemetry/sdk/trace/tracer_provider_factory.h>
#include <opentelemetry/trace/provider.h>

#include <cstdio>
#include <string>

struct Counter {
  int value = 0;
  MSGPACK_DEFINE_MAP(value);
};

struct Add {
  using catga_message = catga::Command<int, "consumer.add.v1">;
  int amount = 0;
  MSGPACK_DEFINE_MAP(amount);
};

int main() {
  auto spans = std::make_shared<opentelemetry::exporter::memory::InMemorySpanData>(16);
  auto exporter = opentelemetry::exporter::memory::InMemorySpanExporterFactory::Create(spans, 16);
  std::shared_ptr<opentelemetry::trace::TracerProvider> provider =
      opentelemetry::sdk::trace::TracerProviderFactory::Create(
          opentelemetry::sdk::trace::SimpleSpanProcessorFactory::Create(std::move(exporter)));
  opentelemetry::trace::Provider::SetTracerProvider(
      opentelemetry::nostd::shared_ptr<opentelemetry::trace::TracerProvider>(provider));

  catga::otel::Tracing tracing;
  catga::ApplicationBuilder<Counter> builder;
  builder.command<Add>([](Counter& c, const Add& add, catga::CommandContext&) { return c.value += add.amount; });
  builder.use(tracing.behavior());
  builder.in_memory();
  auto app = builder.build();
  if (!app) return std::fprintf(stderr, "build: %s\n", app.error().to_string().c_str()), 1;

  const auto parent = catga::TraceContext::from_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  if (!parent) return std::fputs("traceparent not parsed\n", stderr), 1;
  auto sum = (*app)->send(Add{.amount = 42}, {.trace_parent = *parent});
  if (!sum || *sum != 42) return std::fputs("send failed\n", stderr), 1;

  const auto recorded = spans->GetSpans();
  if (recorded.size() != 1 || std::string(recorded[0]->GetName()) != "send consumer.add.v1") {
    return std::fprintf(stderr, "expected one span 'send consumer.add.v1', got %zu\n", recorded.size()), 1;
  }
  std::string trace_id(32, '0');
  recorded[0]->GetTraceId().ToLowerBase16(opentelemetry::nostd::span<char, 32>(trace_id.data(), 32));
  if (trace_id != "0af7651916cd43dd8448eb211c80319c") {
    return std::fprintf(stderr, "the span is not in the caller's trace: %s\n", trace_id.c_str()), 1;
  }
  std::puts("consumer-otel: ok");
  return 0;
}
