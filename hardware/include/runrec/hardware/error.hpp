// Errors the hardware layer returns: a closed set of codes, never exceptions across the boundary.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <tl/expected.hpp>

namespace runrec::hardware {

enum class ErrorCode {
  kInvalidDefinition,  // a labware/pipette definition is malformed (message names the JSON path)
  kNotFound,           // no such labware/pipette/slot/well
  kInvalidArgument,    // a request the robot cannot perform (out of range, no tip, ...)
  kTimeout,            // the board did not acknowledge in time
  kAlarm,              // the board reported ALARM (e.g. a limit switch)
  kBoardError,         // the board answered `error`
  kCommunication,      // port vanished, garbage reply, I/O failure
};

const char* toString(ErrorCode code);

struct Error {
  ErrorCode code;
  std::string message;
  nlohmann::json details = nlohmann::json::object();
};

template <class T>
using Result = tl::expected<T, Error>;
using Status = Result<void>;

inline tl::unexpected<Error> fail(ErrorCode code, std::string message,
                                  nlohmann::json details = nlohmann::json::object()) {
  return tl::unexpected<Error>(Error{code, std::move(message), std::move(details)});
}

}  // namespace runrec::hardware
