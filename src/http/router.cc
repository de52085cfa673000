#include "http/router.hpp"

#include <algorithm>

namespace catga::http::internal {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// "/a/b" -> {"a", "b"}; "/" -> {""}. Precondition: starts with '/'.
std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> out;
  path.remove_prefix(1);
  while (true) {
    auto slash = path.find('/');
    out.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return out;
}

bool valid_parameter_name(std::string_view name) {
  if (name.empty()) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

}  // namespace

bool percent_decode(std::string_view in, std::string& out, bool plus_is_space) {
  out.clear();
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return false;
      int hi = hex_value(in[i + 1]), lo = hex_value(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return true;
}

Result<std::vector<std::pair<std::string, std::string>>> parse_query(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query.remove_prefix(amp == std::string_view::npos ? query.size() : amp + 1);
    if (pair.empty()) continue;
    auto eq = pair.find('=');
    std::string name, value;
    if (!percent_decode(pair.substr(0, eq), name, true) ||
        (eq != std::string_view::npos && !percent_decode(pair.substr(eq + 1), value, true))) {
      return Error{Code::invalid_argument, "malformed percent-encoding in the query string"};
    }
    out.emplace_back(std::move(name), std::move(value));
  }
  return out;
}

int Router::compare_specificity(const Route& a, const Route& b) {
  const std::size_t n = std::min(a.segments.size(), b.segments.size());
  for (std::size_t i = 0; i < n; ++i) {
    if (a.segments[i].parameter != b.segments[i].parameter) return a.segments[i].parameter ? 1 : -1;
  }
  return 0;
}

Result<std::size_t> Router::add(Method method, std::string_view pattern, Server::Handler handler) {
  auto bad = [&](std::string_view why) {
    return Error{Code::invalid_argument, "route pattern \"" + std::string(pattern) + "\": " + std::string(why)};
  };
  if (pattern.empty() || pattern.front() != '/') return bad("must start with '/'");
  if (!handler) return bad("has no handler");
  Route route{method, std::string(pattern), {}, std::move(handler)};
  for (std::string_view segment : split_path(pattern)) {
    if (segment.size() >= 2 && segment.front() == '{' && segment.back() == '}') {
      std::string_view name = segment.substr(1, segment.size() - 2);
      if (!valid_parameter_name(name)) return bad("parameter names are [A-Za-z0-9_-]+");
      for (const auto& s : route.segments) {
        if (s.parameter && s.text == name) return bad("parameter {" + std::string(name) + "} appears twice");
      }
      route.segments.push_back({true, std::string(name)});
    } else {
      if (segment.find_first_of("{}?#%") != std::string_view::npos) {
        return bad("literal segments may not contain { } ? # % (use {name} for a parameter)");
      }
      route.segments.push_back({false, std::string(segment)});
    }
  }
  for (const auto& other : routes_) {
    if (other.method != method || other.segments.size() != route.segments.size()) continue;
    bool same = true;
    for (std::size_t i = 0; same && i < route.segments.size(); ++i) {
      const auto &x = route.segments[i], &y = other.segments[i];
      same = x.parameter == y.parameter && (x.parameter || x.text == y.text);
    }
    if (same) {
      return Error{Code::already_exists, std::string(to_string(method)) + " " + std::string(pattern) +
                                             " clashes with the route " + other.pattern};
    }
  }
  routes_.push_back(std::move(route));
  return routes_.size() - 1;
}

Router::Outcome Router::match(Method method, std::string_view path, Match& match, std::string& allow) const {
  if (path.empty() || path.front() != '/') return Outcome::bad_path;
  const auto raw = split_path(path);
  std::vector<std::string> decoded(raw.size());
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (!percent_decode(raw[i], decoded[i], false)) return Outcome::bad_path;
  }
  const Route* best = nullptr;
  std::size_t best_id = 0;
  std::vector<Method> allowed;
  for (std::size_t id = 0; id < routes_.size(); ++id) {
    const Route& route = routes_[id];
    if (route.segments.size() != decoded.size()) continue;
    bool fits = true;
    for (std::size_t i = 0; fits && i < decoded.size(); ++i) {
      fits = route.segments[i].parameter ? !decoded[i].empty() : route.segments[i].text == decoded[i];
    }
    if (!fits) continue;
    if (route.method != method) {
      if (std::find(allowed.begin(), allowed.end(), route.method) == allowed.end()) allowed.push_back(route.method);
      continue;
    }
    if (!best || compare_specificity(route, *best) < 0) {
      best = &route;
      best_id = id;
    }
  }
  if (!best) {
    if (allowed.empty()) return Outcome::no_route;
    std::sort(allowed.begin(), allowed.end());
    allow.clear();
    for (Method m : allowed) {
      if (!allow.empty()) allow += ", ";
      allow += to_string(m);
    }
    return Outcome::wrong_method;
  }
  match.id = best_id;
  match.pattern = best->pattern;
  match.params.clear();
  for (std::size_t i = 0; i < decoded.size(); ++i) {
    if (best->segments[i].parameter) match.params.emplace_back(best->segments[i].text, std::move(decoded[i]));
  }
  return Outcome::matched;
}

}  // namespace catga::http::internal
