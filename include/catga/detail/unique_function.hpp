// catga/detail/unique_function.hpp — a move-only std::function (C++23 has
// std::move_only_function; C++20 does not). Used for completion callbacks,
// which often capture move-only state. Small callables (up to four pointers)
// are stored inline, without a heap allocation.
//
// Not part of the stable API; included by public headers that need it.
#pragma once

#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

namespace catga::detail {

template <class Signature>
class UniqueFunction;

template <class R, class... Args>
class UniqueFunction<R(Args...)> {
  static constexpr std::size_t kInline = 4 * sizeof(void*);

  struct Ops {
    R (*call)(void* self, Args&&... args);
    void (*move)(void* from, void* to) noexcept;  // move-construct into `to`, destroy `from`
    void (*destroy)(void* self) noexcept;
  };

  template <class F>
  static constexpr bool fits_inline = sizeof(F) <= kInline && alignof(F) <= alignof(std::max_align_t) &&
                                      std::is_nothrow_move_constructible_v<F>;

  template <class F>
  static const Ops* ops_for() {
    if constexpr (fits_inline<F>) {
      static constexpr Ops ops{
          [](void* self, Args&&... args) -> R {
            return (*static_cast<F*>(self))(std::forward<Args>(args)...);
          },
          [](void* from, void* to) noexcept {
            new (to) F(std::move(*static_cast<F*>(from)));
            static_cast<F*>(from)->~F();
          },
          [](void* self) noexcept { static_cast<F*>(self)->~F(); }};
      return &ops;
    } else {
      static constexpr Ops ops{
          [](void* self, Args&&... args) -> R {
            return (**static_cast<F**>(self))(std::forward<Args>(args)...);
          },
          [](void* from, void* to) noexcept { *static_cast<F**>(to) = *static_cast<F**>(from); },
          [](void* self) noexcept { delete *static_cast<F**>(self); }};
      return &ops;
    }
  }

 public:
  UniqueFunction() noexcept = default;
  UniqueFunction(std::nullptr_t) noexcept {}  // NOLINT
  template <class F>
    requires(!std::is_same_v<std::remove_cvref_t<F>, UniqueFunction> &&
             std::is_invocable_r_v<R, std::remove_cvref_t<F>&, Args...>)
  UniqueFunction(F&& f) {  // NOLINT
    using D = std::remove_cvref_t<F>;
    if constexpr (fits_inline<D>) {
      new (&storage_) D(std::forward<F>(f));
    } else {
      *reinterpret_cast<D**>(&storage_) = new D(std::forward<F>(f));
    }
    ops_ = ops_for<D>();
  }
  UniqueFunction(UniqueFunction&& other) noexcept { take(other); }
  UniqueFunction& operator=(UniqueFunction&& other) noexcept {
    if (this != &other) {
      reset();
      take(other);
    }
    return *this;
  }
  UniqueFunction(const UniqueFunction&) = delete;
  UniqueFunction& operator=(const UniqueFunction&) = delete;
  ~UniqueFunction() { reset(); }

  explicit operator bool() const noexcept { return ops_ != nullptr; }
  // Precondition: non-empty.
  R operator()(Args... args) { return ops_->call(&storage_, std::forward<Args>(args)...); }

  void reset() noexcept {
    if (ops_) {
      ops_->destroy(&storage_);
      ops_ = nullptr;
    }
  }

 private:
  void take(UniqueFunction& other) noexcept {
    if (other.ops_) {
      other.ops_->move(&other.storage_, &storage_);
      ops_ = other.ops_;
      other.ops_ = nullptr;
    }
  }

  alignas(std::max_align_t) unsigned char storage_[kInline];
  const Ops* ops_ = nullptr;
};

}  // namespace catga::detail
