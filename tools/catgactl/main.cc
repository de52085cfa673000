// catgactl: the command-line client of a Catga cluster's HTTP admin API
// (GET /raft/status, /health; POST /raft/members, /raft/leadership,
// /raft/snapshot, /raft/backup; PUT/DELETE /raft/members/{id}).
//
//   catgactl --endpoints 127.0.0.1:8081,127.0.0.1:8082,127.0.0.1:8083 status
//   catgactl --endpoints ... --token "$TOKEN" leader transfer 2
//   catgactl --endpoints ... -o json health
//   catgactl --endpoints https://127.0.0.1:8443 --cacert ca.crt status
//   catgactl --endpoints OLD... restore orders.catga-backup --data-dir /var/lib/orders
//            --cluster 1=10.0.0.1:7001 --cluster-id orders-2      (offline, on the new node's disk)
//
// Changes go to the leader: catgactl asks every endpoint for its status and
// sends the change to the one that is leader (nodes know each other's Raft
// addresses, not their HTTP ones, so the leader must be among --endpoints).
// Exit status: 0 success, 1 a failed call or an unhealthy/unreachable
// endpoint, 2 bad usage.
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "catga/backup.hpp"

#include "http_client.hpp"

namespace catgactl {
namespace {

using json = nlohmann::json;
using catga::Code;
using catga::Error;

struct Options {
  std::string endpoints = "127.0.0.1:8080";
  std::string token;
  TlsFiles tls;
  std::string output = "table";
  // Longer than the server's request timeout (10 s by default): a change that
  // runs long gets the server's 504, which says what to check, not this
  // client's own deadline.
  int timeout_ms = 12000;
  bool json() const { return output == "json"; }
};

// Prints the result of a command: `document` with -o json, otherwise `line`.
void emit(const Options& options, const json& document, const std::string& line) {
  std::cout << (options.json() ? document.dump() : line) << "\n";
}

// A failure already reported on standard error.
struct Failed {};

[[noreturn]] void fail(const std::string& message) {
  std::cerr << "catgactl: " << message << "\n";
  throw Failed{};
}

std::string describe(const Endpoint& endpoint, const Response& response) {
  auto body = json::parse(response.body, nullptr, false);
  std::string out = endpoint.text() + ": HTTP " + std::to_string(response.status);
  if (!body.is_discarded() && body.contains("error")) {
    out += " " + body["error"].value("code", "") + ": " + body["error"].value("message", "");
  }
  return out;
}

class Client {
 public:
  explicit Client(Options options) : options_(std::move(options)) {
    if (options_.tls.certificate.empty() != options_.tls.key.empty()) fail("--cert and --key go together");
    // Any TLS file makes bare HOST:PORT endpoints https.
    const bool tls = !options_.tls.ca.empty() || !options_.tls.certificate.empty();
    auto endpoints = parse_endpoints(options_.endpoints, tls);
    if (!endpoints) fail("--endpoints: " + endpoints.error().message());
    endpoints_ = std::move(*endpoints);
  }
  const Options& options() const { return options_; }
  const std::vector<Endpoint>& endpoints() const { return endpoints_; }

  catga::Result<Response> call(const Endpoint& endpoint, Call call) const {
    call.token = options_.token;
    return request(endpoint, call, std::chrono::milliseconds(options_.timeout_ms), options_.tls);
  }
  // The JSON of a 2xx answer (or of `also_ok`), or a failure on stderr.
  json expect_json(const Endpoint& endpoint, Call c, int also_ok = 0) const {
    auto response = call(endpoint, std::move(c));
    if (!response) fail(response.error().message());
    if ((response->status / 100 != 2 && response->status != also_ok)) fail(describe(endpoint, *response));
    auto body = json::parse(response->body, nullptr, false);
    if (body.is_discarded()) fail(endpoint.text() + ": the answer is not JSON");
    return body;
  }
  // The leader among the endpoints.
  const Endpoint& leader() const {
    std::string known;
    for (const auto& endpoint : endpoints_) {
      auto response = call(endpoint, {.path = "/raft/status"});
      if (!response || response->status != 200) continue;
      auto status = json::parse(response->body, nullptr, false);
      if (status.is_discarded()) continue;
      if (status.value("role", "") == "leader") return endpoint;
      if (status.contains("leader") && status["leader"].value("known", false)) {
        known = " (the leader is node " + std::to_string(status["leader"].value("id", 0)) + ", Raft address " +
                status["leader"].value("address", "") + ": add its HTTP endpoint)";
      }
    }
    fail("no endpoint in --endpoints is the leader" + known);
  }
  // Sends a change to the leader; 204 expected.
  void change(const std::string& method, const std::string& path, const json& body, const std::string& done) const {
    const Endpoint& at = leader();
    auto response = call(at, {.method = method, .path = path, .body = body.is_null() ? "" : body.dump()});
    if (!response) fail(response.error().message());
    if (response->status != 204) fail(describe(at, *response));
    emit(options_, json{{"ok", true}, {"endpoint", at.text()}, {"done", done}}, done);
  }

