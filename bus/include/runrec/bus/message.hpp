// The messages runner and engine exchange, and their wire encoding (docs/wire-protocol.md).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <tl/expected.hpp>

namespace runrec::bus {

enum class ErrorCode {
  kInvalidEndpoint,  // an endpoint string that is not inproc://, ipc:// or tcp://
  kMalformed,        // a message that does not decode (the message names the field)
  kTimeout,          // no answer in time
  kClosed,           // the peer went away or the socket was closed
  kRejected,         // the peer answered with an error (e.g. engine busy)
  kIo,               // any other ZeroMQ failure
};
const char* toString(ErrorCode code);

struct Error {
  ErrorCode code;
  std::string message;
};
template <class T>
using Result = tl::expected<T, Error>;
using Status = Result<void>;

enum class MessageType {
  // runner -> engine (command channel)
  kOpen,     // body: run description (protocol name/file/sha256/text, labwareDefinitions, ...)
  kCommand,  // seq: command index 1..n; body: {"commandType", "params", "key"?}
  kEnd,      // body: {"commands": n, "reason": "complete" | "runnerFailed", ...}
  // engine -> runner (outcome channel)
  kOpened,    // runId assigned; body: {"runId"}
  kOutcome,   // seq: command index; body: {"status": "succeeded"|"failed", "error"?: {...}}
  kFinished,  // body: the run summary; last message of a run
  kRefused,   // the engine refused an open/command; body: {"message"}
};
const char* toString(MessageType type);

struct Message {
  MessageType type;
  std::string runId;  // empty on kOpen
  std::uint64_t seq = 0;
  nlohmann::json body = nlohmann::json::object();
};

// One ZeroMQ frame holding a JSON object {"v":1,"type":...,"runId":...,"seq":...,"body":...}.
std::string encode(const Message& message);
// Strict: unknown version, missing or mistyped fields give kMalformed naming the field.
Result<Message> decode(std::string_view frame);

// The bus's strict JSON parser (RFC 8259, valid UTF-8 only, nesting up to 256), building the
// same nlohmann::json values as nlohmann::json::parse about 3x faster. On failure returns
// false and sets `error` (with the byte offset). Never throws except std::bad_alloc.
bool parseJson(std::string_view text, nlohmann::json& out, std::string& error);

// Appends to `out` exactly the text of value.dump(-1, ' ', false, error_handler_t::replace)
// (nlohmann's compact form, invalid UTF-8 replaced), about 3x faster for the payloads the
// engine writes. Never throws except std::bad_alloc.
void dumpJson(const nlohmann::json& value, std::string& out);

}  // namespace runrec::bus
