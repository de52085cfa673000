// catga::otel — catga/tracing.hpp's hooks and a pipeline behaviour, on
// OpenTelemetry's tracing API. The only file that includes OpenTelemetry.
#include <opentelemetry/trace/provider.h>
#include <opentelemetry/trace/span_startoptions.h>

#include <string>

#include "catga/otel.hpp"

namespace catga::otel {
namespace {

namespace trace = opentelemetry::trace;
using opentelemetry::nostd::shared_ptr;
using opentelemetry::nostd::span;
using opentelemetry::nostd::string_view;

trace::SpanContext to_otel(const TraceContext& t) {
  return trace::SpanContext(trace::TraceId(span<const std::uint8_t, 16>(t.trace_id.data(), 16)),
                            trace::SpanId(span<const std::uint8_t, 8>(t.span_id.data(), 8)),
                            trace::TraceFlags(t.flags), /*is_remote=*/true);
}

TraceContext from_otel(const trace::SpanContext& c) {
  TraceContext t;
  c.trace_id().CopyBytesTo(span<std::uint8_t, 16>(t.trace_id.data(), 16));
  c.span_id().CopyBytesTo(span<std::uint8_t, 8>(t.span_id.data(), 8));
  t.flags = c.trace_flags().flags();
  return t;
}

// Starts "<verb> <wire name>", a child of `parent` when it is valid (else of
// the calling thread's active span, or a new trace).
shared_ptr<trace::Span> start_span(trace::Tracer& tracer, std::string_view verb, trace::SpanKind kind,
                                   std::string_view wire_name, const TraceContext& parent) {
  trace::StartSpanOptions options;
  options.kind = kind;
  if (parent.valid()) options.parent = to_otel(parent);
  std::string name;
  name.reserve(verb.size() + 1 + wire_name.size());
  name.append(verb).append(" ").append(wire_name);
  auto s = tracer.StartSpan(name, options);
  s->SetAttribute("catga.message", string_view(wire_name.data(), wire_name.size()));
  return s;
}

void end_span(trace::Span& s, const Result<void>& outcome, std::uint64_t index) {
  if (index != 0) s.SetAttribute("catga.log.index", index);
  const std::string_view code = outcome ? std::string_view("ok") : to_string(outcome.error().code());
  s.SetAttribute("catga.outcome", string_view(code.data(), code.size()));
  if (!outcome) {
    const std::string_view message = outcome.error().message();
    s.SetStatus(trace::StatusCode::kError, string_view(message.data(), message.size()));
  }
  s.End();
}

class OtelSpan final : public Span {
 public:
  explicit OtelSpan(shared_ptr<trace::Span> span) : span_(std::move(span)) {}
  ~OtelSpan() override {
    if (!ended_) span_->End();  // dropped unanswered (the node stopped)
  }
  TraceContext context() const override { return from_otel(span_->GetContext()); }
  void end(const Result<void>& outcome, std::uint64_t index) override {
    ended_ = true;
    end_span(*span_, outcome, index);
  }

 private:
  shared_ptr<trace::Span> span_;
  bool ended_ = false;
};

class OtelTracer final : public catga::Tracer {
 public:
  explicit OtelTracer(shared_ptr<trace::Tracer> tracer) : tracer_(std::move(tracer)) {}
  std::unique_ptr<Span> start(SpanStage stage, std::string_view wire_name, const TraceContext& parent) override {
    const bool forward = stage == SpanStage::forward;
    return std::make_unique<OtelSpan>(start_span(*tracer_, forward ? "forward" : "apply",
                                                 forward ? trace::SpanKind::kClient : trace::SpanKind::kServer,
                                                 wire_name, parent));
  }

 private:
  shared_ptr<trace::Tracer> tracer_;
};

class TracingBehavior final : public Behavior {
 public:
  explicit TracingBehavior(shared_ptr<trace::Tracer> tracer) : tracer_(std::move(tracer)) {}
  void handle(Request& request, Next& next) override {
    const TraceContext& parent = request.trace_context();
    auto s = start_span(*tracer_, "send", parent.valid() ? trace::SpanKind::kServer : trace::SpanKind::kInternal,
                        request.wire_name(), parent);
    request.set_trace_context(from_otel(s->GetContext()));
    next([s = std::move(s)](const Result<void>& outcome) { end_span(*s, outcome, 0); });
  }

 private:
  shared_ptr<trace::Tracer> tracer_;
};

}  // namespace

Tracing::Tracing() : Tracing(trace::Provider::GetTracerProvider()->GetTracer("catga")) {}
Tracing::Tracing(shared_ptr<trace::Tracer> tracer) : tracer_(std::move(tracer)) {}

std::unique_ptr<Behavior> Tracing::behavior() const { return std::make_unique<TracingBehavior>(tracer_); }
std::shared_ptr<catga::Tracer> Tracing::cluster_tracer() const { return std::make_shared<OtelTracer>(tracer_); }

}  // namespace catga::otel
