// CURVE key files, key generation and the ZAP handler for the live-event endpoints
// (docs/events-wire.md, "Security").
#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <vector>

#include "curve_internal.hpp"

namespace runrec::bus {

namespace fs = std::filesystem;

namespace {

constexpr const char* kZapEndpoint = "inproc://zeromq.zap.01";
constexpr std::size_t kZ85KeyChars = 40;

tl::unexpected<Error> failWith(ErrorCode code, std::string message) {
  return tl::unexpected(Error{code, std::move(message)});
}

// 32 raw bytes from 40 Z85 characters, or nullopt.
std::optional<std::array<std::uint8_t, 32>> decodeZ85(const std::string& text) {
  if (text.size() != kZ85KeyChars) return std::nullopt;
  std::array<std::uint8_t, 32> raw{};
  if (zmq_z85_decode(raw.data(), text.c_str()) == nullptr) return std::nullopt;
  return raw;
}

std::string trim(const std::string& s) {
  auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

// The raw 32-byte keys of DIR/authorized/*.pub; unreadable or malformed files are logged
// and left out (they admit nobody).
std::set<std::string> authorizedKeys(const fs::path& dir) {
  std::set<std::string> keys;
  std::error_code ec;
  for (fs::directory_iterator it(dir / "authorized", ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().extension() != ".pub") continue;
    auto key = readKeyFile(it->path(), false);
    if (!key) {
      spdlog::warn("curve: {}; that client is not admitted", key.error().message);
      continue;
    }
    auto raw = decodeZ85(*key);
    keys.emplace(reinterpret_cast<const char*>(raw->data()), raw->size());
  }
  return keys;
}

}  // namespace

bool curveAvailable() { return zmq_has("curve") != 0; }

Status requireCurve() {
  if (curveAvailable()) return {};
  int major = 0, minor = 0, patch = 0;
  zmq_version(&major, &minor, &patch);
  return failWith(ErrorCode::kIo, fmt::format("this libzmq ({}.{}.{}) was built without CURVE security "
                                              "(zmq_has(\"curve\") is false); install a libzmq with libsodium "
                                              "or the built-in tweetnacl (Debian's libzmq5 has it)",
                                              major, minor, patch));
}

Result<CurveKeyPair> generateCurveKeyPair() {
  if (auto st = requireCurve(); !st) return tl::unexpected(st.error());
  char pub[41] = {}, sec[41] = {};
  if (zmq_curve_keypair(pub, sec) != 0)
    return failWith(ErrorCode::kIo, fmt::format("zmq_curve_keypair: {}", zmq_strerror(zmq_errno())));
  CurveKeyPair kp{pub, sec};
  std::memset(sec, 0, sizeof sec);
  return kp;
}

Result<std::string> readKeyFile(const fs::path& file, bool secret) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0)
    return failWith(ErrorCode::kRejected, fmt::format("key file {}: {}", file.string(), std::strerror(errno)));
  if (!S_ISREG(st.st_mode)) return failWith(ErrorCode::kRejected, fmt::format("key file {}: not a file", file.string()));
  if (secret && (st.st_mode & 077) != 0)
    return failWith(ErrorCode::kRejected,
                    fmt::format("secret key file {} is readable by others (mode {:o}); chmod 600 it", file.string(),
                                st.st_mode & 0777));
  if (st.st_size > 1024) return failWith(ErrorCode::kRejected, fmt::format("key file {}: too large", file.string()));
  std::ifstream in(file);
  std::stringstream ss;
  ss << in.rdbuf();
  if (!in) return failWith(ErrorCode::kRejected, fmt::format("key file {}: cannot read", file.string()));
  std::string key = trim(ss.str());
  if (!decodeZ85(key))
    return failWith(ErrorCode::kRejected,
                    fmt::format("key file {}: expected one key of 40 Z85 characters (as `runrec keys` writes)",
                                file.string()));
  return key;
}

Status writeKeyFile(const fs::path& file, const std::string& key, bool secret) {
  int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, secret ? 0600 : 0644);
  if (fd < 0)
    return failWith(errno == EEXIST ? ErrorCode::kRejected : ErrorCode::kIo,
                    fmt::format("key file {}: {}", file.string(),
                                errno == EEXIST ? "already exists (not overwritten)" : std::strerror(errno)));
  std::string line = key + "\n";
  bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  ok = (::fsync(fd) == 0) && ok;
  ::close(fd);
  if (!ok) return failWith(ErrorCode::kIo, fmt::format("key file {}: write failed", file.string()));
  return {};
}

