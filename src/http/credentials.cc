#include "http/credentials.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <fstream>
#include <sstream>
#include <vector>

#include "catga/logging.hpp"

namespace catga::http::internal {
namespace {

bool visible(std::string_view text) {
  for (char c : text) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return !text.empty();
}

std::vector<std::string_view> words(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t at = 0;
  while (true) {
    at = line.find_first_not_of(" \t\r", at);
    if (at == std::string_view::npos) break;
    const std::size_t end = line.find_first_of(" \t\r", at);
    out.push_back(line.substr(at, end == std::string_view::npos ? std::string_view::npos : end - at));
    if (end == std::string_view::npos) break;
    at = end;
  }
  return out;
}

std::string digest(std::string_view token) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(token.data(), token.size(), out, &size, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<const char*>(out), size);
}

std::vector<std::string> roles_of(std::string_view list) {
  std::vector<std::string> roles;
  while (!list.empty()) {
    const std::size_t comma = list.find(',');
    if (auto role = list.substr(0, comma); !role.empty()) roles.emplace_back(role);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return roles;
}

}  // namespace

Result<std::shared_ptr<const CredentialTable>> CredentialTable::parse(std::string_view text, const std::string& file) {
  auto table = std::make_shared<CredentialTable>();
  std::size_t number = 0;
  while (!text.empty()) {
    const std::size_t newline = text.find('\n');
    std::string_view line = text.substr(0, newline);
    text.remove_prefix(newline == std::string_view::npos ? text.size() : newline + 1);
    ++number;
    if (const std::size_t hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    const auto w = words(line);
    if (w.empty()) continue;
    auto bad = [&](const std::string& why) {
      return Error{Code::invalid_argument, file + ":" + std::to_string(number) + ": " + why};
    };
    if (w.size() < 3 || w.size() > 4 || (w[0] != "token" && w[0] != "subject")) {
      return bad("expected 'token <token> <principal> [roles]' or 'subject <CN> <principal> [roles]'");
    }
    if (!visible(w[1])) return bad("the credential must be visible ASCII characters");
    auto principal = std::make_shared<Principal>(Principal{
        .name = std::string(w[2]),
        .roles = w.size() == 4 ? roles_of(w[3]) : std::vector<std::string>{},
        .authenticated_by = w[0] == "token" ? "token" : "certificate"});
    auto& map = w[0] == "token" ? table->tokens_ : table->subjects_;
    std::string key = w[0] == "token" ? digest(w[1]) : std::string(w[1]);
    if (!map.emplace(std::move(key), std::move(principal)).second) {
      return bad(std::string(w[0]) + " listed twice");
    }
  }
  return std::shared_ptr<const CredentialTable>(std::move(table));
}

Result<std::shared_ptr<const CredentialTable>> CredentialTable::load(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return Error{Code::invalid_argument, "cannot read credentials file " + file};
  std::ostringstream text;
  text << in.rdbuf();
  return parse(text.str(), file);
}

std::shared_ptr<const Principal> CredentialTable::by_token(std::string_view token) const {
  auto found = tokens_.find(digest(token));
  return found == tokens_.end() ? nullptr : found->second;
}

std::shared_ptr<const Principal> CredentialTable::by_subject(std::string_view common_name) const {
  if (auto found = subjects_.find(common_name); found != subjects_.end()) return found->second;
  return std::make_shared<const Principal>(
      Principal{.name = std::string(common_name), .roles = {}, .authenticated_by = "certificate"});
}

bool same_secret(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

void Credentials::set(std::shared_ptr<const CredentialTable> table) {
  std::lock_guard lock(mutex_);
  table_ = std::move(table);
}

std::shared_ptr<const CredentialTable> Credentials::get() const {
  std::lock_guard lock(mutex_);
  return table_;
}

bool FileStamps::changed(const std::vector<std::string>& files) {
  bool changed = false;
  for (const auto& file : files) {
    std::error_code ec;
    const auto time = std::filesystem::last_write_time(file, ec);
    if (ec) continue;  // a file being replaced: look again next time
    auto [it, inserted] = seen_.try_emplace(file, time);
    if (!inserted && it->second != time) {
      it->second = time;
      changed = true;
    }
  }
  return changed;
}

void RefusalLog::refused(std::string_view line) {
  std::uint64_t dropped = 0;
  {
    std::lock_guard lock(mutex_);
    const auto now = std::chrono::steady_clock::now();
    if (now - window_ >= std::chrono::seconds(1)) {
      window_ = now;
      in_window_ = 0;
    }
    if (++in_window_ > kBurst) {
      ++suppressed_;
      return;
    }
    dropped = std::exchange(suppressed_, 0);
  }
  std::string message(line);
  if (dropped) message += " (" + std::to_string(dropped) + " earlier refusals not logged)";
  log_message(LogLevel::warn, message);
}

}  // namespace catga::http::internal
