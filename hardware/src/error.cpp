// Names of the hardware error codes (stable: they appear in recorded error occurrences).
#include "runrec/hardware/error.hpp"

namespace runrec::hardware {

const char* toString(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidDefinition: return "InvalidDefinition";
    case ErrorCode::kNotFound: return "NotFound";
    case ErrorCode::kInvalidArgument: return "InvalidArgument";
    case ErrorCode::kTimeout: return "Timeout";
    case ErrorCode::kAlarm: return "Alarm";
    case ErrorCode::kBoardError: return "BoardError";
    case ErrorCode::kCommunication: return "Communication";
  }
  return "Unknown";
}

}  // namespace runrec::hardware
