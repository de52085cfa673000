// catga-otel-bench: commands/s of a 3-node cluster in this process with
// tracing off (no behaviour, no cluster tracer: what every build without
// catga::otel does) or on (catga::otel's behaviour and cluster tracer; an
// SDK TracerProvider sampling every span, a batch processor, an exporter that
// discards the batches). One setting per run: alternate runs of both to
// compare (docs/performance.md, "Tracing").
#include <CLI/CLI.hpp>

#include <opentelemetry/sdk/trace/batch_span_processor_factory.h>
#include <opentelemetry/sdk/trace/batch_span_processor_options.h>
#include <opentelemetry/sdk/trace/exporter.h>
#include <opentelemetry/sdk/trace/span_data.h>
#include <opentelemetry/sdk/trace/tracer_provider_factory.h>
#include <opentelemetry/trace/provider.h>

#include <atomic>
#include <cstdio>
#include <thread>

#include "catga/otel.hpp"
#include "support/bank.hpp"
#include "support/cluster.hpp"

namespace {

namespace sdktrace = opentelemetry::sdk::trace;

// Receives every batch and drops it: the cost measured is Catga's and the
// SDK's, not a collector's.
class DiscardingExporter final : public sdktrace::SpanExporter {
 public:
  std::unique_ptr<sdktrace::Recordable> MakeRecordable() noexcept override { return std::make_unique<sdktrace::SpanData>(); }
  opentelemetry::sdk::common::ExportResult Export(
      const opentelemetry::nostd::span<std::unique_ptr<sdktrace::Recordable>>& spans) noexcept override {
    exported_.fetch_add(spans.size(), std::memory_order_relaxed);
    return opentelemetry::sdk::common::ExportResult::kSuccess;
  }
  bool ForceFlush(std::chrono::microseconds) noexcept override { return true; }
  bool Shutdown(std::chrono::microseconds) noexcept override { return true; }
  static std::atomic<std::uint64_t> exported_;
};
std::atomic<std::uint64_t> DiscardingExporter::exported_{0};

}  // namespace

int main(int argc, char** argv) {
  CLI::App cli{"catga-otel-bench: replicated commands/s with tracing off or on"};
  std::string tracing = "off", via = "follower";
  int callers = 64;
  double seconds = 5, warmup = 1;
  cli.add_option("--tracing", tracing, "off | on")->check(CLI::IsMember({"off", "on"}));
  cli.add_option("--via", via, "where callers send: leader | follower")->check(CLI::IsMember({"leader", "follower"}));
  cli.add_option("--callers", callers, "concurrent closed-loop callers")->check(CLI::Range(1, 1024));
  cli.add_option("--seconds", seconds, "measured duration")->check(CLI::PositiveNumber);
  cli.add_option("--warmup", warmup, "unmeasured warm-up before it")->check(CLI::NonNegativeNumber);
  CLI11_PARSE(cli, argc, argv);

  const bool on = tracing == "on";
  std::shared_ptr<sdktrace::TracerProvider> provider;
  if (on) {
    sdktrace::BatchSpanProcessorOptions batch;
    batch.max_queue_size = 65'536;
    batch.max_export_batch_size = 2048;
    provider = sdktrace::TracerProviderFactory::Create(
        sdktrace::BatchSpanProcessorFactory::Create(std::make_unique<DiscardingExporter>(), batch));
    opentelemetry::trace::Provider::SetTracerProvider(
        opentelemetry::nostd::shared_ptr<opentelemetry::trace::TracerProvider>(provider));
  }
  catga::otel::Tracing otel;
  testsupport::LocalCluster<bank::State> cluster(
      3,
      [&](catga::ApplicationBuilder<bank::State>& b, std::size_t) {
        bank::register_handlers(b);
        if (on) b.use(otel.behavior());
      },
      [&](catga::ClusterOptions& o) {
        if (on) o.tracer = otel.cluster_tracer();
      });
  auto leader = cluster.leader();
  if (!leader) {
    std::fprintf(stderr, "no leader\n");
    return 1;
  }
  catga::Application& app = cluster.app(via == "leader" ? *leader : (*leader + 1) % cluster.size());

  std::atomic<bool> measuring{false}, stop{false};
  std::atomic<std::uint64_t> done{0}, failed{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < callers; ++c) {
    threads.emplace_back([&, c] {
      for (std::uint64_t i = 0; !stop; ++i) {
        auto r = app.send(bank::Open{.owner = "c" + std::to_string(c) + "-" + std::to_string(i)});
        if (!measuring) continue;
        (r ? done : failed).fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(warmup));
  measuring = true;
  const auto start = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  measuring = false;
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const std::uint64_t commands = done.load();
  stop = true;
  for (auto& t : threads) t.join();
  if (provider) provider->ForceFlush();
  std::printf("tracing=%s via=%s callers=%d commands/s=%.0f failed=%llu spans_exported=%llu\n", tracing.c_str(),
              via.c_str(), callers, commands / elapsed, static_cast<unsigned long long>(failed.load()),
              static_cast<unsigned long long>(DiscardingExporter::exported_.load()));
  return 0;
}