 private:
  Options options_;
  std::vector<Endpoint> endpoints_;
};

using Rows = std::vector<std::vector<std::string>>;

void print_table(const Rows& rows) {
  std::vector<std::size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()));
    for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    line.erase(line.find_last_not_of(' ') + 1);
    std::cout << line << "\n";
  }
}

// Prints the result of a command: `document` with -o json, otherwise `rows`
// as a table.
void emit(const Options& options, const json& document, const Rows& rows) {
  if (options.json()) std::cout << document.dump() << "\n";
  else print_table(rows);
}

std::string text(const json& value) {
  if (value.is_null()) return "-";
  if (value.is_string()) return value.get<std::string>();
  if (value.is_boolean()) return value.get<bool>() ? "yes" : "no";
  return value.dump();
}

// GET `path` on every endpoint: [{"endpoint":..., key: body} | {"endpoint":..., "error":...}].
json gather(const Client& client, const std::string& path, const std::string& key) {
  json all = json::array();
  for (const auto& endpoint : client.endpoints()) {
    json entry{{"endpoint", endpoint.text()}};
    auto response = client.call(endpoint, {.path = path});
    if (!response) {
      entry["error"] = response.error().message();
    } else if (auto body = json::parse(response->body, nullptr, false); body.is_discarded()) {
      entry["error"] = describe(endpoint, *response);
    } else {
      entry["http_status"] = response->status;
      entry[key] = std::move(body);
    }
    all.push_back(std::move(entry));
  }
  return all;
}

int status(const Client& client) {
  json all = gather(client, "/raft/status", "status");
  int rc = 0;
  std::vector<std::vector<std::string>> rows = {
      {"ENDPOINT", "ID", "ROLE", "TERM", "LEADER", "COMMIT", "APPLIED", "SNAPSHOT", "READY", "ERROR"}};
  for (const auto& entry : all) {
    if (!entry.contains("status") || entry["http_status"] != 200) {
      rc = 1;
      rows.push_back({entry["endpoint"], "-", "-", "-", "-", "-", "-", "-", "-",
                      entry.value("error", "HTTP " + text(entry.value("http_status", json())))});
      continue;
    }
    const json& s = entry["status"];
    const json leader = s.value("leader", json::object());
    rows.push_back(
        {entry["endpoint"], text(s.value("id", json())), text(s.value("role", json())), text(s.value("term", json())),
         leader.value("known", false) ? text(leader.value("id", json())) : "-", text(s.value("commit_index", json())),
         text(s.value("applied_index", json())), text(s.value("last_snapshot_index", json())),
         text(s.value("ready", json())), s.value("failure", "").empty() ? "" : s.value("failure", "")});
  }
  emit(client.options(), all, rows);
  return rc;
}

int health(const Client& client) {
  json all = gather(client, "/health", "health");
  int rc = 0;
  std::vector<std::vector<std::string>> rows = {{"ENDPOINT", "HEALTH", "ROLE", "READY", "REASON"}};
  for (const auto& entry : all) {
    if (!entry.contains("health")) {
      rc = 1;
      rows.push_back({entry["endpoint"], "unreachable", "-", "-", entry.value("error", "")});
      continue;
    }
    const json& h = entry["health"];
    const std::string state = h.value("status", "unknown");
    if (state != "healthy" && state != "degraded") rc = 1;
    rows.push_back({entry["endpoint"], state, text(h.value("role", json())), text(h.value("ready", json())),
                    h.value("not_ready_reason", h.value("failure", ""))});
  }
  emit(client.options(), all, rows);
  return rc;
}

