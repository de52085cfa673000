// catga::otel against OpenTelemetry's SDK with its in-memory exporter: a
// command sent through a follower of a real 3-node cluster is one trace
// (send → forward → apply, each the parent of the next); an HTTP
// `traceparent` becomes the send span's parent, a malformed one starts a new
// trace without failing the request; without the behaviour and the cluster
// tracer nothing is recorded.
#include "catga/otel.hpp"

#include <gtest/gtest.h>

#include <opentelemetry/exporters/memory/in_memory_span_data.h>
#include <opentelemetry/exporters/memory/in_memory_span_exporter_factory.h>
#include <opentelemetry/sdk/trace/simple_processor_factory.h>
#include <opentelemetry/sdk/trace/tracer_provider.h>
#include <opentelemetry/sdk/trace/tracer_provider_factory.h>
#include <opentelemetry/trace/provider.h>

#include <optional>
#include <opentelemetry/nostd/variant.h>

#include "catga/testing.hpp"
#include "http/http_test_support.hpp"
#include "support/bank.hpp"
#include "support/cluster.hpp"

using catga::TraceContext;
using namespace catga::testing;
using testsupport::LocalCluster;
using SpanData = opentelemetry::sdk::trace::SpanData;
using Spans = std::vector<std::unique_ptr<SpanData>>;

