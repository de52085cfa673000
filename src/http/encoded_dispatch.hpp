// Sending a message known only by its wire name and MessagePack payload — what
// the generic HTTP endpoints (POST /commands/{wire-name}, /queries/…) need.
//
// The Application has no encoded send yet; this is the HTTP layer's stand-in
// built from the library-use accessors `Application::mediator()` and
// `replicator()`, with the signatures proposed for `Application` itself:
//
//   void send_encoded(std::string_view wire_name, std::string payload,
//                     const CommandOptions&, EncodedDone done);
//   void query_encoded(std::string_view wire_name, std::string payload,
//                      const QueryOptions&, UniqueFunction<void(Result<std::string>)> done);
//
// Results are `detail::encode_result` bytes ([code, value|message]). The
// semantics match the typed calls (replication, de-duplication with the
// idempotency key, consistency waits, events of in-memory commands) except
// one: pipeline behaviours cannot run without the message's type, so
// `check_encoded_dispatch` refuses applications with behaviours other than
// catga::Metrics (whose series these functions record directly).
//
// Threading: as the typed calls — `done` runs exactly once, on the calling
// thread for local work or on the node's loop thread for replicated work.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "catga/application.hpp"

namespace catga {
class Metrics;
}

namespace catga::http::internal {

using EncodedDone = catga::detail::UniqueFunction<void(Result<std::string> encoded_result, std::uint64_t index)>;
using EncodedQueryDone = catga::detail::UniqueFunction<void(Result<std::string> encoded_result)>;

// failed_precondition when the application has a behaviour the encoded path
// would bypass.
Result<void> check_encoded_dispatch(Application& app);

// unimplemented when no command of that wire name is registered.
void send_encoded(Application& app, std::string_view wire_name, std::string payload, const CommandOptions& options,
                  EncodedDone done);
// unimplemented when no query of that wire name is registered.
void query_encoded(Application& app, std::string_view wire_name, std::string payload, const QueryOptions& options,
                   EncodedQueryDone done);

// "command", "query", "event".
std::string_view kind_name(MessageKind kind) noexcept;

// The Metrics a behaviour created by Metrics::behavior() records into, else nullptr.
Metrics* metrics_of(const Behavior& behavior) noexcept;

}  // namespace catga::http::internal
