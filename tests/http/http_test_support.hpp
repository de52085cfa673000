// The HTTP tests' service: the test bank (tests/support/bank.hpp) with one
// extra command that fails with a chosen code, behind a catga::http::Server
// on 127.0.0.1 with an OS-picked port.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "catga/http.hpp"
#include "catga/metrics.hpp"
#include "http/http_client.hpp"
#include "support/bank.hpp"
#include "support/cluster.hpp"

namespace catga::testing {

// Fails with the named code ("not_found", ...); succeeds for "ok".
struct FailWith {
  using catga_message = catga::Command<void, "test.fail-with.v1">;
  std::string code;
  MSGPACK_DEFINE_MAP(code);
};

inline catga::Result<void> fail_with(bank::State&, const FailWith& c) {
  catga::Code code{};
  if (!catga::parse_code(c.code, code)) return catga::Error{catga::Code::invalid_argument, "unknown code " + c.code};
  if (code == catga::Code::ok) return {};
  return catga::Error{code, "failing with " + c.code + " as asked"};
}

inline catga::ApplicationBuilder<bank::State>& register_test_handlers(catga::ApplicationBuilder<bank::State>& b) {
  return bank::register_handlers(b).command<FailWith>(fail_with);
}

// Waits (bounded) until the server on `port` answers /health/ready with 200.
inline bool wait_ready(std::uint16_t port) {
  return testsupport::wait_for([&] { return HttpClient(port).get("/health/ready").status == 200; });
}

// The typed routes the tests exercise.
inline void add_bank_routes(catga::http::Server& server) {
  using catga::http::Request;
  server
      .post("/accounts", [](const Request& r) { return r.json<bank::Open>(); }, {.status = 201})
      .get("/accounts/{id}", [](const Request& r) { return bank::GetAccount{.account = r.param<std::uint64_t>("id")}; })
      .post("/accounts/{id}/deposits",
            [](const Request& r) {
              auto deposit = r.json<bank::Deposit>();
              if (deposit) deposit->account = r.param<std::uint64_t>("id");
              return deposit;
            })
      .del("/accounts/{id}", [](const Request& r) { return bank::Close{.account = r.param<std::uint64_t>("id")}; })
      .post("/fail/{code}", [](const Request& r) { return FailWith{.code = std::string(r.param("code"))}; });
}

}  // namespace catga::testing