namespace {

constexpr std::string_view kParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

std::string open_name(std::string_view verb) { return std::string(verb) + " " + std::string(catga::wire_name_of<bank::Open>); }

TraceContext context_of(const opentelemetry::trace::SpanContext& c) {
  TraceContext t;
  c.trace_id().CopyBytesTo(opentelemetry::nostd::span<std::uint8_t, 16>(t.trace_id.data(), 16));
  c.span_id().CopyBytesTo(opentelemetry::nostd::span<std::uint8_t, 8>(t.span_id.data(), 8));
  return t;
}
std::array<std::uint8_t, 8> parent_of(const SpanData& s) {
  std::array<std::uint8_t, 8> id{};
  s.GetParentSpanId().CopyBytesTo(opentelemetry::nostd::span<std::uint8_t, 8>(id.data(), 8));
  return id;
}

const SpanData* find(const Spans& spans, const std::string& name) {
  for (const auto& s : spans) {
    if (std::string(s->GetName()) == name) return s.get();
  }
  return nullptr;
}

std::optional<std::uint64_t> uint_attribute(const SpanData& s, const std::string& key) {
  auto it = s.GetAttributes().find(key);
  if (it == s.GetAttributes().end()) return std::nullopt;
  if (auto* v = opentelemetry::nostd::get_if<std::uint64_t>(&it->second)) return *v;
  return std::nullopt;
}
std::string string_attribute(const SpanData& s, const std::string& key) {
  auto it = s.GetAttributes().find(key);
  if (it == s.GetAttributes().end()) return "";
  if (auto* v = opentelemetry::nostd::get_if<std::string>(&it->second)) return *v;
  return "";
}

// Installs an SDK provider exporting every span (sampler: always on) to
// memory, as the process's global provider; restores a no-op one after.
class Recorder {
 public:
  Recorder() {
    auto exporter = opentelemetry::exporter::memory::InMemorySpanExporterFactory::Create(data_, 10'000);
    auto processor = opentelemetry::sdk::trace::SimpleSpanProcessorFactory::Create(std::move(exporter));
    provider_ = opentelemetry::sdk::trace::TracerProviderFactory::Create(std::move(processor));
    opentelemetry::trace::Provider::SetTracerProvider(
        opentelemetry::nostd::shared_ptr<opentelemetry::trace::TracerProvider>(provider_));
  }
  ~Recorder() {
    opentelemetry::trace::Provider::SetTracerProvider(
        opentelemetry::nostd::shared_ptr<opentelemetry::trace::TracerProvider>(
            new opentelemetry::trace::NoopTracerProvider()));
  }
  // Every span ended since the last call.
  Spans take() { return data_->GetSpans(); }

 private:
  std::shared_ptr<opentelemetry::exporter::memory::InMemorySpanData> data_;
  std::shared_ptr<opentelemetry::sdk::trace::TracerProvider> provider_;
};

}  // namespace

TEST(Tracing, ACommandSentThroughAFollowerIsOneTraceAcrossTheForwardHopAndTheApply) {
  Recorder recorder;
  catga::otel::Tracing tracing;  // the global provider's "catga" tracer
  LocalCluster<bank::State> cluster(
      3, [&](catga::ApplicationBuilder<bank::State>& b, std::size_t) { bank::register_handlers(b).use(tracing.behavior()); },
      [&](catga::ClusterOptions& o) { o.tracer = tracing.cluster_tracer(); });
  const TraceContext parent = *TraceContext::from_traceparent(kParent);

  // Leadership may move while the command travels: then it is proposed
  // locally and has no forward span. Try again through the new follower.
  Spans spans;
  const SpanData *send = nullptr, *forward = nullptr, *apply = nullptr;
  std::uint64_t index = 0;
  for (int attempt = 0; attempt < 5 && !forward; ++attempt) {
    auto leader = cluster.leader();
    ASSERT_TRUE(leader);
    const std::size_t follower = (*leader + 1) % cluster.size();
    auto receipt = cluster.app(follower).send_receipt(bank::Open{.owner = "traced" + std::to_string(attempt)},
                                                      {.timeout = std::chrono::seconds(20), .trace_parent = parent});
    ASSERT_THAT(receipt.result, IsOk());
    index = receipt.index;
    spans = recorder.take();
    send = find(spans, open_name("send"));
    forward = find(spans, open_name("forward"));
    apply = find(spans, open_name("apply"));
  }
  ASSERT_NE(send, nullptr);
  ASSERT_NE(forward, nullptr) << "the command was never forwarded in 5 attempts";
  ASSERT_NE(apply, nullptr);

  // One trace: the caller's.
  for (const SpanData* s : {send, forward, apply}) {
    EXPECT_EQ(context_of(s->GetSpanContext()).trace_id, parent.trace_id) << s->GetName();
    EXPECT_EQ(string_attribute(*s, "catga.message"), catga::wire_name_of<bank::Open>) << s->GetName();
    EXPECT_EQ(string_attribute(*s, "catga.outcome"), "ok") << s->GetName();
  }
  // Each the parent of the next.
  EXPECT_EQ(parent_of(*send), parent.span_id);
  EXPECT_EQ(parent_of(*forward), context_of(send->GetSpanContext()).span_id);
  EXPECT_EQ(parent_of(*apply), context_of(forward->GetSpanContext()).span_id);
  EXPECT_EQ(forward->GetSpanKind(), opentelemetry::trace::SpanKind::kClient);
  EXPECT_EQ(send->GetSpanKind(), opentelemetry::trace::SpanKind::kServer);  // it has a remote parent
  // The log index that carried the command.
  EXPECT_EQ(uint_attribute(*apply, "catga.log.index"), index);
  EXPECT_EQ(uint_attribute(*forward, "catga.log.index"), index);
  // The apply span is the leader's only (followers apply without a span).
  EXPECT_EQ(std::count_if(spans.begin(), spans.end(), [](const auto& s) { return s->GetName() == open_name("apply"); }), 1);
}

TEST(Tracing, AFailedCommandEndsItsSpansWithItsCode) {
  Recorder recorder;
  catga::otel::Tracing tracing;
  LocalCluster<bank::State> cluster(
      3, [&](catga::ApplicationBuilder<bank::State>& b, std::size_t) { bank::register_handlers(b).use(tracing.behavior()); },
      [&](catga::ClusterOptions& o) { o.tracer = tracing.cluster_tracer(); });
  auto leader = cluster.leader();
  ASSERT_TRUE(leader);
  // Depositing into an account that does not exist: a replicated not_found.
  auto r = cluster.app(*leader).send(bank::Deposit{.account = 999, .amount = 1},
                                     {.trace_parent = *TraceContext::from_traceparent(kParent)});
  ASSERT_FALSE(r);
  auto spans = recorder.take();
  const std::string apply_name = "apply " + std::string(catga::wire_name_of<bank::Deposit>);
  const SpanData* apply = find(spans, apply_name);
  ASSERT_NE(apply, nullptr);
  EXPECT_EQ(string_attribute(*apply, "catga.outcome"), catga::to_string(r.error().code()));
  EXPECT_EQ(apply->GetStatus(), opentelemetry::trace::StatusCode::kError);
}

TEST(Tracing, WithoutTheBehaviourAndTheTracerNothingIsRecorded) {
  Recorder recorder;  // a recording global provider, which nothing uses
  LocalCluster<bank::State> cluster(3, [](catga::ApplicationBuilder<bank::State>& b, std::size_t) {
    bank::register_handlers(b);
  });
  auto leader = cluster.leader();
  ASSERT_TRUE(leader);
  const std::size_t follower = (*leader + 1) % cluster.size();
  auto r = cluster.app(follower).send(bank::Open{.owner = "untraced"},
                                      {.timeout = std::chrono::seconds(20),
                                       .trace_parent = *TraceContext::from_traceparent(kParent)});
  ASSERT_THAT(r, IsOk());
  EXPECT_TRUE(recorder.take().empty());
}

class HttpTracingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    catga::otel::Tracing tracing;
    catga::ApplicationBuilder<bank::State> builder;
    register_test_handlers(builder).use(tracing.behavior()).in_memory();
    auto app = builder.build();
    ASSERT_TRUE(app) << app.error();
    app_ = std::move(*app);
    server_ = std::make_unique<catga::http::Server>(*app_);
    add_bank_routes(*server_);
    auto started = server_->start();
    ASSERT_TRUE(started) << started.error();
  }
  void TearDown() override {
    server_.reset();
    app_.reset();
  }
  HttpResponse open(std::string traceparent) {
    return HttpClient(server_->port()).post("/accounts", R"({"owner":"ada"})", {{"traceparent", std::move(traceparent)}});
  }

  Recorder recorder_;
  std::unique_ptr<catga::Application> app_;
  std::unique_ptr<catga::http::Server> server_;
};

