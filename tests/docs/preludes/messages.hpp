// What docs/messages.md refers to without showing it.
#pragma once

// A read model kept from OrderCreated events (docs/messages.md, "Events").
struct SalesTotals {
  std::map<std::string, long> by_product;
  void add(const std::string& product_id, int quantity) { by_product[product_id] += quantity; }
  template <class Book>
  void rebuild(const Book& book) {
    by_product.clear();
    for (const auto& [id, order] : book.orders) add(order.product_id, order.quantity);
  }
};
