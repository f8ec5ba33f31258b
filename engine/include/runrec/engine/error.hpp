// Errors the engine returns: a closed set of codes.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <tl/expected.hpp>

namespace runrec::engine {

enum class ErrorCode {
  kIo,          // the database file cannot be opened, read or written
  kCorrupt,     // the database is damaged or not a runrec log (message says what is wrong)
  kSchema,      // the log was written by a newer runrec (schema version too high)
  kNotFound,    // no such run
  kAmbiguous,   // a run-id prefix that matches several runs
  kInvalid,     // an invalid request (bad argument, bad bus message)
  kBus,         // the command bus failed
};
const char* toString(ErrorCode code);

struct Error {
  ErrorCode code;
  std::string message;
};
template <class T>
using Result = tl::expected<T, Error>;
using Status = Result<void>;

inline tl::unexpected<Error> fail(ErrorCode code, std::string message) {
  return tl::unexpected<Error>(Error{code, std::move(message)});
}

}  // namespace runrec::engine
