// Mutual TLS 1.3 on the Raft port (src/cluster/tls_relay.c, tls_context.c,
// raft_auth.c), on real nodes and real sockets on 127.0.0.1, with
// certificates generated for the run (tests/support/tls_fixture.hpp): a TLS
// cluster replicates and survives a leader kill; a wrong CA, an expired
// certificate, a certificate for another node id, no certificate, a
// plaintext client, garbage, a stalled handshake and a revoked certificate
// are each refused with no effect on the cluster; certificates reload
// without a restart, and at once on reload_cluster_tls (SIGHUP).
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <fstream>
#include <map>
#include <memory>
#include <string>

#include "catga/testing.hpp"
#include "support/bank.hpp"
#include "support/cluster.hpp"
#include "support/raft_wire.hpp"
#include "support/tls_fixture.hpp"

using namespace catga::testing;
using testsupport::append_entries_result;
using testsupport::authenticate;
using testsupport::expect_commits;
using testsupport::highest_term;
using testsupport::kForgedTerm;
using testsupport::kClusterSecret;
using testsupport::libraft_handshake;
using testsupport::LocalCluster;
using testsupport::RawRaftClient;
using testsupport::TempDir;
using testsupport::TlsFiles;
using testsupport::TlsFixture;

namespace {

void register_bank(catga::ApplicationBuilder<bank::State>& b, std::size_t) { bank::register_handlers(b); }

// A blocking TLS 1.3 client presenting `files` (or no certificate), trusting
// `ca_file`; every read gives up after 30 s, so no test hangs.
class TlsRaftClient {
 public:
  TlsRaftClient(const std::string& address, const std::filesystem::path& ca_file, const TlsFiles* files)
      : tcp_(address) {
    ::signal(SIGPIPE, SIG_IGN);
    ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(ctx_, TLS1_3_VERSION);
    SSL_CTX_load_verify_locations(ctx_, ca_file.c_str(), nullptr);
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    if (files != nullptr) {
      SSL_CTX_use_certificate_chain_file(ctx_, files->cert_file.c_str());
      SSL_CTX_use_PrivateKey_file(ctx_, files->key_file.c_str(), SSL_FILETYPE_PEM);
    }
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, tcp_.fd());
    handshake_ok_ = tcp_.connected() && SSL_connect(ssl_) == 1;
  }
  ~TlsRaftClient() {
    SSL_free(ssl_);
    SSL_CTX_free(ctx_);
  }
  TlsRaftClient(const TlsRaftClient&) = delete;
  TlsRaftClient& operator=(const TlsRaftClient&) = delete;

  // The client's side of the handshake finished (TLS 1.3: the server checks
  // the client's certificate after that, and says so with an alert).
  bool handshake_ok() const { return handshake_ok_; }
  bool write(const std::string& bytes) {
    return handshake_ok_ && SSL_write(ssl_, bytes.data(), static_cast<int>(bytes.size())) ==
                                static_cast<int>(bytes.size());
  }
  std::string read(std::size_t n) {
    std::string out(n, '\0');
    std::size_t have = 0;
    while (handshake_ok_ && have < n) {
      const int r = SSL_read(ssl_, out.data() + have, static_cast<int>(n - have));
      if (r <= 0) break;
      have += static_cast<std::size_t>(r);
    }
    out.resize(have);
    return out;
  }
  // True when the server ended the session (alert, close_notify, EOF or
  // reset) within 30 s; false if it kept it open that long.
  bool closed_by_peer() {
    if (!handshake_ok_) return true;
    char buf[256];
    while (true) {
      const int r = SSL_read(ssl_, buf, sizeof buf);
      if (r > 0) continue;
      return SSL_get_error(ssl_, r) != SSL_ERROR_WANT_READ;
    }
  }

 private:
  RawRaftClient tcp_;  // first: connected before the TLS handshake
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  bool handshake_ok_ = false;
};


