// Internal to the bus: applying CURVE keys to a socket (server with ZAP, or client).
#pragma once

#include <zmq.hpp>

#include "runrec/bus/curve.hpp"

namespace runrec::bus::detail {

// Makes `s` a CURVE server with the engine's secret key, authenticated by the ZAP handler
// of `server` (domain kEventsZapDomain). Must be called before bind(). nullptr: no-op.
void secureServer(zmq::socket_t& s, const CurveServer* server);
// Makes `s` a CURVE client of the server whose public key is in `keys`. Before connect().
void secureClient(zmq::socket_t& s, const CurveClientKeys* keys);

}  // namespace runrec::bus::detail
