// catga-orders: the order service of the plan as a binary. One process is one
// node; three of them with the same --cluster list form a replicated cluster.
//
//   catga-orders --id 1 --data-dir data/1 --http 127.0.0.1:8081
//                --cluster 1=127.0.0.1:7001,2=127.0.0.1:7011,3=127.0.0.1:7021
//
// Without --cluster it runs as a single durable node. `--help` lists every
// option; `--config FILE` reads them from a TOML/INI file (same names as the
// flags) and every flag can also come from the environment: --data-dir from
// CATGA_DATA_DIR, --admin-token from CATGA_ADMIN_TOKEN, ... (a flag given on
// the command line wins, then the environment, then the file).
#include <CLI/CLI.hpp>
#include <execinfo.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <mutex>

#include <catga/application.hpp>
#include <catga/backup.hpp>
#include <catga/hosting.hpp>
#include <catga/http.hpp>
#include <catga/logging.hpp>
#include <catga/metrics.hpp>

#include "authorization.hpp"
#include "orders.hpp"
#include "tracing.hpp"

namespace {

catga::Result<std::pair<std::string, std::uint16_t>> parse_host_port(const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos) return catga::Error{catga::Code::invalid_argument, "--http: '" + text + "' is not HOST:PORT"};
  int port = -1;
  try {
    port = std::stoi(text.substr(colon + 1));
  } catch (...) {
  }
  if (port < 0 || port > 65535) return catga::Error{catga::Code::invalid_argument, "--http: bad port in '" + text + "'"};
  std::string host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);  // [::1]
  return std::pair{std::move(host), static_cast<std::uint16_t>(port)};
}

std::string totals_json(const orders::ProductTotals& totals) {
  std::string out = "{";
  bool first = true;
  for (const auto& [product, quantity] : totals.snapshot()) {
    if (!first) out += ",";
    first = false;
    out += "\"";
    for (char c : product) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += "\":" + std::to_string(quantity);
  }
  return out + "}";
}

}  // namespace

// CATGA_DATA_DIR for --data-dir: every long option can come from the environment.
void options_from_environment(CLI::App& cli) {
  for (CLI::Option* option : cli.get_options()) {
    if (option->get_lnames().empty() || option->get_lnames().front() == "help") continue;
    std::string name = "CATGA_";
    for (char c : option->get_lnames().front()) name += c == '-' ? '_' : static_cast<char>(std::toupper(c));
    option->envname(name);
  }
}

namespace {

std::atomic<bool> main_returned{false};

// Every way out of main says why; a process that ends through exit() anywhere
// else (a library giving up: libfaketime, ...) says so too, with the stack
// of the thread that called it. Raw write(2): the logger may be gone by now.
void on_exit_outside_main() {
  if (main_returned.load()) return;
  // No clock, no allocation of ours: under libfaketime a clock call can
  // itself be what calls exit().
  static constexpr char kText[] =
      "catga-orders: exit() called outside main's return paths (by a library?); the calling thread's stack:\n";
  [[maybe_unused]] auto written = ::write(2, kText, sizeof kText - 1);
  void* frames[32];
  ::backtrace_symbols_fd(frames, ::backtrace(frames, 32), 2);
}

int serve(int argc, char** argv);

}  // namespace

int main(int argc, char** argv) {
  std::atexit(on_exit_outside_main);
  const int status = serve(argc, argv);
  main_returned = true;
  return status;
}

