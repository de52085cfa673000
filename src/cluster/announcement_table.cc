#include "cluster/announcement_table.hpp"

#include <algorithm>
#include <stdexcept>

#include "catga/codec.hpp"
#include "core/mediator.hpp"

namespace catga::internal {
namespace {

constexpr unsigned kAnnouncementFormat = 1;
constexpr unsigned kAnnouncementWithDataDir = 2;  // one more field: the data directory identity
constexpr unsigned kTableFormat = 1;

Error bad(const std::string& what, const std::string& why) { return Error{Code::data_loss, what + ": " + why}; }

// Decodes one msgpack value with generous limits, or names what was wrong.
Result<void> unpack(std::string_view bytes, detail::Unpacked& handle, const char* what) {
  DecodeLimits limits{.max_bytes = SIZE_MAX, .max_array = SIZE_MAX, .max_map = 0, .max_str = SIZE_MAX,
                      .max_bin = SIZE_MAX, .max_depth = 8};
  if (auto r = detail::unpack_one(bytes, limits, handle); !r) return bad(what, r.error().message());
  return {};
}

bool is_array(const msgpack::object& o, std::uint32_t size) {
  return o.type == msgpack::type::ARRAY && o.via.array.size == size;
}

Result<Announcement> announcement_from(const msgpack::object& o) {
  const bool v1 = is_array(o, 5) && o.via.array.ptr[0].type == msgpack::type::POSITIVE_INTEGER &&
                  o.via.array.ptr[0].via.u64 == kAnnouncementFormat;
  const bool v2 = is_array(o, 6) && o.via.array.ptr[0].type == msgpack::type::POSITIVE_INTEGER &&
                  o.via.array.ptr[0].via.u64 == kAnnouncementWithDataDir;
  if ((!v1 && !v2) || o.via.array.ptr[4].type != msgpack::type::ARRAY) return bad("announcement", "unknown format");
  const auto* f = o.via.array.ptr;
  Announcement a;
  if (v2) {
    if (f[5].type != msgpack::type::STR || f[5].via.str.size == 0) return bad("announcement", "bad data directory identity");
    a.data_dir = f[5].as<std::string>();
  }
  a.node_id = f[1].as<std::uint64_t>();
  a.formats = {f[2].as<std::uint32_t>(), f[3].as<std::uint32_t>()};
  if (a.node_id == 0) return bad("announcement", "node id 0");
  if (a.formats.min == 0 || a.formats.min > a.formats.max) return bad("announcement", "empty format range");
  for (std::uint32_t i = 0; i < f[4].via.array.size; ++i) {
    const msgpack::object& h = f[4].via.array.ptr[i];
    if (!is_array(h, 2)) return bad("announcement", "bad handler");
    const auto kind = h.via.array.ptr[0].as<unsigned>();
    if (kind != static_cast<unsigned>(MessageKind::command) && kind != static_cast<unsigned>(MessageKind::event)) {
      return bad("announcement", "bad handler kind");
    }
    a.handles.emplace(h.via.array.ptr[1].as<std::string>(), static_cast<MessageKind>(kind));
  }
  return a;
}

}  // namespace

std::string describe_message(std::string_view wire_name, MessageKind kind) {
  return std::string(to_string(kind)) + " " + std::string(wire_name);
}

std::string encode_announcement(const Announcement& a) {
  std::string out;
  detail::StringSink sink{&out};
  msgpack::packer<detail::StringSink> p(sink);
  const bool with_data_dir = !a.data_dir.empty();
  p.pack_array(with_data_dir ? 6 : 5);
  p.pack(with_data_dir ? kAnnouncementWithDataDir : kAnnouncementFormat);
  p.pack(a.node_id);
  p.pack(a.formats.min);
  p.pack(a.formats.max);
  p.pack_array(static_cast<std::uint32_t>(a.handles.size()));
  for (const auto& [name, kind] : a.handles) {
    p.pack_array(2);
    p.pack(static_cast<unsigned>(kind));
    p.pack(name);
  }
  if (with_data_dir) p.pack(a.data_dir);
  return out;
}

Result<Announcement> decode_announcement(std::string_view bytes) {
  detail::Unpacked handle;
  if (auto r = unpack(bytes, handle, "announcement"); !r) return r.error();
  try {
    return announcement_from(handle.get());
  } catch (const std::exception& e) {
    return bad("announcement", e.what());
  }
}

std::string encode_number_record(std::uint64_t node_id) {
  std::string out;
  detail::StringSink sink{&out};
  msgpack::packer<detail::StringSink> p(sink);
  p.pack_array(2);
  p.pack(1u);
  p.pack(node_id);
  return out;
}

Result<std::uint64_t> decode_number_record(std::string_view bytes) {
  detail::Unpacked handle;
  if (auto r = unpack(bytes, handle, "record"); !r) return r.error();
  const msgpack::object& o = handle.get();
  if (!is_array(o, 2) || o.via.array.ptr[0].type != msgpack::type::POSITIVE_INTEGER || o.via.array.ptr[0].via.u64 != 1 ||
      o.via.array.ptr[1].type != msgpack::type::POSITIVE_INTEGER) {
    return bad("record", "unknown format");
  }
  return o.via.array.ptr[1].via.u64;
}

void AnnouncementTable::announce(Announcement a) {
  const std::uint64_t id = a.node_id;
  by_node_.insert_or_assign(id, std::move(a));
  changed();
}

std::uint32_t AnnouncementTable::agreed_format() const {
  if (by_node_.empty()) return format_;
  std::uint32_t agreed = ~std::uint32_t{0};
  for (const auto& [node, announced] : by_node_) agreed = std::min(agreed, announced.formats.max);
  return std::max(format_, agreed);
}

Result<void> AnnouncementTable::raise_format(std::uint32_t f) {
  if (f <= format_) return {};
  for (const auto& [id, a] : by_node_) {
    if (!a.formats.contains(f)) {
      return Error{Code::failed_precondition, "apply format " + std::to_string(f) + " is not implemented by member " +
                                                  std::to_string(id)};
    }
  }
  format_ = f;
  return {};
}

bool AnnouncementTable::withdraw(std::uint64_t node_id) {
  if (by_node_.erase(node_id) == 0) return false;
  changed();
  return true;
}

void AnnouncementTable::changed() {
  handled_by_all_.clear();
  if (by_node_.empty()) return;
  const auto& first = by_node_.begin()->second.handles;
  for (const auto& handled : first) {  // not a structured binding: clang 14 cannot capture one
    const bool everywhere = std::all_of(by_node_.begin(), by_node_.end(), [&](const auto& entry) {
      auto it = entry.second.handles.find(handled.first);
      return it != entry.second.handles.end() && it->second == handled.second;
    });
    if (everywhere) handled_by_all_.emplace(handled.first, handled.second);
  }
}

const Announcement* AnnouncementTable::find(std::uint64_t node_id) const {
  auto it = by_node_.find(node_id);
  return it == by_node_.end() ? nullptr : &it->second;
}

std::vector<std::uint64_t> AnnouncementTable::members() const {
  std::vector<std::uint64_t> out;
  out.reserve(by_node_.size());
  for (const auto& [id, a] : by_node_) out.push_back(id);
  return out;
}

std::vector<std::uint64_t> AnnouncementTable::lacking(std::string_view wire_name, MessageKind kind) const {
  std::vector<std::uint64_t> out;
  for (const auto& [id, a] : by_node_) {
    auto it = a.handles.find(wire_name);
    if (it == a.handles.end() || it->second != kind) out.push_back(id);
  }
  return out;
}

std::optional<Error> AnnouncementTable::refusal(std::string_view wire_name, MessageKind kind,
                                                std::optional<std::uint64_t> also_lacking) const {
  if (!also_lacking) {
    if (by_node_.empty()) return std::nullopt;
    if (auto it = handled_by_all_.find(wire_name); it != handled_by_all_.end() && it->second == kind) return std::nullopt;
  }
  auto ids = lacking(wire_name, kind);
  if (!also_lacking && ids.size() == by_node_.size()) {
    // No announced member handles it: nobody can apply it.
    return detail::Mediator::no_handler(wire_name, kind);
  }
  if (also_lacking && std::find(ids.begin(), ids.end(), *also_lacking) == ids.end()) {
    ids.insert(std::upper_bound(ids.begin(), ids.end(), *also_lacking), *also_lacking);
  }
  if (ids.empty()) return std::nullopt;
  std::string names;
  for (const auto id : ids) names += (names.empty() ? "" : ", ") + std::to_string(id);
  return Error{Code::failed_precondition,
               describe_message(wire_name, kind) + " is not handled by member" + (ids.size() > 1 ? "s " : " ") + names +
                   " (its announced build has no handler; a rolling upgrade in progress?); nothing was applied — "
                   "retry once every member runs a build that handles it"};
}

std::string AnnouncementTable::encode() const {
  std::string out;
  detail::StringSink sink{&out};
  msgpack::packer<detail::StringSink> p(sink);
  p.pack_array(3);
  p.pack(kTableFormat);
  p.pack(format_);
  p.pack_array(static_cast<std::uint32_t>(by_node_.size()));
  for (const auto& [id, a] : by_node_) {
    const std::string bytes = encode_announcement(a);
    p.pack_bin(static_cast<std::uint32_t>(bytes.size()));
    p.pack_bin_body(bytes.data(), static_cast<std::uint32_t>(bytes.size()));
  }
  return out;
}

Result<void> AnnouncementTable::decode(std::string_view bytes) {
  detail::Unpacked handle;
  if (auto r = unpack(bytes, handle, "announcement table"); !r) return r;
  try {
    const msgpack::object& o = handle.get();
    if (!is_array(o, 3) || o.via.array.ptr[0].type != msgpack::type::POSITIVE_INTEGER ||
        o.via.array.ptr[0].via.u64 != kTableFormat || o.via.array.ptr[2].type != msgpack::type::ARRAY) {
      return bad("announcement table", "unknown format");
    }
    AnnouncementTable t;
    t.format_ = o.via.array.ptr[1].as<std::uint32_t>();
    const auto& list = o.via.array.ptr[2].via.array;
    for (std::uint32_t i = 0; i < list.size; ++i) {
      if (list.ptr[i].type != msgpack::type::BIN) return bad("announcement table", "bad entry");
      auto a = decode_announcement(std::string_view(list.ptr[i].via.bin.ptr, list.ptr[i].via.bin.size));
      if (!a) return a.error();
      if (t.by_node_.contains(a->node_id)) return bad("announcement table", "duplicate member");
      const std::uint64_t id = a->node_id;
      t.by_node_.emplace(id, std::move(*a));
    }
    t.changed();
    *this = std::move(t);
    return {};
  } catch (const std::exception& e) {
    return bad("announcement table", e.what());
  }
}

}  // namespace catga::internal