// Certificates for nodes 1-3 and the options that use them.
class TlsCluster {
 public:
  TlsCluster() : fixture_(certs_.path()) {
    for (std::uint64_t id = 1; id <= 3; ++id) node_[id] = fixture_.node(id);
  }
  TlsFixture& fixture() { return fixture_; }
  const TlsFiles& node(std::uint64_t id) { return node_.at(id); }
  void use(catga::ClusterOptions& o, const TlsFiles& f) const {
    o.tls_ca_file = f.ca_file;
    o.tls_cert_file = f.cert_file;
    o.tls_key_file = f.key_file;
  }
  // TLS alone (no secret): the certificates are the only credential.
  std::function<void(catga::ClusterOptions&)> options(std::function<void(catga::ClusterOptions&)> more = {}) {
    return [this, more](catga::ClusterOptions& o) {
      o.peer_secret.clear();
      use(o, node_.at(o.node_id));
      if (more) more(o);
    };
  }

 private:
  TempDir certs_;
  TlsFixture fixture_;
  std::map<std::uint64_t, TlsFiles> node_;
};


}  // namespace

TEST(RaftTls, ATlsClusterReplicatesAndSurvivesALeaderKill) {
  TlsCluster tls;
  LocalCluster<bank::State> cluster(3, register_bank, tls.options());
  auto leader = cluster.leader();
  ASSERT_TRUE(leader);
  for (int i = 0; i < 20; ++i) EXPECT_THAT(cluster.app(*leader).send(bank::Open{.owner = "a" + std::to_string(i)}), IsOk());
  EXPECT_TRUE(cluster.converged(*leader));
  cluster.stop(*leader);
  auto next = cluster.leader();
  ASSERT_TRUE(next);
  for (int i = 0; i < 20; ++i) EXPECT_THAT(cluster.app(*next).send(bank::Open{.owner = "b" + std::to_string(i)}), IsOk());
  // A follower's command travels to the leader over the peer channel's TLS.
  const std::size_t follower = 3 - *leader - *next;
  ASSERT_TRUE(testsupport::wait_for([&] { return cluster.app(follower).status().leader_id != 0; }));
  EXPECT_THAT(cluster.app(follower).send(bank::Open{.owner = "forwarded"}), IsOk());
  EXPECT_TRUE(cluster.converged(*next));
}

// The control: a client holding member 2's certificate and claiming to be
// member 2 is a member, and its forged message reaches libraft through the
// relay (so the refusals below are the checks', not broken bytes).
TEST(RaftTls, TheRightCertificateForTheClaimedIdReachesLibraft) {
  TlsCluster tls;
  LocalCluster<bank::State> cluster(3, register_bank, tls.options());
  auto leader = cluster.leader();
  ASSERT_TRUE(leader);
  const std::size_t victim = *leader;
  const std::uint64_t member = (victim + 1) % cluster.size() + 1;  // another member's id
  TlsRaftClient c(cluster.member(victim).address, tls.fixture().ca_file(), &tls.node(member));
  ASSERT_TRUE(c.handshake_ok());
  ASSERT_TRUE(c.write(libraft_handshake(member, cluster.member(member - 1).address) + append_entries_result(kForgedTerm)));
  EXPECT_TRUE(testsupport::wait_for([&] { return cluster.app(victim).status().term >= kForgedTerm; }));
}

