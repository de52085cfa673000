// Uses only catga::core from an install: a message through the codec.
#include <catga/codec.hpp>
#include <catga/message.hpp>
#include <catga/result.hpp>

#include <cstdio>
#include <string>

struct Rename {
  using catga_message = catga::Command<void, "consumer.rename.v1">;
  std::string name;
  MSGPACK_DEFINE_MAP(name);
};

int main() {
  const std::string bytes = catga::encode(Rename{.name = "forty-two"});
  auto back = catga::decode<Rename>(bytes);
  if (!back || back->name != "forty-two") {
    std::fprintf(stderr, "round trip failed: %s\n", back ? back->name.c_str() : back.error().to_string().c_str());
    return 1;
  }
  auto garbage = catga::decode<Rename>(std::string_view("\xc1", 1));
  if (garbage) return std::fputs("garbage decoded\n", stderr), 1;
  std::puts("consumer-core: ok");
  return 0;
}
