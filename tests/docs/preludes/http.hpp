// What docs/http.md refers to without showing it: the order service of
// docs/messages.md.
#pragma once

struct Order {
  std::uint64_t id = 0;
  std::string product_id;
  int quantity = 0;
  MSGPACK_DEFINE_MAP(id, product_id, quantity);
};
struct OrderBook {
  std::map<std::uint64_t, Order> orders;
  MSGPACK_DEFINE_MAP(orders);
};
struct CreateOrder {
  using catga_message = catga::Command<Order, "orders.create.v1">;
  std::string product_id;
  int quantity = 0;
  MSGPACK_DEFINE_MAP(product_id, quantity);
};
struct GetOrder {
  using catga_message = catga::Query<Order, "orders.get.v1">;
  std::uint64_t id = 0;
  MSGPACK_DEFINE_MAP(id);
};

inline catga::Result<Order> create_order(OrderBook& book, const CreateOrder& c, catga::CommandContext& ctx) {
  Order o{.id = ctx.new_id(), .product_id = c.product_id, .quantity = c.quantity};
  book.orders[o.id] = o;
  return o;
}
inline catga::Result<Order> get_order(const OrderBook& book, const GetOrder& q) {
  auto it = book.orders.find(q.id);
  if (it == book.orders.end()) return catga::Error{catga::Code::not_found, "order " + std::to_string(q.id)};
  return it->second;
}