TEST_F(HttpTracingTest, TheTraceparentHeaderIsTheSendSpansParent) {
  auto response = open(std::string(kParent));
  EXPECT_EQ(response.status, 201) << response.body;
  auto spans = recorder_.take();
  const SpanData* send = find(spans, open_name("send"));
  ASSERT_NE(send, nullptr);
  const TraceContext parent = *TraceContext::from_traceparent(kParent);
  EXPECT_EQ(context_of(send->GetSpanContext()).trace_id, parent.trace_id);
  EXPECT_EQ(parent_of(*send), parent.span_id);
}

TEST_F(HttpTracingTest, AMalformedTraceparentIsIgnoredAndTheRequestStartsANewTrace) {
  auto response = open("00-4bf92f3577b34da6a3ce929d0e0e4736-not-a-span-01");
  EXPECT_EQ(response.status, 201) << response.body;
  auto spans = recorder_.take();
  const SpanData* send = find(spans, open_name("send"));
  ASSERT_NE(send, nullptr);
  EXPECT_FALSE(send->GetParentSpanId().IsValid());
  EXPECT_EQ(send->GetSpanKind(), opentelemetry::trace::SpanKind::kInternal);
  const TraceContext parent = *TraceContext::from_traceparent(kParent);
  EXPECT_NE(context_of(send->GetSpanContext()).trace_id, parent.trace_id);
}
