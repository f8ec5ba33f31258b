// ZeroMQ CURVE for the live-event endpoints (docs/events-wire.md, "Security"): key files,
// key generation, and the engine's ZAP handler that admits only authorised client keys.
//
// Key folders (every key is one line of 40 Z85 characters; secret keys are mode 0600):
//   server folder (`runrec engine --curve-keys DIR`):
//     DIR/server.key        the engine's secret key
//     DIR/server.pub        the engine's public key (give it to clients)
//     DIR/authorized/*.pub  one file per client allowed to subscribe and read history
//   client folder (`runrec subscribe --curve-keys DIR`):
//     DIR/client.key, DIR/client.pub   the client's key pair
//     DIR/server.pub                   the engine's public key
//
// Thread-safety: a CurveServer's ZAP thread is its own; the object's methods may be called
// from any thread. The CurveServer must outlive every socket it secured and be destroyed
// before its Context.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include "runrec/bus/channel.hpp"

namespace runrec::bus {

// The ZAP domain the engine's event and history sockets use.
constexpr const char* kEventsZapDomain = "runrec-events";

// True when this libzmq was built with CURVE (zmq_has("curve")).
bool curveAvailable();
// kIo with a clear message when CURVE is not available; {} otherwise.
Status requireCurve();

struct CurveKeyPair {
  std::string publicKey;  // 40 Z85 characters
  std::string secretKey;
};
Result<CurveKeyPair> generateCurveKeyPair();

// Reads one key file (40 Z85 characters, surrounding whitespace ignored). A secret key file
// readable by group or others is refused (kRejected), as ssh refuses such keys.
Result<std::string> readKeyFile(const std::filesystem::path& file, bool secret);
// Writes a key file; secret ones are created mode 0600. Refuses to overwrite (kRejected).
Status writeKeyFile(const std::filesystem::path& file, const std::string& key, bool secret);

// `runrec keys generate DIR`: DIR/server.key, DIR/server.pub and DIR/authorized/.
Result<CurveKeyPair> generateServerKeys(const std::filesystem::path& dir);
// `runrec keys client SERVER_DIR CLIENT_DIR --name NAME`: CLIENT_DIR/client.key, client.pub
// and a copy of server.pub; authorises the client as SERVER_DIR/authorized/NAME.pub.
Result<CurveKeyPair> generateClientKeys(const std::filesystem::path& serverDir, const std::filesystem::path& clientDir,
                                        const std::string& name);

// What a client needs: its key pair and the server's public key.
struct CurveClientKeys {
  std::string serverPublic;
  std::string publicKey;
  std::string secretKey;
};
Result<CurveClientKeys> loadClientKeys(const std::filesystem::path& dir);

// The engine's side: its secret key and a ZAP handler (inproc://zeromq.zap.01 on `ctx`, so
// at most one per Context) admitting the keys in DIR/authorized/*.pub, read again on every
// connection attempt (adding or removing a file takes effect for the next connection).
// Anything else (no CURVE, an unknown key, another domain) is refused.
class CurveServer {
 public:
  static Result<std::shared_ptr<CurveServer>> start(Context& ctx, const std::filesystem::path& dir);
  ~CurveServer();
  CurveServer(const CurveServer&) = delete;
  CurveServer& operator=(const CurveServer&) = delete;

  const std::string& publicKey() const;
  std::uint64_t accepted() const;
  std::uint64_t refused() const;

  struct Impl;  // bus-internal (sockets are secured in bus/src)
  Impl& impl() const { return *impl_; }

 private:
  explicit CurveServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// True for endpoints only this machine can reach: inproc://, ipc://, and tcp:// on
// 127.0.0.0/8, localhost or [::1]. Everything else (0.0.0.0, *, a LAN address, an
// interface name) is reachable from the network.
bool isLoopbackEndpoint(const std::string& endpoint);

}  // namespace runrec::bus
