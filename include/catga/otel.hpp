// catga/otel.hpp — OpenTelemetry tracing for Catga (target catga::otel,
// built when CMake finds opentelemetry-cpp; option CATGA_WITH_OTEL).
//
// One trace per command, across nodes:
//   send <wire name>     on the node that received the command (the pipeline
//                        behaviour), a child of the caller's W3C traceparent
//                        (HTTP header `traceparent`) when there is one;
//   forward <wire name>  on a follower, the hop to the leader and its answer;
//   apply <wire name>    on the leader, the handler applying the command.
// Attributes: catga.message (wire name), catga.log.index, catga.outcome
// (the canonical code, "ok" on success); a failed command's span has status
// Error with the error's message.
//
//   catga::otel::Tracing tracing;               // the global TracerProvider's "catga" tracer
//   builder.use(tracing.behavior());            // the "send" span
//   options.tracer = tracing.cluster_tracer();  // ClusterOptions: "forward" and "apply"
//
// Install an SDK TracerProvider (exporter, sampler, batch processor) with
// opentelemetry::trace::Provider::SetTracerProvider before building the
// application; docs/observability.md shows one. Without this library nothing
// of OpenTelemetry is linked, and a Catga build without a tracer and without
// the behaviour does not trace at all.
//
// Threading: Tracing, its behaviour and its cluster tracer may be used from
// any thread.
#pragma once

#include <memory>

#include <opentelemetry/nostd/shared_ptr.h>
#include <opentelemetry/trace/tracer.h>

#include "catga/behavior.hpp"
#include "catga/export.hpp"
#include "catga/tracing.hpp"

namespace catga::otel {

class CATGA_EXPORT Tracing {
 public:
  // Spans go to `tracer`; by default to the tracer named "catga" of the
  // global TracerProvider at the time of this call.
  Tracing();
  explicit Tracing(opentelemetry::nostd::shared_ptr<opentelemetry::trace::Tracer> tracer);

  // The pipeline behaviour opening the "send" span of every request (queries
  // and events too) and handing its context on (Request::set_trace_context).
  std::unique_ptr<Behavior> behavior() const;
  // The cluster's span hooks, for ClusterOptions::tracer.
  std::shared_ptr<catga::Tracer> cluster_tracer() const;

 private:
  opentelemetry::nostd::shared_ptr<opentelemetry::trace::Tracer> tracer_;
};

}  // namespace catga::otel