Result<CurveKeyPair> generateServerKeys(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir / "authorized", ec);
  if (ec) return failWith(ErrorCode::kIo, fmt::format("{}: {}", (dir / "authorized").string(), ec.message()));
  fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace, ec);
  if (fs::exists(dir / "server.key") || fs::exists(dir / "server.pub"))
    return failWith(ErrorCode::kRejected, fmt::format("{} already holds server keys (not overwritten)", dir.string()));
  auto kp = generateCurveKeyPair();
  if (!kp) return kp;
  if (auto st = writeKeyFile(dir / "server.key", kp->secretKey, true); !st) return tl::unexpected(st.error());
  if (auto st = writeKeyFile(dir / "server.pub", kp->publicKey, false); !st) return tl::unexpected(st.error());
  return kp;
}

Result<CurveKeyPair> generateClientKeys(const fs::path& serverDir, const fs::path& clientDir, const std::string& name) {
  if (name.empty() || name.size() > 64 ||
      !std::all_of(name.begin(), name.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.'; }) ||
      name[0] == '.')
    return failWith(ErrorCode::kRejected, fmt::format("client name \"{}\": use letters, digits, '-', '_', '.'", name));
  auto serverPub = readKeyFile(serverDir / "server.pub", false);
  if (!serverPub) return tl::unexpected(serverPub.error());
  fs::path authorized = serverDir / "authorized" / (name + ".pub");
  if (fs::exists(authorized))
    return failWith(ErrorCode::kRejected, fmt::format("{} already exists (choose another --name)", authorized.string()));
  std::error_code ec;
  fs::create_directories(clientDir, ec);
  if (ec) return failWith(ErrorCode::kIo, fmt::format("{}: {}", clientDir.string(), ec.message()));
  fs::permissions(clientDir, fs::perms::owner_all, fs::perm_options::replace, ec);
  auto kp = generateCurveKeyPair();
  if (!kp) return kp;
  if (auto st = writeKeyFile(clientDir / "client.key", kp->secretKey, true); !st) return tl::unexpected(st.error());
  if (auto st = writeKeyFile(clientDir / "client.pub", kp->publicKey, false); !st) return tl::unexpected(st.error());
  if (auto st = writeKeyFile(clientDir / "server.pub", *serverPub, false); !st) return tl::unexpected(st.error());
  if (auto st = writeKeyFile(authorized, kp->publicKey, false); !st) return tl::unexpected(st.error());
  return kp;
}

Result<CurveClientKeys> loadClientKeys(const fs::path& dir) {
  if (auto st = requireCurve(); !st) return tl::unexpected(st.error());
  CurveClientKeys k;
  auto sp = readKeyFile(dir / "server.pub", false);
  if (!sp) return tl::unexpected(sp.error());
  auto cp = readKeyFile(dir / "client.pub", false);
  if (!cp) return tl::unexpected(cp.error());
  auto cs = readKeyFile(dir / "client.key", true);
  if (!cs) return tl::unexpected(cs.error());
  k.serverPublic = *sp;
  k.publicKey = *cp;
  k.secretKey = *cs;
  return k;
}

bool isLoopbackEndpoint(const std::string& e) {
  if (e.rfind("inproc://", 0) == 0 || e.rfind("ipc://", 0) == 0) return true;
  if (e.rfind("tcp://", 0) != 0) return false;
  std::string rest = e.substr(6);
  auto colon = rest.rfind(':');
  std::string host = colon == std::string::npos ? rest : rest.substr(0, colon);
  if (host == "localhost" || host == "[::1]" || host == "::1") return true;
  // 127.0.0.0/8, written as a dotted quad.
  if (host.rfind("127.", 0) != 0) return false;
  int dots = 0;
  for (char c : host) {
    if (c == '.') dots++;
    else if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  return dots == 3;
}

// ---------------------------------------------------------------------------------------
// CurveServer: the secret key and the ZAP handler thread.

struct CurveServer::Impl {
  explicit Impl(zmq::context_t& ctx) : zap(ctx, zmq::socket_type::rep) {}
  ~Impl() {
    stop.store(true);
    if (thread.joinable()) thread.join();
    std::fill(secretKey.begin(), secretKey.end(), '\0');
  }
  fs::path dir;
  std::string publicKey, secretKey;
  zmq::socket_t zap;  // used by `thread` only once started
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> accepted{0}, refused{0};
  std::thread thread;

  // One ZAP request (RFC 27): version, request id, domain, address, identity, mechanism,
  // credentials... -> version, request id, status code, status text, user id, metadata.
  void serveOne() {
    std::vector<zmq::message_t> frames;
    for (;;) {
      zmq::message_t m;
      if (!zap.recv(m, zmq::recv_flags::none)) return;
      bool more = m.more();
      frames.push_back(std::move(m));
      if (!more) break;
    }
    std::string requestId = frames.size() > 1 ? frames[1].to_string() : std::string();
    std::string code = "400", text = "not authorised", user;
    if (frames.size() < 6 || frames[0].to_string_view() != "1.0") {
      code = "500";
      text = "malformed ZAP request";
    } else if (frames[2].to_string_view() != kEventsZapDomain) {
      text = "unknown domain";
    } else if (frames[5].to_string_view() != "CURVE" || frames.size() < 7 || frames[6].size() != 32) {
      text = "CURVE required";
    } else {
      std::string key(static_cast<const char*>(frames[6].data()), 32);
      char z85[41] = {};
      zmq_z85_encode(z85, reinterpret_cast<const std::uint8_t*>(key.data()), 32);
      if (authorizedKeys(dir).count(key) != 0) {
        code = "200";
        text = "OK";
        user = z85;
      } else {
        spdlog::warn("curve: refused a client with unknown key {} from {}", z85, frames[3].to_string());
      }
    }
    (code == "200" ? accepted : refused)++;
    zap.send(zmq::str_buffer("1.0"), zmq::send_flags::sndmore);
    zap.send(zmq::buffer(requestId), zmq::send_flags::sndmore);
    zap.send(zmq::buffer(code), zmq::send_flags::sndmore);
    zap.send(zmq::buffer(text), zmq::send_flags::sndmore);
    zap.send(zmq::buffer(user), zmq::send_flags::sndmore);
    zap.send(zmq::str_buffer(""), zmq::send_flags::none);
  }

  void loop() {
    while (!stop.load()) {
      try {
        zmq::pollitem_t item{zap.handle(), 0, ZMQ_POLLIN, 0};
        if (zmq::poll(&item, 1, std::chrono::milliseconds(100)) <= 0) continue;
        serveOne();
      } catch (const zmq::error_t& e) {
        if (e.num() == ETERM) return;
        if (e.num() != EINTR) spdlog::warn("curve: ZAP handler: {}", e.what());
      }
    }
  }
};

CurveServer::CurveServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CurveServer::~CurveServer() = default;
const std::string& CurveServer::publicKey() const { return impl_->publicKey; }
std::uint64_t CurveServer::accepted() const { return impl_->accepted.load(); }
std::uint64_t CurveServer::refused() const { return impl_->refused.load(); }

Result<std::shared_ptr<CurveServer>> CurveServer::start(Context& ctx, const fs::path& dir) {
  if (auto st = requireCurve(); !st) return tl::unexpected(st.error());
  auto sec = readKeyFile(dir / "server.key", true);
  if (!sec) return tl::unexpected(sec.error());
  auto pub = readKeyFile(dir / "server.pub", false);
  if (!pub) return tl::unexpected(pub.error());
  // The public key must belong to the secret one (a mismatched pair would fail every client).
  char derived[41] = {};
  if (zmq_curve_public(derived, sec->c_str()) != 0 || *pub != derived)
    return failWith(ErrorCode::kRejected, fmt::format("{}: server.pub is not the public key of server.key",
                                                      dir.string()));
  if (!fs::is_directory(dir / "authorized"))
    return failWith(ErrorCode::kRejected, fmt::format("{}: no authorized/ folder (client public keys, *.pub)",
                                                      dir.string()));
  if (authorizedKeys(dir).empty())
    spdlog::warn("curve: {}/authorized holds no client key yet: nobody can subscribe until one is added "
                 "(runrec keys client)", dir.string());
  try {
    auto impl = std::make_unique<Impl>(ctx.zmq());
    impl->dir = dir;
    impl->publicKey = *pub;
    impl->secretKey = *sec;
    impl->zap.set(zmq::sockopt::linger, 0);
    impl->zap.bind(kZapEndpoint);  // before any secured socket exists: none is ever unguarded
    Impl* raw = impl.get();
    impl->thread = std::thread([raw] { raw->loop(); });
    return std::shared_ptr<CurveServer>(new CurveServer(std::move(impl)));
  } catch (const zmq::error_t& e) {
    return failWith(ErrorCode::kIo, fmt::format("curve: ZAP handler at {}: {}", kZapEndpoint, e.what()));
  }
}

namespace detail {

void secureServer(zmq::socket_t& s, const CurveServer* server) {
  if (server == nullptr) return;
  s.set(zmq::sockopt::zap_domain, kEventsZapDomain);
  s.set(zmq::sockopt::curve_server, true);
  s.set(zmq::sockopt::curve_secretkey, server->impl().secretKey);
}

void secureClient(zmq::socket_t& s, const CurveClientKeys* keys) {
  if (keys == nullptr) return;
  s.set(zmq::sockopt::curve_serverkey, keys->serverPublic);
  s.set(zmq::sockopt::curve_publickey, keys->publicKey);
  s.set(zmq::sockopt::curve_secretkey, keys->secretKey);
}

}  // namespace detail

}  // namespace runrec::bus
