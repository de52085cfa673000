// catga/result.hpp — the one error type of the library.
//
// `Result<T>` follows the `std::expected<T, Error>` API (C++20 has no
// std::expected): it holds either a value or an `Error`. Every fallible call
// of the library returns one; handler failures and cluster failures travel in
// the same type, and no exception crosses the library boundary.
//
// An `Error` carries a canonical `Code` (the gRPC/absl code space) and a
// human-readable message. Choose codes by what the caller should do:
//   invalid_argument     the request itself is wrong; do not retry.
//   not_found            the addressed thing does not exist.
//   already_exists       a create collided with an existing thing.
//   failed_precondition  the state does not allow it (e.g. already cancelled).
//   unavailable          nothing happened; retrying (later, elsewhere) is safe.
//   deadline_exceeded    OUTCOME UNKNOWN: the operation may or may not have
//                        taken effect. Only a retry with the same session
//                        sequence or idempotency key is safe.
//   internal             a bug or broken invariant.
//   unimplemented        no handler is registered for the message.
// `is_retryable()` and `is_outcome_unknown()` encode these rules.
//
// Thread-safety: values; no shared state.
#pragma once

#include <cstdint>
#include <new>
#include <ostream>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "catga/export.hpp"

namespace catga {

enum class Code : std::uint8_t {
  ok = 0,
  cancelled = 1,
  unknown = 2,
  invalid_argument = 3,
  deadline_exceeded = 4,
  not_found = 5,
  already_exists = 6,
  permission_denied = 7,
  resource_exhausted = 8,
  failed_precondition = 9,
  aborted = 10,
  out_of_range = 11,
  unimplemented = 12,
  internal = 13,
  unavailable = 14,
  data_loss = 15,
  unauthenticated = 16,
};

// "invalid_argument", ...; "code_<n>" for values outside the enum.
CATGA_EXPORT std::string_view to_string(Code code) noexcept;
// Parses the names printed by to_string; false when unknown.
CATGA_EXPORT bool parse_code(std::string_view name, Code& out) noexcept;

// Nothing happened; the same request may be sent again.
constexpr bool is_retryable(Code code) noexcept {
  return code == Code::unavailable || code == Code::aborted ||
         code == Code::resource_exhausted;
}
// The operation may or may not have taken effect.
constexpr bool is_outcome_unknown(Code code) noexcept {
  return code == Code::deadline_exceeded || code == Code::unknown;
}

class CATGA_EXPORT Error {
 public:
  Error() = default;  // Code::unknown, empty message
  Error(Code code, std::string message)
      : code_(code), message_(std::move(message)) {}

  Code code() const noexcept { return code_; }
  const std::string& message() const noexcept { return message_; }
  bool retryable() const noexcept { return is_retryable(code_); }
  bool outcome_unknown() const noexcept { return is_outcome_unknown(code_); }
  // "not_found: order 7 does not exist"
  std::string to_string() const;

  friend bool operator==(const Error&, const Error&) = default;

 private:
  Code code_ = Code::unknown;
  std::string message_;
};

CATGA_EXPORT std::ostream& operator<<(std::ostream& os, const Error& error);

// Thrown only by Result::value() on an error result (as std::expected throws
// bad_expected_access). Library code never calls value() unchecked.
class CATGA_EXPORT BadResultAccess : public std::exception {
 public:
  explicit BadResultAccess(Error error) : error_(std::move(error)) {}
  const char* what() const noexcept override { return "catga::Result has no value"; }
  const Error& error() const noexcept { return error_; }

 private:
  Error error_;
};

template <class T>
class [[nodiscard]] Result;

namespace internal {
template <class>
inline constexpr bool is_result = false;
template <class T>
inline constexpr bool is_result<Result<T>> = true;
[[noreturn]] void throw_bad_result_access(const Error& error);
}  // namespace internal

template <class T>
class [[nodiscard]] Result {
  static_assert(!std::is_reference_v<T>, "Result<T&> is not supported");
  static_assert(!std::is_same_v<std::remove_cv_t<T>, Error>, "Result<Error> is ambiguous");

 public:
  using value_type = T;
  using error_type = Error;

  Result() requires std::is_default_constructible_v<T> : ok_(true) { new (&value_) T(); }
  Result(const T& value) : ok_(true) { new (&value_) T(value); }          // NOLINT
  Result(T&& value) : ok_(true) { new (&value_) T(std::move(value)); }    // NOLINT
  Result(Error error) : ok_(false) { new (&error_) Error(std::move(error)); }  // NOLINT
  template <class U>
    requires(std::is_constructible_v<T, U&&> && !std::is_same_v<std::remove_cvref_t<U>, T> &&
             !std::is_same_v<std::remove_cvref_t<U>, Error> &&
             !internal::is_result<std::remove_cvref_t<U>>)
  Result(U&& value) : ok_(true) {  // NOLINT
    new (&value_) T(std::forward<U>(value));
  }

