// A tiny bank used by the tests: accounts with balances, deposits, transfers,
// an event per movement. Deterministic handlers, as the library requires.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "catga/application.hpp"

namespace bank {

struct Account {
  std::uint64_t id = 0;
  std::string owner;
  std::int64_t balance = 0;
  MSGPACK_DEFINE_MAP(id, owner, balance);
  friend bool operator==(const Account&, const Account&) = default;
};

struct State {
  std::map<std::uint64_t, Account> accounts;
  std::vector<std::string> journal;  // every applied command, in order
  MSGPACK_DEFINE_MAP(accounts, journal);
};

struct Open {
  using catga_message = catga::Command<Account, "bank.open.v1">;
  std::string owner;
  std::int64_t initial = 0;
  MSGPACK_DEFINE_MAP(owner, initial);
};

struct Deposit {
  using catga_message = catga::Command<std::int64_t, "bank.deposit.v1">;  // new balance
  std::uint64_t account = 0;
  std::int64_t amount = 0;
  MSGPACK_DEFINE_MAP(account, amount);
};

struct Close {
  using catga_message = catga::Command<void, "bank.close.v1">;
  std::uint64_t account = 0;
  MSGPACK_DEFINE_MAP(account);
};

struct GetAccount {
  using catga_message = catga::Query<Account, "bank.get.v1">;
  std::uint64_t account = 0;
  MSGPACK_DEFINE_MAP(account);
};

struct Deposited {
  using catga_message = catga::Event<"bank.deposited.v1">;
  std::uint64_t account = 0;
  std::int64_t amount = 0;
  std::int64_t balance = 0;
  MSGPACK_DEFINE_MAP(account, amount, balance);
};

inline catga::Result<Account> open(State& s, const Open& c, catga::CommandContext& ctx) {
  if (c.owner.empty()) return catga::Error{catga::Code::invalid_argument, "owner is required"};
  Account a{.id = ctx.new_id(), .owner = c.owner, .balance = c.initial};
  s.accounts[a.id] = a;
  s.journal.push_back("open " + c.owner);
  return a;
}

inline catga::Result<std::int64_t> deposit(State& s, const Deposit& c, catga::CommandContext& ctx) {
  auto it = s.accounts.find(c.account);
  if (it == s.accounts.end()) return catga::Error{catga::Code::not_found, "account " + std::to_string(c.account)};
  if (c.amount <= 0) return catga::Error{catga::Code::invalid_argument, "amount must be positive"};
  it->second.balance += c.amount;
  s.journal.push_back("deposit " + std::to_string(c.account) + " " + std::to_string(c.amount));
  ctx.publish(Deposited{.account = c.account, .amount = c.amount, .balance = it->second.balance});
  return it->second.balance;
}

// A command the first version of the service does not have (rolling upgrade
// tests register it on "upgraded" nodes only; register_handlers leaves it out).
struct Withdraw {
  using catga_message = catga::Command<std::int64_t, "bank.withdraw.v1">;  // new balance
  std::uint64_t account = 0;
  std::int64_t amount = 0;
  MSGPACK_DEFINE_MAP(account, amount);
};

inline catga::Result<std::int64_t> withdraw(State& s, const Withdraw& c) {
  auto it = s.accounts.find(c.account);
  if (it == s.accounts.end()) return catga::Error{catga::Code::not_found, "account " + std::to_string(c.account)};
  if (c.amount <= 0 || c.amount > it->second.balance) return catga::Error{catga::Code::invalid_argument, "bad amount"};
  it->second.balance -= c.amount;
  s.journal.push_back("withdraw " + std::to_string(c.account) + " " + std::to_string(c.amount));
  return it->second.balance;
}

inline catga::Result<void> close(State& s, const Close& c) {
  if (s.accounts.erase(c.account) == 0) return catga::Error{catga::Code::not_found, "account " + std::to_string(c.account)};
  s.journal.push_back("close " + std::to_string(c.account));
  return {};
}

inline catga::Result<Account> get(const State& s, const GetAccount& q) {
  auto it = s.accounts.find(q.account);
  if (it == s.accounts.end()) return catga::Error{catga::Code::not_found, "account " + std::to_string(q.account)};
  return it->second;
}

// Waits for a ready leader of `cluster` (a testsupport::LocalCluster), sets
// `leader` to it and opens an account with 0 there; the account's id (0 if
// there was no leader or the command failed).
template <class Cluster>
std::uint64_t open_on_leader(Cluster& cluster, std::size_t& leader, std::string owner) {
  auto found = cluster.leader();
  if (!found) return 0;
  leader = *found;
  auto account = cluster.app(leader).send(Open{.owner = std::move(owner)});
  return account ? account->id : 0;
}

// Registers every handler; the same function serves in-memory and clustered tests.
inline catga::ApplicationBuilder<State>& register_handlers(catga::ApplicationBuilder<State>& b) {
  return b.command<Open>(open).command<Deposit>(deposit).command<Close>(close).query<GetAccount>(get);
}

}  // namespace bank
