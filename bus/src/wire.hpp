// Internal to the bus: the envelope codec with the open message's "replyTo" field, and the
// strict JSON parser behind decode(). Not part of the public headers.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "runrec/bus/message.hpp"

namespace runrec::bus::detail {

// Like encode(), adding "replyTo" to the envelope when it is non-empty (open only).
std::string encodeFrame(const Message& message, std::string_view replyTo);
// Appends to `out` the frame encodeFrame writes for a message whose body is given as JSON text
// (`bodyJson`: one object, as nlohmann's dump() writes it; an empty body is written as {}).
void appendFrame(std::string& out, MessageType type, const std::string& runId, std::uint64_t seq,
                 std::string_view replyTo, std::string_view bodyJson);
// Like decode(); stores the envelope's "replyTo" (empty if absent) when replyTo is non-null.
Result<Message> decodeFrame(std::string_view frame, std::string* replyTo);
// The same, always through the general path: the frame parsed into a JSON value, then each
// envelope field checked, the first bad one named. decodeFrame() reads well-formed frames
// without building the envelope object and gives every other frame to this one; both accept
// exactly the same frames with the same result (tests/bus/decode_fast_test.cpp).
Result<Message> decodeFrameChecked(std::string_view frame, std::string* replyTo);

// Strict RFC 8259 parser building nlohmann::json (validates UTF-8; rejects trailing data,
// numbers out of double range, nesting deeper than 256). On failure returns false and sets
// `error` to a description with the byte offset. Never throws except std::bad_alloc.
bool parseJson(std::string_view text, nlohmann::json& out, std::string& error);

}  // namespace runrec::bus::detail
