// The control channel: REQ/REP with one JSON frame each way.
#include "runrec/bus/control.hpp"

#include <spdlog/fmt/fmt.h>

#include <charconv>
#include <zmq.hpp>

#include "ipc_file.hpp"

namespace runrec::bus {

using nlohmann::json;

Result<std::string> controlEndpoint(const std::string& e) {
  auto out = outcomeEndpoint(e);  // validates E
  if (!out) return tl::unexpected(out.error());
  if (e.rfind("tcp://", 0) == 0) {
    auto colon = e.rfind(':');
    int port = 0;
    std::from_chars(e.data() + colon + 1, e.data() + e.size(), port);
    if (port + 2 > 65535)
      return tl::unexpected(Error{ErrorCode::kInvalidEndpoint,
                                  fmt::format("bus endpoint \"{}\": the port must be at most 65533 (control uses "
                                              "port+2)", e)});
    return e.substr(0, colon + 1) + std::to_string(port + 2);
  }
  return e + ".control";
}

struct ControlServer::Impl {
  Impl(zmq::context_t& ctx, std::string ep) : rep(ctx, zmq::socket_type::rep), endpoint(std::move(ep)) {}
  detail::IpcFile file;  // destroyed after the socket is closed
  zmq::socket_t rep;
  std::string endpoint;
};

ControlServer::ControlServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ControlServer::~ControlServer() = default;

Result<std::unique_ptr<ControlServer>> ControlServer::bind(Context& ctx, const std::string& endpoint) {
  try {
    auto impl = std::make_unique<Impl>(ctx.zmq(), endpoint);
    impl->rep.set(zmq::sockopt::linger, 0);
    impl->rep.bind(endpoint);
    impl->file.remember(endpoint);
    return std::unique_ptr<ControlServer>(new ControlServer(std::move(impl)));
  } catch (const zmq::error_t& e) {
    return tl::unexpected(Error{ErrorCode::kIo, fmt::format("bus: bind control {}: {}", endpoint, e.what())});
  }
}

const std::string& ControlServer::endpoint() const { return impl_->endpoint; }

Result<std::optional<json>> ControlServer::receive(std::chrono::milliseconds timeout) {
  try {
    zmq::pollitem_t item{impl_->rep.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, timeout) <= 0) return std::optional<json>{};
    zmq::message_t msg;
    if (!impl_->rep.recv(msg, zmq::recv_flags::dontwait)) return std::optional<json>{};
    json req = json::parse(msg.to_string_view(), nullptr, false);
    if (req.is_discarded() || !req.is_object() || !req.contains("action") || !req["action"].is_string()) {
      std::string why = req.is_discarded() ? "not JSON" : "expected a JSON object with a string \"action\"";
      std::string answer = json{{"ok", false}, {"error", "control request: " + why}}.dump();
      impl_->rep.send(zmq::buffer(answer), zmq::send_flags::none);
      return std::optional<json>{};
    }
    return std::optional<json>(std::move(req));
  } catch (const zmq::error_t& e) {
    return tl::unexpected(Error{ErrorCode::kIo, fmt::format("bus: control receive: {}", e.what())});
  }
}

Status ControlServer::reply(const json& answer) {
  try {
    std::string text = answer.dump(-1, ' ', false, json::error_handler_t::replace);
    impl_->rep.send(zmq::buffer(text), zmq::send_flags::none);
    return {};
  } catch (const zmq::error_t& e) {
    return tl::unexpected(Error{ErrorCode::kIo, fmt::format("bus: control reply: {}", e.what())});
  }
}

Result<json> controlRequest(Context& ctx, const std::string& endpoint, const json& request,
                            std::chrono::milliseconds timeout) {
  try {
    zmq::socket_t req(ctx.zmq(), zmq::socket_type::req);
    req.set(zmq::sockopt::linger, 0);
    req.connect(endpoint);
    std::string text = request.dump();
    if (!req.send(zmq::buffer(text), zmq::send_flags::dontwait))
      return tl::unexpected(Error{ErrorCode::kTimeout, "bus: no engine at " + endpoint});
    zmq::pollitem_t item{req.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, timeout) <= 0)
      return tl::unexpected(Error{ErrorCode::kTimeout, fmt::format("bus: no engine answered at {} within {} ms",
                                                                   endpoint, timeout.count())});
    zmq::message_t msg;
    if (!req.recv(msg, zmq::recv_flags::dontwait))
      return tl::unexpected(Error{ErrorCode::kTimeout, "bus: no answer from " + endpoint});
    json answer = json::parse(msg.to_string_view(), nullptr, false);
    if (answer.is_discarded() || !answer.is_object())
      return tl::unexpected(Error{ErrorCode::kMalformed, "bus: the engine's control answer is not a JSON object"});
    return answer;
  } catch (const zmq::error_t& e) {
    return tl::unexpected(Error{ErrorCode::kIo, fmt::format("bus: control request to {}: {}", endpoint, e.what())});
  }
}

}  // namespace runrec::bus