int members_list(const Client& client) {
  for (const auto& endpoint : client.endpoints()) {
    auto response = client.call(endpoint, {.path = "/raft/status"});
    if (!response || response->status != 200) continue;
    auto s = json::parse(response->body, nullptr, false);
    if (s.is_discarded()) continue;
    const json members = s.value("members", json::array());
    const std::uint64_t leader = s.value("leader", json::object()).value("id", std::uint64_t{0});
    std::vector<std::vector<std::string>> rows = {{"ID", "ADDRESS", "PEER_ADDRESS", "ROLE", "LEADER"}};
    for (const auto& m : members) {
      const std::string peer = m.value("peer_address", "");
      rows.push_back({text(m.value("id", json())), m.value("address", ""), peer.empty() ? "-" : peer,
                      m.value("role", ""), m.value("id", std::uint64_t{0}) == leader ? "*" : ""});
    }
    emit(client.options(), members, rows);
    return 0;
  }
  fail("no endpoint in --endpoints answered /raft/status");
}

int snapshot(const Client& client) {
  const Endpoint& at = client.leader();
  json body = client.expect_json(at, {.method = "POST", .path = "/raft/snapshot"});
  emit(client.options(), json{{"endpoint", at.text()}, {"index", body.value("index", 0)}},
       "snapshot covering index " + std::to_string(body.value("index", 0)) + " being written on " + at.text());
  return 0;
}

// The disaster-recovery restore of docs/operations.md, "Backup and restore",
// as one offline step on this machine's disk: refuses while any of the old
// cluster's endpoints still answers, builds `data_dir` from the backup as the
// only member of a NEW cluster (catga::restore_backup: new cluster id, empty
// directory, one member), then says how to start and grow it.
struct RestoreArgs {
  std::string file, data_dir, member, cluster_id;
  bool check_old_cluster = false;  // --endpoints given: they name the old cluster
};

int restore(const Client& client, const RestoreArgs& a) {
  auto info = catga::read_backup_file(a.file);
  if (!info) fail(info.error().message());
  if (a.check_old_cluster) {
    for (const Endpoint& at : client.endpoints()) {
      if (auto r = client.call(at, {.method = "GET", .path = "/raft/status"}); r && r->status == 200) {
        fail(at.text() + " still answers: stop every member of the old cluster '" + info->cluster_id +
             "' for good before restoring its backup into a new one (docs/operations.md, \"Backup and restore\")");
      }
    }
  }
  // ID=HOST:PORT or ID=HOST:PORT/PEER_HOST:PEER_PORT, as catga-orders --cluster.
  const auto eq = a.member.find('=');
  catga::Member self;
  if (eq == std::string::npos || (self.id = std::strtoull(a.member.c_str(), nullptr, 10)) == 0) {
    fail("--cluster '" + a.member + "': expected ID=HOST:PORT[/PEER_HOST:PEER_PORT], this node alone");
  }
  const std::string addresses = a.member.substr(eq + 1);
  const auto slash = addresses.find('/');
  self.address = addresses.substr(0, slash);
  if (slash != std::string::npos) self.peer_address = addresses.substr(slash + 1);
  catga::ClusterOptions options{.node_id = self.id, .members = {self}, .data_dir = a.data_dir, .cluster_id = a.cluster_id};
  auto restored = catga::restore_backup(a.file, options);
  if (!restored) fail("cannot restore: " + restored.error().message());
  const std::string start = "--id " + std::to_string(self.id) + " --data-dir " + a.data_dir + " --cluster " + a.member +
                            " --cluster-id " + a.cluster_id;
  emit(client.options(),
       json{{"file", a.file},
            {"data_dir", a.data_dir},
            {"cluster_id", a.cluster_id},
            {"backup_cluster_id", restored->cluster_id},
            {"index", restored->index},
            {"term", restored->term},
            {"old_cluster_checked", a.check_old_cluster},
            {"start", start}},
       "restored " + a.file + " (cluster '" + restored->cluster_id + "', index " + std::to_string(restored->index) +
           ", term " + std::to_string(restored->term) + ") into " + a.data_dir + " as the only member of cluster '" +
           a.cluster_id + "'" +
           (a.check_old_cluster ? "; no old endpoint answered"
                                : "; the old cluster was not checked (give its --endpoints): make sure it is stopped "
                                  "for good") +
           "\nnext: 1. start the node with " + start +
           " (no --restore-from); it elects itself\n      2. wait for GET /health/ready = 200 and check the state\n"
           "      3. grow one member at a time: start it empty with --join --cluster-id " + a.cluster_id +
           ", then catgactl members add ID HOST:PORT");
  return 0;
}

