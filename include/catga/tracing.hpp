// catga/tracing.hpp — distributed tracing hooks: a W3C trace context carried
// with a command from the node that received it, over the forward hop and
// into the leader's apply, and the spans the cluster opens on its own.
//
// Catga itself links no tracing library. A `Tracer` (catga::otel implements
// one with OpenTelemetry: catga/otel.hpp) is given to the cluster through
// `ClusterOptions::tracer`; a pipeline behaviour opens the command's own span
// and stores its context in `Request::set_trace_context`. Without a tracer
// and without such a behaviour nothing is traced, and the log entries are
// byte-identical to an untraced build's.
//
// Threading: TraceContext is a value. A Tracer is shared by every thread of a
// node (the caller's, the Raft loop thread, the peer channel's): `start` must
// be thread-safe. A Span is used by one thread at a time and ended once.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "catga/export.hpp"
#include "catga/result.hpp"

namespace catga {

// A W3C trace context (https://www.w3.org/TR/trace-context/): the trace, the
// parent span in it, and the trace flags (bit 0: sampled).
struct CATGA_EXPORT TraceContext {
  std::array<std::uint8_t, 16> trace_id{};
  std::array<std::uint8_t, 8> span_id{};
  std::uint8_t flags = 0;

  // Both ids non-zero (an all-zero id is invalid in W3C trace context).
  bool valid() const noexcept;
  bool sampled() const noexcept { return (flags & 1) != 0; }
  // Parses a `traceparent` header value ("00-<32 hex>-<16 hex>-<2 hex>", lower
  // case; later versions are read by their first four fields as the
  // specification asks). Anything malformed gives nullopt — callers ignore it
  // and start a new trace rather than fail the request.
  static std::optional<TraceContext> from_traceparent(std::string_view header) noexcept;
  // The `traceparent` header value of this context (version 00).
  std::string traceparent() const;

  friend bool operator==(const TraceContext&, const TraceContext&) = default;
};

// A span the cluster opened. `end` is called exactly once.
class CATGA_EXPORT Span {
 public:
  virtual ~Span() = default;
  // The context a child of this span takes as its parent.
  virtual TraceContext context() const = 0;
  // Ends the span with the command's outcome and the log index that carried
  // it (0 when unknown, e.g. the forward failed).
  virtual void end(const Result<void>& outcome, std::uint64_t index) = 0;
};

// Where the cluster's own spans go.
enum class SpanStage : std::uint8_t {
  forward,  // on a follower: the command sent to the leader and its answer
  apply,    // on the leader: the command applied to the state machine
};

class CATGA_EXPORT Tracer {
 public:
  virtual ~Tracer() = default;
  // Opens a span of `stage` for the command `wire_name`, a child of `parent`
  // (a context that arrived from another node or the caller). nullptr: not
  // recorded (not sampled, or the tracer is off).
  virtual std::unique_ptr<Span> start(SpanStage stage, std::string_view wire_name,
                                      const TraceContext& parent) = 0;
};

}  // namespace catga
