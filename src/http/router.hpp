// Route patterns and matching for the HTTP server, plus the URL decoding it
// needs. No I/O, no RESTinio: unit-testable on its own.
//
// A pattern is "/"-separated literal segments and `{name}` parameters. When
// several routes match a path, the one with a literal where the others have a
// parameter (at the first difference) wins. Built before the server starts;
// read-only (and so thread-safe) afterwards.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "catga/http.hpp"

namespace catga::http::internal {

// Decodes %XX escapes (and '+' as a space when `plus_is_space`); false on a
// malformed escape.
bool percent_decode(std::string_view in, std::string& out, bool plus_is_space);

// Splits "a=1&b=x%20y" into decoded pairs; invalid_argument on a malformed escape.
Result<std::vector<std::pair<std::string, std::string>>> parse_query(std::string_view query);

class Router {
 public:
  struct Match {
    std::size_t id = 0;                 // the order in which the route was added
    std::string_view pattern;
    std::vector<std::pair<std::string_view, std::string>> params;
  };
  enum class Outcome { matched, no_route, wrong_method, bad_path };

  // invalid_argument for a malformed pattern, already_exists for a pattern
  // (parameter names aside) already registered for `method`.
  Result<std::size_t> add(Method method, std::string_view pattern, Server::Handler handler);

  // On wrong_method, `allow` lists the methods the path accepts ("GET, POST").
  Outcome match(Method method, std::string_view path, Match& match, std::string& allow) const;

  Server::Handler& handler(std::size_t id) { return routes_[id].handler; }
  std::size_t size() const noexcept { return routes_.size(); }
  std::string_view pattern(std::size_t id) const noexcept { return routes_[id].pattern; }
  Method method(std::size_t id) const noexcept { return routes_[id].method; }

 private:
  struct Segment {
    bool parameter = false;
    std::string text;  // literal text, or the parameter's name
  };
  struct Route {
    Method method;
    std::string pattern;
    std::vector<Segment> segments;
    Server::Handler handler;
  };
  // Compares two routes' shapes: <0 when `a` is more specific.
  static int compare_specificity(const Route& a, const Route& b);

  std::vector<Route> routes_;
};

}  // namespace catga::http::internal
