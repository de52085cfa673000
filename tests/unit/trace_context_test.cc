// W3C trace context (catga/tracing.hpp) and its place in the envelope: a
// traced envelope carries it as a ninth element; an untraced one stays
// byte-identical to what builds before tracing wrote, and the general
// decoder every build has (arrays of at least eight elements) ignores the
// ninth — which is what lets a rolling upgrade mix traced and older nodes.
#include "catga/tracing.hpp"

#include <gtest/gtest.h>

#include "catga/testing.hpp"
#include "cluster/envelope.hpp"

using catga::Code;
using catga::TraceContext;
using catga::internal::decode_envelope;
using catga::internal::encode_envelope;
using catga::internal::EnvelopeView;
using namespace catga::testing;

namespace {
constexpr std::string_view kParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

std::string hex(std::string_view bytes) {
  static constexpr char d[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(d[c >> 4]);
    out.push_back(d[c & 0xf]);
  }
  return out;
}
}  // namespace

TEST(TraceContext, ParsesAndPrintsATraceparent) {
  auto t = TraceContext::from_traceparent(kParent);
  ASSERT_TRUE(t);
  EXPECT_TRUE(t->valid());
  EXPECT_TRUE(t->sampled());
  EXPECT_EQ(t->trace_id[0], 0x4b);
  EXPECT_EQ(t->trace_id[15], 0x36);
  EXPECT_EQ(t->span_id[0], 0x00);
  EXPECT_EQ(t->span_id[7], 0xb7);
  EXPECT_EQ(t->traceparent(), kParent);
}

TEST(TraceContext, AFutureVersionIsReadByItsFirstFourFields) {
  auto t = TraceContext::from_traceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-what-comes-next");
  ASSERT_TRUE(t);
  EXPECT_FALSE(t->sampled());
}

TEST(TraceContext, MalformedTraceparentsAreRefused) {
  for (std::string_view bad : {
           "",
           "garbage",
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",        // no flags
           "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",     // upper case
           "00-00000000000000000000000000000000-00f067aa0ba902b7-01",     // zero trace id
           "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",     // zero span id
           "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",     // version ff
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",   // version 00 is exact
           "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",     // separator
           "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",     // not hex
       }) {
    EXPECT_FALSE(TraceContext::from_traceparent(bad)) << bad;
  }
  EXPECT_FALSE(TraceContext{}.valid());
}

// The bytes an untraced command's envelope has always had (format 1, eight
// elements): old nodes read what new nodes write.
TEST(EnvelopeTrace, AnUntracedEnvelopeIsByteIdenticalToTheEightFieldFormat) {
  auto bytes = encode_envelope({catga::MessageKind::command, "a.v1", "p", 2, 3, 1, ""});
  EXPECT_EQ(hex(bytes), "980100a4612e7631c401700203" "01a0");
  auto e = decode_envelope(bytes);
  ASSERT_THAT(e, IsOk());
  EXPECT_FALSE(e->trace.valid());
}

TEST(EnvelopeTrace, ATracedEnvelopeCarriesTheContextAsANinthElement) {
  const TraceContext parent = *TraceContext::from_traceparent(kParent);
  auto bytes = encode_envelope({catga::MessageKind::command, "a.v1", "p", 2, 3, 1, "", parent});
  EXPECT_EQ(hex(bytes), "990100a4612e7631c401700203" "01a0" "c419" "4bf92f3577b34da6a3ce929d0e0e4736" "00f067aa0ba902b7" "01");
  auto e = decode_envelope(bytes);
  ASSERT_THAT(e, IsOk());
  EXPECT_EQ(e->trace, parent);
  EXPECT_EQ(e->wire_name, "a.v1");
  EXPECT_EQ(e->payload, "p");
  EXPECT_EQ(e->session, 2u);
  EXPECT_EQ(e->sequence, 3u);
  EXPECT_EQ(e->floor, 1u);
}

// What every build since the first does with elements after the eighth: reads
// the eight, ignores the rest (here an element that is not a trace context,
// as a later build might add).
TEST(EnvelopeTrace, ElementsAfterTheEighthThatAreNotATraceAreIgnored) {
  std::string bytes = encode_envelope({catga::MessageKind::command, "a.v1", "p", 2, 3, 1, ""});
  bytes[0] = static_cast<char>(0x9a);  // ten elements
  bytes += "\xc4\x02xy";               // bin "xy": not a trace context
  bytes += '\x07';
  auto e = decode_envelope(bytes);
  ASSERT_THAT(e, IsOk());
  EXPECT_FALSE(e->trace.valid());
  EXPECT_EQ(e->wire_name, "a.v1");
  EXPECT_EQ(e->floor, 1u);
}

TEST(EnvelopeTrace, TruncatedTracedEnvelopesAreAnError) {
  const TraceContext parent = *TraceContext::from_traceparent(kParent);
  auto good = encode_envelope({catga::MessageKind::event, "x.y.v1", "p", 0, 0, 0, "", parent});
  for (std::size_t cut = 0; cut < good.size(); ++cut) {
    EXPECT_THAT(decode_envelope(std::string_view(good).substr(0, cut)), HasCode(Code::invalid_argument)) << cut;
  }
}

TEST(EnvelopeTrace, AnInvalidTraceContextIsNotCarried) {
  TraceContext zero_trace = *TraceContext::from_traceparent(kParent);
  zero_trace.trace_id = {};
  EXPECT_EQ(encode_envelope({catga::MessageKind::command, "a.v1", "p", 2, 3, 1, "", zero_trace}),
            encode_envelope({catga::MessageKind::command, "a.v1", "p", 2, 3, 1, ""}));
  // Read from the log: 25 zero bytes are no trace context.
  std::string bytes = encode_envelope({catga::MessageKind::command, "a.v1", "p", 2, 3, 1, ""});
  bytes[0] = static_cast<char>(0x99);
  bytes += std::string("\xc4\x19", 2) + std::string(25, '\0');
  auto e = decode_envelope(bytes);
  ASSERT_THAT(e, IsOk());
  EXPECT_FALSE(e->trace.valid());
  EXPECT_EQ(e->trace, TraceContext{});
}
