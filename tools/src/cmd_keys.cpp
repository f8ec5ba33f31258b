// `runrec keys`: CURVE key folders for the live-event endpoints (docs/events-wire.md, Security).
#include <iostream>

#include "cli_common.hpp"
#include "runrec/bus/curve.hpp"

namespace runrec::cli {

void addKeysCommand(CLI::App& app, int& exitCode) {
  auto* keys = app.add_subcommand("keys", "Generate CURVE keys for encrypted, authenticated live events");
  keys->require_subcommand(1);
  keys->footer(
      "An engine started with `--curve-keys SERVER_DIR` admits only the clients whose public\n"
      "keys are in SERVER_DIR/authorized/*.pub (read again on every connection: delete a file\n"
      "to revoke that client). Layout and protocol: docs/events-wire.md, Security.\n"
      "  runrec keys generate /etc/runrec/curve                       # server.key, server.pub, authorized/\n"
      "  runrec keys client /etc/runrec/curve ~/.runrec/curve --name laptop\n"
      "  runrec engine --listen ... --events tcp://0.0.0.0:7100 --curve-keys /etc/runrec/curve\n"
      "  runrec subscribe --all --follow --connect tcp://robot:7100 --curve-keys ~/.runrec/curve");

  auto serverDir = std::make_shared<std::string>();
  auto* gen = keys->add_subcommand("generate", "Create the engine's key pair: DIR/server.key, DIR/server.pub, DIR/authorized/");
  gen->add_option("dir", *serverDir, "Folder (created, mode 700)")->required();
  gen->callback([serverDir, &exitCode] {
    auto kp = bus::generateServerKeys(*serverDir);
    if (!kp) {
      exitCode = error(kp.error().code == bus::ErrorCode::kRejected ? kBadInput : kSystemError, kp.error().message);
      return;
    }
    std::cout << *serverDir << "/server.key  (secret, mode 600)\n"
              << *serverDir << "/server.pub  " << kp->publicKey << "\n"
              << *serverDir << "/authorized/ (add clients with `runrec keys client " << *serverDir
              << " CLIENT_DIR --name NAME`)\n";
  });

  struct ClientOpts {
    std::string serverDir, clientDir, name;
  };
  auto c = std::make_shared<ClientOpts>();
  auto* cli = keys->add_subcommand(
      "client", "Create a client's key pair in CLIENT_DIR (with a copy of server.pub) and authorise it in SERVER_DIR");
  cli->add_option("server_dir", c->serverDir, "The engine's key folder (from `runrec keys generate`)")
      ->required()
      ->check(CLI::ExistingDirectory);
  cli->add_option("client_dir", c->clientDir, "Folder for the client's keys (created, mode 700)")->required();
  cli->add_option("--name", c->name, "Name of the client: SERVER_DIR/authorized/NAME.pub")->required();
  cli->callback([c, &exitCode] {
    auto kp = bus::generateClientKeys(c->serverDir, c->clientDir, c->name);
    if (!kp) {
      exitCode = error(kp.error().code == bus::ErrorCode::kRejected ? kBadInput : kSystemError, kp.error().message);
      return;
    }
    std::cout << c->clientDir << "/client.key  (secret, mode 600)\n"
              << c->clientDir << "/client.pub  " << kp->publicKey << "\n"
              << c->clientDir << "/server.pub  (copy of the engine's)\n"
              << c->serverDir << "/authorized/" << c->name << ".pub  (authorised)\n";
  });
}

}  // namespace runrec::cli
