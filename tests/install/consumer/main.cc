// Uses only the installed public headers: a durable single node, restarted.
#include <catga/application.hpp>

#include <cstdio>
#include <filesystem>

struct Tally {
  long total = 0;
  MSGPACK_DEFINE_MAP(total);
};
struct Add {
  using catga_message = catga::Command<long, "consumer.add.v1">;
  long amount = 0;
  MSGPACK_DEFINE_MAP(amount);
};

static std::unique_ptr<catga::Application> open(const std::filesystem::path& dir) {
  catga::ApplicationBuilder<Tally> builder;
  builder.command<Add>([](Tally& t, const Add& a) { return t.total += a.amount; }).data_dir(dir);
  auto app = builder.build();
  if (!app) {
    std::fprintf(stderr, "build failed: %s\n", app.error().to_string().c_str());
    std::exit(1);
  }
  return std::move(*app);
}

int main(int argc, char** argv) {
  std::filesystem::path dir = argc > 1 ? argv[1] : "consumer-data";
  std::filesystem::remove_all(dir);
  { (void)open(dir)->send(Add{.amount = 40}); }
  auto total = open(dir)->send(Add{.amount = 2});  // the restart kept 40
  std::filesystem::remove_all(dir);
  if (!total || *total != 42) {
    std::fprintf(stderr, "expected 42, got %s\n", total ? std::to_string(*total).c_str() : total.error().to_string().c_str());
    return 1;
  }
  std::puts("consumer: ok (42)");
  return 0;
}
