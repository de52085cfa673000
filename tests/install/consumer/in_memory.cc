// Uses only catga::core from an install: an in-memory Application — a
// command, a query and an event — with no Raft library in the link
// (check_install.sh checks the shared build's dependencies).
#include <catga/application.hpp>

#include <cstdio>
#include <string>

struct Counter {
  int value = 0;
  int events = 0;
  MSGPACK_DEFINE_MAP(value, events);
};

struct Add {
  using catga_message = catga::Command<int, "consumer.add.v1">;
  int amount = 0;
  MSGPACK_DEFINE_MAP(amount);
};
struct Get {
  using catga_message = catga::Query<int, "consumer.get.v1">;
  bool events_too = false;
  MSGPACK_DEFINE_MAP(events_too);
};
struct Added {
  using catga_message = catga::Event<"consumer.added.v1">;
  int amount = 0;
  MSGPACK_DEFINE_MAP(amount);
};

int main() {
  int heard = 0;
  catga::ApplicationBuilder<Counter> builder;
  builder.command<Add>([](Counter& c, const Add& add, catga::CommandContext& ctx) {
    c.value += add.amount;
    ctx.publish(Added{.amount = add.amount});
    return c.value;
  });
  builder.query<Get>([](const Counter& c, const Get&) { return c.value; });
  builder.on<Added>([&heard](const Added& added) { heard += added.amount; });
  builder.in_memory();
  auto app = builder.build();
  if (!app) return std::fprintf(stderr, "build: %s\n", app.error().to_string().c_str()), 1;
  auto sum = (*app)->send(Add{.amount = 40});
  if (!sum || *sum != 40) return std::fputs("send failed\n", stderr), 1;
  if (auto published = (*app)->publish(Added{.amount = 2}); !published) return std::fputs("publish failed\n", stderr), 1;
  auto got = (*app)->send(Get{});
  if (!got || *got != 40 || heard != 42) {
    std::fprintf(stderr, "query or events wrong: got %d, heard %d\n", got ? *got : -1, heard);
    return 1;
  }
  // Without catga::cluster a durable application is refused, clearly.
  catga::ApplicationBuilder<Counter> durable;
  auto refused = durable.build();
  if (refused || refused.error().code() != catga::Code::failed_precondition) {
    return std::fputs("a durable application was not refused without catga::cluster\n", stderr), 1;
  }
  std::puts("consumer-in-memory: ok");
  return 0;
}
