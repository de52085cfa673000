// catga/asio.hpp — Asio completion tokens for `Application`: one call gives
// callbacks, futures and C++20 coroutines.
//
//   Result<Order> r = co_await catga::async_send(app, CreateOrder{...}, asio::use_awaitable);
//   std::future<Result<Order>> f = catga::async_send(app, GetOrder{...}, asio::use_future);
//   catga::async_send(app, cmd, [](Result<Order> r) { ... });
//
// The completion runs on the handler's associated executor (for a coroutine,
// its own executor), never inline on the node's loop thread unless the
// handler has no executor of its own (system executor: inline).
//
// Thread-safety: as Application.
#pragma once

#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/dispatch.hpp>

#include "catga/application.hpp"

namespace catga {

template <Message M, class CompletionToken>
  requires(CommandMessage<M> || QueryMessage<M>)
auto async_send(Application& app, M message, CompletionToken&& token) {
  using R = result_of<M>;
  using Options = std::conditional_t<CommandMessage<M>, CommandOptions, QueryOptions>;
  return asio::async_initiate<CompletionToken, void(Result<R>)>(
      [&app](auto handler, M msg) {
        auto executor = asio::get_associated_executor(handler);
        app.send(msg, Options{}, [handler = std::move(handler), executor](Result<R> result) mutable {
          asio::dispatch(executor, [handler = std::move(handler), result = std::move(result)]() mutable {
            std::move(handler)(std::move(result));
          });
        });
      },
      token, std::move(message));
}

template <EventMessage E, class CompletionToken>
auto async_publish(Application& app, E event, CompletionToken&& token) {
  return asio::async_initiate<CompletionToken, void(Result<void>)>(
      [&app](auto handler, E ev) {
        auto executor = asio::get_associated_executor(handler);
        app.publish(ev, CommandOptions{}, [handler = std::move(handler), executor](Result<void> result) mutable {
          asio::dispatch(executor, [handler = std::move(handler), result = std::move(result)]() mutable {
            std::move(handler)(std::move(result));
          });
        });
      },
      token, std::move(event));
}

}  // namespace catga
