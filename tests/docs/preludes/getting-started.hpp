// What docs/getting-started.md refers to without showing it (the full
// program is examples/getting_started/main.cc).
#pragma once

struct Order {
  std::uint64_t id = 0;
  std::string product_id;
  int quantity = 0;
  MSGPACK_DEFINE_MAP(id, product_id, quantity);
};

struct OrderCreatedEvent {
  using catga_message = catga::Event<"getting-started.order-created.v1">;
  std::uint64_t id = 0;
  int quantity = 0;
  MSGPACK_DEFINE_MAP(id, quantity);
};

struct GetOrderQuery {
  using catga_message = catga::Query<Order, "getting-started.get-order.v1">;
  std::uint64_t id = 0;
  MSGPACK_DEFINE_MAP(id);
};

struct Shop {
  std::map<std::uint64_t, Order> orders;
  MSGPACK_DEFINE_MAP(orders);
};

inline catga::Result<Order> get_order(const Shop& shop, const GetOrderQuery& q) {
  auto it = shop.orders.find(q.id);
  if (it == shop.orders.end()) return catga::Error{catga::Code::not_found, "no order " + std::to_string(q.id)};
  return it->second;
}
