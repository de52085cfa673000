// catga/message.hpp — how a plain struct declares itself a command, a query or
// an event.
//
// A message is an aggregate (designated initializers work) that names its
// contract with one member alias:
//
//   struct CreateOrder {
//     using catga_message = catga::Command<Order, "orders.create.v1">;
//     std::string product_id;
//     int quantity = 0;
//     MSGPACK_DEFINE_MAP(product_id, quantity);
//   };
//   CreateOrder c{.product_id = "p1", .quantity = 2};
//
// - `Command<R, Name>` changes state; its handler returns `Result<R>`.
// - `Query<R, Name>` reads state; its handler returns `Result<R>`.
// - `Event<Name>` is a fact; any number of handlers receive it.
//
// The wire name is the message's identity on disk and on the wire, never
// `typeid`: keep it stable, lowercase `[a-z0-9._-]`, ending in a version
// `.v<N>`. A malformed name is a compile-time error. Serialization uses
// msgpack-c's `MSGPACK_DEFINE_MAP` (fields by name, so adding a field stays
// compatible).
//
// Thread-safety: types only.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string_view>
#include <type_traits>

namespace catga {

// A string usable as a template argument: `Command<R, "orders.create.v1">`.
template <std::size_t N>
struct WireName {
  char chars[N]{};

  consteval WireName(const char (&text)[N]) {  // NOLINT: implicit by design
    std::copy_n(text, N, chars);
    if (!valid()) throw "catga: wire names are lowercase [a-z0-9._-] ending in .v<N>, e.g. orders.create.v1";
  }
  constexpr std::string_view view() const { return {chars, N - 1}; }

 private:
  consteval bool valid() const {
    std::string_view s{chars, N - 1};
    if (s.empty() || s.size() > 200) return false;
    for (char c : s) {
      bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
      if (!ok) return false;
    }
    std::size_t dot = s.rfind(".v");
    if (dot == std::string_view::npos || dot == 0 || dot + 2 == s.size()) return false;
    for (char c : s.substr(dot + 2))
      if (c < '0' || c > '9') return false;
    return true;
  }
};

enum class MessageKind : unsigned char { command, query, event };

constexpr std::string_view to_string(MessageKind kind) noexcept {
  return kind == MessageKind::command ? "command" : kind == MessageKind::query ? "query" : "event";
}

template <class R, WireName Name>
struct Command {
  using result_type = R;
  static constexpr MessageKind kind = MessageKind::command;
  static constexpr std::string_view wire_name = Name.view();
};

template <class R, WireName Name>
struct Query {
  using result_type = R;
  static constexpr MessageKind kind = MessageKind::query;
  static constexpr std::string_view wire_name = Name.view();
};

template <WireName Name>
struct Event {
  using result_type = void;
  static constexpr MessageKind kind = MessageKind::event;
  static constexpr std::string_view wire_name = Name.view();
};

template <class M>
concept Message = requires {
  typename M::catga_message;
  { M::catga_message::kind } -> std::convertible_to<MessageKind>;
  { M::catga_message::wire_name } -> std::convertible_to<std::string_view>;
};

template <class M>
concept CommandMessage = Message<M> && M::catga_message::kind == MessageKind::command;
template <class M>
concept QueryMessage = Message<M> && M::catga_message::kind == MessageKind::query;
template <class M>
concept EventMessage = Message<M> && M::catga_message::kind == MessageKind::event;

// The result type of a command or query: `result_of<CreateOrder>` is `Order`.
template <class M>
  requires(CommandMessage<M> || QueryMessage<M>)
using result_of = typename M::catga_message::result_type;

template <Message M>
inline constexpr std::string_view wire_name_of = M::catga_message::wire_name;

}  // namespace catga
