// Getting started (docs/getting-started.md walks through this file; it is
// compiled with the project so it cannot drift from the API).
//
// The plan's user story in C++: a command, its handler (which knows nothing of
// the cluster), a query, an event with a read model — then the one block of
// options that makes it a cluster.
#include <catga/application.hpp>

#include <cstdio>
#include <filesystem>
#include <map>
#include <string>

// 1. Messages are plain structs with a contract and a stable wire name.
struct Order {
  std::uint64_t id = 0;
  std::string product_id;
  int quantity = 0;
  MSGPACK_DEFINE_MAP(id, product_id, quantity);
};

struct CreateOrderCommand {
  using catga_message = catga::Command<Order, "getting-started.create-order.v1">;
  std::string product_id;
  int quantity = 0;
  MSGPACK_DEFINE_MAP(product_id, quantity);
};

struct GetOrderQuery {
  using catga_message = catga::Query<Order, "getting-started.get-order.v1">;
  std::uint64_t id = 0;
  MSGPACK_DEFINE_MAP(id);
};

struct OrderCreatedEvent {
  using catga_message = catga::Event<"getting-started.order-created.v1">;
  std::uint64_t id = 0;
  int quantity = 0;
  MSGPACK_DEFINE_MAP(id, quantity);
};

// 2. The replicated state.
struct Shop {
  std::map<std::uint64_t, Order> orders;
  MSGPACK_DEFINE_MAP(orders);
};

// 3. Handlers. The command handler is deterministic: it uses only the state,
//    the command and the context (ids, time, events come from there).
catga::Result<Order> create_order(Shop& shop, const CreateOrderCommand& c, catga::CommandContext& ctx) {
  if (c.product_id.empty()) return catga::Error{catga::Code::invalid_argument, "product_id is required"};
  if (c.quantity <= 0) return catga::Error{catga::Code::invalid_argument, "quantity must be positive"};
  Order order{.id = ctx.new_id(), .product_id = c.product_id, .quantity = c.quantity};
  shop.orders[order.id] = order;
  ctx.publish(OrderCreatedEvent{.id = order.id, .quantity = order.quantity});
  return order;
}

catga::Result<Order> get_order(const Shop& shop, const GetOrderQuery& q) {
  auto it = shop.orders.find(q.id);
  if (it == shop.orders.end()) return catga::Error{catga::Code::not_found, "order " + std::to_string(q.id)};
  return it->second;
}

int main() {
  int units_sold = 0;  // a read model, fed by events on this node

  // 4. Register handlers once.
  catga::ApplicationBuilder<Shop> builder;
  builder.command<CreateOrderCommand>(create_order)
      .query<GetOrderQuery>(get_order)
      .on<OrderCreatedEvent>([&](const OrderCreatedEvent& e) { units_sold += e.quantity; })
      .on_restore([&](const Shop& shop) {  // a snapshot replaced the state: rebuild
        units_sold = 0;
        for (const auto& [id, order] : shop.orders) units_sold += order.quantity;
      });

  // 5. Where the state lives. A single durable node here; for a cluster, the
  //    one block is:
  //      builder.cluster({.node_id = 1,
  //                       .members = {{1, "10.0.0.1:7001"}, {2, "10.0.0.2:7001"}, {3, "10.0.0.3:7001"}},
  //                       .data_dir = "/var/lib/shop"});
  const auto dir = std::filesystem::temp_directory_path() / "catga-getting-started";
  std::filesystem::remove_all(dir);
  builder.data_dir(dir);

  auto app = builder.build();
  if (!app) {
    std::fprintf(stderr, "cannot start: %s\n", app.error().to_string().c_str());
    return 1;
  }

  // 6. Send commands and queries; errors come back as values.
  auto order = (*app)->send(CreateOrderCommand{.product_id = "book", .quantity = 2});
  if (!order) return 1;
  std::printf("created order %llu\n", static_cast<unsigned long long>(order->id));

  auto bad = (*app)->send(CreateOrderCommand{.product_id = "", .quantity = 1});
  std::printf("invalid order: %s\n", bad.error().to_string().c_str());

  auto found = (*app)->send(GetOrderQuery{.id = order->id});
  std::printf("order %llu: %d x %s; units sold so far: %d\n", static_cast<unsigned long long>(found->id),
              found->quantity, found->product_id.c_str(), units_sold);

  app->reset();
  std::filesystem::remove_all(dir);
  return 0;
}