int backup(const Client& client, const std::string& file) {
  const Endpoint& at = client.leader();
  auto response = client.call(at, {.method = "POST", .path = "/raft/backup"});
  if (!response) fail(response.error().message());
  if (response->status != 200) fail(describe(at, *response));
  // Written next to its destination, then renamed: never a half-written file under the name.
  const std::filesystem::path target(file);
  const std::filesystem::path partial = target.string() + ".partial";
  {
    std::ofstream out(partial, std::ios::binary | std::ios::trunc);
    out.write(response->body.data(), static_cast<std::streamsize>(response->body.size()));
    out.flush();
    if (!out) fail("cannot write " + partial.string());
  }
  std::error_code ec;
  std::filesystem::rename(partial, target, ec);
  if (ec) fail("cannot rename " + partial.string() + " to " + file + ": " + ec.message());
  const std::string index = response->header("X-Catga-Backup-Index");
  const std::string term = response->header("X-Catga-Backup-Term");
  emit(client.options(),
       json{{"endpoint", at.text()},
            {"file", file},
            {"bytes", response->body.size()},
            {"index", std::stoull(index.empty() ? "0" : index)},
            {"term", std::stoull(term.empty() ? "0" : term)}},
       "backup at index " + index + ", term " + term + " (" + std::to_string(response->body.size()) +
           " bytes) from " + at.text() + " written to " + file);
  return 0;
}

