// In-process costs of the mediator (Google Benchmark): send through an
// in-memory Application, publish to three handlers, envelope codec.
// Heap allocations are counted with a replaced global operator new and
// reported per operation as the counter `allocs`.
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "catga/application.hpp"
#include "cluster/envelope.hpp"
#include "core/application_access.hpp"

namespace {
std::atomic<std::uint64_t> g_allocations{0};
}  // namespace

void* operator new(std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size ? size : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {

struct Counter {
  std::int64_t value = 0;
  MSGPACK_DEFINE_MAP(value);
};
struct Add {
  using catga_message = catga::Command<std::int64_t, "bench.add.v1">;
  std::int64_t amount = 0;
  MSGPACK_DEFINE_MAP(amount);
};
struct Read {
  using catga_message = catga::Query<std::int64_t, "bench.read.v1">;
};
struct Added {
  using catga_message = catga::Event<"bench.added.v1">;
  std::int64_t amount = 0;
  MSGPACK_DEFINE_MAP(amount);
};
// The 4-field command of the codec benchmark.
struct CreateOrder {
  using catga_message = catga::Command<std::int64_t, "bench.create-order.v1">;
  std::string product_id;
  std::int32_t quantity = 0;
  std::string customer;
  double price = 0;
  MSGPACK_DEFINE_MAP(product_id, quantity, customer, price);
};

std::unique_ptr<catga::Application> make_app(std::int64_t& sink) {
  catga::ApplicationBuilder<Counter> b;
  b.command<Add>([](Counter& c, const Add& a) { return c.value += a.amount; })
      .query<Read>([](const Counter& c, const Read&) { return c.value; })
      .on<Added>([&sink](const Added& e) { sink += e.amount; })
      .on<Added>([&sink](const Added& e) { sink -= e.amount; })
      .on<Added>([&sink](const Added& e) { sink += e.amount; })
      .in_memory();
  return std::move(*b.build());
}

template <class F>
void measure(benchmark::State& state, F&& op) {
  std::uint64_t before = g_allocations.load();
  for (auto _ : state) op();
  state.counters["allocs"] = benchmark::Counter(static_cast<double>(g_allocations.load() - before),
                                                benchmark::Counter::kAvgIterations);
}

void BM_SendCommand(benchmark::State& state) {
  std::int64_t sink = 0;
  auto app = make_app(sink);
  measure(state, [&] {
    auto r = app->send(Add{.amount = 1});
    benchmark::DoNotOptimize(r);
  });
}
BENCHMARK(BM_SendCommand);

void BM_SendQuery(benchmark::State& state) {
  std::int64_t sink = 0;
  auto app = make_app(sink);
  measure(state, [&] {
    auto r = app->send(Read{});
    benchmark::DoNotOptimize(r);
  });
}
BENCHMARK(BM_SendQuery);

void BM_PublishToThreeHandlers(benchmark::State& state) {
  std::int64_t sink = 0;
  auto app = make_app(sink);
  auto& mediator = catga::internal::mediator_of(*app);
  const catga::EventInfo info{1, 1, {}, true, false};
  // The in-process delivery path (publish minus the completion callback).
  measure(state, [&] { mediator.deliver(Added{.amount = 1}, info); });
  benchmark::DoNotOptimize(sink);
}
BENCHMARK(BM_PublishToThreeHandlers);

void BM_Publish(benchmark::State& state) {
  std::int64_t sink = 0;
  auto app = make_app(sink);
  measure(state, [&] {
    auto r = app->publish(Added{.amount = 1});
    benchmark::DoNotOptimize(r);
  });
}
BENCHMARK(BM_Publish);

void BM_EnvelopeEncodeDecode(benchmark::State& state) {
  CreateOrder order{.product_id = "product-42", .quantity = 3, .customer = "customer-7", .price = 19.5};
  std::string payload, envelope;
  measure(state, [&] {
    payload.clear();
    envelope.clear();
    catga::encode_to(payload, order);
    catga::internal::encode_envelope(envelope, {catga::MessageKind::command, "bench.create-order.v1", payload, 1, 2});
    auto view = catga::internal::decode_envelope(envelope);
    auto back = catga::decode<CreateOrder>(view->payload);
    benchmark::DoNotOptimize(back);
  });
}
BENCHMARK(BM_EnvelopeEncodeDecode);

}  // namespace

BENCHMARK_MAIN();