TEST(RaftTls, BadCertificatesAndPlaintextAreRefusedAndNoTermMoves) {
  TlsCluster tls;
  LocalCluster<bank::State> cluster(3, register_bank, tls.options());
  ASSERT_TRUE(cluster.leader());
  const std::string forged = libraft_handshake(2, cluster.member(1).address) + append_entries_result(kForgedTerm);
  const std::string address = cluster.member(0).address;
  const auto ca = tls.fixture().ca_file();
  const TlsFiles expired = tls.fixture().expired_node(2);
  const TlsFiles other_ca = tls.fixture().other_ca_node(2);
  const TlsFiles not_a_node = tls.fixture().issue("orders-client");
  for (const TlsFiles* files : {&expired, &other_ca, &not_a_node, static_cast<const TlsFiles*>(nullptr)}) {
    TlsRaftClient c(address, ca, files);
    c.write(forged);  // may fail already: the server may have closed
    EXPECT_TRUE(c.closed_by_peer()) << (files ? files->cert_file.string() : "no certificate");
  }
  {
    // A valid certificate for node 3 claiming to be node 2.
    TlsRaftClient c(address, ca, &tls.node(3));
    ASSERT_TRUE(c.handshake_ok());
    c.write(forged);
    EXPECT_TRUE(c.closed_by_peer());
  }
  {
    // libraft's handshake in clear, as the stock transport would send it.
    RawRaftClient c(address);
    ASSERT_TRUE(c.write(forged));
    EXPECT_TRUE(c.closed_by_peer());
  }
  {
    RawRaftClient c(address);
    ASSERT_TRUE(c.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n" + std::string(4096, '\xff')));
    EXPECT_TRUE(c.closed_by_peer());
  }
  EXPECT_LT(highest_term(cluster), kForgedTerm);
  expect_commits(cluster, "after-bad-clients");
}

// Slowloris on TLS: silence, or the first bytes of a ClientHello, is dropped
// once peer_handshake_timeout has passed.
TEST(RaftTls, AStalledTlsHandshakeIsDroppedAfterTheBound) {
  TlsCluster tls;
  LocalCluster<bank::State> cluster(3, register_bank, tls.options([](catga::ClusterOptions& o) {
    o.peer_handshake_timeout = std::chrono::milliseconds(300);
  }));
  ASSERT_TRUE(cluster.leader());
  RawRaftClient silent(cluster.member(0).address);
  RawRaftClient partial(cluster.member(0).address);
  ASSERT_TRUE(partial.write(std::string("\x16\x03\x01\x02\x00\x01", 6)));
  EXPECT_TRUE(silent.closed_by_peer());
  EXPECT_TRUE(partial.closed_by_peer());
  expect_commits(cluster, "after-slowloris");
}

// A member whose certificate another CA signed gets nowhere (the others do
// not trust it, and it refuses them): the two others elect and commit.
TEST(RaftTls, AMemberWithACertificateFromAnotherCaCannotTakePart) {
  TlsCluster tls;
  const TlsFiles outsider = tls.fixture().other_ca_node(3);
  LocalCluster<bank::State> cluster(3, register_bank, tls.options([&](catga::ClusterOptions& o) {
    if (o.node_id == 3) tls.use(o, outsider);
  }));
  testsupport::expect_node_3_cut_off(cluster);
}

TEST(RaftTls, ANodeWhoseCertificateNamesAnotherIdDoesNotStart) {
  TlsCluster tls;
  catga::ClusterOptions o;
  o.node_id = 3;
  tls.use(o, tls.node(2));
  LocalCluster<bank::State> cluster(2, register_bank, tls.options());
  ASSERT_TRUE(cluster.leader());
  TempDir dir;
  catga::ApplicationBuilder<bank::State> builder;
  bank::register_handlers(builder);
  o.members = {cluster.member(0), cluster.member(1),
               catga::Member{3, "127.0.0.1:" + std::to_string(testsupport::free_port()), catga::MemberRole::voter, {}}};
  o.data_dir = dir.path() / "node3";
  o.join = true;
  builder.cluster(o);
  auto app = builder.build();
  ASSERT_FALSE(app.has_value());
  EXPECT_NE(app.error().to_string().find("certificate is for node 2"), std::string::npos) << app.error().to_string();
}

// The CA file is read again when it changes: a client whose certificate a
// second CA signed is refused, then welcomed once the CA file holds both
// CAs — without a restart. A broken file afterwards keeps the credentials
// in use. (Secret and TLS together: the secret's welcome shows the
// connection got through.)
TEST(RaftTls, CertificatesReloadWithoutARestart) {
  TlsCluster tls;
  LocalCluster<bank::State> cluster(3, register_bank, tls.options([](catga::ClusterOptions& o) {
    o.peer_secret = kClusterSecret;
  }));
  ASSERT_TRUE(cluster.leader());
  const std::string address = cluster.member(0).address;
  const auto ca = tls.fixture().ca_file();
  const auto read = [](const std::filesystem::path& p) {
    std::ifstream in(p);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  const auto client_ca = ca.string() + ".client";  // what the test's clients trust
  std::ofstream(client_ca) << read(ca);
  const TlsFiles newcomer = tls.fixture().other_ca_node(2);
  {
    TlsRaftClient c(address, client_ca, &newcomer);
    EXPECT_FALSE(authenticate(c, kClusterSecret, 2, 1));
  }
  {
    const auto tmp = ca.string() + ".new";
    std::ofstream(tmp) << read(ca) + read(tls.fixture().other_ca_file());
    std::filesystem::rename(tmp, ca);  // atomic, as an operator's tooling would
  }
  EXPECT_TRUE(testsupport::wait_for([&] {
    TlsRaftClient c(address, client_ca, &newcomer);
    return authenticate(c, kClusterSecret, 2, 1);
  }));
  std::ofstream(ca, std::ios::trunc) << "not a certificate";
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // past the once-a-second check
  for (int i = 0; i < 3; ++i) {
    TlsRaftClient c(address, client_ca, &newcomer);
    EXPECT_TRUE(authenticate(c, kClusterSecret, 2, 1)) << "the reloaded credentials stay in use";
  }
  expect_commits(cluster, "after-reload");
}

// With a CRL (tls_crl_file) every handshake checks revocation: a second
// certificate for node 2 gets through, then is refused once the CRL lists it
// and reload_cluster_tls (what SIGHUP does) read it — on every node, and the
// report names what was reloaded. A CRL that does not load is reported and
// the previous one stays. The members' own certificates are not listed:
// the cluster goes on committing.
TEST(RaftTls, ARevokedCertificateIsRefusedOnceTheCrlListsIt) {
  TlsCluster tls;
  TempDir dir;
  const auto crl = dir.path() / "cluster.crl";
  tls.fixture().write_crl(crl, {});
  LocalCluster<bank::State> cluster(3, register_bank, tls.options([&](catga::ClusterOptions& o) {
    o.peer_secret = kClusterSecret;
    o.tls_crl_file = crl;
  }));
  ASSERT_TRUE(cluster.leader());
  const auto ca = tls.fixture().ca_file();
  const TlsFiles stolen = tls.fixture().node(2);
  const auto welcomed_by = [&](std::size_t i) {
    TlsRaftClient c(cluster.member(i).address, ca, &stolen);
    return authenticate(c, kClusterSecret, 2, i + 1);
  };
  EXPECT_TRUE(welcomed_by(0));
  EXPECT_TRUE(welcomed_by(2));

  tls.fixture().write_crl(crl, {stolen.serial});
  const std::vector<std::string> report = catga::reload_cluster_tls();
  for (std::uint64_t id = 1; id <= 3; ++id) {
    const std::string n = std::to_string(id);
    EXPECT_THAT(report, ::testing::Contains(::testing::AllOf(
                            ::testing::StartsWith("raft node " + n + ": TLS credentials reloaded (CA "),
                            ::testing::HasSubstr(", CRL " + crl.string()))));
    EXPECT_THAT(report, ::testing::Contains(
                            ::testing::StartsWith("peer channel of node " + n + ": TLS credentials reloaded")));
  }
  EXPECT_FALSE(welcomed_by(0));
  EXPECT_FALSE(welcomed_by(2));

  std::ofstream(crl, std::ios::trunc) << "not a CRL";
  EXPECT_THAT(catga::reload_cluster_tls(),
              ::testing::Contains(::testing::AllOf(::testing::StartsWith("raft node 1: TLS credentials not reloaded: "),
                                                   ::testing::HasSubstr("TLS CRL file " + crl.string()))));
  EXPECT_FALSE(welcomed_by(0)) << "the previous CRL stays in use";
  EXPECT_LT(highest_term(cluster), kForgedTerm);
  expect_commits(cluster, "after-revocation");
}
