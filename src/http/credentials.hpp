// Who a request comes from: the credentials file of ServerOptions (bearer
// tokens and client-certificate subjects mapped to principals) and the refusal
// log of the HTTPS port. No RESTinio here.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "catga/context.hpp"
#include "catga/result.hpp"

namespace catga::http::internal {

// Compares two secrets in time that depends on their lengths only.
bool same_secret(std::string_view a, std::string_view b) noexcept;

// An immutable snapshot of the credentials file. Tokens are kept as SHA-256
// digests: a lookup's timing says nothing about the tokens it compared.
class CredentialTable {
 public:
  // Parses `text` (the file's format is in http.hpp); `file` names it in errors.
  static Result<std::shared_ptr<const CredentialTable>> parse(std::string_view text, const std::string& file);
  static Result<std::shared_ptr<const CredentialTable>> load(const std::string& file);

  // nullptr for an unknown token.
  std::shared_ptr<const Principal> by_token(std::string_view token) const;
  // A listed subject's principal, or one named after the CN without roles.
  std::shared_ptr<const Principal> by_subject(std::string_view common_name) const;
  std::size_t size() const noexcept { return tokens_.size() + subjects_.size(); }

 private:
  std::map<std::string, std::shared_ptr<const Principal>, std::less<>> tokens_;
  std::map<std::string, std::shared_ptr<const Principal>, std::less<>> subjects_;
};

// The credentials in force, replaced whole by a reload.
class Credentials {
 public:
  void set(std::shared_ptr<const CredentialTable> table);
  std::shared_ptr<const CredentialTable> get() const;

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const CredentialTable> table_;
};

// The last modification times of a set of files, to tell when to reload.
class FileStamps {
 public:
  // True when any file's time differs from the last call (false on the first).
  bool changed(const std::vector<std::string>& files);

 private:
  std::map<std::string, std::filesystem::file_time_type> seen_;
};

// One warn line per refused connection, at most `kBurst` a second; the next
// line after a quiet spell says how many were not logged.
class RefusalLog {
 public:
  static constexpr int kBurst = 20;
  void refused(std::string_view line);

 private:
  std::mutex mutex_;
  std::chrono::steady_clock::time_point window_{};
  int in_window_ = 0;
  std::uint64_t suppressed_ = 0;
};

}  // namespace catga::http::internal
