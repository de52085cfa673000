// The order service of the plan: commands CreateOrder and CancelOrder,
// queries GetOrder and ListOrders, event OrderCreated. The handlers know
// nothing of HTTP or of the cluster; `register_orders` wires them into any
// ApplicationBuilder, in-memory, single-node or clustered alike.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <catga/application.hpp>

namespace orders {

struct Order {
  std::uint64_t id = 0;
  std::string product_id;
  std::int32_t quantity = 0;
  std::string status;          // "created" | "cancelled"
  std::int64_t created_at_ms = 0;  // leader-stamped time of creation
  MSGPACK_DEFINE_MAP(id, product_id, quantity, status, created_at_ms);
  friend bool operator==(const Order&, const Order&) = default;
};

// The replicated state.
struct OrderBook {
  std::map<std::uint64_t, Order> orders;
  MSGPACK_DEFINE_MAP(orders);
};

struct CreateOrder {
  using catga_message = catga::Command<Order, "orders.create.v1">;
  std::string product_id;
  std::int32_t quantity = 0;
  MSGPACK_DEFINE_MAP(product_id, quantity);
};

struct CancelOrder {
  using catga_message = catga::Command<Order, "orders.cancel.v1">;
  std::uint64_t id = 0;
  MSGPACK_DEFINE_MAP(id);
};

struct GetOrder {
  using catga_message = catga::Query<Order, "orders.get.v1">;
  std::uint64_t id = 0;
  MSGPACK_DEFINE_MAP(id);
};

struct ListOrders {
  using catga_message = catga::Query<std::vector<Order>, "orders.list.v1">;
  std::optional<std::string> product_id;  // only this product's orders
  std::optional<std::uint32_t> limit;      // at most this many, oldest first
  std::optional<std::uint64_t> after_id;   // paging: ids greater than this
  MSGPACK_DEFINE_MAP(product_id, limit, after_id);
};

struct OrderCreated {
  using catga_message = catga::Event<"orders.created.v1">;
  std::uint64_t id = 0;
  std::string product_id;
  std::int32_t quantity = 0;
  MSGPACK_DEFINE_MAP(id, product_id, quantity);
};

// A read model kept on every node from OrderCreated events: units ordered per
// product. Not replicated state — each node builds its own from the events,
// and from the state whenever a snapshot replaces it (whose events it never
// sees): `rebuild`, registered with on_restore.
class ProductTotals {
 public:
  void add(const std::string& product_id, std::int64_t quantity) {
    std::lock_guard lock(mutex_);
    totals_[product_id] += quantity;
  }
  // Every order ever created counts, cancelled or not (as the events do).
  void rebuild(const OrderBook& book) {
    std::map<std::string, std::int64_t> totals;
    for (const auto& [id, order] : book.orders) totals[order.product_id] += order.quantity;
    std::lock_guard lock(mutex_);
    totals_.swap(totals);
  }
  std::map<std::string, std::int64_t> snapshot() const {
    std::lock_guard lock(mutex_);
    return totals_;
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::int64_t> totals_;
};

inline constexpr std::int32_t kMaxQuantity = 10'000;

// ---- handlers (command handlers are deterministic: state, command, context only) ----

inline catga::Result<Order> create_order(OrderBook& book, const CreateOrder& c, catga::CommandContext& ctx) {
  if (c.product_id.empty()) return catga::Error{catga::Code::invalid_argument, "product_id is required"};
  if (c.quantity <= 0 || c.quantity > kMaxQuantity) {
    return catga::Error{catga::Code::invalid_argument,
                        "quantity must be between 1 and " + std::to_string(kMaxQuantity)};
  }
  Order order{.id = ctx.new_id(),
              .product_id = c.product_id,
              .quantity = c.quantity,
              .status = "created",
              .created_at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(ctx.time().time_since_epoch()).count()};
  book.orders.emplace(order.id, order);
  ctx.publish(OrderCreated{.id = order.id, .product_id = order.product_id, .quantity = order.quantity});
  return order;
}

inline catga::Result<Order> cancel_order(OrderBook& book, const CancelOrder& c) {
  auto it = book.orders.find(c.id);
  if (it == book.orders.end()) return catga::Error{catga::Code::not_found, "order " + std::to_string(c.id) + " does not exist"};
  if (it->second.status == "cancelled") {
    return catga::Error{catga::Code::failed_precondition, "order " + std::to_string(c.id) + " is already cancelled"};
  }
  it->second.status = "cancelled";
  return it->second;
}

inline catga::Result<Order> get_order(const OrderBook& book, const GetOrder& q) {
  auto it = book.orders.find(q.id);
  if (it == book.orders.end()) return catga::Error{catga::Code::not_found, "order " + std::to_string(q.id) + " does not exist"};
  return it->second;
}

inline std::vector<Order> list_orders(const OrderBook& book, const ListOrders& q) {
  std::vector<Order> out;
  auto it = q.after_id ? book.orders.upper_bound(*q.after_id) : book.orders.begin();
  for (; it != book.orders.end(); ++it) {
    if (q.limit && out.size() >= *q.limit) break;
    if (q.product_id && it->second.product_id != *q.product_id) continue;
    out.push_back(it->second);
  }
  return out;
}

// Registers the service's handlers. `totals` (the per-node read model) and
// `notify` (a leader-only side effect, e.g. logging or e-mail) are optional.
inline catga::ApplicationBuilder<OrderBook>& register_orders(
    catga::ApplicationBuilder<OrderBook>& builder, ProductTotals* totals = nullptr,
    std::function<void(const OrderCreated&)> notify = {}) {
  builder.command<CreateOrder>(create_order).query<GetOrder>(get_order).query<ListOrders>(list_orders);
#ifndef ORDERS_V1  // the rolling-upgrade test's "previous release", from before CancelOrder existed
  builder.command<CancelOrder>(cancel_order);
#endif
  if (totals) {
    builder.on<OrderCreated>([totals](const OrderCreated& e) { totals->add(e.product_id, e.quantity); })
        .on_restore([totals](const OrderBook& book) { totals->rebuild(book); });
  }
  if (notify) {
    builder.on<OrderCreated>([notify = std::move(notify)](const OrderCreated& e) { notify(e); },
                             catga::Delivery::leader_only);
  }
  return builder;
}

}  // namespace orders