namespace {

int serve(int argc, char** argv) {
  // Owns SIGINT/SIGTERM from here on (before any thread starts).
  catga::hosting::ShutdownSignals signals;

  CLI::App cli{"catga-orders: the order service, one node of a Catga cluster"};
  cli.set_config("--config", "", "read options from this TOML/INI file");
  std::uint64_t id = 1;
  std::string data_dir = "catga-orders-data";
  std::string http = "127.0.0.1:8080";
  std::string cluster;
  std::string cluster_id = "catga-orders";
  std::string peer_secret;
  std::string peer_secret_file;
  int peer_handshake_timeout_ms = 5000;
  std::string peer_tls_ca_file, peer_tls_cert_file, peer_tls_key_file, peer_tls_crl_file;
  std::string admin_token;
  std::string log_level = "info";
  int election_timeout_ms = 1000, heartbeat_ms = 100;
  const catga::ClusterOptions defaults;
  std::uint64_t snapshot_threshold_bytes = defaults.snapshot_threshold_bytes;
  std::uint64_t snapshot_trailing_bytes = defaults.snapshot_trailing_bytes;
  unsigned http_threads = 2;
  bool join = false;
  std::string restore_from;
  bool force_new_cluster = false;
  bool new_cluster = false;
  cli.add_option("--id", id, "this node's id (must appear in --cluster)")->check(CLI::PositiveNumber);
  cli.add_option("--data-dir", data_dir, "where the Raft log and snapshots live (created if missing)");
  cli.add_option("--http", http, "HTTP listen address IP:PORT or [IPV6]:PORT (port 0: any free port)");
  auto* cluster_option = cli.add_option("--cluster", cluster,
                 "every member as ID=HOST:PORT of its Raft port, comma-separated; HOST is an IPv4 address or a "
                 "DNS name (resolved at each connection). Each member's peer channel listens on the Raft port + 1, "
                 "or where ID=HOST:PORT/PEER_HOST:PEER_PORT says. Omit for a single durable node");
  cli.add_option("--cluster-id", cluster_id, "peers of another cluster id are refused");
  auto* secret_option = cli.add_option(
      "--peer-secret", peer_secret,
      "cluster secret (at least 16 bytes, the same on every member): every connection to the Raft port and the peer "
      "channel proves it (HMAC challenge-response) before it is served. Without one the node runs in INSECURE mode: "
      "anyone who reaches those ports can join Raft and depose the leader (docs/security.md). Visible in ps: prefer "
      "--peer-secret-file");
  cli.add_option("--peer-secret-file", peer_secret_file,
                 "read the cluster secret from the first line of this file (keep it mode 0600); each further "
                 "non-empty line is a secret also accepted from peers, for a rotation (docs/security.md); read "
                 "again on SIGHUP")
      ->check(CLI::ExistingFile)
      ->excludes(secret_option);
  auto* tls_cert_option = cli.add_option(
      "--peer-tls-cert-file", peer_tls_cert_file,
      "this node's certificate (PEM, subject CN \"node-<id>\"): the Raft port and the peer channel then speak mutual "
      "TLS 1.3 only, and a peer's certificate must name the node id it claims (docs/security.md). Files reload when "
      "they change")->check(CLI::ExistingFile);
  auto* tls_key_option = cli.add_option("--peer-tls-key-file", peer_tls_key_file, "its private key (PEM)")
                             ->check(CLI::ExistingFile);
  auto* tls_ca_option = cli.add_option("--peer-tls-ca-file", peer_tls_ca_file,
                                       "the cluster's CA certificate (PEM), the only one peers' certificates may chain to")
                            ->check(CLI::ExistingFile);
  cli.add_option("--peer-tls-crl-file", peer_tls_crl_file,
                 "revocation lists of the cluster CA (PEM): every handshake on the Raft and peer ports refuses a "
                 "revoked certificate. Reloads with the certificates")
      ->check(CLI::ExistingFile)
      ->needs(tls_cert_option);
  tls_cert_option->needs(tls_key_option)->needs(tls_ca_option);
  tls_key_option->needs(tls_cert_option);
  tls_ca_option->needs(tls_cert_option);
  cli.add_option("--peer-handshake-timeout-ms", peer_handshake_timeout_ms,
                 "a connection to the Raft or peer port that has not authenticated within this is dropped")
      ->check(CLI::Range(1, 600000));
  cli.add_option("--election-timeout-ms", election_timeout_ms, "Raft election timeout (the plan uses 150)")->check(CLI::Range(10, 600000));
  cli.add_option("--heartbeat-ms", heartbeat_ms, "Raft heartbeat interval (the plan uses 50)")->check(CLI::Range(1, 600000));
  cli.add_option("--snapshot-threshold-bytes", snapshot_threshold_bytes,
                 "snapshot once this many bytes of log entries were applied since the last one (at least 1 MiB)")
      ->capture_default_str()
      ->needs(cluster_option);
  cli.add_option("--snapshot-trailing-bytes", snapshot_trailing_bytes,
                 "keep about this many bytes of log behind a snapshot for lagging followers")
      ->capture_default_str()
      ->needs(cluster_option);
  cli.add_option("--http-threads", http_threads, "HTTP I/O threads")->check(CLI::Range(1, 64));
  cli.add_option("--admin-token", admin_token, "bearer token required by the mutating /raft/* endpoints");
  cli.add_option("--log-level", log_level, "trace, debug, info, warn, error, off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
  std::string tls_cert, tls_key, tls_client_ca, tls_client_certs = "none", tls_crl, credentials_file;
  int tls_reload_ms = 0;
  auto* http_tls_cert_option = cli.add_option("--http-tls-cert-file", tls_cert, "serve HTTPS with this certificate chain (PEM)");
  cli.add_option("--http-tls-key-file", tls_key, "the HTTPS certificate's private key (PEM)")->needs(http_tls_cert_option);
  cli.add_option("--http-tls-client-ca-file", tls_client_ca, "CA certificates (PEM) trusted for HTTPS client certificates")
      ->needs(http_tls_cert_option);
  cli.add_option("--http-tls-client-certs", tls_client_certs, "none, optional or required: ask HTTPS clients for a certificate")
      ->check(CLI::IsMember({"none", "optional", "required"}))
      ->needs(http_tls_cert_option);
  cli.add_option("--http-tls-crl-file", tls_crl,
                 "revocation lists (PEM) of the client CA: refuse a revoked HTTPS client certificate; reloaded on SIGHUP")
      ->needs(http_tls_cert_option);
  cli.add_option("--http-tls-reload-ms", tls_reload_ms,
                 "check the TLS and credentials files this often and reload them when changed (0: never)")
      ->check(CLI::Range(0, 86400000));
  cli.add_option("--credentials-file", credentials_file,
                 "bearer tokens and certificate subjects mapped to principals and roles (docs/security.md); with it, "
                 "commands need the role writer and queries reader or writer");
  std::string trace = "off";
  cli.add_option("--trace", trace,
                 "off; stdout: every command traced (spans send, forward, apply; W3C traceparent taken from HTTP) "
                 "and printed to standard output; otlp: sent over OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT "
                 "(default http://localhost:4318). Builds without catga::otel offer off only")
      ->check(CLI::IsMember(orders::TraceExport::modes()));
  std::string log_format = "text";
  cli.add_option("--log-format", log_format, "text, or json: one JSON object per line")
      ->check(CLI::IsMember({"text", "json"}));
  auto* join_flag = cli.add_flag("--join", join, "this node is being added to a running cluster: wait for the leader instead of bootstrapping");
  cli.add_flag("--new-cluster", new_cluster,
               "first start of a new cluster whose other members may not be up yet: on an empty --data-dir, "
               "bootstrap --cluster after one election timeout even if peers stay silent. Without it a node on an "
               "empty directory bootstraps only when every peer answers and none has seen an election (members "
               "started together find each other), and refuses when peers stay silent: that is also what a wiped "
               "voter in a whole-cluster outage sees (docs/operations.md, \"Data directory rules\")")
      ->needs(cluster_option)
      ->excludes(join_flag);
  cli.add_option("--restore-from", restore_from,
                 "disaster recovery: build the empty --data-dir from this backup file (POST /raft/backup) as the only "
                 "member of a NEW cluster, then serve. --cluster lists only this node, --cluster-id differs from the "
                 "backup's; grow the new cluster with --join and POST /raft/members. Give it for one start only")
      ->needs(cluster_option)
      ->excludes(join_flag);
  cli.add_flag("--force-new-cluster", force_new_cluster,
               "disaster recovery after losing a majority for good: this node's log, with this node alone as the only "
               "voter of a NEW cluster (--cluster-id must differ from the stored one). Give it for one start only")
      ->needs(cluster_option)
      ->excludes(join_flag);
  options_from_environment(cli);
  CLI11_PARSE(cli, argc, argv);

  catga::LogLevel level{};
  (void)catga::parse_log_level(log_level, level);
  catga::set_log_level(level);
  catga::LogFormat format{};
  (void)catga::parse_log_format(log_format, format);
  catga::set_log_format(format);

  auto listen = parse_host_port(http);
  if (!listen) return std::cerr << "catga-orders: " << listen.error().message() << "\n", 2;

  auto tracing = orders::TraceExport::start(trace);
  if (!tracing) return std::cerr << "catga-orders: " << tracing.error().message() << "\n", 2;

  orders::ProductTotals totals;
  catga::Metrics metrics;
  catga::ApplicationBuilder<orders::OrderBook> builder;
  if (*tracing) builder.use((*tracing)->behavior());
  builder.use(metrics.behavior());
  if (!credentials_file.empty()) builder.use(std::make_unique<orders::RoleAuthorization>());
  const std::string node = "catga-orders node " + std::to_string(id) + ": ";
  orders::register_orders(builder, &totals, [node, level](const orders::OrderCreated& e) {
    // The leader-only side effect of the plan: a notification (here, a log
    // line at level info — `--log-level warn` silences it, as load tests do).
    if (level > catga::LogLevel::info) return;
    catga::log_message(catga::LogLevel::info, node + "notify: order " + std::to_string(e.id) + " created (" +
                                                  std::to_string(e.quantity) + " x " + e.product_id + ")");
  });
  if (cluster.empty()) {
    builder.data_dir(data_dir);
  } else {
    auto members = catga::hosting::parse_members(cluster);
    if (!members) return std::cerr << "catga-orders: " << members.error().message() << "\n", 2;
    catga::ClusterOptions options{.node_id = id,
                                  .members = std::move(*members),
                                  .data_dir = data_dir,
                                  .join = join,
                                  .new_cluster = new_cluster,
                                  .force_new_cluster = force_new_cluster,
                                  .election_timeout = std::chrono::milliseconds(election_timeout_ms),
                                  .heartbeat_interval = std::chrono::milliseconds(heartbeat_ms),
                                  .snapshot_threshold_bytes = snapshot_threshold_bytes,
                                  .snapshot_trailing_bytes = snapshot_trailing_bytes,
                                  .cluster_id = cluster_id,
                                  .peer_secret = peer_secret,
                                  .peer_secret_file = peer_secret_file,
                                  .peer_handshake_timeout = std::chrono::milliseconds(peer_handshake_timeout_ms),
                                  .tls_ca_file = peer_tls_ca_file,
                                  .tls_cert_file = peer_tls_cert_file,
                                  .tls_key_file = peer_tls_key_file,
                                  .tls_crl_file = peer_tls_crl_file};
    if (*tracing) options.tracer = (*tracing)->cluster_tracer();
    if (!restore_from.empty()) {
      auto restored = catga::restore_backup(restore_from, options);
      if (!restored) return std::cerr << "catga-orders: cannot restore: " << restored.error() << "\n", 1;
      catga::log_message(catga::LogLevel::info,
                         node + "restored " + restore_from + " (cluster '" + restored->cluster_id + "', index " +
                             std::to_string(restored->index) + ", term " + std::to_string(restored->term) + ") into " +
                             data_dir + " as the only member of cluster '" + cluster_id + "'");
    }
    builder.cluster(std::move(options));
  }
  auto app = builder.build();
  if (!app) return std::cerr << "catga-orders: cannot start: " << app.error() << "\n", 1;

  namespace http_ = catga::http;
  http_::ServerOptions server_options{.address = listen->first,
                                      .port = listen->second,
                                      .threads = http_threads,
                                      .admin_token = admin_token,
                                      .credentials_file = credentials_file};
  if (!tls_cert.empty()) {
    server_options.tls = http_::TlsOptions{
        .cert_file = tls_cert,
        .key_file = tls_key,
        .client_ca_file = tls_client_ca,
        .client_certificates = tls_client_certs == "required"   ? http_::ClientCertificates::required
                               : tls_client_certs == "optional" ? http_::ClientCertificates::optional
                                                                : http_::ClientCertificates::none,
        .crl_file = tls_crl,
        .reload_interval = std::chrono::milliseconds(tls_reload_ms)};
  }
  http_::Server server(**app, server_options);
  server
      .post("/orders", [](const http_::Request& r) { return r.json<orders::CreateOrder>(); }, {.status = 201})
      .get("/orders/{id}", [](const http_::Request& r) { return orders::GetOrder{.id = r.param<std::uint64_t>("id")}; })
      .get("/orders",
           [](const http_::Request& r) {
             return orders::ListOrders{.product_id = r.query<std::string>("product_id"),
                                       .limit = r.query<std::uint32_t>("limit"),
                                       .after_id = r.query<std::uint64_t>("after")};
           })
#ifndef ORDERS_V1
      .post("/orders/{id}/cancel",
            [](const http_::Request& r) { return orders::CancelOrder{.id = r.param<std::uint64_t>("id")}; })
#endif
      .get("/stats/products",
           [&totals](const http_::Request&, http_::Responder responder) { responder.json(200, totals_json(totals)); })
      .map_message_endpoints()
      .map_cluster_admin()
      .map_health()
      .map_dashboard()
      .map_metrics(&metrics);
  if (auto started = server.start(); !started) {
    std::cerr << "catga-orders: cannot serve HTTP on " << http << ": " << started.error() << "\n";
    return 1;
  }
  catga::log_message(catga::LogLevel::info, node + (tls_cert.empty() ? "HTTP on " : "HTTPS on ") + listen->first + ":" + std::to_string(server.port()) +
                                                ", data in " + data_dir);

  // Serve until SIGINT or SIGTERM, then stop the server, then the node.
  auto stopped = catga::hosting::serve_until_signal(signals, server, *app);
  if (!stopped) return std::cerr << "catga-orders: " << stopped.error() << "\n", 1;
  return 0;
}

}  // namespace