  Result(const Result& other) : ok_(other.ok_) {
    if (ok_) new (&value_) T(other.value_);
    else new (&error_) Error(other.error_);
  }
  Result(Result&& other) noexcept(std::is_nothrow_move_constructible_v<T>) : ok_(other.ok_) {
    if (ok_) new (&value_) T(std::move(other.value_));
    else new (&error_) Error(std::move(other.error_));
  }
  Result& operator=(const Result& other) {
    if (this != &other) { destroy(); construct_from(other); }
    return *this;
  }
  Result& operator=(Result&& other) noexcept(std::is_nothrow_move_constructible_v<T>) {
    if (this != &other) { destroy(); construct_from(std::move(other)); }
    return *this;
  }
  ~Result() { destroy(); }

  bool has_value() const noexcept { return ok_; }
  explicit operator bool() const noexcept { return ok_; }

  T& value() & { check(); return value_; }
  const T& value() const& { check(); return value_; }
  T&& value() && { check(); return std::move(value_); }
  T& operator*() & noexcept { return value_; }
  const T& operator*() const& noexcept { return value_; }
  T&& operator*() && noexcept { return std::move(value_); }
  T* operator->() noexcept { return &value_; }
  const T* operator->() const noexcept { return &value_; }

  // Precondition: !has_value().
  const Error& error() const& noexcept { return error_; }
  Error& error() & noexcept { return error_; }
  Error&& error() && noexcept { return std::move(error_); }

  template <class U>
  T value_or(U&& fallback) const& {
    return ok_ ? value_ : static_cast<T>(std::forward<U>(fallback));
  }

  // f(T) -> Result<U>
  template <class F>
  auto and_then(F&& f) const& {
    using R = std::invoke_result_t<F, const T&>;
    return ok_ ? std::forward<F>(f)(value_) : R(error_);
  }
  template <class F>
  auto and_then(F&& f) && {
    using R = std::invoke_result_t<F, T&&>;
    return ok_ ? std::forward<F>(f)(std::move(value_)) : R(std::move(error_));
  }
  // f(T) -> U, giving Result<U>
  template <class F>
  auto transform(F&& f) const& {
    using U = std::remove_cvref_t<std::invoke_result_t<F, const T&>>;
    if constexpr (std::is_void_v<U>) {
      // Result<U> (not Result<void>): the name must stay dependent, since the
      // void specialization is declared below.
      if (!ok_) return Result<U>(error_);
      std::forward<F>(f)(value_);
      return Result<U>();
    } else {
      return ok_ ? Result<U>(std::forward<F>(f)(value_)) : Result<U>(error_);
    }
  }
  // f(Error) -> Result<T>
  template <class F>
  Result or_else(F&& f) const& {
    return ok_ ? *this : Result(std::forward<F>(f)(error_));
  }

  friend bool operator==(const Result& a, const Result& b) {
    if (a.ok_ != b.ok_) return false;
    return a.ok_ ? a.value_ == b.value_ : a.error_ == b.error_;
  }

 private:
  void check() const {
    if (!ok_) internal::throw_bad_result_access(error_);
  }
  void destroy() noexcept {
    if (ok_) value_.~T();
    else error_.~Error();
  }
  template <class R>
  void construct_from(R&& other) {
    ok_ = other.ok_;
    if (ok_) new (&value_) T(std::forward<R>(other).value_);
    else new (&error_) Error(std::forward<R>(other).error_);
  }

  union {
    T value_;
    Error error_;
  };
  bool ok_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  using value_type = void;
  using error_type = Error;

  Result() = default;
  Result(Error error) : ok_(false), error_(std::move(error)) {}  // NOLINT

  bool has_value() const noexcept { return ok_; }
  explicit operator bool() const noexcept { return ok_; }
  void value() const {
    if (!ok_) internal::throw_bad_result_access(error_);
  }
  const Error& error() const& noexcept { return error_; }
  Error& error() & noexcept { return error_; }
  Error&& error() && noexcept { return std::move(error_); }

  template <class F>
  auto and_then(F&& f) const {
    using R = std::invoke_result_t<F>;
    return ok_ ? std::forward<F>(f)() : R(error_);
  }
  template <class F>
  Result or_else(F&& f) const {
    return ok_ ? *this : Result(std::forward<F>(f)(error_));
  }

  friend bool operator==(const Result&, const Result&) = default;

 private:
  bool ok_ = true;
  Error error_;
};

// The canonical "nothing went wrong" for Result<void>.
inline Result<void> ok() { return {}; }

template <class T>
std::ostream& operator<<(std::ostream& os, const Result<T>& r) {
  if (!r) return os << "error(" << r.error() << ")";
  if constexpr (std::is_void_v<T>) {
    return os << "ok";
  } else if constexpr (requires { os << *r; }) {
    return os << "ok(" << *r << ")";
  } else {
    return os << "ok(...)";
  }
}

}  // namespace catga
