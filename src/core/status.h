// Error values used across every layer: Status (code + message) and Result<T>.
// No exceptions cross a layer boundary; library exceptions are caught at the
// edge and converted here.
#pragma once

#include <sstream>
#include <string>
#include <utility>
#include <variant>

namespace hearth {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,
  kNotFound,
  kAlreadyExists,
  kUnimplemented,
  kFailedPrecondition,
  kOutOfRange,
  kResourceExhausted,
  kUnavailable,
  kDeadlineExceeded,
  kPermissionDenied,
  kUnauthenticated,
  kCancelled,
  kDataLoss,
  kInternal,
};

const char* status_code_name(StatusCode code);

// Concatenates any streamable values into a string: str_cat("node ", name, ": ", 3).
template <typename... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok_status() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "INVALID_ARGUMENT: message"
  std::string to_string() const;

  // Returns a copy whose message is prefixed with context: "ctx: message".
  Status with_context(const std::string& context) const {
    if (ok()) return *this;
    return Status(code_, context + ": " + message_);
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status ok_status() { return Status(); }

template <typename... Args>
Status invalid_argument(const Args&... args) { return Status(StatusCode::kInvalidArgument, str_cat(args...)); }
template <typename... Args>
Status not_found(const Args&... args) { return Status(StatusCode::kNotFound, str_cat(args...)); }
template <typename... Args>
Status unimplemented(const Args&... args) { return Status(StatusCode::kUnimplemented, str_cat(args...)); }
template <typename... Args>
Status internal_error(const Args&... args) { return Status(StatusCode::kInternal, str_cat(args...)); }
template <typename... Args>
Status failed_precondition(const Args&... args) { return Status(StatusCode::kFailedPrecondition, str_cat(args...)); }
template <typename... Args>
Status out_of_range(const Args&... args) { return Status(StatusCode::kOutOfRange, str_cat(args...)); }
template <typename... Args>
Status data_loss(const Args&... args) { return Status(StatusCode::kDataLoss, str_cat(args...)); }
template <typename... Args>
Status resource_exhausted(const Args&... args) { return Status(StatusCode::kResourceExhausted, str_cat(args...)); }

// Either a value or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(implicit)
  Result(Status status) : v_(std::move(status)) {  // NOLINT(implicit)
    if (std::get<Status>(v_).ok()) v_ = Status(StatusCode::kInternal, "Result built from OK status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace hearth

#define HEARTH_CONCAT_INNER(a, b) a##b
#define HEARTH_CONCAT(a, b) HEARTH_CONCAT_INNER(a, b)

// Returns the Status from the enclosing function when `expr` is not OK.
#define HEARTH_RETURN_IF_ERROR(expr)                 \
  do {                                               \
    ::hearth::Status hearth_status_ = (expr);        \
    if (!hearth_status_.ok()) return hearth_status_; \
  } while (0)

// `lhs = value of expr`, or return its Status. lhs may be a declaration.
#define HEARTH_ASSIGN_OR_RETURN(lhs, expr) \
  HEARTH_ASSIGN_OR_RETURN_IMPL(HEARTH_CONCAT(hearth_result_, __LINE__), lhs, expr)
#define HEARTH_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()