int run(int argc, char** argv) {
  CLI::App cli{"catgactl: the command-line client of a Catga cluster (its HTTP admin API)"};
  cli.require_subcommand(1);
  Options options;
  cli.add_option("--endpoints", options.endpoints, "the nodes' HTTP addresses, [http://|https://]HOST:PORT,... (bare ones are https with --cacert or --cert)")
      ->envname("CATGACTL_ENDPOINTS")
      ->capture_default_str();
  cli.add_option("--token", options.token, "admin token (Authorization: Bearer) for changes, snapshots and backups")
      ->envname("CATGACTL_TOKEN");
  cli.add_option("--cacert", options.tls.ca, "CA certificate (PEM) to verify https endpoints (default: the system's)")
      ->envname("CATGACTL_CACERT");
  cli.add_option("--cert", options.tls.certificate, "client certificate (PEM) for https endpoints that ask for one")
      ->envname("CATGACTL_CERT");
  cli.add_option("--key", options.tls.key, "the client certificate's private key (PEM)")->envname("CATGACTL_KEY");
  cli.add_option("-o,--output", options.output, "table or json")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  cli.add_option("--timeout-ms", options.timeout_ms, "per-request deadline")
      ->check(CLI::Range(1, 3600000))
      ->capture_default_str();

  auto* status_cmd = cli.add_subcommand("status", "each endpoint's node: id, role, term, leader, indexes");
  auto* health_cmd = cli.add_subcommand("health", "each endpoint's health (exit 1 if one is unhealthy or unreachable)");
  auto* members = cli.add_subcommand("members", "the cluster's configuration");
  members->require_subcommand(1);
  auto* list = members->add_subcommand("list", "every member, its Raft address and role");
  std::uint64_t id = 0;
  std::string address, role = "voter", peer_address;
  auto* add = members->add_subcommand("add", "add a member (start it with --join); as a voter it catches up first");
  add->add_option("id", id, "the new member's id")->required()->check(CLI::PositiveNumber);
  add->add_option("address", address, "its Raft address HOST:PORT")->required();
  add->add_option("--role", role, "voter, standby or spare")
      ->check(CLI::IsMember({"voter", "standby", "spare"}))
      ->capture_default_str();
  add->add_option("--peer-address", peer_address, "its peer channel HOST:PORT (default: Raft port + 1)");
  auto* remove = members->add_subcommand("remove", "remove a member");
  remove->add_option("id", id, "the member's id")->required()->check(CLI::PositiveNumber);
  auto* promote = members->add_subcommand("promote", "change a member's role (default: make it a voter)");
  promote->add_option("id", id, "the member's id")->required()->check(CLI::PositiveNumber);
  promote->add_option("--role", role, "voter, standby or spare")
      ->check(CLI::IsMember({"voter", "standby", "spare"}))
      ->capture_default_str();
  auto* leader = cli.add_subcommand("leader", "leadership");
  leader->require_subcommand(1);
  std::uint64_t to = 0;
  auto* transfer = leader->add_subcommand("transfer", "hand leadership to a voter (default: the most up-to-date)");
  transfer->add_option("id", to, "the voter's id (0 or none: let the leader choose)");
  auto* snapshot_cmd = cli.add_subcommand("snapshot", "make the leader take a snapshot now");
  std::string file;
  auto* backup_cmd = cli.add_subcommand("backup",
                                        "download an online backup from the leader (restore it with "
                                        "catga::restore_backup / catga-orders --restore-from)");
  backup_cmd->add_option("file", file, "where to write it")->required();
  RestoreArgs restore_args;
  auto* restore_cmd = cli.add_subcommand(
      "restore",
      "disaster recovery, on the machine of the new cluster's first member: build its empty --data-dir from a backup "
      "as the only member of a NEW cluster (--cluster-id differs from the backup's). With --endpoints naming the old "
      "cluster, refuses while any of them answers");
  restore_cmd->add_option("file", restore_args.file, "the backup file (catgactl backup)")->required();
  restore_cmd->add_option("--data-dir", restore_args.data_dir, "the new member's data directory (missing or empty)")
      ->required();
  restore_cmd->add_option("--cluster", restore_args.member, "this node alone, ID=HOST:PORT[/PEER_HOST:PEER_PORT]")
      ->required();
  restore_cmd->add_option("--cluster-id", restore_args.cluster_id, "the NEW cluster's id")->required();

  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return cli.exit(e);
  }
  Client client(options);
  if (status_cmd->parsed()) return status(client);
  if (health_cmd->parsed()) return health(client);
  if (list->parsed()) return members_list(client);
  if (add->parsed()) {
    client.change("POST", "/raft/members",
                  json{{"id", id}, {"address", address}, {"role", role}, {"peer_address", peer_address}},
                  "member " + std::to_string(id) + " added as " + role);
    return 0;
  }
  if (remove->parsed()) {
    client.change("DELETE", "/raft/members/" + std::to_string(id), nullptr,
                  "member " + std::to_string(id) + " removed");
    return 0;
  }
  if (promote->parsed()) {
    client.change("PUT", "/raft/members/" + std::to_string(id) + "/role", json{{"role", role}},
                  "member " + std::to_string(id) + " is now " + role);
    return 0;
  }
  if (transfer->parsed()) {
    client.change("POST", "/raft/leadership", json{{"to", to}},
                  to == 0 ? std::string("leadership transferred") : "leadership transferred to " + std::to_string(to));
    return 0;
  }
  if (snapshot_cmd->parsed()) return snapshot(client);
  if (backup_cmd->parsed()) return backup(client, file);
  if (restore_cmd->parsed()) {
    restore_args.check_old_cluster = cli.get_option("--endpoints")->count() > 0;  // the flag or CATGACTL_ENDPOINTS
    return restore(client, restore_args);
  }
  return 2;
}

}  // namespace
}  // namespace catgactl

int main(int argc, char** argv) {
  try {
    return catgactl::run(argc, argv);
  } catch (const catgactl::Failed&) {
    return 1;
  }
}
