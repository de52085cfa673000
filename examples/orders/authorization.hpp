// The order service's authorisation behaviour: who may do what, decided on the
// node that received the request, before anything is proposed to Raft.
//
// With --credentials-file, catga-orders installs it: commands (creating and
// cancelling orders) need the role "writer"; queries need "reader" or
// "writer"; a caller without credentials is refused. The principal comes from
// the HTTP edge (a bearer token or a client certificate, docs/security.md).
#pragma once

#include <string>

#include <catga/behavior.hpp>

namespace orders {

class RoleAuthorization final : public catga::Behavior {
 public:
  void handle(catga::Request& request, catga::Next& next) override {
    const catga::Principal* who = request.principal();
    if (!who) return next.reject(catga::Error{catga::Code::unauthenticated, "credentials required"});
    const bool writes = request.kind() != catga::MessageKind::query;
    if (writes ? who->has_role("writer") : (who->has_role("reader") || who->has_role("writer"))) return next();
    next.reject(catga::Error{catga::Code::permission_denied,
                             who->name + " may not " + (writes ? "send " : "query ") + std::string(request.wire_name()) +
                                 ": it needs the role " + (writes ? "writer" : "reader or writer")});
  }
};

}  // namespace orders
