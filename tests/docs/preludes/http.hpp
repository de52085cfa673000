// What docs/http.md refers to without showing it: the order service of
// examples/orders.
#pragma once

#include "orders/orders.hpp"

using orders::create_order;
using orders::CreateOrder;
using orders::get_order;
using orders::GetOrder;
using orders::OrderBook;
